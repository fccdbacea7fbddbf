// `npm run bench -- reconfig [--quick]`: how long live reconfigurations take
// on sessions that carry data, and whether a byte is lost.
//
// Bed: client, box1, box2, proxy and server on one segment, an agent on
// each (TC mode). The client's policies steer port 9000-9099 through box1,
// and port 9300 through the proxy.
//
// 1. Sequential: a paced bulk transfer both ways (the stream tool) through
//    box1, and at the client, one after the other: remove box1, insert it
//    again, replace it with box2, replace box2 with box1, as many cycles as
//    --cycles (default 100, --quick 10), one operation every --gap ms
//    (default 400). The agent's own duration of each (request to outcome at
//    the requesting agent) gives p50 and p99. Every transfer must end with
//    every byte, hashes equal, no reset.
// 2. Proxy splice: a TypeScript proxy on the proxy host (the one of the
//    agent's tests, splice-proxy.js) relays each new session and splices
//    itself out after 150 ms; --splices runs (default 100, --quick 10), each
//    a fresh 1 s transfer checked the same way.
//
// What a reconfiguration does to the transfer it carries, in parts 1 and 2:
//   - the throughput dip: both ends report the bytes they have received every
//     --interval ms (default 20); in the window from 20 ms before the request
//     to 200 ms after the outcome, the lowest throughput of an interval and
//     the lowest over 100 ms, relative to the median interval throughput of
//     the whole transfer, and the longest run of intervals without a byte
//     (the stall), the worse of both directions;
//   - retransmissions: the end sockets' TCP_INFO (`ss -ti`: total_retrans
//     segments and bytes_retrans) read after each window, and the TCP stacks'
//     RetransSegs (/proc/net/snmp) of the hosts the transfer crosses, before
//     and after each transfer;
//   - both measured the same way on baseline transfers without
//     reconfiguration: through box1 for part 1, through the proxy relaying
//     without splicing for part 2, with windows at the same places;
//   - the intervals around the reconfiguration of each kind whose 100 ms dip
//     is the median of its kind, for a plot.
// 3. Concurrent: --sessions paced connections at once (default 64, --quick
//    16) through box1; all of them removed at the same time, then inserted,
//    replaced and replaced back, --rounds times (default 3, --quick 1):
//    reconfigurations completed per second, and every connection's bytes
//    checked at the end.
// A transfer of parts 1 and 2 that has not ended --stall-timeout s (default
// 30) after its paced length is killed and counted as stalled, with the bytes
// its last progress reports had seen, so that one stall does not hold the run.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@dysco/agent/client';
import { STREAM_TOOL, Topology } from '@dysco/agent/topology';
import { AGENT_CONFIG } from './lib/beds.mjs';
import {
  BED_COMMANDS, BENCH_DIR, ROOT, atCleanup, ensureCommands, execIn, machine, median, onLines, option, percentile, printResult, quick, requireRoot, round, runMain, say, sleep, table, waitLine,
} from './lib/common.mjs';

const CYCLES = Number(option('cycles', quick ? 10 : 100));
const SPLICES = Number(option('splices', quick ? 10 : 100));
const SESSIONS = Number(option('sessions', quick ? 16 : 64));
const ROUNDS = Number(option('rounds', quick ? 1 : 3));
const RATE = Number(option('rate', quick ? 10e6 : 40e6)); // bytes/s each way, sequential part
const TRANSFER_S = quick ? 6 : 15; // seconds of one bulk transfer in the sequential part
const GAP = Number(option('gap', 400)); // ms from one operation's request to the next one's, sequential part
const INTERVAL = Number(option('interval', 20)); // ms between progress reports of the transfers
const SMOOTH = 100; // ms over which the smoothed dip averages
const BEFORE = 20; // ms of the dip window before the request
const AFTER = 200; // ms of the dip window after the outcome (a retransmission timeout is 200 ms)
const PLOT = [-200, 400]; // ms around the request kept for the plots
const SPLICE_AFTER = 150; // ms from a proxied session's start to its splice
const SPLICE_BYTES = 4_000_000;
const SPLICE_RATE = 4_000_000;
const SPLICE_BASELINES = Math.max(3, Math.round(SPLICES / 20));
const SPLICE_PROXY = join(ROOT, 'packages', 'agent', 'dist-test', 'splice-proxy.js');
const MANY = join(BENCH_DIR, 'tools', 'many.mjs');
const OUTCOME_S = Number(option('outcome-timeout', 30)); // concurrent part: seconds to wait for one outcome
const STALL_S = Number(option('stall-timeout', 30)); // seconds a transfer may run past its paced length before it counts as stalled

/** Retries an operation the agent refuses because the session is still busy with the previous one. */
async function attempt(op, stats) {
  for (let i = 0; ; i++) {
    try {
      const o = await op();
      if (o.result === 'aborted' && (o.reason === 'busy' || o.reason === 'locked') && i < 50) {
        stats.retries++;
        await sleep(20);
        continue;
      }
      return o;
    } catch (e) {
      if (e.code === 'EBUSY' && i < 50) {
        stats.retries++;
        await sleep(20);
        continue;
      }
      throw e;
    }
  }
}

