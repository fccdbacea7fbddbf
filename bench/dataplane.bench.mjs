// `npm run bench -- dataplane [--quick]`: nanoseconds per packet of the eBPF
// data plane, measured with BPF test runs (the kernel times `repeat` runs of
// a program on one packet), next to a do-nothing program of the same hook
// as the baseline, configurations interleaved (A B A B ...).
//
// A rewriting program would see its own output on the second run and
// measure its miss path: every session is installed with its inverse too, so
// each run rewrites (session -> subsession -> session ...). Before timing, a
// run of 1 must give the reference rewriter's bytes and a run of 2 the input.
//
// The floor rows run programs that only look the session up in an LRU hash
// map like the data plane's (bpf/floor.bpf.c, compiled here): what any
// established-session rewrite costs at least, next to the same baseline.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Rewriter, SessionTable, TCP_ACK, TCP_SYN, buildTcpPacket, encodeTableMaps, encodeTupleKey, encodeSynMetadata,
  ip, parseTcpPacket, plainRewrite, reverseTuple, tuple,
} from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';
import { BpfObject } from 'ebpf-ts-loader';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 5 : 9;
const REPEAT = quick ? 20000 : 200000;

if (process.getuid?.() !== 0) {
  console.error('dataplane benchmark: needs root (BPF test runs)');
  process.exit(1);
}

const pinRoot = `/sys/fs/bpf/dysco-bench-${process.pid}`;
const dp = DataPlane.open({ pinRoot }); // maps sized for a million sessions, as an agent's
process.on('exit', () => {
  dp.close();
  rmSync(pinRoot, { recursive: true, force: true });
});

const eth = (pkt, v6 = false) => {
  const b = Buffer.alloc(14 + pkt.length);
  b.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  b.set(pkt, 14);
  return b;
};
const entry = (key, rw, twoPath) => ({ key, old: rw, twoPath, sndHigh: 1000, packets: 0, bytes: 0, lastSeen: 0 });
const ingress = (key, to, egressKey) => ({ key, rewrite: plainRewrite(to), path: 'old', egressKey, packets: 0, bytes: 0, lastSeen: 0 });
const payload = new Uint8Array(1400).fill(7);
const ts = [{ kind: 'timestamps', tsval: 1, tsecr: 2 }];

// --- established egress: session <-> subsession, both egress keys ------------
const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
const sub = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
const egressTable = new SessionTable();
egressTable.installEgress(entry(session, plainRewrite(sub)));
egressTable.installEgress(entry(sub, plainRewrite(session)));
const egressPkt = buildTcpPacket({ tuple: session, seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, options: ts, payload });

// --- established ingress: reverse(sub) <-> reverse(session) -------------------
const ingressTable = new SessionTable();
ingressTable.installEgress(entry(session, plainRewrite(sub)));
ingressTable.installIngress(ingress(reverseTuple(sub), reverseTuple(session), session));
ingressTable.installIngress(ingress(reverseTuple(session), reverseTuple(sub), session));
const ingressPkt = buildTcpPacket({ tuple: reverseTuple(sub), seq: 4000, ack: 2000, flags: TCP_ACK, window: 1000, options: ts, payload });

// --- two paths: data and ack on the new path, in both directions of the loop --
const s2 = tuple('10.0.1.1', 40001, '10.0.1.2', 80);
const newSub = tuple('10.0.1.1', 61001, '10.0.1.11', 61001);
const tp = (to) => ({ newPath: plainRewrite(to), seqCutoff: 1000, newPathMinSeq: 3000, peerAckHigh: 0, drained: false });
const twoPathTable = new SessionTable();
twoPathTable.installEgress(entry(s2, plainRewrite(tuple('10.0.1.1', 61002, '10.0.1.10', 61002)), tp(newSub)));
twoPathTable.installEgress(entry(newSub, plainRewrite(tuple('10.0.1.1', 61003, '10.0.1.12', 61003)), tp(s2)));
const twoPathPkt = buildTcpPacket({ tuple: s2, seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, options: ts, payload });

for (const t of [egressTable, ingressTable, twoPathTable]) dp.install(encodeTableMaps(t));

/** Checks that one run rewrites as the reference does and two runs give the input back. */
function verify(what, prog, table, pkt, dir) {
  const ref = new Rewriter({ localAddresses: [], table: structuredCloneTable(table) });
  const res = ref[dir](pkt);
  if (res.verdict !== 'rewrite' || res.packets.length !== 1) throw new Error(`${what}: the reference does not rewrite this packet to one output`);
  const one = prog.testRun({ data: eth(pkt), repeat: 1 });
  if (!one.data.subarray(14).equals(Buffer.from(res.packets[0]))) throw new Error(`${what}: one run did not give the reference's bytes`);
  const two = prog.testRun({ data: eth(pkt), repeat: 2 });
  if (!two.data.subarray(14).equals(Buffer.from(pkt))) throw new Error(`${what}: two runs did not come back to the input`);
}
function structuredCloneTable(t) {
  const c = new SessionTable();
  for (const e of t.egress.values()) c.installEgress(structuredClone(e));
  for (const e of t.ingress.values()) c.installIngress(structuredClone(e));
  return c;
}

