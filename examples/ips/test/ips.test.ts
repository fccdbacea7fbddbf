/**
 * The IPS on a namespace test bed: client, router boxes and a server, each
 * with an agent; the IPS runs on a router box (`main.js`, with libpcap and
 * nftables) and follows the sessions its agent reports. Real sockets,
 * real packets, no stand-ins:
 *
 * 1. blacklists: sessions from a blacklisted address and to a blacklisted
 *    port never get through the box, another session does;
 * 2. a term written in two segments with a pause between them is found,
 *    and the session is blocked (the sending end reset);
 * 3. a clean transfer: the IPS is inserted into the live session
 *    mid-transfer, scans from the first byte it sees, has seen enough and
 *    takes itself out; every byte arrives intact, without a reset;
 * 4. the same, with a term late in the stream: found mid-stream by the
 *    inserted IPS, the transfer is cut.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import t from 'tap';
import type { Test } from 'tap';
import { type Host, STREAM_TOOL, Topology, eachLine } from '@dysco/agent/topology';
import { type StreamReport, streamSha256 } from '@dysco/agent/tools/stream';
import { Capture } from '../dist/capture.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PEERS = fileURLToPath(new URL('./peers.js', import.meta.url));

// the IPS also needs nftables and its capture binding
const skip = (await Topology.unavailable([['nft', 'nftables']])) ?? Capture.unavailable();
const opts = skip ? { skip } : {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | false, ms = 15_000): Promise<T> {
  for (const end = Date.now() + ms; ; ) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `p`, or a failure after `ms`: a test that goes wrong fails soon instead of waiting for the runner's timeout. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

type Rec = Record<string, unknown> & { msg: string };

/** The IPS process on a host, and the records it logs. */
class IpsProcess {
  readonly records: Rec[] = [];
  stderr = '';
  private constructor(readonly proc: ChildProcess) {}

  static async start(h: Host, dir: string, config: Record<string, unknown>): Promise<IpsProcess> {
    const file = join(dir, `ips-${h.name}.json`);
    writeFileSync(file, JSON.stringify(config, null, 2));
    const ips = new IpsProcess(h.node(MAIN, ['--socket', h.socket, '--address', h.address, '--config', file]));
    eachLine(ips.proc, (l) => {
      try {
        ips.records.push(JSON.parse(l) as Rec);
      } catch {
        ips.stderr += `stdout: ${l}\n`;
      }
    });
    ips.proc.stderr!.on('data', (d: Buffer) => (ips.stderr += d.toString()));
    await until('the IPS to start', () => ips.records.some((r) => r.msg === 'started') || (ips.proc.exitCode !== null && ips.fail())).catch((e: Error) => {
      throw new Error(`${e.message}: ${ips.stderr}`);
    });
    return ips;
  }

  private fail(): never {
    throw new Error(`the IPS exited (${this.proc.exitCode}): ${this.stderr}`);
  }

  verdicts(): Rec[] {
    return this.records.filter((r) => r.msg === 'verdict');
  }

  verdictFor(src: string, sport?: number): Promise<Rec> {
    return until(`the IPS's verdict on ${src}${sport ? `:${sport}` : ''}`, () => this.verdicts().find((r) => r.src === src && (sport === undefined || r.sport === sport)));
  }

  /** SIGTERM, and the exit: the IPS deletes its nftables table and logs a summary. */
  async stop(): Promise<Rec | undefined> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
    }
    return this.records.find((r) => r.msg === 'stopped');
  }
}

/** Runs a peers.js command in a host's namespace: its last result line, and the lines so far. */
function peer(h: Host, args: string[]): { ready: Promise<void>; result: Promise<Record<string, unknown>>; latest: () => Record<string, unknown> | undefined } {
  const p = h.node(PEERS, args);
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  let err = '';
  let last: Record<string, unknown> | undefined;
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    eachLine(p, (l) => {
      if (l === 'listening') return ready();
      last = JSON.parse(l) as Record<string, unknown>;
      if (last.final) resolve(last);
    });
    p.once('exit', (code) => reject(new Error(`peers.js ${args[0]} on ${h.name} exited (${code}) without a result: ${err}`)));
  });
  // a peer the test does not wait for is killed with the bed
  result.catch(() => undefined);
  return { ready: isReady, result, latest: () => last };
}

