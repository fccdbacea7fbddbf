// `npm run bench -- scale [--quick]`: the data plane with 10k, 100k and 1M
// sessions. For each size, a data plane of its own (pinned maps, `maxSessions`
// equal to the size, as an agent configured for it) gets that many
// established sessions, as an originating host holds them: an egress entry
// (session -> subsession) and an ingress entry (reversed subsession ->
// reversed session) each, written with the loader's batch updates.
//
// All sizes are set up at once (about 1.4 GB of kernel memory for the three)
// and the packet-cost measurements go round the sizes in turn. Measured per
// size:
//   - kernel memory: the maps' memlock as `bpftool map show` reports it
//     (preallocated when the maps are created, so it is the cost per session
//     of capacity), and the growth of the kernel's vmalloc, slab and per-CPU
//     memory (/proc/meminfo) at load and at install;
//   - the time to encode and write the entries, and to delete them again;
//   - the rewrite cost per packet by BPF test runs, next to the do-nothing TC
//     program measured the same way, runs alternating between the two:
//       hot     one session rewritten --repeat times in a row within one test
//               run (with its inverse installed, as in dataplane.bench.mjs);
//       warm    single runs over 64 sessions in turn (their entries stay in
//               the CPU caches: what the table's size alone costs);
//       spread  single runs each on a session picked at random from the whole
//               table (its entry is rarely cached: what a host whose packets
//               belong to many sessions pays).
//
// Then the agent's own memory: for each of --agent-sizes (default 10k, 100k
// and 1M; --quick 10k and 100k), a real `dysco agent` in a namespace of its
// own takes over that many sessions as it does after a restart: the bench
// writes them into pinned maps sized for N and a matching sessions.json into
// the agent's stateDir, and the agent adopts them at start. Its memory
// (VmRSS, and the V8 heap after a full collection, reported by a preloaded
// probe, bench/tools/mem-probe.cjs) is compared with the same agent, maps of
// the same size, adopting 0 sessions: the difference per session is what
// the agent spends on one. The time from the process's start to its
// `adopted sessions` log line, less the 0-session agent's, is the time to
// adopt them. An agent that runs out of V8 heap under Node's default limit
// is reported so and run again with the limit raised to what the smaller
// sizes say it needs (quick mode skips the attempt bound to fail); a size
// whose expected heap exceeds the machine's memory is not run.
import { closeSync, createWriteStream, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  EGRESS_VALUE_SIZE, INGRESS_OFFSETS, INGRESS_VALUE_SIZE, TCP_ACK, TUPLE_KEY_SIZE,
  DEFAULT_RETRY, SessionProtocol, buildTcpPacket, encodeEgressValue, encodeIngressValue, encodeTupleKey, formatAddress, formatTuple, parseTcpPacket, plainRewrite, reverseTuple, writeTuple,
} from '@dysco/protocol';
import { AgentProcess, DYSCO_BIN, Topology } from '@dysco/agent/topology';
import { DataPlane } from '@dysco/xdp';
import { BED_COMMANDS, BENCH_DIR, atCleanup, ensureCommands, machine, median, option, percentile, printResult, quick, requireRoot, round, runMain, say, sleep, table } from './lib/common.mjs';

const SIZES = option('sizes', '10000,100000,1000000').split(',').map(Number);
const AGENT_SIZES = option('agent-sizes', quick ? '10000,100000' : '10000,100000,1000000').split(',').filter(Boolean).map(Number);
const PROBE = join(BENCH_DIR, 'tools', 'mem-probe.cjs');
const RUNS = Number(option('runs', quick ? 3 : 7));
const REPEAT = Number(option('repeat', quick ? 20000 : 200000));
const SPREAD = Number(option('spread', quick ? 2000 : 10000));
const CHUNK = 65536;

