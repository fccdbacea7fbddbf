/**
 * Runs one case through the reference rewriter and through the compiled
 * programs (BPF_PROG_TEST_RUN), and describes every difference: verdict,
 * output bytes, table state afterwards, events and counters.
 */
import {
  type DataPlaneEvent,
  KeyRing,
  type RewriteResult,
  Rewriter,
  SessionTable,
  encodeTableMaps,
  encodeTupleKey,
  hex,
  reverseTuple,
} from '@dysco/protocol';
import { COUNTER_NAMES, type Counters, DataPlane } from '@dysco/xdp';
import { type DiffCase, damaged, egressEntry, ingressEntry, packetOf } from './cases.js';
import type { Prepared } from './syn-cases.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
/** BPF_F_TEST_SKB_CHECKSUM_COMPLETE: the kernel checks skb->csum after the run. */
export const TEST_SKB_CHECKSUM_COMPLETE = 4;

/** The Ethernet header the test runs put in front of an IP packet. */
export function ethFor(pkt: Uint8Array): Buffer {
  const eth = Buffer.alloc(14);
  eth.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  eth.writeUInt16BE(pkt.length > 0 && pkt[0]! >> 4 === 6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, pkt]);
}

export function tableFor(c: DiffCase): SessionTable {
  const t = new SessionTable();
  if (c.egress) t.installEgress(egressEntry(c.egress.key, c.egress.spec));
  if (c.ingress) t.installIngress(ingressEntry(c.ingress, c.egress?.key ?? reverseTuple(c.ingress.rewrite.tuple)));
  return t;
}

export function packetFor(c: DiffCase): Uint8Array {
  return damaged(packetOf(c.tuple, c.packet), c.damage);
}


function normalizeEvents(evs: readonly DataPlaneEvent[]): string {
  // key order and absent-versus-undefined fields do not matter; values do
  return JSON.stringify(evs, (_k, v: unknown) => {
    if (v instanceof Uint8Array) return hex(v);
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => a.localeCompare(b)));
    }
    return v;
  });
}

export type Program = 'tcEgress' | 'tcIngress' | 'xdpIngress';

export interface Outcome {
  readonly retval: number;
  readonly data: Buffer;
}

function diffCounters(before: Counters, after: Counters): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const n of COUNTER_NAMES) if (after[n] !== before[n]) out.set(n, after[n] - before[n]);
  return out;
}

/** Every difference between the reference and the program on this case (empty: identical). */
/** A DiffCase as a prepared run: no local addresses, default ports and seeds. */
export function prepare(c: DiffCase): Prepared {
  return {
    direction: c.direction,
    family: c.family,
    makeTable: () => tableFor(c),
    packet: packetFor(c),
    localAddresses: [],
    ports: { low: 61000, high: 65535, seed: 1 },
    seed: 1,
    checksumComplete: c.checksumComplete,
  };
}

export function compareCase(
  dp: DataPlane,
  c: DiffCase,
  program: Program,
  stats?: DiffStats,
  tapped?: () => Buffer[],
): string[] {
  return comparePrepared(dp, prepare(c), program, stats, tapped);
}

/** What the runs covered; the two `doneBy` counts: old paths reported done by an ack sent (the receiving half) or received. */
export interface DiffStats {
  twoOutputs: number;
  rewritten: number;
  dropped: number;
  doneByOwnAck?: number;
  doneByPeerAck?: number;
  /** Program runs the fast path rewrote (in place: addresses and ports only). */
  fastPath?: number;
}

/** Zeroes the byte ranges of a value that hold clocks (the kernel's clock is not the reference's). */
const CLOCKS: Record<string, [number, number]> = { egress: [168, 176], ingress: [120, 128], pending: [48, 56] };

function clockless(kind: string, v: Uint8Array): string {
  const b = Buffer.from(v);
  const r = CLOCKS[kind];
  if (r) b.fill(0, r[0], r[1]);
  return b.toString('hex');
}

/**
 * `tapped`, when given, returns the frames the first output of a two-output
 * packet produced (captured after the nested egress run, see splits.test.ts);
 * without it a two-output packet must be dropped and counted as splitFailed,
 * since a plain test run has nowhere to send the clone.
 */