interface Transfer {
  readonly client: Promise<StreamReport>;
  readonly server: Promise<StreamReport>;
  readonly local: string;
}

/** A paced transfer both ways with the stream tool. */
async function transfer(client: Host, server: Host, o: { bytes: number; rate: number; inject?: string }): Promise<Transfer> {
  const report = (p: ChildProcess, first: (l: string) => void) =>
    new Promise<StreamReport>((resolve, reject) => {
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      eachLine(p, (l) => (l.startsWith('{') ? resolve(JSON.parse(l) as StreamReport) : first(l)));
      p.once('exit', (code) => reject(new Error(`stream tool exited (${code}) without a report: ${err}`)));
    });
  let listening!: () => void;
  const isListening = new Promise<void>((r) => (listening = r));
  const srv = report(server.node(STREAM_TOOL, ['server', '--port', '9000', '--bytes', String(o.bytes), '--rate', String(o.rate)]), () => listening());
  await within(10_000, 'the stream server to listen', Promise.race([isListening, srv.then(() => undefined)]));
  let connected!: (l: string) => void;
  const local = new Promise<string>((r) => (connected = r));
  const args = ['client', '--host', server.address, '--port', '9000', '--bytes', String(o.bytes), '--rate', String(o.rate), ...(o.inject ? ['--inject', o.inject] : [])];
  const cli = report(client.node(STREAM_TOOL, args), (l) => connected(l.replace(/^connected /, '')));
  // a transfer the test cuts is killed with the bed
  cli.catch(() => undefined);
  srv.catch(() => undefined);
  return { client: cli, server: srv, local: await within(10_000, 'the stream client to connect', local) };
}

interface SessionView {
  id: number;
  session: string;
  role: string;
  left?: { agent: string };
  right?: { agent: string };
  state: { departed: boolean };
}
const sessionsAt = (h: Host) => JSON.parse(h.agent!.cli('sessions', '--json').stdout) as SessionView[];

/** A bed with agents everywhere; the client steers `match` through `chain`. */
async function bed(t: Test, names: string[], routers: string[], policies: { match: string; chain: string[] }[]) {
  const b = Topology.create({ hosts: names.map((n) => (routers.includes(n) ? { name: n, router: true } : n)) });
  const h = Object.fromEntries(names.map((n) => [n, b.host(n)])) as Record<string, Host>;
  let ips: IpsProcess | undefined;
  t.teardown(async () => {
    await ips?.stop();
    // what the IPS said, to diagnose a failure
    if (!t.passing() && ips) t.comment(`IPS log:\n${ips.records.map((r) => JSON.stringify(r)).join('\n')}\n${ips.stderr}`);
    await b.destroy();
  });
  const pol = policies.map((p, i) => ({ id: i + 1, match: p.match, chain: p.chain.map((c) => h[c]!.address) }));
  for (const n of names) await h[n]!.startAgent({ config: n === 'client' || n === 'bad' ? { policies: pol } : {} });
  return {
    bed: b,
    h,
    startIps: async (config: Record<string, unknown>) => (ips = await IpsProcess.start(h.ips!, b.dir, config)),
  };
}