/**
 * A stream-tool transfer between two hosts; resolves its reports. With
 * `progressMs`, `progress.client` and `progress.server` collect each end's
 * progress lines as [ms since its start, bytes received, time this process
 * read the line].
 */
async function transfer(client, server, port, bytes, rate, progressMs = 0) {
  const extra = progressMs ? ['--progress', String(progressMs)] : [];
  const progress = { client: [], server: [] };
  const collect = (p, into) => onLines(p, (l) => {
    if (!l.startsWith('progress ')) return;
    const [ms, received] = l.split(' ').slice(1).map(Number);
    into.push([ms, received, Date.now()]);
  });
  const srv = server.node(STREAM_TOOL, ['server', '--port', String(port), '--bytes', String(bytes), '--rate', String(rate), ...extra]);
  if (progressMs) collect(srv, progress.server);
  const reports = (p, what) => new Promise((resolve, reject) => {
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    onLines(p, (l) => l.startsWith('{') && resolve(JSON.parse(l)));
    p.once('exit', (code) => reject(new Error(`${what} exited (${code}) without a report: ${err}`)));
  });
  const sRep = reports(srv, 'stream server');
  await waitLine(srv, (l) => l === 'listening', 'stream server');
  const cli = client.node(STREAM_TOOL, ['client', '--host', server.address, '--port', String(port), '--bytes', String(bytes), '--rate', String(rate), ...extra]);
  if (progressMs) collect(cli, progress.client);
  const cRep = reports(cli, 'stream client');
  const local = (await waitLine(cli, (l) => l.startsWith('connected '), 'stream client')).replace('connected ', '');
  // a transfer that stalls for good is ended and reported with what arrived, not waited for forever
  const lastReceived = (into) => (into.length ? into[into.length - 1][1] : 0);
  const deadlineMs = (bytes / Math.max(1, rate)) * 1000 + STALL_S * 1000;
  const stalled = (role, into) => ({ role, stalled: true, received: lastReceived(into), receivedSha256: 'stalled', sentSha256: 'stalled', maxGapMs: deadlineMs, reset: false });
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => {
      cli.kill('SIGKILL');
      srv.kill('SIGKILL');
      resolve([stalled('client', progress.client), stalled('server', progress.server)]);
    }, deadlineMs);
  });
  const done = Promise.race([Promise.all([cRep, sRep]), deadline]).finally(() => clearTimeout(timer));
  // the losing side of the race rejects when its processes are killed: nobody waits for it
  cRep.catch(() => undefined);
  sRep.catch(() => undefined);
  return { local, started: Date.now(), progress, done };
}

// ---- what a reconfiguration does to the transfer -------------------------------------

/**
 * One end's progress as intervals [from, to, bytes/s, bytes], `from` and
 * `to` in this process's clock: the end's own times shifted by the smallest
 * delay with which its lines were read.
 */
function intervals(progress) {
  if (progress.length < 2) return [];
  const shift = Math.min(...progress.map(([ms, , at]) => at - ms));
  const out = [];
  for (let i = 1; i < progress.length; i++) {
    const [m0, r0] = progress[i - 1];
    const [m1, r1] = progress[i];
    if (m1 > m0) out.push([m0 + shift, m1 + shift, ((r1 - r0) * 1000) / (m1 - m0), r1 - r0]);
  }
  return out;
}

/** Median interval throughput of a transfer, its start and end left out (an eighth of it each, at most half a second). */
function steady(iv) {
  if (iv.length === 0) return NaN;
  const margin = Math.min(500, (iv[iv.length - 1][1] - iv[0][0]) / 8);
  const from = iv[0][0] + margin;
  const to = iv[iv.length - 1][1] - margin;
  const mid = iv.filter(([a, b]) => a >= from && b <= to);
  return median((mid.length ? mid : iv).map((x) => x[2]));
}

/**
 * What the intervals overlapping [from, to] show, against `typical`: the
 * lowest throughput of one interval (`dip`) and of any run of intervals
 * spanning SMOOTH ms that starts in the window (`dipSmooth`), both relative
 * to `typical`, and the longest run of intervals without a byte (`stallMs`).
 */
function dipIn(iv, typical, from, to) {
  const first = iv.findIndex(([, b]) => b > from);
  if (first < 0 || !(typical > 0)) return undefined;
  let dip = Infinity;
  let dipSmooth = Infinity;
  let stallMs = 0;
  let run = 0;
  for (let i = first; i < iv.length && iv[i][0] < to; i++) {
    dip = Math.min(dip, iv[i][2] / typical);
    run = iv[i][3] === 0 ? run + iv[i][1] - iv[i][0] : 0;
    stallMs = Math.max(stallMs, run);
    let bytes = 0;
    for (let j = i; j < iv.length; j++) {
      bytes += iv[j][3];
      if (iv[j][1] - iv[i][0] >= SMOOTH) {
        dipSmooth = Math.min(dipSmooth, (bytes * 1000) / (iv[j][1] - iv[i][0]) / typical);
        break;
      }
    }
  }
  return Number.isFinite(dip) ? { dip, dipSmooth: Number.isFinite(dipSmooth) ? dipSmooth : dip, stallMs } : undefined;
}