// --- the floor: a program that only looks the session up (bpf/floor.bpf.c) ----
const floorDir = mkdtempSync(join(tmpdir(), 'dysco-floor-'));
const floorObj = join(floorDir, 'floor.bpf.o');
const arch = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout?.trim() || 'x86_64-linux-gnu';
const cc = spawnSync('clang', ['-O2', '-g', '-target', 'bpfel', '-mcpu=v3', '-Wall', '-Werror', `-I/usr/include/${arch}`, '-c',
  join(dirname(fileURLToPath(import.meta.url)), 'bpf', 'floor.bpf.c'), '-o', floorObj], { stdio: 'inherit' });
if (cc.status !== 0) throw new Error('dataplane benchmark: clang failed on bpf/floor.bpf.c');
const floor = BpfObject.open(floorObj);
floor.load();
process.on('exit', () => {
  floor.close();
  rmSync(floorDir, { recursive: true, force: true });
});
for (const pkt of [egressPkt, ingressPkt]) floor.map('floor_sessions').update(Buffer.from(encodeTupleKey(parseTcpPacket(pkt).tuple)), Buffer.alloc(176));
const floorTc = floor.program('floor_lookup_tc');
const floorXdp = floor.program('floor_lookup_xdp');
for (const [prog, pkt, found] of [[floorTc, egressPkt, 0], [floorXdp, ingressPkt, 2], [floorTc, twoPathPkt, 2]]) {
  // the session's entry is found (TC_ACT_OK, XDP_PASS); another packet's is not
  if (prog.testRun({ data: eth(pkt), repeat: 1 }).retval !== found) throw new Error('floor: the lookup did not go as expected');
}

const tcEgress = dp.program('tcEgress');
const tcIngress = dp.program('tcIngress');
const xdpIngress = dp.program('xdpIngress');
const passTc = dp.program('passTc');
const passXdp = dp.program('passXdp');
verify('egress', tcEgress, egressTable, egressPkt, 'egress');
verify('ingress (TC)', tcIngress, ingressTable, ingressPkt, 'ingress');
verify('ingress (XDP)', xdpIngress, ingressTable, ingressPkt, 'ingress');
verify('two-path egress', tcEgress, twoPathTable, twoPathPkt, 'egress');

