/**
 * The `ips` scenario: two sessions from the client to the server through
 * box1, a router. box1 runs a classifier (classifier.ts: the IPS example's
 * engine with a list of suspicious terms) that has the IPS inserted after
 * box1 into a session in which a suspicious request shows up. The IPS (the
 * IPS example's command, on the ips host) scans the rest of the session:
 *
 * - session A stays clean: once the IPS has scanned enough of it both
 *   ways, it takes itself out (`dysco.remove`), and the transfer completes
 *   intact;
 * - session B's server starts sending a password file: the IPS finds the
 *   term and blocks the session with nftables (TCP resets to both ends).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from '@dysco/agent/topology';
import type { StreamReport } from '@dysco/agent/tools/stream';
import { IPS_COMMAND } from '@dysco-example/ips';
import { type Scenario, noteEvent, noteReconfiguration } from './context.js';
import { type LiveTransfer, Program, type Rec, liveTransfer, mb, mbit, verify, within } from './lib.js';
import type { Mark } from './svg.js';

const CLASSIFIER = fileURLToPath(new URL('./classifier.js', import.meta.url));
const PORT_CLEAN = 9100;
const PORT_LEAK = 9101;
/** What box1's classifier looks for: a request for a CGI script. */
const SUSPICIOUS = 'GET /cgi-bin/';
/** What the IPS looks for: a password file on its way out, and a marker of an exploit. */
const MALICIOUS = ['root:x:0:0:', 'X-EVIL-PAYLOAD-42'];
/** The pace of each direction of each session: the capture of both boxes keeps up with it on a small machine. */
const MAX_RATE = 4_000_000;

interface SessionView {
  session: string;
  right?: { agent: string };
}