/**
 * Measures the windows of a finished transfer: `windows` are { t0, t1 }
 * (request and outcome, this process's clock); sets each one's dips and
 * stall (the worse of both directions) and keeps its intervals around t0
 * for a plot.
 */
function measureWindows(progress, windows) {
  const up = intervals(progress.server); // client to server, as the server received it
  const down = intervals(progress.client);
  const typical = { up: steady(up), down: steady(down) };
  const around = (iv, t0) => iv.filter(([a, b]) => b > t0 + PLOT[0] && a < t0 + PLOT[1]).map(([a, b, r]) => [round((a + b) / 2 - t0, 1), round(r / 1e6, 3)]);
  for (const w of windows) {
    const d = [dipIn(up, typical.up, w.t0 - BEFORE, w.t1 + AFTER), dipIn(down, typical.down, w.t0 - BEFORE, w.t1 + AFTER)].filter(Boolean);
    w.dip = d.length ? Math.min(...d.map((x) => x.dip)) : NaN;
    w.dipSmooth = d.length ? Math.min(...d.map((x) => x.dipSmooth)) : NaN;
    w.stallMs = d.length ? Math.max(...d.map((x) => x.stallMs)) : NaN;
    w.plot = { typicalMBps: round(Math.min(typical.up, typical.down) / 1e6, 3), up: around(up, w.t0), down: around(down, w.t0), doneMs: w.t1 - w.t0 };
  }
  return typical;
}

/** Retransmissions so far of the connections to or from `port` in a host's namespace: TCP_INFO as `ss -ti` shows it. */
async function socketRetrans(host, port, side) {
  const filter = side === 'client' ? ['dport', '=', `:${port}`] : ['sport', '=', `:${port}`];
  const r = await execIn(host, ['ss', '-tinH', 'state', 'established', ...filter], 10000);
  let segs = 0;
  let bytes = 0;
  for (const m of r.stdout.matchAll(/\bretrans:\d+\/(\d+)/g)) segs += Number(m[1]);
  for (const m of r.stdout.matchAll(/\bbytes_retrans:(\d+)/g)) bytes += Number(m[1]);
  return { segs, bytes };
}

/** The sum of both ends' socketRetrans. */
async function endsRetrans(client, server, port) {
  const [c, s] = await Promise.all([socketRetrans(client, port, 'client'), socketRetrans(server, port, 'server')]);
  return { segs: c.segs + s.segs, bytes: c.bytes + s.bytes };
}

/** RetransSegs of the hosts' TCP stacks (/proc/net/snmp in each namespace), summed. */
async function stackRetrans(hosts) {
  const one = async (host) => {
    let r;
    for (let i = 0; i < 3; i++) {
      r = await execIn(host, ['cat', '/proc/net/snmp'], 10000);
      const tcp = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:')).map((l) => l.split(/\s+/));
      if (tcp.length >= 2) return Number(tcp[1][tcp[0].indexOf('RetransSegs')]);
      await sleep(50);
    }
    throw new Error(`no Tcp lines in ${host.name}'s /proc/net/snmp (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.stderr.trim()}`);
  };
  return (await Promise.all(hosts.map(one))).reduce((a, b) => a + b, 0);
}

const sleepUntil = (t) => sleep(Math.max(0, t - Date.now()));

/** Dip and retransmission figures of a set of windows (one operation kind, or the baseline's). */
function impactOf(ws) {
  const of = (k) => ws.map((w) => w[k]).filter(Number.isFinite);
  const dips = of('dip');
  const smooth = of('dipSmooth');
  const stalls = of('stallMs');
  const segs = ws.reduce((a, w) => a + w.retrans.segs, 0);
  const bytes = ws.reduce((a, w) => a + w.retrans.bytes, 0);
  return {
    runs: ws.length,
    dipP50: round(percentile(dips, 50)),
    dipP10: round(percentile(dips, 10)),
    dipMin: dips.length ? round(Math.min(...dips)) : null,
    dipSmoothP50: round(percentile(smooth, 50)),
    dipSmoothP10: round(percentile(smooth, 10)),
    stallP50Ms: round(percentile(stalls, 50), 0),
    stallP90Ms: round(percentile(stalls, 90), 0),
    stallMaxMs: stalls.length ? round(Math.max(...stalls), 0) : null,
    retransSegs: segs,
    retransBytes: bytes,
    retransSegsPerRun: round(segs / Math.max(1, ws.length), 3),
    retransBytesPerRun: round(bytes / Math.max(1, ws.length), 0),
    runsWithRetrans: ws.filter((w) => w.retrans.segs > 0).length,
  };
}

