import type { Address, IpFamily, Prefix } from './address.js';
import { DyscoError } from './errors.js';
import type { EgressEntry, IngressEntry, PathRewrite, PendingEntry, Policy, TwoPathState } from './table.js';
import type { FiveTuple } from './tuple.js';

/**
 * Binary layout of the session-table maps shared with the eBPF data plane
 * (docs/session-table.md is the prose version of this file).
 *
 * Every key and value is a fixed-size, C-struct-like record with explicit
 * zero padding (hash-map keys are compared as raw bytes, so padding must be
 * zero). Byte order: addresses and the two ports inside a tuple are in
 * network byte order, exactly as in the packet, so the data plane copies
 * them without swapping; every other integer is little-endian, the host
 * order of the x86-64 and arm64 machines the maps live on. Addresses take
 * 16 bytes: IPv6 as is, IPv4 in the first 4 bytes followed by 12 zero bytes,
 * with a family byte (4 or 6) beside them.
 */

/** Longest chain a SYN may carry (metadata chain, destination included) and a pending entry may hold. */
export const MAX_CHAIN_LENGTH = 8;
/** Largest SYN metadata payload the table stores for retransmitted SYNs. */
export const MAX_SYN_PAYLOAD = 256;

export const TUPLE_KEY_SIZE = 40;
export const ADDRESS_SLOT_SIZE = 20;
export const PATH_REWRITE_SIZE = 60;
export const EGRESS_VALUE_SIZE = 176;
export const INGRESS_VALUE_SIZE = 136;
export const PENDING_VALUE_SIZE = 56 + MAX_CHAIN_LENGTH * ADDRESS_SLOT_SIZE;
export const POLICY_KEY_SIZE = 4;
export const POLICY_VALUE_SIZE = 56 + MAX_CHAIN_LENGTH * ADDRESS_SLOT_SIZE;
export const NAT_TAG_KEY_SIZE = 4;
export const NAT_TAG_VALUE_SIZE = TUPLE_KEY_SIZE;
export const SYN_PAYLOAD_VALUE_SIZE = 4 + MAX_SYN_PAYLOAD;

/** Bits of the egress value's `flags` word. */
export const EGRESS_FLAG_TWO_PATH = 1 << 0;
export const EGRESS_FLAG_NEW_PATH_MIN_SEQ = 1 << 1;
export const EGRESS_FLAG_PEER_ACK_HIGH = 1 << 2;
export const EGRESS_FLAG_DRAINED = 1 << 3;
export const EGRESS_FLAG_SND_HIGH = 1 << 4;
export const EGRESS_FLAG_FIN_SENT = 1 << 5;
export const EGRESS_FLAG_FIN_RECEIVED = 1 << 6;
export const EGRESS_FLAG_ENDED = 1 << 7;
export const EGRESS_FLAG_SYN_PAYLOAD = 1 << 8;
/** Two paths entered before anything was sent: the first packet sent fixes the cutoff. */
export const EGRESS_FLAG_CUTOFF_PENDING = 1 << 9;
/** New path prepared, data not yet moved: acks split, data on the old path. */
export const EGRESS_FLAG_AWAITING_CUTOVER = 1 << 10;
/** ackSentHigh is valid. */
export const EGRESS_FLAG_ACK_SENT_HIGH = 1 << 11;
/** peerEnd is valid: the peer anchor said where its old-path data ends. */
export const EGRESS_FLAG_PEER_END = 1 << 12;
/** Everything the peer sent on the old path is received and acknowledged here. */
export const EGRESS_FLAG_RECEIVED = 1 << 13;
const EGRESS_FLAGS_ALL = (1 << 14) - 1;

/** Bits of the policy value's `flags` byte. */
export const POLICY_FLAG_SRC = 1 << 0;
export const POLICY_FLAG_DST = 1 << 1;
export const POLICY_FLAG_SPORT = 1 << 2;
export const POLICY_FLAG_DPORT = 1 << 3;