const a4 = (x) => ({ family: 4, bytes: Uint8Array.of((x >>> 24) & 255, (x >>> 16) & 255, (x >>> 8) & 255, x & 255) });
const IP = (s) => s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const HOST = IP('10.0.0.1');
const SERVER = IP('10.200.0.1');
/** Session i: 10.0.0.1:(40000 + i % 20000) -> (10.64.0.0 + i / 20000):80 */
const sessionOf = (i) => ({ src: a4(HOST), sport: 40000 + (i % 20000), dst: a4(IP('10.64.0.0') + Math.floor(i / 20000)), dport: 80 });
/** Its subsession: 10.0.0.1:p -> 10.128.0.0 + i:p, p = 61000 + i % 4000 */
const subOf = (i) => ({ src: a4(HOST), sport: 61000 + (i % 4000), dst: a4(IP('10.128.0.0') + i), dport: 61000 + (i % 4000) });

const eth = (pkt) => {
  const b = Buffer.alloc(14 + pkt.length);
  b.writeUInt16BE(0x0800, 12);
  b.set(pkt, 14);
  return b;
};
const egressEntry = (key, to, lastSeen = 0) => ({ key, old: plainRewrite(to), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen });
const ingressEntry = (key, to, egressKey, lastSeen = 0) => ({ key, rewrite: plainRewrite(to), path: 'old', egressKey, packets: 0, bytes: 0, lastSeen });
const payload = new Uint8Array(1400).fill(7);
const ts = [{ kind: 'timestamps', tsval: 1, tsecr: 2 }];

/**
 * Encodes sessions [from, to) as batch-update buffers: egress and ingress
 * keys and values. `lastSeen` (the kernel's monotonic clock, ns) 0 makes
 * them idle since boot, which an agent would reclaim.
 */
function encodeRange(from, to, lastSeen = 0) {
  const n = to - from;
  const eKeys = Buffer.alloc(n * TUPLE_KEY_SIZE);
  const eVals = Buffer.alloc(n * EGRESS_VALUE_SIZE);
  const iKeys = Buffer.alloc(n * TUPLE_KEY_SIZE);
  const iVals = Buffer.alloc(n * INGRESS_VALUE_SIZE);
  // templates: every value is the same but for its tuples
  const eT = Buffer.from(encodeEgressValue(egressEntry(sessionOf(0), subOf(0), lastSeen)));
  const iT = Buffer.from(encodeIngressValue(ingressEntry(reverseTuple(subOf(0)), reverseTuple(sessionOf(0)), sessionOf(0), lastSeen)));
  for (let j = 0; j < n; j++) {
    const i = from + j;
    const s = sessionOf(i);
    const sub = subOf(i);
    writeTuple(eKeys, j * TUPLE_KEY_SIZE, s);
    eT.copy(eVals, j * EGRESS_VALUE_SIZE);
    writeTuple(eVals, j * EGRESS_VALUE_SIZE, sub);
    writeTuple(iKeys, j * TUPLE_KEY_SIZE, reverseTuple(sub));
    iT.copy(iVals, j * INGRESS_VALUE_SIZE);
    writeTuple(iVals, j * INGRESS_VALUE_SIZE + INGRESS_OFFSETS.rewrite, reverseTuple(s));
    writeTuple(iVals, j * INGRESS_VALUE_SIZE + INGRESS_OFFSETS.egressKey, s);
  }
  const split = (b, size) => Array.from({ length: n }, (_, j) => b.subarray(j * size, (j + 1) * size));
  return { egress: split(eKeys, TUPLE_KEY_SIZE).map((k, j) => [k, eVals.subarray(j * EGRESS_VALUE_SIZE, (j + 1) * EGRESS_VALUE_SIZE)]), ingress: split(iKeys, TUPLE_KEY_SIZE).map((k, j) => [k, iVals.subarray(j * INGRESS_VALUE_SIZE, (j + 1) * INGRESS_VALUE_SIZE)]) };
}

/**
 * Kernel memory in KiB as /proc/meminfo counts it where BPF maps live: vmalloc
 * (large preallocated maps), slab and per-CPU areas. Unlike MemAvailable it
 * does not move with this process's own heap.
 */
function kernelKiB() {
  const m = readFileSync('/proc/meminfo', 'utf8');
  const f = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(m)?.[1] ?? 0);
  return f('VmallocUsed') + f('Slab') + f('Percpu');
}