t.test('blacklists: a blacklisted source address and a blacklisted port are blocked at the box, another session is not', opts, async (t) => {
  const { h, startIps } = await bed(t, ['client', 'bad', 'ips', 'server'], ['ips'], [{ match: 'dport 9000-9999', chain: ['ips'] }]);
  const ips = await startIps({ terms: ['never-seen-here'], blacklist: { addresses: [h.bad!.address], ports: ['9660-9669'] }, releaseAfterBytes: 0 });
  const S = h.server!.address;

  // a session from the blacklisted address: its SYN is dropped at the box
  const fromBad = peer(h.bad!, ['connect', '--host', S, '--port', '9000', '--timeout', '3000']);
  const srv = peer(h.server!, ['server', '--port', '9000']);
  await srv.ready;
  t.match(await within(10_000, 'the connection attempt', fromBad.result), { connected: false, error: 'timeout' }, 'the blacklisted host cannot connect');
  t.match(await ips.verdictFor(h.bad!.address), { verdict: 'block', reason: 'blacklist', blacklist: { entry: h.bad!.address, kind: 'address', end: 'source' }, protocol: 'tcp', dst: S, dport: 9000, role: 'middlebox' }, 'logged as blocked by the blacklist');

  // a session to a blacklisted port
  const toPort = await within(10_000, 'the connection attempt', peer(h.client!, ['connect', '--host', S, '--port', '9666', '--timeout', '3000']).result);
  t.match(toPort, { connected: false, error: 'timeout' }, 'no connection to a blacklisted port');
  t.match(await until('the verdict on port 9666', () => ips.verdicts().find((r) => r.dport === 9666)), { verdict: 'block', reason: 'blacklist', blacklist: { entry: '9660-9669', kind: 'port', end: 'destination' }, src: h.client!.address });

  // the same server port from another host: through the box as usual
  const ok = await within(10_000, 'the connection attempt', peer(h.client!, ['connect', '--host', S, '--port', '9000', '--timeout', '3000']).result);
  t.match(ok, { connected: true }, 'a session that is not blacklisted connects');
  const counters = h.ips!.run('nft list chain inet dysco_ips forward');
  const dropped = [...counters.matchAll(/counter packets (\d+) bytes \d+ drop comment "blacklist"/g)].reduce((n, m) => n + Number(m[1]), 0);
  t.ok(dropped >= 2, `the kernel dropped ${dropped} packets of the blacklisted sessions`);
  const stopped = await ips.stop();
  t.match(stopped, { msg: 'stopped', blocked: 2 }, 'the exit summary counts the two blocks');
  t.equal(h.ips!.run('nft list tables').includes('dysco_ips'), false, 'the IPS removed its table at exit');
});

t.test('a term split across two segments is found and the session blocked (the client reset)', opts, async (t) => {
  const { h, startIps } = await bed(t, ['client', 'ips', 'server'], ['ips'], [{ match: 'dport 9000', chain: ['ips'] }]);
  const TERM = 'X-EVIL-PAYLOAD-42';
  const ips = await startIps({ terms: ['unrelated', TERM, { hex: 'deadbeef', name: 'marker' }], releaseAfterBytes: 0, block: { action: 'reset' } });
  const srv = peer(h.server!, ['server', '--port', '9000']);
  await srv.ready;
  // the term's halves leave in two segments: the client waits 300 ms between the writes (no Nagle)
  const first = `POST /upload HTTP/1.1\r\nHost: s\r\n\r\nblah blah ${TERM.slice(0, 8)}`;
  const cli = await within(20_000, 'the client', peer(h.client!, ['split', '--host', h.server!.address, '--port', '9000', '--first', first, '--second', `${TERM.slice(8)} and the rest`, '--pause', '300', '--then', '200000']).result);
  const v = await ips.verdictFor(h.client!.address);
  t.match(v, { verdict: 'block', reason: 'term', term: TERM, direction: 'clientToServer', offset: first.length - 8, protocol: 'tcp', dst: h.server!.address, dport: 9000 }, 'the IPS found the term across the segment boundary');
  t.ok((v.packets as { clientToServer: number }).clientToServer >= 2, 'in more than one packet');
  t.match(cli, { reset: true }, 'the client was reset (its next packet after the block)');
  // the server sends nothing more, so it hears nothing: its connection stays open, with what it received before the block
  await sleep(500);
  const received = (srv.latest()?.received as number | undefined) ?? 0;
  t.ok(received < (cli.sent as number), `the server received ${received} of the ${cli.sent} bytes the client wrote`);
  t.ok(received < 100_000, 'the transfer was cut soon after the term');
  t.match(h.ips!.run('nft list chain inet dysco_ips forward'), /counter packets [1-9]\d* bytes \d+ reject with tcp reset comment "blocked sessions"/, 'the session tuple was rejected in the forward chain');
});