const configs = [
  { name: 'tc do-nothing (baseline)', prog: passTc, pkt: egressPkt, base: 'tc' },
  { name: 'tc egress, established', prog: tcEgress, pkt: egressPkt, base: 'tc' },
  { name: 'tc ingress, established', prog: tcIngress, pkt: ingressPkt, base: 'tc' },
  { name: 'tc egress, two paths', prog: tcEgress, pkt: twoPathPkt, base: 'tc' },
  { name: 'tc session lookup alone (floor)', prog: floorTc, pkt: egressPkt, base: 'tc' },
  { name: 'xdp do-nothing (baseline)', prog: passXdp, pkt: ingressPkt, base: 'xdp' },
  { name: 'xdp ingress, established', prog: xdpIngress, pkt: ingressPkt, base: 'xdp' },
  { name: 'xdp session lookup alone (floor)', prog: floorXdp, pkt: ingressPkt, base: 'xdp' },
];
const samples = configs.map(() => []);
for (let r = 0; r < RUNS; r++) {
  configs.forEach((c, i) => {
    const run = c.prog.testRun({ data: eth(c.pkt), repeat: REPEAT });
    samples[i].push(run.durationNs);
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const baseline = { tc: median(samples[0]), xdp: median(samples[configs.findIndex((c) => c.name.startsWith('xdp do-nothing'))]) };
const rows = configs.map((c, i) => {
  const m = median(samples[i]);
  return { name: c.name, ns: m, min: Math.min(...samples[i]), max: Math.max(...samples[i]), ratio: m / baseline[c.base] };
});
console.log(`dataplane: ns per packet, BPF test runs of ${REPEAT} repeats, median of ${RUNS} interleaved runs (1400-byte TCP payload, timestamps)`);
console.log('configuration'.padEnd(58) + 'median'.padStart(9) + 'min'.padStart(8) + 'max'.padStart(8) + '  x baseline');
for (const r of rows) console.log(r.name.padEnd(58) + `${r.ns}`.padStart(9) + `${r.min}`.padStart(8) + `${r.max}`.padStart(8) + `  ${r.ratio.toFixed(2)}x`);

// --- SYN setup: each SYN creates entries, so runs are single (repeat 1) and the
// entries are removed between runs; the baseline is measured the same way.
const SYNS = quick ? 300 : 2000;
const localA = ip('10.9.0.1');
const synSession = tuple('10.9.0.1', 40000, '10.9.0.2', 80);
dp.configure({ localAddresses: [localA, ip('10.9.1.1')], route: false });
const policyTable = new SessionTable();
policyTable.setPolicies([{ id: 1, dport: [80, 80], chain: [ip('10.9.0.10')] }]);
dp.install(encodeTableMaps(policyTable));
const syn = buildTcpPacket({ tuple: synSession, seq: 1, ack: 0, flags: TCP_SYN, window: 65535, options: [{ kind: 'mss', mss: 1460 }] });
const middleSession = tuple('10.9.2.2', 41000, '10.9.3.3', 80);
const middleSyn = buildTcpPacket({
  tuple: tuple('10.9.2.9', 61500, '10.9.1.1', 61500), seq: 1, ack: 0, flags: TCP_SYN, window: 65535,
  payload: encodeSynMetadata({ session: middleSession, chain: [ip('10.9.4.4'), middleSession.dst] }),
});
function removeCreated(out) {
  const sub = parseTcpPacket(out).tuple;
  for (const [m, k] of [['egress', synSession], ['synPayloads', synSession], ['ingress', reverseTuple(sub)]]) dp.map(m).delete(Buffer.from(encodeTupleKey(k)));
}
function removeMiddle() {
  const keys = [['ingress', parseTcpPacket(middleSyn).tuple], ['egress', reverseTuple(middleSession)], ['pending', middleSession]];
  for (const [m, k] of keys) dp.map(m).delete(Buffer.from(encodeTupleKey(k)));
  for (const k of [...dp.map('natTags').keys()]) dp.map('natTags').delete(k);
}
const synSamples = { base: [], egress: [], ingress: [] };
for (let i = 0; i < SYNS; i++) {
  synSamples.base.push(passTc.testRun({ data: eth(syn), repeat: 1 }).durationNs);
  const r = tcEgress.testRun({ data: eth(syn), repeat: 1 });
  if (r.retval !== 0 || r.data.length <= eth(syn).length) throw new Error('SYN setup: the SYN was not steered');
  synSamples.egress.push(r.durationNs);
  removeCreated(r.data.subarray(14));
  const m = tcIngress.testRun({ data: eth(middleSyn), repeat: 1 });
  if (m.retval !== 0 || m.data.length >= eth(middleSyn).length) throw new Error('SYN setup: the middlebox did not take the SYN');
  synSamples.ingress.push(m.durationNs);
  removeMiddle();
}
const synBase = median(synSamples.base);
for (const [name, xs] of [['tc do-nothing, single runs (baseline)', synSamples.base], ['tc egress, SYN steered (policy, metadata, port)', synSamples.egress], ['tc ingress, SYN at a middlebox (decode, pending, NAT tag)', synSamples.ingress]]) {
  const m = median(xs);
  rows.push({ name, ns: m, min: Math.min(...xs), max: Math.max(...xs), ratio: m / synBase });
  console.log(name.padEnd(58) + `${m}`.padStart(9) + `${Math.min(...xs)}`.padStart(8) + `${Math.max(...xs)}`.padStart(8) + `  ${(m / synBase).toFixed(2)}x`);
}
console.log(`(SYN rows: median of ${SYNS} single runs each, which include the test-run overhead of one run)`);
// the target: an established-session rewrite within 2.5x of the do-nothing program
const established = rows.filter((r) => r.name.includes('established'));
const floorOf = (prefix) => rows.find((r) => r.name.startsWith(prefix) && r.name.includes('(floor)'))?.ratio;
const highest = Math.max(...established.map((r) => r.ratio));
const target = { ratio: 2.5, highestEstablishedRatio: Number(highest.toFixed(3)), met: highest <= 2.5, floorTc: Number(floorOf('tc').toFixed(3)), floorXdp: Number(floorOf('xdp').toFixed(3)) };
console.log(`target: established-session rewrite <= 2.5x the do-nothing program: ${target.met ? 'met' : 'missed'} (highest ${highest.toFixed(2)}x; the session lookup alone ${target.floorTc.toFixed(2)}x at TC, ${target.floorXdp.toFixed(2)}x at XDP)`);
console.log(`RESULT ${JSON.stringify({ benchmark: 'dataplane', repeat: REPEAT, runs: RUNS, target, figures: rows.map((r) => ({ name: r.name, nsPerPacket: r.ns, min: r.min, max: r.max, ratioToBaseline: Number(r.ratio.toFixed(3)) })) })}`);