/** Sum of the memlock bytes of the maps pinned under `dir`, by map. */
function memlock(dir) {
  const out = {};
  for (const f of readdirSync(dir)) {
    const r = spawnSync('bpftool', ['-j', 'map', 'show', 'pinned', `${dir}/${f}`], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    try {
      const j = JSON.parse(r.stdout);
      out[j.name ?? f] = j.bytes_memlock ?? 0;
    } catch {
      // not a map
    }
  }
  return out;
}

/** Writes sessions [0, n) into a data plane with batch updates; returns the time spent encoding and writing them. */
function install(dp, n, lastSeen = 0) {
  const egress = dp.map('egress');
  const ingress = dp.map('ingress');
  let encodeMs = 0;
  let writeMs = 0;
  for (let from = 0; from < n; from += CHUNK) {
    const t0 = performance.now();
    const e = encodeRange(from, Math.min(n, from + CHUNK), lastSeen);
    const t1 = performance.now();
    egress.updateBatch(e.egress);
    ingress.updateBatch(e.ingress);
    const t2 = performance.now();
    encodeMs += t1 - t0;
    writeMs += t2 - t1;
  }
  return { encodeMs, writeMs };
}

/** Loads a data plane sized for `n` sessions and installs them; returns it with the load and install figures. */
function setUp(n) {
  const pinRoot = `/sys/fs/bpf/dysco-bench-scale-${process.pid}-${n}`;
  const mem0 = kernelKiB();
  const tLoad = performance.now();
  const dp = DataPlane.open({ pinRoot, maxSessions: n });
  const loadMs = performance.now() - tLoad;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  };
  atCleanup(close);
  const mem1 = kernelKiB();
  const lock = memlock(pinRoot);
  const lockTotal = Object.values(lock).reduce((a, b) => a + b, 0);
  const egress = dp.map('egress');
  const ingress = dp.map('ingress');
  const { encodeMs, writeMs } = install(dp, n);
  const mem2 = kernelKiB();
  // every sampled session is there (an LRU map sized too small would have evicted some)
  for (let k = 0; k < 1000; k++) {
    const i = k === 0 ? 0 : k === 1 ? n - 1 : Math.floor(Math.random() * n);
    if (!egress.lookup(Buffer.from(encodeTupleKey(sessionOf(i)))) || !ingress.lookup(Buffer.from(encodeTupleKey(reverseTuple(subOf(i)))))) throw new Error(`${n} sessions: session ${i} is missing after the install`);
  }
  // the hot session: one more, with its inverse (session <-> subsession), so that repeated runs keep rewriting
  const hs = { src: a4(IP('10.1.0.1')), sport: 40000, dst: a4(IP('10.1.0.2')), dport: 80 };
  const hsub = { src: a4(IP('10.1.0.1')), sport: 61000, dst: a4(IP('10.1.0.10')), dport: 61000 };
  egress.update(Buffer.from(encodeTupleKey(hs)), Buffer.from(encodeEgressValue(egressEntry(hs, hsub))));
  egress.update(Buffer.from(encodeTupleKey(hsub)), Buffer.from(encodeEgressValue(egressEntry(hsub, hs))));
  const hotPkt = eth(buildTcpPacket({ tuple: hs, seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, options: ts, payload }));
  const tcEgress = dp.program('tcEgress');
  if (parseTcpPacket(tcEgress.testRun({ data: hotPkt, repeat: 1 }).data.subarray(14)).tuple.dport !== 61000) throw new Error('hot session: one run did not rewrite to the subsession');
  if (!tcEgress.testRun({ data: hotPkt, repeat: 2 }).data.equals(hotPkt)) throw new Error('hot session: two runs did not give the input back');
  // single-run packets: sessions picked at random from the whole table (`spread`) and 64 of them (`warm`)
  const pick = (count) => Array.from({ length: count }, () => Math.floor(Math.random() * n));
  const packets = (ids) => ids.map((i) => ({
    i,
    e: eth(buildTcpPacket({ tuple: sessionOf(i), seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, options: ts, payload })),
    in: eth(buildTcpPacket({ tuple: reverseTuple(subOf(i)), seq: 4000, ack: 2000, flags: TCP_ACK, window: 1000, options: ts, payload })),
  }));
  return {
    n, dp, close, hotPkt,
    spreadPkts: packets(pick(SPREAD)),
    warmPkts: packets(pick(64)),
    samples: { hot: [], hotBase: [], spreadE: [], spreadI: [], spreadBase: [], warmE: [], warmI: [], warmBase: [] },
    figures: {
      sessions: n,
      loadMs: round(loadMs, 0),
      memlockBytes: lockTotal,
      memlockByMap: lock,
      memlockPerSession: round(lockTotal / n, 0),
      kernelKiBAtLoad: mem1 - mem0,
      kernelKiBAtInstall: mem2 - mem1,
      encodeMs: round(encodeMs, 0),
      installMs: round(writeMs, 0),
      installPerSecond: round((n * 1000) / writeMs, 0),
    },
  };
}