/** Offsets, for the C header and the tests. */
export const EGRESS_OFFSETS = {
  old: 0,
  newPath: 60,
  flags: 120,
  seqCutoff: 124,
  newPathMinSeq: 128,
  peerAckHigh: 132,
  sndHigh: 136,
  ackSentHigh: 140,
  peerEnd: 144,
  packets: 152,
  bytes: 160,
  lastSeen: 168,
} as const;
export const INGRESS_OFFSETS = { rewrite: 0, egressKey: 60, path: 100, ackHighValid: 101, feedsTwoPath: 102, packets: 104, bytes: 112, lastSeen: 120, ackHigh: 128 } as const;
export const PENDING_OFFSETS = { fromSubsession: 0, natTag: 40, chainLength: 44, created: 48, chain: 56 } as const;
export const POLICY_OFFSETS = {
  id: 0,
  flags: 4,
  srcLength: 5,
  dstLength: 6,
  chainLength: 7,
  src: 8,
  dst: 28,
  sportLow: 48,
  sportHigh: 50,
  dportLow: 52,
  dportHigh: 54,
  chain: 56,
} as const;

export class LayoutError extends DyscoError {
  constructor(message: string) {
    super('ERR_LAYOUT', message);
    this.name = 'LayoutError';
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function need(b: Uint8Array, size: number, what: string): void {
  if (b.length !== size) throw new LayoutError(`${what} is ${size} bytes, got ${b.length}`);
}

function u64(v: number, what: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new LayoutError(`${what} must be a non-negative integer, got ${v}`);
  return BigInt(v);
}

function fromU64(dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LayoutError(`${what} ${v} exceeds 2^53`);
  return Number(v);
}

function familyOf(byte: number, what: string): IpFamily {
  if (byte === 4 || byte === 6) return byte;
  throw new LayoutError(`${what}: family byte ${byte} is neither 4 nor 6`);
}

function writeAddress(b: Uint8Array, at: number, a: Address): void {
  const n = a.family === 4 ? 4 : 16;
  if (a.bytes.length !== n) throw new LayoutError('address length does not match its family');
  b.fill(0, at, at + 16);
  b.set(a.bytes, at);
}

function readAddress(b: Uint8Array, at: number, family: IpFamily): Address {
  return { family, bytes: b.slice(at, at + (family === 4 ? 4 : 16)) };
}

/** Address slot: addr[16] @0, family u8 @16, pad[3]. */
function writeSlot(b: Uint8Array, at: number, a: Address): void {
  writeAddress(b, at, a);
  b[at + 16] = a.family;
}

function readSlot(b: Uint8Array, at: number, what: string): Address {
  return readAddress(b, at, familyOf(b[at + 16]!, what));
}

// ----- tuple key --------------------------------------------------------------

/** src[16] @0, dst[16] @16, sport be16 @32, dport be16 @34, family u8 @36, pad[3] @37. */
export function writeTuple(b: Uint8Array, at: number, t: FiveTuple): void {
  if (t.src.family !== t.dst.family) throw new LayoutError('a tuple mixes families');
  writeAddress(b, at, t.src);
  writeAddress(b, at + 16, t.dst);
  b[at + 32] = (t.sport >>> 8) & 0xff;
  b[at + 33] = t.sport & 0xff;
  b[at + 34] = (t.dport >>> 8) & 0xff;
  b[at + 35] = t.dport & 0xff;
  b[at + 36] = t.src.family;
  b.fill(0, at + 37, at + 40);
}

export function readTuple(b: Uint8Array, at: number): FiveTuple {
  const family = familyOf(b[at + 36]!, 'tuple');
  return {
    src: readAddress(b, at, family),
    dst: readAddress(b, at + 16, family),
    sport: (b[at + 32]! << 8) | b[at + 33]!,
    dport: (b[at + 34]! << 8) | b[at + 35]!,
  };
}

export function encodeTupleKey(t: FiveTuple): Uint8Array {
  const b = new Uint8Array(TUPLE_KEY_SIZE);
  writeTuple(b, 0, t);
  return b;
}

export function decodeTupleKey(b: Uint8Array): FiveTuple {
  need(b, TUPLE_KEY_SIZE, 'tuple key');
  return readTuple(b, 0);
}

// ----- path rewrite -----------------------------------------------------------

/** tuple @0 (40), seqDelta @40, ackDelta @44, tsvalDelta @48, tsecrDelta @52 (u32 le), wsFrom u8 @56, wsTo u8 @57, pad[2]. */
export function writePathRewrite(b: Uint8Array, at: number, r: PathRewrite): void {
  writeTuple(b, at, r.tuple);
  const dv = view(b);
  dv.setUint32(at + 40, r.seqDelta >>> 0, true);
  dv.setUint32(at + 44, r.ackDelta >>> 0, true);
  dv.setUint32(at + 48, r.tsvalDelta >>> 0, true);
  dv.setUint32(at + 52, r.tsecrDelta >>> 0, true);
  if (!Number.isInteger(r.wsFrom) || !Number.isInteger(r.wsTo) || r.wsFrom < 0 || r.wsTo < 0 || r.wsFrom > 14 || r.wsTo > 14) {
    throw new LayoutError(`window scale shifts must be 0..14, got ${r.wsFrom}/${r.wsTo}`);
  }
  b[at + 56] = r.wsFrom;
  b[at + 57] = r.wsTo;
  b[at + 58] = 0;
  b[at + 59] = 0;
}

export function readPathRewrite(b: Uint8Array, at: number): PathRewrite {
  const dv = view(b);
  return {
    tuple: readTuple(b, at),
    seqDelta: dv.getUint32(at + 40, true),
    ackDelta: dv.getUint32(at + 44, true),
    tsvalDelta: dv.getUint32(at + 48, true),
    tsecrDelta: dv.getUint32(at + 52, true),
    wsFrom: b[at + 56]!,
    wsTo: b[at + 57]!,
  };
}

export function encodePathRewrite(r: PathRewrite): Uint8Array {
  const b = new Uint8Array(PATH_REWRITE_SIZE);
  writePathRewrite(b, 0, r);
  return b;
}

export function decodePathRewrite(b: Uint8Array): PathRewrite {
  need(b, PATH_REWRITE_SIZE, 'path rewrite');
  return readPathRewrite(b, 0);
}

// ----- egress -----------------------------------------------------------------

export function encodeEgressValue(e: EgressEntry): Uint8Array {
  const b = new Uint8Array(EGRESS_VALUE_SIZE);
  const dv = view(b);
  const o = EGRESS_OFFSETS;
  writePathRewrite(b, o.old, e.old);
  let flags = 0;
  const tp = e.twoPath;
  if (tp) {
    flags |= EGRESS_FLAG_TWO_PATH;
    writePathRewrite(b, o.newPath, tp.newPath);
    dv.setUint32(o.seqCutoff, tp.seqCutoff >>> 0, true);
    if (tp.newPathMinSeq !== undefined) {
      flags |= EGRESS_FLAG_NEW_PATH_MIN_SEQ;
      dv.setUint32(o.newPathMinSeq, tp.newPathMinSeq >>> 0, true);
    }
    if (tp.peerAckHigh !== undefined) {
      flags |= EGRESS_FLAG_PEER_ACK_HIGH;
      dv.setUint32(o.peerAckHigh, tp.peerAckHigh >>> 0, true);
    }
    if (tp.drained) flags |= EGRESS_FLAG_DRAINED;
    if (tp.peerEnd !== undefined) {
      flags |= EGRESS_FLAG_PEER_END;
      dv.setUint32(o.peerEnd, tp.peerEnd >>> 0, true);
    }
    if (tp.received) flags |= EGRESS_FLAG_RECEIVED;
    if (tp.cutoffPending) flags |= EGRESS_FLAG_CUTOFF_PENDING;
    if (tp.awaitingCutover) flags |= EGRESS_FLAG_AWAITING_CUTOVER;
  }
  if (e.sndHigh !== undefined) {
    flags |= EGRESS_FLAG_SND_HIGH;
    dv.setUint32(o.sndHigh, e.sndHigh >>> 0, true);
  }
  if (e.ackSentHigh !== undefined) {
    flags |= EGRESS_FLAG_ACK_SENT_HIGH;
    dv.setUint32(o.ackSentHigh, e.ackSentHigh >>> 0, true);
  }
  if (e.finSent) flags |= EGRESS_FLAG_FIN_SENT;
  if (e.finReceived) flags |= EGRESS_FLAG_FIN_RECEIVED;
  if (e.ended) flags |= EGRESS_FLAG_ENDED;
  if (e.synPayload) {
    if (e.synPayload.length > MAX_SYN_PAYLOAD) throw new LayoutError(`SYN payload of ${e.synPayload.length} bytes exceeds ${MAX_SYN_PAYLOAD}`);
    flags |= EGRESS_FLAG_SYN_PAYLOAD;
  }
  dv.setUint32(o.flags, flags, true);
  dv.setBigUint64(o.packets, u64(e.packets, 'packets'), true);
  dv.setBigUint64(o.bytes, u64(e.bytes, 'bytes'), true);
  dv.setBigUint64(o.lastSeen, u64(e.lastSeen, 'lastSeen'), true);
  return b;
}

/**
 * The egress entry of map key `key` and value `value`. The SYN payload lives
 * in its own map (`encodeSynPayloadValue`); pass it when the value's flag
 * says there is one.
 */
export function decodeEgressEntry(key: Uint8Array, value: Uint8Array, synPayload?: Uint8Array): EgressEntry {
  need(value, EGRESS_VALUE_SIZE, 'egress value');
  const dv = view(value);
  const o = EGRESS_OFFSETS;
  const flags = dv.getUint32(o.flags, true);
  if ((flags & ~EGRESS_FLAGS_ALL) !== 0) throw new LayoutError(`egress flags 0x${flags.toString(16)} has unknown bits`);
  let twoPath: TwoPathState | undefined;
  if (flags & EGRESS_FLAG_TWO_PATH) {
    twoPath = {
      newPath: readPathRewrite(value, o.newPath),
      seqCutoff: dv.getUint32(o.seqCutoff, true),
      newPathMinSeq: flags & EGRESS_FLAG_NEW_PATH_MIN_SEQ ? dv.getUint32(o.newPathMinSeq, true) : undefined,
      peerAckHigh: flags & EGRESS_FLAG_PEER_ACK_HIGH ? dv.getUint32(o.peerAckHigh, true) : undefined,
      drained: (flags & EGRESS_FLAG_DRAINED) !== 0,
      ...(flags & EGRESS_FLAG_PEER_END ? { peerEnd: dv.getUint32(o.peerEnd, true) } : {}),
      received: (flags & EGRESS_FLAG_RECEIVED) !== 0,
      ...(flags & EGRESS_FLAG_CUTOFF_PENDING ? { cutoffPending: true } : {}),
      ...(flags & EGRESS_FLAG_AWAITING_CUTOVER ? { awaitingCutover: true } : {}),
    };
  }
  const hasPayload = (flags & EGRESS_FLAG_SYN_PAYLOAD) !== 0;
  if (hasPayload && !synPayload) throw new LayoutError('egress value says there is a SYN payload, none given');
  return {
    key: decodeTupleKey(key),
    old: readPathRewrite(value, o.old),
    twoPath,
    sndHigh: flags & EGRESS_FLAG_SND_HIGH ? dv.getUint32(o.sndHigh, true) : undefined,
    ...(flags & EGRESS_FLAG_ACK_SENT_HIGH ? { ackSentHigh: dv.getUint32(o.ackSentHigh, true) } : {}),
    packets: fromU64(dv, o.packets, 'packets'),
    bytes: fromU64(dv, o.bytes, 'bytes'),
    lastSeen: fromU64(dv, o.lastSeen, 'lastSeen'),
    synPayload: hasPayload ? Uint8Array.from(synPayload!) : undefined,
    finSent: (flags & EGRESS_FLAG_FIN_SENT) !== 0,
    finReceived: (flags & EGRESS_FLAG_FIN_RECEIVED) !== 0,
    ended: (flags & EGRESS_FLAG_ENDED) !== 0,
  };
}

// ----- ingress ----------------------------------------------------------------

export function encodeIngressValue(e: IngressEntry): Uint8Array {
  const b = new Uint8Array(INGRESS_VALUE_SIZE);
  const dv = view(b);
  const o = INGRESS_OFFSETS;
  writePathRewrite(b, o.rewrite, e.rewrite);
  writeTuple(b, o.egressKey, e.egressKey);
  b[o.path] = e.path === 'new' ? 1 : 0;
  b[o.feedsTwoPath] = e.feedsTwoPath ? 1 : 0;
  if (e.ackHigh !== undefined) {
    b[o.ackHighValid] = 1;
    dv.setUint32(o.ackHigh, e.ackHigh >>> 0, true);
  }
  dv.setBigUint64(o.packets, u64(e.packets, 'packets'), true);
  dv.setBigUint64(o.bytes, u64(e.bytes, 'bytes'), true);
  dv.setBigUint64(o.lastSeen, u64(e.lastSeen, 'lastSeen'), true);
  return b;
}

export function decodeIngressEntry(key: Uint8Array, value: Uint8Array): IngressEntry {
  need(value, INGRESS_VALUE_SIZE, 'ingress value');
  const dv = view(value);
  const o = INGRESS_OFFSETS;
  const path = value[o.path]!;
  if (path > 1) throw new LayoutError(`ingress path byte ${path} is neither 0 (old) nor 1 (new)`);
  const ackHighValid = value[o.ackHighValid]!;
  if (ackHighValid > 1) throw new LayoutError(`ingress ackHigh flag ${ackHighValid} is neither 0 nor 1`);
  const feeds = value[o.feedsTwoPath]!;
  if (feeds > 1) throw new LayoutError(`ingress feedsTwoPath byte ${feeds} is neither 0 nor 1`);
  return {
    key: decodeTupleKey(key),
    rewrite: readPathRewrite(value, o.rewrite),
    path: path === 1 ? 'new' : 'old',
    egressKey: readTuple(value, o.egressKey),
    ackHigh: ackHighValid ? dv.getUint32(o.ackHigh, true) : undefined,
    ...(feeds ? { feedsTwoPath: true } : {}),
    packets: fromU64(dv, o.packets, 'packets'),
    bytes: fromU64(dv, o.bytes, 'bytes'),
    lastSeen: fromU64(dv, o.lastSeen, 'lastSeen'),
  };
}

// ----- pending ----------------------------------------------------------------

function writeChain(b: Uint8Array, at: number, chain: readonly Address[]): void {
  if (chain.length > MAX_CHAIN_LENGTH) throw new LayoutError(`chain of ${chain.length} exceeds ${MAX_CHAIN_LENGTH}`);
  chain.forEach((a, i) => writeSlot(b, at + i * ADDRESS_SLOT_SIZE, a));
}

function readChain(b: Uint8Array, at: number, n: number): Address[] {
  if (n > MAX_CHAIN_LENGTH) throw new LayoutError(`chain length ${n} exceeds ${MAX_CHAIN_LENGTH}`);
  const out: Address[] = [];
  for (let i = 0; i < n; i++) out.push(readSlot(b, at + i * ADDRESS_SLOT_SIZE, 'chain'));
  return out;
}

export function encodePendingValue(e: PendingEntry): Uint8Array {
  const b = new Uint8Array(PENDING_VALUE_SIZE);
  const dv = view(b);
  const o = PENDING_OFFSETS;
  writeTuple(b, o.fromSubsession, e.fromSubsession);
  dv.setUint32(o.natTag, e.natTag >>> 0, true);
  b[o.chainLength] = e.chain.length;
  writeChain(b, o.chain, e.chain);
  dv.setBigUint64(o.created, u64(e.created, 'created'), true);
  return b;
}

export function decodePendingEntry(key: Uint8Array, value: Uint8Array): PendingEntry {
  need(value, PENDING_VALUE_SIZE, 'pending value');
  const dv = view(value);
  const o = PENDING_OFFSETS;
  return {
    sessionTuple: decodeTupleKey(key),
    chain: readChain(value, o.chain, value[o.chainLength]!),
    fromSubsession: readTuple(value, o.fromSubsession),
    natTag: dv.getUint32(o.natTag, true),
    created: fromU64(dv, o.created, 'created'),
  };
}

// ----- NAT tag index ------------------------------------------------------------

export function encodeNatTagKey(tag: number): Uint8Array {
  const b = new Uint8Array(NAT_TAG_KEY_SIZE);
  view(b).setUint32(0, tag >>> 0, true);
  return b;
}

export function decodeNatTagKey(b: Uint8Array): number {
  need(b, NAT_TAG_KEY_SIZE, 'NAT tag key');
  return view(b).getUint32(0, true);
}

// ----- SYN payload ------------------------------------------------------------------

/** length u16 le @0, pad[2], bytes[MAX_SYN_PAYLOAD] @4 (zero beyond length). Keyed by the egress key. */
export function encodeSynPayloadValue(payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_SYN_PAYLOAD) throw new LayoutError(`SYN payload of ${payload.length} bytes exceeds ${MAX_SYN_PAYLOAD}`);
  const b = new Uint8Array(SYN_PAYLOAD_VALUE_SIZE);
  view(b).setUint16(0, payload.length, true);
  b.set(payload, 4);
  return b;
}

export function decodeSynPayloadValue(b: Uint8Array): Uint8Array {
  need(b, SYN_PAYLOAD_VALUE_SIZE, 'SYN payload value');
  const n = view(b).getUint16(0, true);
  if (n > MAX_SYN_PAYLOAD) throw new LayoutError(`SYN payload length ${n} exceeds ${MAX_SYN_PAYLOAD}`);
  return b.slice(4, 4 + n);
}

// ----- policy -----------------------------------------------------------------------

export function encodePolicyKey(id: number): Uint8Array {
  const b = new Uint8Array(POLICY_KEY_SIZE);
  view(b).setUint32(0, id >>> 0, true);
  return b;
}

function checkRange(r: readonly [number, number], what: string): void {
  const ok = (p: number) => Number.isInteger(p) && p >= 0 && p <= 0xffff;
  if (!ok(r[0]) || !ok(r[1])) throw new LayoutError(`${what} range ${r[0]}..${r[1]} is not a port range`);
}

export function encodePolicyValue(p: Policy): Uint8Array {
  if (!Number.isInteger(p.id) || p.id < 0 || p.id > 0xffffffff) throw new LayoutError(`policy id ${p.id} is not a u32`);
  const b = new Uint8Array(POLICY_VALUE_SIZE);
  const dv = view(b);
  const o = POLICY_OFFSETS;
  dv.setUint32(o.id, p.id, true);
  let flags = 0;
  if (p.src) {
    flags |= POLICY_FLAG_SRC;
    b[o.srcLength] = p.src.length;
    writeSlot(b, o.src, p.src.address);
  }
  if (p.dst) {
    flags |= POLICY_FLAG_DST;
    b[o.dstLength] = p.dst.length;
    writeSlot(b, o.dst, p.dst.address);
  }
  if (p.sport) {
    checkRange(p.sport, 'source port');
    flags |= POLICY_FLAG_SPORT;
    dv.setUint16(o.sportLow, p.sport[0], true);
    dv.setUint16(o.sportHigh, p.sport[1], true);
  }
  if (p.dport) {
    checkRange(p.dport, 'destination port');
    flags |= POLICY_FLAG_DPORT;
    dv.setUint16(o.dportLow, p.dport[0], true);
    dv.setUint16(o.dportHigh, p.dport[1], true);
  }
  b[o.flags] = flags;
  b[o.chainLength] = p.chain.length;
  writeChain(b, o.chain, p.chain);
  return b;
}

export function decodePolicy(value: Uint8Array): Policy {
  need(value, POLICY_VALUE_SIZE, 'policy value');
  const dv = view(value);
  const o = POLICY_OFFSETS;
  const flags = value[o.flags]!;
  if (flags & ~0x0f) throw new LayoutError(`policy flags 0x${flags.toString(16)} has unknown bits`);
  const prefix = (at: number, len: number, what: string): Prefix => {
    const address = readSlot(value, at, what);
    if (len > (address.family === 4 ? 32 : 128)) throw new LayoutError(`${what} prefix length ${len} too long`);
    return { address, length: len };
  };
  const out: {
    id: number;
    src?: Prefix;
    dst?: Prefix;
    sport?: readonly [number, number];
    dport?: readonly [number, number];
    chain: readonly Address[];
  } = { id: dv.getUint32(o.id, true), chain: readChain(value, o.chain, value[o.chainLength]!) };
  if (flags & POLICY_FLAG_SRC) out.src = prefix(o.src, value[o.srcLength]!, 'source');
  if (flags & POLICY_FLAG_DST) out.dst = prefix(o.dst, value[o.dstLength]!, 'destination');
  if (flags & POLICY_FLAG_SPORT) out.sport = [dv.getUint16(o.sportLow, true), dv.getUint16(o.sportHigh, true)];
  if (flags & POLICY_FLAG_DPORT) out.dport = [dv.getUint16(o.dportLow, true), dv.getUint16(o.dportHigh, true)];
  return out;
}

// ----- whole table ----------------------------------------------------------------

export interface MapEntryBytes {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

export interface TableMapsBytes {
  readonly egress: MapEntryBytes[];
  readonly ingress: MapEntryBytes[];
  readonly pending: MapEntryBytes[];
  readonly natTags: MapEntryBytes[];
  readonly synPayloads: MapEntryBytes[];
  readonly policies: MapEntryBytes[];
}

/** The table's contents as map entries, in the layout above (what a loader writes into the eBPF maps). */
export function encodeTableMaps(t: {
  readonly egress: ReadonlyMap<string, EgressEntry>;
  readonly ingress: ReadonlyMap<string, IngressEntry>;
  readonly pending: ReadonlyMap<string, PendingEntry>;
  readonly policies: readonly Policy[];
}): TableMapsBytes {
  const out: TableMapsBytes = { egress: [], ingress: [], pending: [], natTags: [], synPayloads: [], policies: [] };
  for (const e of t.egress.values()) {
    out.egress.push({ key: encodeTupleKey(e.key), value: encodeEgressValue(e) });
    if (e.synPayload) out.synPayloads.push({ key: encodeTupleKey(e.key), value: encodeSynPayloadValue(e.synPayload) });
  }
  for (const e of t.ingress.values()) out.ingress.push({ key: encodeTupleKey(e.key), value: encodeIngressValue(e) });
  for (const e of t.pending.values()) {
    out.pending.push({ key: encodeTupleKey(e.sessionTuple), value: encodePendingValue(e) });
    out.natTags.push({ key: encodeNatTagKey(e.natTag), value: encodeTupleKey(e.sessionTuple) });
  }
  for (const p of t.policies) out.policies.push({ key: encodePolicyKey(p.id), value: encodePolicyValue(p) });
  return out;
}