export function comparePrepared(
  dp: DataPlane,
  c: Prepared,
  program: Program,
  stats?: DiffStats,
  tapped?: () => Buffer[],
): string[] {
  const pkt = c.packet;
  const refTable = c.makeTable();
  const initial = encodeTableMaps(refTable);
  // routing by the new destination is tested on real interfaces (route.test.ts), not in test runs
  dp.configure({ localAddresses: c.localAddresses, ports: c.ports, seed: c.seed, route: false, ...(c.auth ? { auth: c.auth } : {}) });
  dp.install(initial);
  dp.events();
  const before = dp.counters();

  const keys = c.auth ? new KeyRing(c.auth.keys, { ...(c.auth.sendKeyId === undefined ? {} : { sendKeyId: c.auth.sendKeyId }), ...(c.auth.requireAuth === undefined ? {} : { requireAuth: c.auth.requireAuth }) }) : undefined;
  const ref = new Rewriter({ localAddresses: c.localAddresses, table: refTable, now: () => 0, ports: c.ports, seed: c.seed, ...(keys ? { keys } : {}) });
  const result: RewriteResult = c.direction === 'egress' ? ref.egress(pkt) : ref.ingress(pkt);
  const input = ethFor(pkt);
  // A length change (split, link padding) leaves the skb CHECKSUM_NONE, whose skb->csum the
  // kernel's COMPLETE check would still compare: only same-length rewrites run as COMPLETE.
  const lengthKept = result.packets.every((q) => q.length === pkt.length);
  const flags = program !== 'xdpIngress' && c.checksumComplete && lengthKept ? TEST_SKB_CHECKSUM_COMPLETE : 0;
  const run = dp.program(program).testRun({ data: input, dataOutSize: input.length + 512, flags });

  const problems: string[] = [];
  const xdp = program === 'xdpIngress';
  const okCode = xdp ? XDP_PASS : TC_ACT_OK;
  const dropCode = xdp ? XDP_DROP : TC_ACT_SHOT;
  const kernelCounters = diffCounters(before, dp.counters());
  if (stats && kernelCounters.has('fastPath')) stats.fastPath = (stats.fastPath ?? 0) + 1;
  if (stats) {
    if (result.packets.length === 2) stats.twoOutputs++;
    else if (result.verdict === 'rewrite') stats.rewritten++;
    else if (result.verdict === 'drop') stats.dropped++;
    if (result.events.some((e) => e.type === 'oldPathDrained')) {
      if (c.direction === 'egress') stats.doneByOwnAck = (stats.doneByOwnAck ?? 0) + 1;
      else stats.doneByPeerAck = (stats.doneByPeerAck ?? 0) + 1;
    }
  }
  if (result.packets.length === 2 && tapped) {
    const first = tapped();
    const want1 = ethFor(result.packets[0]!);
    const want2 = ethFor(result.packets[1]!);
    if (first.length !== 1) problems.push(`two outputs: ${first.length} first outputs captured, expected 1`);
    else if (!first[0]!.equals(want1)) {
      problems.push(`first output differs:\n  input     ${hex(pkt)}\n  reference ${hex(result.packets[0]!)}\n  kernel    ${first[0]!.subarray(14).toString('hex')}`);
    }
    if (run.retval !== okCode) problems.push(`two outputs: kernel retval ${run.retval} for the second`);
    else if (!run.data.equals(want2)) {
      problems.push(`second output differs:\n  input     ${hex(pkt)}\n  reference ${hex(result.packets[1]!)}\n  kernel    ${run.data.subarray(14).toString('hex')}`);
    }
  } else if (result.packets.length === 2) {
    // Without a capture the clone has nowhere to go: the program must refuse the packet.
    if (run.retval !== dropCode || kernelCounters.get('splitFailed') !== 1n) {
      problems.push(`two outputs expected: kernel retval ${run.retval}, splitFailed ${kernelCounters.get('splitFailed') ?? 0n}`);
    }
  } else if (result.verdict === 'drop') {
    if (run.retval !== dropCode) problems.push(`verdict: reference drop (${result.reason}), kernel retval ${run.retval}`);
  } else {
    if (run.retval !== okCode) problems.push(`verdict: reference ${result.verdict}, kernel retval ${run.retval}`);
    const want = ethFor(result.packets[0]!);
    if (!run.data.equals(want)) {
      problems.push(`output bytes differ:\n  input     ${hex(pkt)}\n  reference ${hex(result.packets[0]!)}\n  kernel    ${run.data.subarray(14).toString('hex')}`);
    }
  }

  if (result.packets.length < 2 || tapped) {
    // State afterwards.
    const after = encodeTableMaps(refTable);
    for (const kind of ['egress', 'ingress', 'pending', 'natTags', 'synPayloads'] as const) {
      for (const e of after[kind]) {
        const got = dp.map(kind).lookup(Buffer.from(e.key));
        if (!got) {
          problems.push(`${kind} entry ${hex(e.key)} missing in the kernel`);
          continue;
        }
        const a = clockless(kind, e.value);
        const b = clockless(kind, got);
        if (a !== b) problems.push(`${kind} entry differs:\n  reference ${a}\n  kernel    ${b}`);
      }
      // entries the reference removed (a consumed pending entry) must be gone from the kernel too
      const kept = new Set(after[kind].map((e) => hex(e.key)));
      for (const e of initial[kind]) {
        if (!kept.has(hex(e.key)) && dp.map(kind).lookup(Buffer.from(e.key))) problems.push(`${kind} entry ${hex(e.key)} left in the kernel`);
      }
    }
    // Events.
    const evs = dp.events();
    if (normalizeEvents(evs) !== normalizeEvents(result.events)) {
      problems.push(`events: reference ${normalizeEvents(result.events)}, kernel ${normalizeEvents(evs)}`);
    }
    // Counters the reference keeps too.
    for (const [name, n] of ref.counters) {
      if (n !== 0 && kernelCounters.get(name) !== BigInt(n)) problems.push(`counter ${name}: reference ${n}, kernel ${kernelCounters.get(name) ?? 0n}`);
    }
    for (const name of ['malformedPacket', 'twoPathSplit'] as const) {
      if ((ref.counters.get(name) ?? 0) === 0 && kernelCounters.has(name)) problems.push(`counter ${name}: kernel counted, reference did not`);
    }
  } else {
    dp.events();
  }

  const final = encodeTableMaps(refTable);
  for (const kind of ['egress', 'ingress', 'pending', 'natTags', 'synPayloads', 'policies'] as const) {
    for (const e of [...initial[kind], ...final[kind]]) dp.map(kind).delete(Buffer.from(e.key));
  }
  dp.setPolicyOrder([]);
  if (problems.length > 0) problems.unshift(`program ${program}, ${c.direction}, IPv${c.family}, ${pkt.length} bytes: ${hex(pkt)}`);
  return problems;
}

export { encodeTupleKey };