/** One round of packet-cost measurements on a set-up data plane: a hot run, then a share of the single runs. */
function measureRound(t, round, rounds) {
  const tcEgress = t.dp.program('tcEgress');
  const tcIngress = t.dp.program('tcIngress');
  const passTc = t.dp.program('passTc');
  const s = t.samples;
  s.hotBase.push(passTc.testRun({ data: t.hotPkt, repeat: REPEAT }).durationNs);
  s.hot.push(tcEgress.testRun({ data: t.hotPkt, repeat: REPEAT }).durationNs);
  const share = Math.ceil(SPREAD / rounds);
  for (const [list, e, i, b] of [[t.spreadPkts, s.spreadE, s.spreadI, s.spreadBase], [t.warmPkts, s.warmE, s.warmI, s.warmBase]]) {
    for (let k = round * share; k < Math.min(SPREAD, (round + 1) * share); k++) {
      const p = list[k % list.length];
      b.push(passTc.testRun({ data: p.e, repeat: 1 }).durationNs);
      const re = tcEgress.testRun({ data: p.e, repeat: 1 });
      const ri = tcIngress.testRun({ data: p.in, repeat: 1 });
      if (k < 50) {
        if (parseTcpPacket(re.data.subarray(14)).tuple.sport !== subOf(p.i).sport) throw new Error(`session ${p.i}: the egress run did not rewrite it`);
        if (parseTcpPacket(ri.data.subarray(14)).tuple.sport !== 80) throw new Error(`session ${p.i}: the ingress run did not rewrite it`);
      }
      e.push(re.durationNs);
      i.push(ri.durationNs);
    }
  }
}

/** Deletes every session again (timed), closes the data plane, and completes the figures. */
function tearDown(t) {
  const n = t.n;
  const egress = t.dp.map('egress');
  const ingress = t.dp.map('ingress');
  let deleteMs = 0;
  let deleted = 0;
  for (let from = 0; from < n; from += CHUNK) {
    const to = Math.min(n, from + CHUNK);
    const ek = [];
    const ik = [];
    for (let i = from; i < to; i++) {
      ek.push(Buffer.from(encodeTupleKey(sessionOf(i))));
      ik.push(Buffer.from(encodeTupleKey(reverseTuple(subOf(i)))));
    }
    const t0 = performance.now();
    deleted += egress.deleteBatch(ek) + ingress.deleteBatch(ik);
    deleteMs += performance.now() - t0;
  }
  if (deleted !== 2 * n) throw new Error(`${n} sessions: ${deleted} of ${2 * n} entries deleted`);
  t.close();
  const s = t.samples;
  return {
    ...t.figures,
    deleteMs: round(deleteMs, 0),
    deletePerSecond: round((n * 1000) / deleteMs, 0),
    hotNs: median(s.hot), hotMin: Math.min(...s.hot), hotMax: Math.max(...s.hot), hotBaselineNs: median(s.hotBase),
    warmEgressNs: median(s.warmE), warmIngressNs: median(s.warmI), warmBaselineNs: median(s.warmBase),
    spreadEgressNs: median(s.spreadE), spreadIngressNs: median(s.spreadI), spreadBaselineNs: median(s.spreadBase),
    spreadEgressP90: percentile(s.spreadE, 90), spreadIngressP90: percentile(s.spreadI, 90), spreadBaselineP90: percentile(s.spreadBase, 90),
  };
}