/** The window of a kind whose smoothed dip is its median, for the plot. */
function representative(ws) {
  const ok = ws.filter((w) => Number.isFinite(w.dipSmooth) && w.plot.up.length + w.plot.down.length > 0);
  if (ok.length === 0) return undefined;
  const p50 = percentile(ok.map((w) => w.dipSmooth), 50);
  const w = ok.find((x) => x.dipSmooth === p50) ?? ok[0];
  return { dip: round(w.dip), dipSmooth: round(w.dipSmooth), stallMs: round(w.stallMs, 0), durationMs: w.durationMs ?? null, ...w.plot };
}

/** Bytes lost or damaged in a finished transfer (0 when intact), and why. */
function check(c, s, bytes) {
  const problems = [];
  if (s.received !== bytes || s.receivedSha256 !== c.sentSha256) problems.push(`client to server: ${s.received}/${bytes} bytes${s.receivedSha256 !== c.sentSha256 ? ', hash differs' : ''}`);
  if (c.received !== bytes || c.receivedSha256 !== s.sentSha256) problems.push(`server to client: ${c.received}/${bytes} bytes${c.receivedSha256 !== s.sentSha256 ? ', hash differs' : ''}`);
  if (c.reset || s.reset) problems.push('reset');
  if (c.stalled) problems.push(`stalled: no end ${STALL_S} s after its paced length (bytes counted from the last progress report, or 0 without reports)`);
  return { lost: 2 * bytes - (Math.min(bytes, s.received) + Math.min(bytes, c.received)), problems, maxGapMs: Math.max(c.maxGapMs, s.maxGapMs) };
}

const pctl = (xs) => ({ n: xs.length, p50: round(percentile(xs, 50), 2), p99: round(percentile(xs, 99), 2), min: round(Math.min(...xs), 2), max: round(Math.max(...xs), 2) });

