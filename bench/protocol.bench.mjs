// Reference rewriter packets/s and reconfiguration state-machine
// transitions/s on one core, each next to a baseline measured in the same
// run: parsing the same packet (what any data path must do at least), and
// a one-state xstate machine (what the machine library costs by itself).
import { createMachine, initialTransition, transition } from 'xstate';
import {
  Rewriter, plainRewrite, buildTcpPacket, parsePacket, TCP_ACK, tuple, reverseTuple,
} from '@dysco/protocol';
import { SessionProtocol } from '../packages/protocol/dist/reconfig/session-protocol.js';
import { ZERO_DELTAS } from '../packages/protocol/dist/messages.js';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 7;
const DURATION = quick ? 150 : 500; // ms per measurement

/** Operations per second of f, measured for `DURATION` ms after a warm-up. */
function rate(f) {
  for (let i = 0; i < 2000; i++) f();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < DURATION) {
    for (let i = 0; i < 500; i++) f();
    n += 500;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// ---- data path ----------------------------------------------------------------
const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
const sub = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
const newSub = tuple('10.0.0.1', 61001, '10.0.0.11', 61001);
const payload = new Uint8Array(1400).fill(7);
const entry = (key, to) => ({ key, old: plainRewrite(to), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0 });

function rewriterWith(twoPath) {
  const r = new Rewriter({ localAddresses: [session.src] });
  r.table.installEgress(entry(session, sub));
  r.table.installIngress({ key: reverseTuple(sub), rewrite: plainRewrite(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  if (twoPath) {
    r.table.enterTwoPath(session, plainRewrite(newSub), 1000);
    r.table.getEgress(session).twoPath.newPathMinSeq = 3000; // acks above it belong to the new path
  }
  return r;
}
const out = buildTcpPacket({ tuple: session, seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, payload });
const inn = buildTcpPacket({ tuple: reverseTuple(sub), seq: 4000, ack: 2000, flags: TCP_ACK, window: 1000, payload });
const one = rewriterWith(false);
const two = rewriterWith(true);
// verify each measured path does what it claims before timing it
const check = (r, pkt, dir, n, what) => {
  const res = r[dir](pkt);
  if (res.verdict !== 'rewrite' || res.packets.length !== n) throw new Error(`${what}: expected ${n} rewritten packets, got ${res.verdict}/${res.packets.length}`);
};
check(one, out, 'egress', 1, 'egress');
check(one, inn, 'ingress', 1, 'ingress');
check(two, out, 'egress', 1, 'two-path egress');
const split = buildTcpPacket({ tuple: session, seq: 2000, ack: 2500, flags: TCP_ACK, window: 1000, payload });
check(two, split, 'egress', 2, 'two-path split');

// ---- state machine ---------------------------------------------------------
const trivial = createMachine({ initial: 'a', states: { a: { on: { go: 'b' } }, b: { on: { go: 'a' } } } });
let ts = initialTransition(trivial)[0];
const L = session.src;
const R = session.dst;
const rightHop = { agent: R, subsession: sub };
const newHop = { agent: R, subsession: newSub };
/** One full reconfiguration at the left anchor: reconfigure, ackLock, synAck, drained, teardown = 5 events. */
let id = 0;
function reconfigure() {
  const p = new SessionProtocol({ self: L, session, right: rightHop });
  const reconfigId = ++id;
  p.handle({ type: 'reconfigure', reconfigId, rightAnchor: R, newChain: [], newHop });
  const c = { subsession: sub, reconfigId, msgSeq: 1, requester: L };
  p.handle({ type: 'message', from: R, message: { type: 'ackLock', ...c, rightAnchor: R, deltas: ZERO_DELTAS } });
  p.handle({ type: 'message', from: R, message: { type: 'synAck', ...c, subsession: newSub } });
  p.handle({ type: 'oldPathDrained', side: 'right' });
  p.handle({ type: 'message', from: R, message: { type: 'teardown', ...c, fromLeft: false } });
  if (p.leftAnchorState !== 'OnePath' || p.right.subsession !== newSub) throw new Error('the benchmarked reconfiguration did not complete');
}
reconfigure();

const cases = {
  'parse (baseline)': () => parsePacket(out),
  'egress rewrite': () => one.egress(out),
  'ingress rewrite': () => one.ingress(inn),
  'two-path egress': () => two.egress(out),
  'two-path split': () => two.egress(split),
  'xstate trivial transition (baseline)': () => { [ts] = transition(trivial, ts, { type: 'go' }); },
  'reconfiguration (5 events)': reconfigure,
};
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let run = 0; run < RUNS; run++) for (const [k, f] of Object.entries(cases)) samples[k].push(rate(f)); // interleaved

const res = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) }]));
const base = res['parse (baseline)'].median;
const xbase = res['xstate trivial transition (baseline)'].median;
const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(1)} k`);
console.log(`protocol benchmark, one core, ${RUNS} interleaved runs of ${DURATION} ms (median, min-max)\n`);
console.log('case                                   per second          ratio to baseline');
for (const [k, v] of Object.entries(res)) {
  const b = k.startsWith('xstate') || k.startsWith('reconfiguration') ? xbase : base;
  console.log(`${k.padEnd(38)} ${fmt(v.median).padStart(9)}/s (${fmt(v.min)}-${fmt(v.max)})   ${(v.median / b).toFixed(3)}`);
}
const transitionsPerSecond = res['reconfiguration (5 events)'].median * 5;
console.log(`\nstate machine: ${fmt(transitionsPerSecond)} protocol events/s (a full left-anchor reconfiguration is 5 events)`);
console.log(`RESULT ${JSON.stringify({
  bench: 'protocol',
  runs: RUNS,
  rewriterPacketsPerSecond: { egress: res['egress rewrite'].median, ingress: res['ingress rewrite'].median, twoPathEgress: res['two-path egress'].median, twoPathSplit: res['two-path split'].median },
  parseBaselinePerSecond: base,
  ratioToParse: { egress: res['egress rewrite'].median / base, ingress: res['ingress rewrite'].median / base, twoPathEgress: res['two-path egress'].median / base },
  stateMachineEventsPerSecond: transitionsPerSecond,
  reconfigurationsPerSecond: res['reconfiguration (5 events)'].median,
  xstateBaselineTransitionsPerSecond: xbase,
  ratioToXstateBaseline: transitionsPerSecond / xbase,
})}`);