// ---- the agent's memory -------------------------------------------------------------

/**
 * Writes the state file an agent would have left for sessions [0, n) of an
 * originating host: each with its right neighbour (the subsession's far end)
 * and the chain downstream, at rest. Written in pieces: 1M sessions make
 * about 200 MB of JSON.
 */
function writeState(dir, n) {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'sessions.json'), 'w');
  const now = Date.now();
  writeSync(fd, `{"version":1,"nextSessionId":${n + 1},"sessions":[`);
  for (let from = 0; from < n; from += CHUNK) {
    const parts = [];
    for (let i = from; i < Math.min(n, from + CHUNK); i++) {
      const s = sessionOf(i);
      const sub = subOf(i);
      parts.push(JSON.stringify({ id: i + 1, session: formatTuple(s), role: 'originator', right: { agent: formatAddress(sub.dst), subsession: formatTuple(sub) }, downstream: [formatAddress(sub.dst), formatAddress(s.dst)], createdAt: now }));
    }
    writeSync(fd, (from > 0 ? ',' : '') + parts.join(','));
  }
  writeSync(fd, ']}');
  closeSync(fd);
}

/** Waits for the first log record of an agent that `pred` accepts. */
async function record(a, pred, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = a.records().find(pred);
    if (r) return r;
    if (a.exited) throw new Error(`agent exited (${JSON.stringify(a.exited)}) before ${what}:\n${a.logs.slice(-10).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`agent: no ${what} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Starts a `dysco agent` (with the memory probe preloaded, and `nodeArgs`)
 * on `host` over maps sized for `size` holding `n` sessions and a state file
 * naming them; returns its adoption time and memory, and stops it. Throws
 * when the agent dies, with `oom` set when V8 ran out of heap.
 */
async function agentRun(host, size, n, nodeArgs = []) {
  rmSync(host.pinRoot, { recursive: true, force: true });
  rmSync(host.stateDir, { recursive: true, force: true });
  const dp = DataPlane.open({ pinRoot: host.pinRoot, maxSessions: size });
  // lastSeen now: sessions in use, which the agent's idle reclaim leaves alone
  install(dp, n, Number(process.hrtime.bigint()));
  dp.close();
  writeState(host.stateDir, n);
  const dir = join(host.bed.dir, host.name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `agent-${size}-${n}.json`);
  writeFileSync(file, JSON.stringify({
    address: host.address, interfaces: [host.ifname], mode: 'tc', controlPort: 7707, socket: host.socket, pinRoot: host.pinRoot, stateDir: host.stateDir, maxSessions: size, logLevel: 'info',
  }));
  const t0 = Date.now();
  const proc = host.spawn([process.execPath, ...nodeArgs, '--require', PROBE, DYSCO_BIN, 'agent', '--config', file]);
  const a = new AgentProcess(host, proc, host.socket, createWriteStream(join(dir, `agent-${size}-${n}.log`)));
  host.agent = a;
  try {
    const adopted = await record(a, (r) => r.msg === 'adopted sessions of the previous run', 'adoption', 900_000);
    if (adopted.sessions !== n) throw new Error(`the agent adopted ${adopted.sessions} of ${n} sessions`);
    await a.waitReady(600_000);
    const readyMs = Date.now() - t0;
    await sleep(1000); // settled: what start-up allocated for a moment is garbage by now
    proc.kill('SIGUSR2');
    const mem = await record(a, (r) => r.msg === 'memory probe', 'memory probe', 60_000);
    return { sessions: n, adoptMs: Date.parse(adopted.t) - t0, readyMs, before: mem.before, after: mem.after };
  } catch (e) {
    if (a.logs.some((l) => /heap out of memory/i.test(l))) {
      const err = new Error(`V8 ran out of heap after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      err.oom = true;
      throw err;
    }
    throw e;
  } finally {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await a.stop('SIGTERM');
    clearTimeout(timer);
    host.agent = undefined;
    rmSync(host.pinRoot, { recursive: true, force: true });
    rmSync(host.stateDir, { recursive: true, force: true });
  }
}

/**
 * Heap bytes of one session's protocol state alone (the agent's
 * SessionProtocol, its lock and anchor machines), measured in this process
 * on `count` of them: the part of an agent's session record that does not
 * depend on the agent.
 */
function protocolBytes(count = 2000) {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const self = sessionOf(0).src;
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const keep = [];
  for (let i = 0; i < count; i++) keep.push(new SessionProtocol({ self, session: sessionOf(i), right: { agent: subOf(i).dst, subsession: subOf(i) }, retry: DEFAULT_RETRY }));
  gc();
  const bytes = (process.memoryUsage().heapUsed - h0) / keep.length;
  return round(bytes, 0);
}

/**
 * Agent memory and adoption time per session for each of AGENT_SIZES,
 * against the same agent adopting none. An agent that runs out of V8 heap
 * with Node's default limit is reported so, and run again with a limit
 * raised to what the smaller sizes say it needs, when the machine has it.
 */
async function agentMemory() {
  ensureCommands(BED_COMMANDS);
  const protocol = protocolBytes();
  const heapLimit = v8.getHeapStatistics().heap_size_limit;
  const memTotal = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
  const bed = Topology.create({ hosts: ['origin'], tag: `s${process.pid % 100000}`, subnet: '10.0.0' });
  atCleanup(() => bed.destroy());
  const host = bed.host('origin');
  if (host.address !== formatAddress(sessionOf(0).src)) throw new Error(`the agent's address ${host.address} is not the sessions' source`);
  const rows = [];
  for (const n of AGENT_SIZES) {
    const known = rows.filter((r) => r.heapPerSession > 0).at(-1)?.heapPerSession ?? protocol;
    const need = n * known * 1.25 + 512 * 1048576; // heap to adopt n sessions, with room for the collector
    const row = { sessions: n, defaultHeapLimitBytes: heapLimit, predictedHeapBytes: round(n * known, 0) };
    let empty;
    let full;
    try {
      if (need > 0.7 * memTotal) throw new Error(`not run: about ${((n * known) / 2 ** 30).toFixed(1)} GiB of heap expected (${known} bytes a session), more than this machine's ${(memTotal / 2 ** 30).toFixed(1)} GiB allow`);
      say(`scale: agent adopting 0, then ${n} sessions (maps sized for ${n})`);
      empty = await agentRun(host, n, 0);
      if (quick && n * known > 1.25 * heapLimit) {
        // it takes minutes of collecting to run out (a full run finds out)
        row.defaultHeap = `not tried in quick mode: about ${((n * known) / 2 ** 30).toFixed(1)} GiB of heap expected, over the default limit of ${(heapLimit / 2 ** 30).toFixed(1)} GiB`;
      } else {
        try {
          full = await agentRun(host, n, n);
          row.defaultHeap = 'ok';
        } catch (e) {
          if (!e.oom) throw e;
          row.defaultHeap = `failed: ${e.message} (default limit ${(heapLimit / 2 ** 30).toFixed(1)} GiB)`;
          say(`scale: agent with ${n} sessions: ${row.defaultHeap}`);
        }
      }
      if (!full) {
        const mb = Math.ceil(need / 1048576);
        say(`scale: agent adopting ${n} sessions again with --max-old-space-size=${mb}`);
        full = await agentRun(host, n, n, [`--max-old-space-size=${mb}`]);
        row.heapLimitMiB = mb;
      }
    } catch (e) {
      say(`scale: agent with ${n} sessions: ${e.message.split('\n')[0]}`);
      rows.push({ ...row, error: e.message.split('\n')[0] });
      continue;
    }
    const per = (k, when = 'after') => round((full[when][k] - empty[when][k]) / n, 0);
    rows.push({
      ...row,
      rssBytes: full.after.rss,
      rssEmptyBytes: empty.after.rss,
      rssPerSession: per('rss'),
      heapUsedBytes: full.after.heapUsed,
      heapUsedEmptyBytes: empty.after.heapUsed,
      heapPerSession: per('heapUsed'),
      rssBeforeGcPerSession: per('rss', 'before'),
      peakRssBytes: full.after.peakRss,
      peakRssPerSession: per('peakRss'),
      adoptMs: full.adoptMs - empty.adoptMs,
      adoptUsPerSession: round(((full.adoptMs - empty.adoptMs) * 1000) / n, 1),
      startMs: full.adoptMs,
      startEmptyMs: empty.adoptMs,
      readyMs: full.readyMs,
    });
  }
  return { protocolBytesPerSession: protocol, defaultHeapLimitBytes: heapLimit, rows };
}

async function main() {
  requireRoot('scale');
  ensureCommands([['bpftool', 'bpftool']]);
  // every size set up at once, so that the packet-cost rounds can alternate between them
  const beds = [];
  for (const n of SIZES) {
    say(`scale: installing ${n} sessions`);
    beds.push(setUp(n));
  }
  for (let r = 0; r < RUNS; r++) for (const t of beds) measureRound(t, r, RUNS);
  const rows = [];
  for (const t of beds) {
    say(`scale: deleting ${t.n} sessions`);
    rows.push(tearDown(t));
  }
  const ref = rows[0];
  for (const r of rows) {
    r.hotRatio = round(r.hotNs / ref.hotNs);
    r.warmEgressRatio = round(r.warmEgressNs / ref.warmEgressNs);
    r.warmIngressRatio = round(r.warmIngressNs / ref.warmIngressNs);
    r.spreadEgressRatio = round(r.spreadEgressNs / ref.spreadEgressNs);
    r.spreadIngressRatio = round(r.spreadIngressNs / ref.spreadIngressNs);
  }
  const mb = (b) => (b / 1048576).toFixed(1);
  console.log(`scale: the data plane with N established sessions (egress + ingress entry each), maps sized for N\n`);
  console.log(table(
    [{ title: 'sessions', align: 'r' }, { title: 'memlock MiB', align: 'r' }, { title: 'bytes/session', align: 'r' }, { title: 'kernel MiB at load', align: 'r' }, { title: 'at install', align: 'r' }, { title: 'install s', align: 'r' }, { title: 'installs/s', align: 'r' }, { title: 'delete s', align: 'r' }, { title: 'deletes/s', align: 'r' }],
    rows.map((r) => [`${r.sessions}`, mb(r.memlockBytes), `${r.memlockPerSession}`, (r.kernelKiBAtLoad / 1024).toFixed(1), (r.kernelKiBAtInstall / 1024).toFixed(1), (r.installMs / 1000).toFixed(2), `${r.installPerSecond}`, (r.deleteMs / 1000).toFixed(2), `${r.deletePerSecond}`]),
  ));
  console.log(`(memlock: all the data plane's maps, preallocated for N sessions; kernel MiB: growth of vmalloc + slab + per-CPU memory in /proc/meminfo, other activity on the machine included; install and delete: the batch syscalls for N egress and N ingress entries; encoding the entries in JavaScript took another ${rows.map((r) => `${(r.encodeMs / 1000).toFixed(1)} s`).join(', ')})\n`);
  console.log(`ns per packet (1400-byte TCP payload), sizes measured in turn over ${RUNS} rounds: hot = median of ${RUNS} test runs of ${REPEAT} repeats on one session; warm = median of ${SPREAD} single runs over 64 sessions; spread = median of ${SPREAD} single runs on random sessions\n`);
  const x = (v) => `${v.toFixed(2)}x`;
  console.log(table(
    [{ title: 'sessions', align: 'r' }, { title: 'hot egress', align: 'r' }, { title: 'do-nothing', align: 'r' }, { title: `x ${ref.sessions}`, align: 'r' },
      { title: 'warm egress', align: 'r' }, { title: 'warm ingress', align: 'r' }, { title: 'do-nothing', align: 'r' }, { title: `x ${ref.sessions}`, align: 'r' },
      { title: 'spread egress', align: 'r' }, { title: 'spread ingress', align: 'r' }, { title: 'do-nothing', align: 'r' }, { title: `x ${ref.sessions}`, align: 'r' }],
    rows.map((r) => [`${r.sessions}`, `${r.hotNs}`, `${r.hotBaselineNs}`, x(r.hotRatio),
      `${r.warmEgressNs}`, `${r.warmIngressNs}`, `${r.warmBaselineNs}`, `${x(r.warmEgressRatio)} ${x(r.warmIngressRatio)}`,
      `${r.spreadEgressNs}`, `${r.spreadIngressNs}`, `${r.spreadBaselineNs}`, `${x(r.spreadEgressRatio)} ${x(r.spreadIngressRatio)}`]),
  ));
  console.log('(x N: egress, then ingress, against the smallest table)');
  const big = rows[rows.length - 1];
  const flat = Math.max(...rows.map((r) => r.hotRatio));
  const warmWorst = Math.max(...rows.map((r) => Math.max(r.warmEgressRatio, r.warmIngressRatio)));
  const spreadWorst = Math.max(...rows.map((r) => Math.max(r.spreadEgressRatio, r.spreadIngressRatio)));
  const million = big.sessions >= 1_000_000;
  const met = million && flat <= 1.2;
  console.log(`\ntarget: ${million ? '1M sessions installed' : 'fewer than 1M sessions measured'}; packet cost (hot, as dataplane.bench.mjs measures it) within 20% of ${ref.sessions} sessions: ${met ? 'met' : 'missed'} (highest ratio ${flat.toFixed(3)}); single runs, warm: highest ratio ${warmWorst.toFixed(3)}, spread (uncached entries): ${spreadWorst.toFixed(3)}`);

  const agent = await agentMemory();
  const mib1 = (b) => (b / 1048576).toFixed(1);
  console.log(`\nthe agent: a dysco agent adopting N sessions at start (state file and pinned maps of a previous run), against the same agent adopting 0 (maps sized for N in both)\n`);
  console.log(table(
    [{ title: 'sessions', align: 'r' }, { title: 'RSS MiB', align: 'r' }, { title: 'with 0', align: 'r' }, { title: 'RSS B/session', align: 'r' }, { title: 'heap MiB', align: 'r' }, { title: 'with 0', align: 'r' }, { title: 'heap B/session', align: 'r' }, { title: 'peak RSS MiB', align: 'r' }, { title: 'adopt s', align: 'r' }, { title: 'µs/session', align: 'r' }, { title: 'default heap limit', align: 'l' }],
    agent.rows.map((r) => (r.error ? [`${r.sessions}`, '-', '-', '-', '-', '-', '-', '-', '-', '-', r.error] : [`${r.sessions}`, mib1(r.rssBytes), mib1(r.rssEmptyBytes), `${r.rssPerSession}`, mib1(r.heapUsedBytes), mib1(r.heapUsedEmptyBytes), `${r.heapPerSession}`, mib1(r.peakRssBytes), (r.adoptMs / 1000).toFixed(2), `${r.adoptUsPerSession}`, r.defaultHeap === 'ok' ? 'ok' : `${r.defaultHeap}; figures with --max-old-space-size=${r.heapLimitMiB}`])),
  ));
  console.log(`(RSS and heap: VmRSS and V8 heap used, 1 s after the agent is ready, after a full garbage collection; peak RSS: VmHWM, the high-water mark while reading the state file and adopting; adopt: process start to the \`adopted sessions\` log line, less the same for 0 sessions. One session's protocol state alone, SessionProtocol measured in the benchmark's process: ${agent.protocolBytesPerSession} bytes of heap; Node's default heap limit here: ${(agent.defaultHeapLimitBytes / 2 ** 30).toFixed(1)} GiB)`);
  printResult({
    benchmark: 'scale',
    machine: machine(),
    runs: RUNS,
    repeat: REPEAT,
    singleRuns: SPREAD,
    figures: rows,
    agent,
    target: { what: '1M sessions, packet cost (hot) flat within 20% of the smallest table', highestRatio: round(flat), met, warmHighestRatio: round(warmWorst), spreadHighestRatio: round(spreadWorst) },
  });
}

runMain(main);