async function main() {
  requireRoot('reconfig');
  ensureCommands(BED_COMMANDS);
  if (!existsSync(SPLICE_PROXY)) throw new Error(`${SPLICE_PROXY} is missing (the agent package's tests are not built: npm run build)`);
  const bed = Topology.create({ hosts: ['client', { name: 'box1', router: true }, { name: 'box2', router: true }, 'proxy', 'server'], tag: `r${process.pid % 100000}` });
  atCleanup(() => bed.destroy());
  const h = Object.fromEntries(['client', 'box1', 'box2', 'proxy', 'server'].map((n) => [n, bed.host(n)]));
  const A = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.address]));
  // the proxy takes sessions for server:9300 (nftables redirect to its port 8000), opens its own to the server, and needs timestamps off to splice
  h.proxy.run(`nft add table ip px && nft add chain ip px pre '{ type nat hook prerouting priority -100; }' && nft add rule ip px pre ip daddr ${A.server} tcp dport 9300 redirect to :8000`);
  h.proxy.run('sysctl -qw net.ipv4.tcp_timestamps=0');
  const policies = {
    client: [{ id: 1, match: `dst ${A.server}/32 dport 9000-9099`, chain: [A.box1] }, { id: 2, match: `dst ${A.server}/32 dport 9300`, chain: [A.proxy] }],
    proxy: [{ id: 1, match: `dst ${A.server}/32 dport 9300`, chain: [] }],
  };
  await Promise.all(Object.entries(h).map(([n, host]) => host.startAgent({ config: { ...AGENT_CONFIG, mode: 'tc', ...(policies[n] ? { policies: policies[n] } : {}) } })));
  const dysco = await connect({ socket: h.client.socket });
  atCleanup(() => dysco.close());
  const sessionId = async (tuple) => {
    for (let i = 0; i < 50; i++) {
      const s = (await dysco.sessions()).find((x) => x.session === tuple);
      if (s) return s.id;
      await sleep(100);
    }
    throw new Error(`the client agent has no session ${tuple}`);
  };

  // ---- 1. sequential, on bulk transfers ----------------------------------------
  say(`sequential: ${CYCLES} cycles of remove, insert, replace, replace back on ${(RATE / 1e6).toFixed(0)} MB/s transfers both ways, one operation every ${GAP} ms; first a transfer without reconfiguration`);
  const durations = { remove: [], insert: [], replace: [] };
  const seq = { retries: 0, aborted: [], transfers: 0, lost: 0, problems: [], maxGapMs: 0, bytes: 0, stackRetrans: 0 };
  const seqWindows = [];
  const base = { transfers: 0, stackRetrans: 0, windows: [], problems: [] };
  let cycles = 0;
  let port = 9000;
  const seqHosts = [h.client, h.box1, h.box2, h.server];
  /**
   * One transfer. With `reconfigure`, whole cycles of the four operations
   * while it has time for one more and a second to spare; without, the same
   * windows with nothing in them (the baseline).
   */
  const sequential = async (reconfigure) => {
    const bytes = Math.round(RATE * TRANSFER_S);
    const p = port;
    port = port === 9049 ? 9000 : port + 1; // a fresh server port each time: the previous one may still be in TIME_WAIT
    const stack0 = await stackRetrans(seqHosts);
    const tr = await transfer(h.client, h.server, p, bytes, RATE, INTERVAL);
    const id = await sessionId(`${tr.local}>${A.server}:${p}`);
    await sleep(300);
    const ops = reconfigure
      ? [
          ['remove', () => dysco.remove(id, A.box1)],
          ['insert', () => dysco.insert(id, A.box1, A.client)],
          ['replace', () => dysco.replace(id, A.box1, A.box2)],
          ['replace', () => dysco.replace(id, A.box2, A.box1)],
        ]
      : [['none'], ['none'], ['none'], ['none']];
    const windows = [];
    let last = await endsRetrans(h.client, h.server, p);
    while ((!reconfigure || cycles < CYCLES) && Date.now() - tr.started + 4 * GAP < (TRANSFER_S - 1) * 1000) {
      for (const [kind, op] of ops) {
        const w = { kind };
        if (op) {
          let o;
          // an aborted operation leaves the path as it was: ask again (as an operator would), so that the
          // next operation of the cycle finds the path it expects; only the completed one is measured
          for (let tries = 0; ; tries++) {
            o = await attempt(() => {
              w.t0 = Date.now();
              return op();
            }, seq);
            if (o.result === 'completed') break;
            seq.aborted.push(`${kind}: ${o.reason}`);
            if (tries === 9) throw new Error(`${kind} aborted ten times in a row (${o.reason})`);
            await sleep(200);
          }
          w.t1 = Date.now();
          durations[kind].push(o.durationMs);
          w.durationMs = o.durationMs;
        } else w.t0 = w.t1 = Date.now();
        await sleepUntil(w.t1 + AFTER + 10);
        const now = await endsRetrans(h.client, h.server, p);
        w.retrans = { segs: now.segs - last.segs, bytes: now.bytes - last.bytes };
        last = now;
        windows.push(w);
        await sleepUntil(w.t0 + GAP);
      }
      if (reconfigure) cycles++;
    }
    const [c, s] = await tr.done;
    const stack = (await stackRetrans(seqHosts)) - stack0;
    measureWindows(tr.progress, windows);
    const k = check(c, s, bytes);
    return { windows: windows.filter((w) => w.kind === 'none' || w.durationMs !== undefined), k, bytes, stack };
  };
  {
    const r = await sequential(false);
    base.transfers++;
    base.stackRetrans += r.stack;
    base.windows.push(...r.windows);
    if (r.k.problems.length) base.problems.push(...r.k.problems);
    say(`  baseline transfer: ${r.windows.length} windows, ${r.stack} segments retransmitted, ${r.k.problems.length ? r.k.problems.join('; ') : 'intact'}`);
  }
  while (cycles < CYCLES) {
    const r = await sequential(true);
    seqWindows.push(...r.windows);
    seq.transfers++;
    seq.bytes += 2 * r.bytes;
    seq.lost += r.k.lost;
    seq.stackRetrans += r.stack;
    seq.maxGapMs = Math.max(seq.maxGapMs, r.k.maxGapMs);
    if (r.k.problems.length) seq.problems.push(...r.k.problems);
    say(`  transfer ${seq.transfers}: ${cycles}/${CYCLES} cycles, ${r.stack} segments retransmitted, ${r.k.problems.length ? r.k.problems.join('; ') : 'intact'}`);
  }

  // ---- 2. proxy splice --------------------------------------------------------
  say(`splice: ${SPLICES} sessions spliced out of the proxy ${SPLICE_AFTER} ms after they start; first ${SPLICE_BASELINES} relayed without splicing`);
  const spHosts = [h.client, h.proxy, h.server];
  const sp = { durations: [], aborted: [], lost: 0, problems: [], maxGapMs: 0, bytes: 0, stackRetrans: 0, windows: [] };
  const spBase = { transfers: 0, stackRetrans: 0, windows: [], problems: [] };
  /** One proxied transfer: its window from the splice's start to 200 ms after its outcome (or the same place when not spliced). */
  const proxied = async (outcome) => {
    const stack0 = await stackRetrans(spHosts);
    const tr = await transfer(h.client, h.server, 9300, SPLICE_BYTES, SPLICE_RATE, INTERVAL);
    const w = { kind: 'splice', t0: tr.started + SPLICE_AFTER };
    const r = await outcome();
    w.t1 = r?.at ?? w.t0;
    if (r?.durationMs !== undefined) w.durationMs = r.durationMs;
    await sleepUntil(w.t1 + AFTER + 10);
    w.retrans = await endsRetrans(h.client, h.server, 9300);
    const [c, s] = await tr.done;
    const stack = (await stackRetrans(spHosts)) - stack0;
    measureWindows(tr.progress, [w]);
    return { w, k: check(c, s, SPLICE_BYTES), stack };
  };
  {
    const relay = h.proxy.node(SPLICE_PROXY, [h.proxy.socket, '8000', A.server, '9300', 'never']);
    await waitLine(relay, (l) => l === 'ready', 'relaying proxy');
    for (let i = 0; i < SPLICE_BASELINES; i++) {
      const r = await proxied(async () => undefined);
      r.w.kind = 'none';
      spBase.transfers++;
      spBase.stackRetrans += r.stack;
      spBase.windows.push(r.w);
      if (r.k.problems.length) spBase.problems.push(...r.k.problems);
    }
    const gone = new Promise((r) => relay.once('exit', r));
    relay.kill('SIGTERM');
    await gone;
  }
  const app = h.proxy.node(SPLICE_PROXY, [h.proxy.socket, '8000', A.server, '9300', String(SPLICE_AFTER)]);
  const spliced = [];
  onLines(app, (l) => l.startsWith('{') && spliced.push({ ...JSON.parse(l), at: Date.now() }));
  await waitLine(app, (l) => l === 'ready', 'splice proxy');
  for (let i = 0; i < SPLICES; i++) {
    const before = spliced.length;
    let rec;
    const r = await proxied(async () => {
      for (let j = 0; j < 300 && spliced.length === before; j++) await sleep(10);
      rec = spliced[before];
      return rec?.outcome?.result === 'completed' ? { at: rec.at, durationMs: rec.outcome.durationMs } : undefined;
    });
    if (rec?.outcome?.result === 'completed') {
      sp.durations.push(rec.outcome.durationMs);
      sp.windows.push(r.w);
    } else sp.aborted.push(rec ? (rec.error ?? rec.outcome?.reason ?? 'aborted') : 'no outcome');
    sp.bytes += 2 * SPLICE_BYTES;
    sp.lost += r.k.lost;
    sp.stackRetrans += r.stack;
    sp.maxGapMs = Math.max(sp.maxGapMs, r.k.maxGapMs);
    if (r.k.problems.length) sp.problems.push(...r.k.problems);
  }
  app.kill('SIGTERM');

  // ---- 3. concurrent, across many sessions -------------------------------------
  say(`concurrent: ${SESSIONS} sessions, ${ROUNDS} round(s) of remove, insert, replace, replace back, each over all sessions at once`);
  const perConn = 64 * 1024;
  const srv = h.server.node(MANY, ['server', '--port', '9050', '--rate', String(perConn)]);
  const srvReports = [];
  onLines(srv, (l) => l.startsWith('{') && srvReports.push(JSON.parse(l)));
  await waitLine(srv, (l) => l === 'listening', 'many server');
  const cli = h.client.node(MANY, ['client', '--host', A.server, '--port', '9050', '--count', String(SESSIONS), '--rate', String(perConn)]);
  const cliReports = [];
  onLines(cli, (l) => l.startsWith('{') && cliReports.push(JSON.parse(l)));
  await waitLine(cli, (l) => l === 'ready', 'many client', 30000);
  await sleep(500);
  const ids = (await dysco.sessions()).filter((s) => s.session.endsWith(`>${A.server}:9050`)).map((s) => s.id);
  if (ids.length !== SESSIONS) throw new Error(`the client agent has ${ids.length} of the ${SESSIONS} sessions`);
  const conc = { batches: [], retries: 0, aborted: [] };
  const batch = async (kind, op) => {
    const t0 = performance.now();
    // a reconfiguration without an outcome after OUTCOME_S is reported as such (and its session is stuck
    // for the later batches), rather than holding the benchmark forever
    const outs = await Promise.all(
      ids.map((id) =>
        Promise.race([
          attempt(() => op(id), conc).catch((e) => ({ result: 'aborted', reason: e.message })),
          sleep(OUTCOME_S * 1000).then(() => ({ result: 'aborted', reason: `no outcome within ${OUTCOME_S} s` })),
        ]),
      ),
    );
    const wall = performance.now() - t0;
    const done = outs.filter((o) => o.result === 'completed');
    for (const o of outs) if (o.result !== 'completed') conc.aborted.push(`${kind}: ${o.reason}`);
    conc.batches.push({ kind, sessions: ids.length, completed: done.length, wallMs: round(wall, 1), perSecond: round((done.length * 1000) / wall, 1), p50Ms: round(percentile(done.map((o) => o.durationMs), 50), 2), p99Ms: round(percentile(done.map((o) => o.durationMs), 99), 2) });
    await sleep(300);
  };
  for (let r = 0; r < ROUNDS; r++) {
    await batch('remove', (id) => dysco.remove(id, A.box1));
    await batch('insert', (id) => dysco.insert(id, A.box1, A.client));
    await batch('replace', (id) => dysco.replace(id, A.box1, A.box2));
    await batch('replace', (id) => dysco.replace(id, A.box2, A.box1));
  }
  cli.kill('SIGUSR2');
  for (let i = 0; i < 200 && (cliReports.length < SESSIONS || srvReports.length < SESSIONS); i++) await sleep(100);
  const byTuple = new Map(srvReports.map((x) => [x.remote, x]));
  let concLost = 0;
  const concProblems = [];
  let concBytes = 0;
  for (const c of cliReports) {
    const s = byTuple.get(c.local);
    if (!s) {
      concProblems.push(`no server report for ${c.local}`);
      continue;
    }
    concBytes += c.sent + s.sent;
    if (s.received !== c.sent || s.receivedSha256 !== c.sentSha256) concProblems.push(`${c.local} client to server: ${s.received}/${c.sent}`);
    if (c.received !== s.sent || c.receivedSha256 !== s.sentSha256) concProblems.push(`${c.local} server to client: ${c.received}/${s.sent}`);
    if (c.reset || s.reset) concProblems.push(`${c.local} reset`);
    concLost += Math.max(0, c.sent - s.received) + Math.max(0, s.sent - c.received);
  }
  if (cliReports.length < SESSIONS) concProblems.push(`${SESSIONS - cliReports.length} connections did not report`);

  // ---- report -----------------------------------------------------------------
  const figures = {
    remove: pctl(durations.remove),
    insert: pctl(durations.insert),
    replace: pctl(durations.replace),
    splice: sp.durations.length ? pctl(sp.durations) : { n: 0 },
  };
  const byKind = (k) => seqWindows.filter((w) => w.kind === k);
  const impact = {
    intervalMs: INTERVAL,
    smoothMs: SMOOTH,
    windowMs: { before: BEFORE, after: AFTER },
    gapMs: GAP,
    kinds: {
      remove: impactOf(byKind('remove')),
      insert: impactOf(byKind('insert')),
      replace: impactOf(byKind('replace')),
      none: impactOf(base.windows),
      splice: impactOf(sp.windows),
      relayed: impactOf(spBase.windows),
    },
    transfers: {
      sequential: { transfers: seq.transfers, seconds: TRANSFER_S, stackRetransSegs: seq.stackRetrans, perTransfer: round(seq.stackRetrans / Math.max(1, seq.transfers), 2) },
      baseline: { transfers: base.transfers, seconds: TRANSFER_S, stackRetransSegs: base.stackRetrans, perTransfer: round(base.stackRetrans / Math.max(1, base.transfers), 2) },
      splice: { transfers: SPLICES, seconds: SPLICE_BYTES / SPLICE_RATE, stackRetransSegs: sp.stackRetrans, perTransfer: round(sp.stackRetrans / Math.max(1, SPLICES), 2) },
      relayed: { transfers: spBase.transfers, seconds: SPLICE_BYTES / SPLICE_RATE, stackRetransSegs: spBase.stackRetrans, perTransfer: round(spBase.stackRetrans / Math.max(1, spBase.transfers), 2) },
    },
  };
  const plots = { remove: representative(byKind('remove')), insert: representative(byKind('insert')), replace: representative(byKind('replace')), splice: representative(sp.windows) };
  console.log(`reconfig: durations in ms at the requesting agent (request to outcome), on sessions carrying data both ways\n`);
  console.log(table(
    [{ title: 'operation', align: 'l' }, { title: 'runs', align: 'r' }, { title: 'p50 ms', align: 'r' }, { title: 'p99 ms', align: 'r' }, { title: 'min', align: 'r' }, { title: 'max', align: 'r' }],
    Object.entries(figures).map(([k, f]) => [k === 'splice' ? 'proxy splice' : k, `${f.n}`, f.n ? f.p50.toFixed(2) : '-', f.n ? f.p99.toFixed(2) : '-', f.n ? f.min.toFixed(2) : '-', f.n ? f.max.toFixed(2) : '-']),
  ));
  const label = { remove: 'remove', insert: 'insert', replace: 'replace', none: 'none (baseline)', splice: 'proxy splice', relayed: 'none (proxy relaying)' };
  console.log(`\nwhat one reconfiguration does to the transfer, from ${BEFORE} ms before the request to ${AFTER} ms after the outcome, the worse direction: dip = lowest ${INTERVAL} ms interval throughput over the transfer's median; ${SMOOTH} ms = the same over ${SMOOTH} ms; stall = longest run of intervals without a byte; retransmitted = both end sockets' TCP_INFO since the previous window (${GAP} ms apart in the sequential part, from the start for the splice)\n`);
  const v = (x) => (x === null || x === undefined ? '-' : `${x}`);
  console.log(table(
    [{ title: 'operation', align: 'l' }, { title: 'runs', align: 'r' }, { title: 'dip p50', align: 'r' }, { title: `${SMOOTH} ms p50`, align: 'r' }, { title: 'p10', align: 'r' }, { title: 'stall p50 ms', align: 'r' }, { title: 'p90', align: 'r' }, { title: 'max', align: 'r' }, { title: 'retrans segs', align: 'r' }, { title: 'bytes', align: 'r' }, { title: 'segs/run', align: 'r' }, { title: 'bytes/run', align: 'r' }, { title: 'runs with any', align: 'r' }],
    Object.entries(impact.kinds).map(([k, f]) => [label[k], `${f.runs}`, v(f.dipP50), v(f.dipSmoothP50), v(f.dipSmoothP10), v(f.stallP50Ms), v(f.stallP90Ms), v(f.stallMaxMs), `${f.retransSegs}`, `${f.retransBytes}`, `${f.retransSegsPerRun}`, `${f.retransBytesPerRun}`, `${f.runsWithRetrans}`]),
  ));
  const tf = impact.transfers;
  console.log(`(segments retransmitted by the TCP stacks of the hosts a transfer crosses, /proc/net/snmp: ${tf.sequential.perTransfer} per ${TRANSFER_S} s transfer with reconfigurations, ${tf.baseline.perTransfer} without; ${tf.splice.perTransfer} per spliced ${tf.splice.seconds} s transfer, ${tf.relayed.perTransfer} relayed without splicing)`);
  console.log(`\nsequential: ${seq.transfers} transfers at ${(RATE / 1e6).toFixed(0)} MB/s each way, ${(seq.bytes / 1e6).toFixed(0)} MB, bytes lost ${seq.lost}, longest stall ${seq.maxGapMs} ms, retried as busy ${seq.retries}, aborted ${seq.aborted.length}${seq.problems.length ? `, PROBLEMS: ${seq.problems.join('; ')}` : ''}${base.problems.length ? `, baseline PROBLEMS: ${base.problems.join('; ')}` : ''}`);
  console.log(`splice: ${SPLICES} transfers of ${SPLICE_BYTES / 1e6} MB each way, bytes lost ${sp.lost}, longest stall ${sp.maxGapMs} ms, not spliced ${sp.aborted.length}${sp.aborted.length ? ` (${[...new Set(sp.aborted)].join(', ')})` : ''}${sp.problems.length ? `, PROBLEMS: ${sp.problems.join('; ')}` : ''}${spBase.problems.length ? `, relayed PROBLEMS: ${spBase.problems.join('; ')}` : ''}`);
  console.log(`\nconcurrent: ${SESSIONS} sessions at ${perConn / 1024} KiB/s each way, every session reconfigured at once\n`);
  console.log(table(
    [{ title: 'batch', align: 'l' }, { title: 'completed', align: 'r' }, { title: 'wall ms', align: 'r' }, { title: 'per second', align: 'r' }, { title: 'p50 ms', align: 'r' }, { title: 'p99 ms', align: 'r' }],
    conc.batches.map((b) => [b.kind, `${b.completed}/${b.sessions}`, b.wallMs.toFixed(0), b.perSecond.toFixed(0), `${b.p50Ms}`, `${b.p99Ms}`]),
  ));
  const concRate = conc.batches.map((b) => b.perSecond).sort((a, b) => a - b)[conc.batches.length >> 1];
  console.log(`median ${concRate} reconfigurations completed per second; bytes lost ${concLost} of ${(concBytes / 1e6).toFixed(1)} MB; retried as busy ${conc.retries}; aborted ${conc.aborted.length}${concProblems.length ? `; PROBLEMS: ${concProblems.slice(0, 5).join('; ')}` : ''}`);
  const lost = seq.lost + sp.lost + concLost;
  const intact = lost === 0 && seq.problems.length === 0 && sp.problems.length === 0 && concProblems.length === 0 && base.problems.length === 0 && spBase.problems.length === 0;
  const measured = Object.entries(figures).filter(([, f]) => f.n > 0);
  const worst = (q) => measured.reduce((a, [k, f]) => (a === undefined || f[q] > a.ms ? { kind: k, ms: f[q] } : a), undefined) ?? { kind: null, ms: null };
  const p50 = worst('p50');
  const p99 = worst('p99');
  const durationTargets = {
    p50: { limitMs: 1, highestMs: p50.ms, kind: p50.kind, met: p50.ms !== null && p50.ms <= 1 },
    p99: { limitMs: 5, highestMs: p99.ms, kind: p99.kind, met: p99.ms !== null && p99.ms <= 5 },
  };
  console.log(`\ntarget: no byte lost: ${intact ? 'met' : 'MISSED'}`);
  console.log(`target: p50 ≤ 1 ms for every operation: ${durationTargets.p50.met ? 'met' : 'missed'} (highest ${p50.ms} ms, ${p50.kind})`);
  console.log(`target: p99 ≤ 5 ms for every operation: ${durationTargets.p99.met ? 'met' : 'missed'} (highest ${p99.ms} ms, ${p99.kind})`);
  printResult({
    benchmark: 'reconfig',
    machine: machine(),
    cycles: CYCLES,
    durationsMs: figures,
    impact,
    plots,
    sequential: { transfers: seq.transfers, rateBytesPerSecond: RATE, bytes: seq.bytes, bytesLost: seq.lost, maxStallMs: seq.maxGapMs, busyRetries: seq.retries, aborted: seq.aborted, problems: [...seq.problems, ...base.problems.map((x) => `baseline: ${x}`)] },
    splice: { runs: SPLICES, bytesEach: SPLICE_BYTES, rateBytesPerSecond: SPLICE_RATE, bytes: sp.bytes, bytesLost: sp.lost, maxStallMs: sp.maxGapMs, notSpliced: sp.aborted, problems: [...sp.problems, ...spBase.problems.map((x) => `relayed: ${x}`)] },
    concurrent: { sessions: SESSIONS, rounds: ROUNDS, batches: conc.batches, medianPerSecond: concRate, bytes: concBytes, bytesLost: concLost, busyRetries: conc.retries, aborted: conc.aborted.slice(0, 20), problems: concProblems.slice(0, 20) },
    target: { what: 'no byte lost or damaged, no reset', bytesLost: lost, met: intact },
    durationTargets,
  });
  if (!intact) process.exitCode = 1;
}

runMain(main);