t.test('a clean transfer: the IPS inserted into the live session, scans, has seen enough and removes itself', opts, async (t) => {
  const { h, startIps } = await bed(t, ['client', 'box', 'ips', 'server'], ['box', 'ips'], [{ match: 'dport 9000', chain: ['box'] }]);
  const ips = await startIps({ terms: ['X-EVIL-PAYLOAD-42', '/etc/passwd'], releaseAfterBytes: 1_000_000 });
  const bytes = 6_000_000;
  const tr = await transfer(h.client!, h.server!, { bytes, rate: 2_000_000 });
  const session = `${tr.local}>${h.server!.address}:9000`;
  await sleep(700);
  // the client's agent inserts the IPS between itself and its right neighbour, the box
  const r = h.client!.agent!.cli('reconfig', session, '--insert', h.ips!.address, '--after', h.client!.address, '--json');
  t.match(JSON.parse(r.stdout || '{}'), { result: 'completed' }, `inserted live ${r.stderr}`);
  const v = await ips.verdictFor(h.client!.address);
  t.match(v, { verdict: 'release', reason: 'seenEnough', role: 'relay', protocol: 'tcp', sport: Number(tr.local.split(':')[1]), dst: h.server!.address, dport: 9000, removal: { result: 'completed' } }, 'released after seeing enough');
  const b = v.bytes as { clientToServer: number; serverToClient: number };
  t.ok(b.clientToServer >= 1_000_000 && b.serverToClient >= 1_000_000, `scanned ${b.clientToServer} and ${b.serverToClient} bytes`);
  t.notOk('gapBytes' in v, 'no gap in either stream');
  t.ok(ips.records.some((x) => x.msg === 'watching' && x.role === 'relay'), 'it learned of the session as an inserted relay');
  t.equal(sessionsAt(h.client!)[0]?.right?.agent, h.box!.address, "the client's right neighbour is the box again");
  const [c, s] = await within(30_000, 'the end of the transfer', Promise.all([tr.client, tr.server]));
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact (SHA-256)');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact (SHA-256)');
  t.notOk(c.reset || s.reset, 'no reset');
  t.comment(`release after ${v.durationMs} ms of scanning; removal took ${(v.removal as { durationMs: number }).durationMs} ms; longest stall ${Math.max(c.maxGapMs, s.maxGapMs)} ms`);
  t.same(sessionsAt(h.ips!).filter((x) => !x.state.departed), [], 'the IPS host has left the session');
});

t.test('inserted mid-stream, the IPS finds a term late in the stream and cuts the transfer', opts, async (t) => {
  const { h, startIps } = await bed(t, ['client', 'box', 'ips', 'server'], ['box', 'ips'], [{ match: 'dport 9000', chain: ['box'] }]);
  const ips = await startIps({ terms: ['X-EVIL-PAYLOAD-42'], releaseAfterBytes: 0 });
  const bytes = 8_000_000;
  const at = 3_000_000;
  const tr = await transfer(h.client!, h.server!, { bytes, rate: 2_000_000, inject: `X-EVIL-PAYLOAD-42@${at}` });
  const session = `${tr.local}>${h.server!.address}:9000`;
  await sleep(500);
  const r = h.client!.agent!.cli('reconfig', session, '--insert', h.ips!.address, '--after', h.client!.address, '--json');
  t.match(JSON.parse(r.stdout || '{}'), { result: 'completed' }, `inserted live ${r.stderr}`);
  const v = await ips.verdictFor(h.client!.address);
  t.match(v, { verdict: 'block', reason: 'term', term: 'X-EVIL-PAYLOAD-42', direction: 'clientToServer', role: 'relay' });
  // offsets count from the first byte the inserted IPS saw
  const scanned = (v.bytes as { clientToServer: number }).clientToServer;
  t.ok(scanned < at, `it started mid-stream: ${scanned} bytes scanned to the term, which is at byte ${at} of the stream`);
  t.equal(v.offset, scanned - 'X-EVIL-PAYLOAD-42'.length, 'the offset is where the term starts in what it scanned');
  // with the drop action the ends are not told: the transfer stalls; stop the ends
  await sleep(1500);
  const got = sessionsAt(h.server!)[0];
  t.ok(got, 'the server still has the session (not reset: dropped)');
  const before = JSON.parse(h.ips!.run('nft -j list set inet dysco_ips sessions4')) as { nftables: { set?: { elem?: unknown[] } }[] };
  t.equal(before.nftables.find((x) => x.set)?.set?.elem?.length, 2, 'the session tuple, both ways, in the blocked set');
  const progress = await Promise.race([tr.server.then(() => 'finished'), sleep(2000).then(() => 'stalled')]);
  t.equal(progress, 'stalled', 'the transfer does not complete');
});