export const ips: Scenario = {
  name: 'ips',
  summary: "two sessions through box1, whose classifier has the IPS inserted when a suspicious request appears; the IPS takes itself out of the clean one and blocks the one that leaks a password file",
  agentConfig: (ctx, host) => (host === 'client' ? { policies: [{ id: 30, match: `dst ${ctx.h('server').address}/32 dport ${PORT_CLEAN}-${PORT_LEAK}`, chain: [ctx.h('box1').address] }] } : {}),
  async run(ctx) {
    const [client, server, box1, ipsHost] = ['client', 'server', 'box1', 'ips'].map(ctx.h) as [Host, Host, Host, Host];
    const rate = Math.min(ctx.rate, MAX_RATE);
    const duration = Math.max(ctx.duration, 4);
    const bytes = Math.round(rate * duration);
    const at = (f: number) => Math.round(bytes * f);
    const releaseAfter = at(0.35);
    const marks: Mark[] = [];
    let t0 = Date.now();
    const names = new Map<number, string>();
    const nameOf = (r: Rec) => names.get(Number(r.sport)) ?? `${String(r.src)}:${String(r.sport)}>${String(r.dst)}:${String(r.dport)}`;
    const hostOf = (a: unknown) => [...ctx.bed.hosts.values()].find((x) => x.address === a)?.name ?? String(a);
    const dir = (d: unknown) => (d === 'clientToServer' ? 'client→server' : 'server→client');

    const cfgFile = join(ctx.bed.dir, 'ips.json');
    writeFileSync(cfgFile, JSON.stringify({ terms: MALICIOUS, releaseAfterBytes: releaseAfter, reassembly: { onGap: 'continue' }, block: { action: 'reset' } }, null, 2));
    const ipsProc = new Program('the IPS', ipsHost.node(IPS_COMMAND, ['--socket', ipsHost.socket, '--address', ipsHost.address, '--config', cfgFile]), (r) => {
      if (r.msg === 'watching' && r.role === 'relay') ctx.say(`  IPS: watching ${nameOf(r)}, between ${hostOf(r.left)} and ${hostOf(r.right)}`);
      else if (r.msg === 'verdict' && r.verdict === 'block') {
        const b = r.bytes as { clientToServer: number; serverToClient: number };
        ctx.say(`  ✋ IPS: "${String(r.term)}" in ${nameOf(r)}'s ${dir(r.direction)} stream, ${String(r.offset)} bytes after it started scanning: blocked (TCP resets to both ends), the rule in place ${String(r.enforcedInMs)} ms after the match; it had scanned ${mb(b.clientToServer)} / ${mb(b.serverToClient)}`);
        noteEvent(marks, t0, `${nameOf(r)} blocked (rule in ${String(r.enforcedInMs)} ms)`, true);
      } else if (r.msg === 'verdict' && r.verdict === 'release') {
        const b = r.bytes as { clientToServer: number; serverToClient: number };
        const o = r.removal as { result: string; durationMs: number; attempts: number };
        ctx.say(`  IPS: ${nameOf(r)} clean after ${mb(b.clientToServer)} client→server and ${mb(b.serverToClient)} server→client: it takes itself out`);
        noteReconfiguration(ctx, 'ips', marks, t0, `IPS removed itself from ${nameOf(r)}`, o.result, o.durationMs, o.attempts > 1 ? `(attempt ${o.attempts})` : '');
      } else if (r.msg === 'verdict') ctx.say(`  IPS: ${nameOf(r)}: ${String(r.verdict)} (${String(r.reason)}${r.detail ? `: ${String(r.detail)}` : ''})`);
      else if (r.level === 'warn' || r.level === 'error') ctx.say(`  IPS ${String(r.level)}: ${String(r.msg)}`);
    });
    const classifier = new Program("box1's classifier", box1.node(CLASSIFIER, ['--socket', box1.socket, '--address', box1.address, '--ips', ipsHost.address, '--term', SUSPICIOUS]), (r) => {
      if (r.msg !== 'flagged') return;
      const ins = r.insertion as { result: string; reason?: string; durationMs?: number };
      ctx.say(`  box1's classifier: "${String(r.term)}" in ${nameOf(r)}'s ${dir(r.direction)} stream at byte ${String(r.offset)}: suspicious, the IPS goes in`);
      noteReconfiguration(ctx, 'ips', marks, t0, `IPS inserted into ${nameOf(r)}`, ins.result, ins.durationMs, `${ins.reason ? `(${ins.reason}) ` : ''}after box1, by box1's agent`);
    });
    const transfers: LiveTransfer[] = [];
    try {
      await ipsProc.record('the IPS to start', (r) => r.msg === 'started');
      await classifier.record('the classifier to start', (r) => r.msg === 'started');
      ctx.say(`  box1 classifies: "${SUSPICIOUS}" in a session has the IPS inserted after box1`);
      ctx.say(`  the IPS (libpcap, nftables) blocks on ${MALICIOUS.map((m) => `"${m}"`).join(', ')} and leaves a session after ${mb(releaseAfter)} clean each way`);
      t0 = Date.now();
      const opts = { bytes, rate, origin: t0 };
      const [a, b] = await Promise.all([
        liveTransfer(client, server, { ...opts, port: PORT_CLEAN, inject: `${SUSPICIOUS}status HTTP/1.1\r\n@${at(0.1)}`, report: (m) => ctx.say(`    session A: ${m.toFixed(1)} Mbit/s both ways`) }),
        liveTransfer(client, server, { ...opts, port: PORT_LEAK, inject: `${SUSPICIOUS}export?f=../../etc/passwd HTTP/1.1\r\n@${at(0.2)}`, serverInject: `root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n@${at(0.4)}`, report: (m) => ctx.say(`    session B: ${m.toFixed(1)} Mbit/s both ways`) }),
      ]);
      transfers.push(a, b);
      const bEnded = b.client.then(
        () => Date.now(),
        () => Date.now(),
      );
      names.set(Number(a.local.split(':')[1]), 'session A');
      names.set(Number(b.local.split(':')[1]), 'session B');
      ctx.say(`  session A ${a.session} and session B ${b.session}: ${mb(bytes)} each way at ${mbit(rate)}, through box1`);
      ctx.say(`  A's client asks for a CGI script at byte ${at(0.1)}; B's at byte ${at(0.2)}, and B's server starts sending /etc/passwd at byte ${at(0.4)}`);

      const limit = duration * 3000 + 30_000;
      const [ac, as] = await within(limit, 'the end of session A', Promise.all([a.client, a.server]));
      const problems = verify(ac, as, bytes, a.local, { injected: true });
      for (const p of problems) ctx.fail(`ips: session A: ${p}`);
      if (problems.length === 0) ctx.say(`  session A: every byte arrived intact both ways (SHA-256 checked), no reset; longest stall ${Math.max(ac.maxGapMs, as.maxGapMs)} ms`);
      const settled = (p: Promise<StreamReport>) => p.then((r) => r, (e: Error) => ({ error: e.message }) as Partial<StreamReport>);
      const [bc, bs] = await within(limit, 'the end of session B', Promise.all([settled(b.client), settled(b.server)]));
      // the plot shows B's throughput falling to nothing when it ends
      b.samples.push([((await bEnded) - t0) / 1000, 0]);
      if (bc.reset || bs.reset) ctx.say(`  session B cut: the client received ${mb(bc.received ?? 0)} of ${mb(bytes)} (the password file starts at ${mb(at(0.4))}); reset: client ${bc.reset ? 'yes' : 'no'}, server ${bs.reset ? 'yes' : 'no'}`);
      else ctx.fail(`ips: session B was not cut: the client received ${bc.received ?? 0} of ${bytes} bytes`);

      const verdicts = (r: Rec) => r.msg === 'verdict';
      const release = await ipsProc.record("the IPS's verdict on session A", (r) => verdicts(r) && names.get(Number(r.sport)) === 'session A');
      const block = await ipsProc.record("the IPS's verdict on session B", (r) => verdicts(r) && names.get(Number(r.sport)) === 'session B');
      if (release.verdict !== 'release') ctx.fail(`ips: session A: the IPS's verdict is ${String(release.verdict)} (${String(release.reason)}), not release`);
      if (block.verdict !== 'block' || block.term !== MALICIOUS[0]) ctx.fail(`ips: session B: the IPS's verdict is ${String(block.verdict)} (${String(block.reason)} ${String(block.term ?? '')}), not a block on the password file`);
      const flagged = classifier.records.filter((r) => r.msg === 'flagged').map((r) => names.get(Number(r.sport)));
      if (!flagged.includes('session A') || !flagged.includes('session B')) ctx.fail(`ips: the classifier flagged ${flagged.join(', ') || 'nothing'}, not both sessions`);
      const atBox1 = JSON.parse((await box1.agent!.cliAsync('sessions', '--json')).stdout || '[]') as SessionView[];
      const next = atBox1.find((s) => s.session === a.session)?.right?.agent;
      ctx.say(`  session A at box1's agent: next hop ${next === server.address ? 'the server again' : (next ?? 'unknown')}`);
      if (next !== server.address) ctx.fail(`ips: session A: box1 still sends it to ${next ?? 'nobody'}`);
      return {
        title: 'ips: inserted on a suspicious request; A released, B blocked',
        series: [
          { label: 'session A (clean)', points: a.samples },
          { label: 'session B (leaks)', points: b.samples },
        ],
        marks,
      };
    } finally {
      for (const tr of transfers) for (const p of tr.procs) p.kill('SIGKILL');
      await Promise.all([classifier.stop(), ipsProc.stop()]);
    }
  },
};
