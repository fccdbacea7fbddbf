import { type Address, addressEquals, prefixMatches } from './address.js';
import { csumReplaceBytes } from './checksum.js';
import { DyscoError, PacketError } from './errors.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_HEADER_MIN,
  TCP_OPTIONS_MAX,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  type TcpOption,
  type TcpPacket,
  fillChecksums,
  hasFastOpen,
  parsePacket,
  parseTcpOptions,
  readU16,
  readU32,
  writeU16,
  writeU32,
} from './packet.js';
import { seqAdd, seqGeq, seqGt, seqLeq, seqLt, seqMax, seqMin, seqSub } from './seq.js';
import type { EgressEntry, IngressEntry, PathRewrite, PendingEntry, Policy } from './table.js';
import { MAX_CHAIN_LENGTH, MAX_SYN_PAYLOAD } from './table-layout.js';
import { type FiveTuple, formatTuple, reverseTuple, tupleEquals } from './tuple.js';
import type { KeyRing } from './wire/auth.js';
import { decodeSynMetadata, encodeSynMetadata, isSynMetadataCandidate, type SynMetadata } from './wire/metadata.js';
import { NAT_TAG_OPTION_KIND, NAT_TAG_OPTION_LENGTH, decodeNatTagOption, encodeNatTagOption } from './wire/nat-tag.js';

/**
 * The reference rewriter: the data plane of one agent, as a pure function
 * of (packet, session table, clock). The eBPF data plane is tested against
 * it byte for byte, so every rule here is spelled out in
 * docs/session-table.md, and all state lives in the SessionTable.
 */

export type DropReason =
  /** TCP by protocol number but malformed: lengths, data offset, options. */
  | 'malformedPacket'
  /** A Dysco SYN whose metadata does not decode or does not fit the session. */
  | 'malformedMetadata'
  /** A Dysco SYN whose metadata failed authentication. */
  | 'authFailed'
  /** A chain longer than MAX_CHAIN_LENGTH, or metadata larger than MAX_SYN_PAYLOAD. */
  | 'chainTooLong'
  /** Every port of the allocator's range is in use toward that next hop. */
  | 'noPortAvailable'
  /** A Dysco SYN whose entries would overwrite a different session's entries. */
  | 'entryConflict'
  /**
   * A packet to one of this agent's subsession ports (source and destination
   * port equal, in the allocator's range) that no entry maps: a straggler of
   * a path a reconfiguration removed. Passed up, the stack would answer it
   * with a reset the neighbour may still map into the session.
   */
  | 'staleSubsession';

export type Verdict = 'pass' | 'rewrite' | 'drop';

export type DataPlaneEvent =
  | {
      readonly type: 'sessionCreated';
      readonly role: 'originator' | 'middlebox' | 'lastHop';
      /** The session tuple this agent's stack or application sees (forward direction). */
      readonly session: FiveTuple;
      /** The subsession created, left-to-right orientation. */
      readonly subsession: FiveTuple;
      /** 'left': the subsession the SYN arrived on; 'right': the one it left on. */
      readonly side: 'left' | 'right';
      /** Set when a middlebox changed the tuple (NAT) and its new tuple was adopted. */
      readonly natAdoptedFrom?: FiveTuple;
    }
  | { readonly type: 'sessionEnded'; readonly key: FiveTuple; readonly reason: 'fin' | 'rst' }
  | { readonly type: 'oldPathDrained'; readonly egressKey: FiveTuple };

export interface RewriteResult {
  readonly verdict: Verdict;
  /** 'pass': the input itself; 'rewrite': 1 or 2 new packets; 'drop': none. */
  readonly packets: Uint8Array[];
  readonly reason?: DropReason;
  readonly events: DataPlaneEvent[];
}

/** Map key of a tuple. */
export function tupleKey(t: FiveTuple): string {
  return formatTuple(t);
}

/** A rewrite onto `tuple` with no deltas. */
export function plainRewrite(tuple: FiveTuple): PathRewrite {
  return { tuple, seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 };
}

// ---------------------------------------------------------------------------
// Deterministic choices

/** mulberry32: a small seedable 32-bit generator (reproducible simulator runs). */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

export interface PortAllocatorOptions {
  /** Inclusive range; keep it disjoint from the kernel's ip_local_port_range. Default 61000..65535. */
  readonly low?: number;
  readonly high?: number;
  readonly seed?: number;
}

export const DEFAULT_PORT_LOW = 61000;
export const DEFAULT_PORT_HIGH = 65535;

/**
 * Chooses the local port of a new subsession: a pseudo-random start in the
 * range (seeded), then the first port upward (wrapping) for which `inUse`
 * is false. The caller's `inUse` checks the table, so two live subsessions
 * toward the same neighbour never share a port; with the whole range in use
 * it returns undefined.
 */
export class PortAllocator {
  readonly low: number;
  readonly high: number;
  private readonly prng: Prng;
  constructor(opts: PortAllocatorOptions = {}) {
    this.low = opts.low ?? DEFAULT_PORT_LOW;
    this.high = opts.high ?? DEFAULT_PORT_HIGH;
    if (!Number.isInteger(this.low) || !Number.isInteger(this.high) || this.low < 1 || this.high > 0xffff || this.low > this.high) {
      throw new DyscoError('ERR_CONFIG', `bad port range ${this.low}..${this.high}`);
    }
    this.prng = new Prng(opts.seed ?? 1);
  }

  get size(): number {
    return this.high - this.low + 1;
  }

  allocate(inUse: (port: number) => boolean): number | undefined {
    const size = this.size;
    const start = this.prng.next() % size;
    for (let i = 0; i < size; i++) {
      const port = this.low + ((start + i) % size);
      if (!inUse(port)) return port;
    }
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// The table

export interface ReclaimResult {
  readonly egress: EgressEntry[];
  readonly ingress: IngressEntry[];
  readonly pending: PendingEntry[];
}

export interface TableSize {
  readonly egress: number;
  readonly ingress: number;
  readonly pending: number;
  readonly policies: number;
  readonly total: number;
}

/**
 * The session table of one agent: egress entries keyed by the tuple the
 * local stack emits, ingress entries keyed by the subsession tuple as it
 * arrives, pending entries keyed by session tuple, the NAT-tag index and
 * the policies. The maps are readable; change them through the methods.
 */
export class SessionTable {
  readonly egress = new Map<string, EgressEntry>();
  readonly ingress = new Map<string, IngressEntry>();
  readonly pending = new Map<string, PendingEntry>();
  /** NAT tag -> pending key. */
  readonly natTags = new Map<number, string>();
  private policyList: Policy[] = [];

  getEgress(key: FiveTuple): EgressEntry | undefined {
    return this.egress.get(tupleKey(key));
  }
  getIngress(key: FiveTuple): IngressEntry | undefined {
    return this.ingress.get(tupleKey(key));
  }
  getPending(session: FiveTuple): PendingEntry | undefined {
    return this.pending.get(tupleKey(session));
  }
  pendingByNatTag(tag: number): PendingEntry | undefined {
    const k = this.natTags.get(tag >>> 0);
    return k === undefined ? undefined : this.pending.get(k);
  }

  /** Installs (or replaces) an egress entry. */
  installEgress(e: EgressEntry): void {
    this.egress.set(tupleKey(e.key), e);
  }
  installIngress(e: IngressEntry): void {
    this.ingress.set(tupleKey(e.key), e);
  }
  /** Installs a pending entry; its NAT tag must not belong to another pending entry. */
  installPending(e: PendingEntry): void {
    const k = tupleKey(e.sessionTuple);
    const owner = this.natTags.get(e.natTag >>> 0);
    if (owner !== undefined && owner !== k) throw new DyscoError('ERR_TABLE', `NAT tag ${e.natTag} already in use`);
    const old = this.pending.get(k);
    if (old) this.natTags.delete(old.natTag >>> 0);
    this.pending.set(k, e);
    this.natTags.set(e.natTag >>> 0, k);
  }

  removeEgress(key: FiveTuple): EgressEntry | undefined {
    const k = tupleKey(key);
    const e = this.egress.get(k);
    this.egress.delete(k);
    return e;
  }
  removeIngress(key: FiveTuple): IngressEntry | undefined {
    const k = tupleKey(key);
    const e = this.ingress.get(k);
    this.ingress.delete(k);
    return e;
  }
  removePending(session: FiveTuple): PendingEntry | undefined {
    const k = tupleKey(session);
    const e = this.pending.get(k);
    if (e) {
      this.pending.delete(k);
      if (this.natTags.get(e.natTag >>> 0) === k) this.natTags.delete(e.natTag >>> 0);
    }
    return e;
  }

  /**
   * Removes an egress entry and the ingress entries that answer it (the
   * reverse of its old path and of its new path, when their `egressKey`
   * points back at it).
   */
  removeSession(egressKey: FiveTuple): { egress: EgressEntry | undefined; ingress: IngressEntry[] } {
    const e = this.removeEgress(egressKey);
    const ingress: IngressEntry[] = [];
    if (e) {
      const candidates = [e.old.tuple, ...(e.twoPath ? [e.twoPath.newPath.tuple] : [])];
      for (const t of candidates) {
        const i = this.getIngress(reverseTuple(t));
        if (i && tupleEquals(i.egressKey, egressKey)) {
          this.removeIngress(i.key);
          ingress.push(i);
        }
      }
    }
    return { egress: e, ingress };
  }

  /** Policies in id order. */
  get policies(): readonly Policy[] {
    return this.policyList;
  }
  setPolicies(ps: readonly Policy[]): void {
    this.policyList = [...ps].sort((a, b) => a.id - b.id);
  }
  addPolicy(p: Policy): void {
    this.setPolicies([...this.policyList.filter((q) => q.id !== p.id), p]);
  }
  removePolicy(id: number): boolean {
    const before = this.policyList.length;
    this.policyList = this.policyList.filter((p) => p.id !== id);
    return this.policyList.length !== before;
  }

  /**
   * Puts an anchor's egress entry into two-path mode. The cutoff defaults to
   * the entry's sndHigh (everything sent so far stays on the old path).
   */
  /**
   * Prepares an anchor's new path before it carries data: from now on acks
   * are split by the lowest sequence number received on the new path (the
   * peer may already send there), and all data stays on the old path until
   * `enterTwoPath` fixes the cutoff.
   */
  prepareTwoPath(egressKey: FiveTuple, newPath: PathRewrite): TwoPathStateOf {
    const e = this.getEgress(egressKey);
    if (!e) throw new DyscoError('ERR_TABLE', `no egress entry ${tupleKey(egressKey)}`);
    if (e.twoPath) throw new DyscoError('ERR_TABLE', `${tupleKey(egressKey)} already has two paths`);
    const back = this.getIngress(reverseTuple(e.old.tuple));
    const acked = back && tupleEquals(back.egressKey, egressKey) ? back.ackHigh : undefined;
    this.feedTwoPath(e, [e.old, newPath], true);
    e.twoPath = { newPath, seqCutoff: 0, newPathMinSeq: undefined, peerAckHigh: acked, drained: false, received: false, awaitingCutover: true };
    return e.twoPath;
  }

  /**
   * Sets (or clears) `feedsTwoPath` on the ingress entries that answer `e`
   * on these paths: the reverse of each path's tuple, when its `egressKey`
   * points back at `e`. Called before `e` enters two paths and when it
   * leaves them.
   */
  private feedTwoPath(e: EgressEntry, paths: readonly PathRewrite[], on: boolean): void {
    for (const p of paths) {
      const i = this.getIngress(reverseTuple(p.tuple));
      if (!i || !tupleEquals(i.egressKey, e.key)) continue;
      if (on) i.feedsTwoPath = true;
      else delete i.feedsTwoPath;
    }
  }

  /**
   * The cutover: data at or above the cutoff (default: sndHigh) moves to the
   * new path. `awaitPeerData` (see the enterTwoPaths action): the old path
   * is not done with before `setPeerEnd` has been told where the peer's
   * old-path data ends and the stack has acknowledged that far; otherwise
   * the receiving half holds from the start.
   */
  enterTwoPath(egressKey: FiveTuple, newPath: PathRewrite, seqCutoff?: number, awaitPeerData = false): TwoPathStateOf {
    const tp = this.cutOver(egressKey, newPath, seqCutoff);
    tp.received = !awaitPeerData;
    return tp;
  }

  private cutOver(egressKey: FiveTuple, newPath: PathRewrite, seqCutoff?: number): TwoPathStateOf {
    const e = this.getEgress(egressKey);
    if (!e) throw new DyscoError('ERR_TABLE', `no egress entry ${tupleKey(egressKey)}`);
    const prepared = e.twoPath?.awaitingCutover ? e.twoPath : undefined;
    if (e.twoPath && !prepared) throw new DyscoError('ERR_TABLE', `${tupleKey(egressKey)} already has two paths`);
    // a prepared entry's ingress entries feed it already
    if (!prepared) this.feedTwoPath(e, [e.old, newPath], true);
    if (prepared) {
      // the cutover: data at or above the cutoff moves to the new path
      const cut = seqCutoff ?? e.sndHigh;
      prepared.awaitingCutover = false;
      if (cut === undefined) {
        prepared.cutoffPending = true;
        prepared.drained = true;
      } else {
        prepared.seqCutoff = cut >>> 0;
        prepared.drained = prepared.peerAckHigh !== undefined && seqGeq(prepared.peerAckHigh, prepared.seqCutoff);
      }
      return prepared;
    }
    const cutoff = seqCutoff ?? e.sndHigh;
    if (cutoff === undefined) {
      // nothing sent on the old path: nothing to drain, and the first packet sent fixes the cutoff
      e.twoPath = { newPath, seqCutoff: 0, newPathMinSeq: undefined, peerAckHigh: undefined, drained: true, received: false, cutoffPending: true };
      return e.twoPath;
    }
    // what the peer has acknowledged on the old path so far: an idle session is drained already
    const back = this.getIngress(reverseTuple(e.old.tuple));
    const acked = back && tupleEquals(back.egressKey, egressKey) ? back.ackHigh : undefined;
    const drained = acked !== undefined && seqGeq(acked, cutoff >>> 0);
    e.twoPath = { newPath, seqCutoff: cutoff >>> 0, newPathMinSeq: undefined, peerAckHigh: acked, drained, received: false };
    return e.twoPath;
  }

  /**
   * Records where the peer anchor's old-path data ends (`upTo`, local ack
   * space; undefined: the peer sent nothing on the old path), as its ack or
   * teardown message says. The first value told stays (repetitions carry the
   * same). Returns the two-path state, or undefined when the entry is not in
   * two-path mode (a late message).
   */
  setPeerEnd(egressKey: FiveTuple, upTo: number | undefined): TwoPathStateOf | undefined {
    const e = this.getEgress(egressKey);
    const tp = e?.twoPath;
    if (!e || !tp) return undefined;
    if (tp.received || tp.peerEnd !== undefined) return tp;
    if (upTo === undefined) tp.received = true;
    else {
      tp.peerEnd = upTo >>> 0;
      tp.received = e.ackSentHigh !== undefined && seqGeq(e.ackSentHigh, tp.peerEnd);
    }
    return tp;
  }

  /**
   * Leaves two-path mode: 'new' (completion) makes the new path the only
   * path, 'old' (abort) drops the new path. Returns the abandoned path so
   * the owner can remove its ingress entry.
   */
  leaveTwoPath(egressKey: FiveTuple, keep: 'old' | 'new'): PathRewrite {
    const e = this.getEgress(egressKey);
    if (!e?.twoPath) throw new DyscoError('ERR_TABLE', `${tupleKey(egressKey)} is not in two-path mode`);
    const { newPath, peerAckHigh } = e.twoPath;
    const abandoned = keep === 'new' ? e.old : newPath;
    this.feedTwoPath(e, [e.old, newPath], false);
    if (keep === 'new') {
      e.old = newPath;
      // the ack high-water carries over to the path that stays, for the next reconfiguration
      const back = this.getIngress(reverseTuple(newPath.tuple));
      if (back && tupleEquals(back.egressKey, egressKey) && peerAckHigh !== undefined) {
        back.ackHigh = back.ackHigh === undefined ? peerAckHigh : seqMax(back.ackHigh, peerAckHigh);
      }
    }
    e.twoPath = undefined;
    return abandoned;
  }

  /** Removes every entry idle for longer than `idleTimeout` (pending: created longer ago). */
  reclaimIdle(now: number, idleTimeout: number): ReclaimResult {
    const out: { egress: EgressEntry[]; ingress: IngressEntry[]; pending: PendingEntry[] } = { egress: [], ingress: [], pending: [] };
    // Collect first, then delete: removal never cuts the scan short.
    for (const e of [...this.egress.values()]) if (now - e.lastSeen > idleTimeout) out.egress.push(e);
    for (const e of [...this.ingress.values()]) if (now - e.lastSeen > idleTimeout) out.ingress.push(e);
    for (const e of [...this.pending.values()]) if (now - e.created > idleTimeout) out.pending.push(e);
    for (const e of out.egress) this.removeEgress(e.key);
    for (const e of out.ingress) this.removeIngress(e.key);
    for (const e of out.pending) this.removePending(e.sessionTuple);
    return out;
  }

  size(): TableSize {
    const egress = this.egress.size;
    const ingress = this.ingress.size;
    const pending = this.pending.size;
    return { egress, ingress, pending, policies: this.policyList.length, total: egress + ingress + pending };
  }
}

type TwoPathStateOf = NonNullable<EgressEntry['twoPath']>;

// ---------------------------------------------------------------------------
// Packet editing: field writes with RFC 1624 checksum updates, or a full
// recomputation once the length changed.

class Work {
  buf: Uint8Array;
  /** Set once the length changed: checksums are recomputed by finish(). */
  dirty = false;
  constructor(
    buf: Uint8Array,
    readonly family: 4 | 6,
    readonly t: number,
  ) {
    this.buf = buf;
  }

  get headerLength(): number {
    return (this.buf[this.t + 12]! >> 4) * 4;
  }
  get flags(): number {
    return this.buf[this.t + 13]!;
  }
  get seq(): number {
    return readU32(this.buf, this.t + 4);
  }
  get ack(): number {
    return readU32(this.buf, this.t + 8);
  }
  get window(): number {
    return readU16(this.buf, this.t + 14);
  }
  options(): { options: TcpOption[]; offsets: number[] } {
    return parseTcpOptions(this.buf, this.t + TCP_HEADER_MIN, this.t + this.headerLength, this.t);
  }

  /** Overwrites bytes inside the TCP header, folding the change into the TCP checksum. */
  patchTcp(at: number, bytes: Uint8Array): void {
    const b = this.buf;
    let same = true;
    for (let i = 0; i < bytes.length; i++) if (b[at + i] !== bytes[i]) same = false;
    if (same) return;
    if (this.dirty) {
      b.set(bytes, at);
      return;
    }
    // Widen to whole 16-bit words of the segment (options need not be aligned).
    const rel = at - this.t;
    const a0 = this.t + (rel & ~1);
    const a1 = this.t + ((rel + bytes.length + 1) & ~1);
    const before = b.slice(a0, a1);
    b.set(bytes, at);
    const after = b.slice(a0, a1);
    writeU16(b, this.t + 16, csumReplaceBytes(readU16(b, this.t + 16), before, after));
  }

  private u16Bytes(v: number): Uint8Array {
    return Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
  }
  private u32Bytes(v: number): Uint8Array {
    const out = new Uint8Array(4);
    writeU32(out, 0, v >>> 0);
    return out;
  }

  setAddresses(src: Address, dst: Address): void {
    const alen = this.family === 4 ? 4 : 16;
    const at = this.family === 4 ? 12 : 8;
    for (const [pos, a] of [
      [at, src],
      [at + alen, dst],
    ] as const) {
      if (a.bytes.length !== alen) throw new DyscoError('ERR_TABLE', 'rewrite tuple family differs from the packet');
      const old = this.buf.slice(pos, pos + alen);
      let same = true;
      for (let i = 0; i < alen; i++) if (old[i] !== a.bytes[i]) same = false;
      if (same) continue;
      if (!this.dirty) {
        const tc = this.t + 16;
        writeU16(this.buf, tc, csumReplaceBytes(readU16(this.buf, tc), old, a.bytes));
        if (this.family === 4) writeU16(this.buf, 10, csumReplaceBytes(readU16(this.buf, 10), old, a.bytes));
      }
      this.buf.set(a.bytes, pos);
    }
  }

  setPorts(sport: number, dport: number): void {
    this.patchTcp(this.t, this.u16Bytes(sport));
    this.patchTcp(this.t + 2, this.u16Bytes(dport));
  }
  setSeq(v: number): void {
    this.patchTcp(this.t + 4, this.u32Bytes(v));
  }
  setAck(v: number): void {
    this.patchTcp(this.t + 8, this.u32Bytes(v));
  }
  setWindow(v: number): void {
    this.patchTcp(this.t + 14, this.u16Bytes(v));
  }
  /** Byte 13 (flags) with byte 12 unchanged. */
  setFlags(v: number): void {
    this.patchTcp(this.t + 12, Uint8Array.of(this.buf[this.t + 12]!, v & 0xff));
  }
  setUrgent(v: number): void {
    this.patchTcp(this.t + 18, this.u16Bytes(v));
  }

  private fixLengths(): void {
    if (this.family === 4) writeU16(this.buf, 2, this.buf.length);
    else writeU16(this.buf, 4, this.buf.length - 40);
    this.dirty = true;
  }

  /** Replaces the payload (length change). */
  setPayload(payload: Uint8Array): void {
    const head = this.t + this.headerLength;
    const nb = new Uint8Array(head + payload.length);
    nb.set(this.buf.subarray(0, head));
    nb.set(payload, head);
    this.buf = nb;
    this.fixLengths();
  }

  /** Inserts option bytes (a multiple of 4) right after the fixed TCP header. */
  insertOptionsAtStart(opt: Uint8Array): void {
    const at = this.t + TCP_HEADER_MIN;
    const hl = this.headerLength + opt.length;
    const nb = new Uint8Array(this.buf.length + opt.length);
    nb.set(this.buf.subarray(0, at));
    nb.set(opt, at);
    nb.set(this.buf.subarray(at), at + opt.length);
    nb[this.t + 12] = ((hl / 4) << 4) | (nb[this.t + 12]! & 0x0f);
    this.buf = nb;
    this.fixLengths();
  }

  /** Removes `n` (a multiple of 4) bytes of the TCP header at `at`, shifting the rest down. */
  removeTcpHeaderBytes(at: number, n: number): void {
    const hl = this.headerLength - n;
    const nb = new Uint8Array(this.buf.length - n);
    nb.set(this.buf.subarray(0, at));
    nb.set(this.buf.subarray(at + n), at);
    nb[this.t + 12] = ((hl / 4) << 4) | (nb[this.t + 12]! & 0x0f);
    this.buf = nb;
    this.fixLengths();
  }

  finish(): Uint8Array {
    if (this.dirty) fillChecksums(this.buf);
    this.dirty = false;
    return this.buf;
  }
}

/** A working copy of the input, trimmed to the IP datagram. */
function workOf(pkt: Uint8Array, p: TcpPacket): Work {
  return new Work(pkt.slice(0, p.ipLength), p.family, p.tcpOffset);
}

/**
 * A new packet with the input's IP and TCP headers and payload bytes
 * [from, to) at sequence number `seq` (length changes: checksums recomputed).
 */
function partOf(pkt: Uint8Array, p: TcpPacket, from: number, to: number, seq: number, flags: number): Work {
  const head = p.tcpOffset + p.headerLength;
  const nb = new Uint8Array(head + (to - from));
  nb.set(pkt.subarray(0, head));
  nb.set(p.payload.subarray(from, to), head);
  const w = new Work(nb, p.family, p.tcpOffset);
  w.dirty = true;
  if (p.family === 4) writeU16(nb, 2, nb.length);
  else writeU16(nb, 4, nb.length - 40);
  w.setSeq(seq);
  w.setFlags(flags);
  return w;
}

/** Rule 1: addresses and ports onto the path's tuple, deltas where nonzero, window rescaling. */
function applyPath(w: Work, rw: PathRewrite): void {
  const flags = w.flags;
  const hasAck = (flags & TCP_ACK) !== 0;
  w.setAddresses(rw.tuple.src, rw.tuple.dst);
  w.setPorts(rw.tuple.sport, rw.tuple.dport);
  const seqDelta = rw.seqDelta >>> 0;
  const ackDelta = hasAck ? rw.ackDelta >>> 0 : 0;
  const tsvalDelta = rw.tsvalDelta >>> 0;
  const tsecrDelta = hasAck ? rw.tsecrDelta >>> 0 : 0;
  if (seqDelta !== 0) w.setSeq(seqAdd(w.seq, seqDelta));
  if (ackDelta !== 0) w.setAck(seqAdd(w.ack, ackDelta));
  if (ackDelta !== 0 || tsvalDelta !== 0 || tsecrDelta !== 0) {
    const { options, offsets } = w.options();
    options.forEach((o, i) => {
      const at = w.t + offsets[i]!;
      if (o.kind === 'sack' && ackDelta !== 0) {
        const bytes = new Uint8Array(8 * o.blocks.length);
        o.blocks.forEach((b, j) => {
          writeU32(bytes, 8 * j, seqAdd(b.left, ackDelta));
          writeU32(bytes, 8 * j + 4, seqAdd(b.right, ackDelta));
        });
        w.patchTcp(at + 2, bytes);
      } else if (o.kind === 'timestamps' && (tsvalDelta !== 0 || tsecrDelta !== 0)) {
        const bytes = new Uint8Array(8);
        writeU32(bytes, 0, seqAdd(o.tsval, tsvalDelta));
        writeU32(bytes, 4, seqAdd(o.tsecr, tsecrDelta));
        w.patchTcp(at + 2, bytes);
      }
    });
  }
  if (rw.wsFrom !== rw.wsTo && (flags & TCP_SYN) === 0) {
    const scaled = Math.floor((w.window * 2 ** rw.wsFrom) / 2 ** rw.wsTo);
    w.setWindow(Math.min(0xffff, scaled));
  }
}

/**
 * Two-path SACK rules, in the local stack's ack space (before deltas):
 * on the old path each block is clipped to end at most at m and dropped when
 * empty; on the new path blocks ending at or below m are dropped. Dropped
 * blocks are compacted away and the freed bytes become NOPs, so the header
 * length never changes; a SACK option left without blocks becomes all NOPs.
 */
function filterSack(w: Work, path: 'old' | 'new', m: number | undefined): void {
  if (m === undefined || (w.flags & TCP_ACK) === 0) return;
  const { options, offsets } = w.options();
  options.forEach((o, i) => {
    if (o.kind !== 'sack') return;
    const kept: { left: number; right: number }[] = [];
    for (const b of o.blocks) {
      if (path === 'old') {
        const right = seqMin(b.right, m);
        if (seqLt(b.left, right)) kept.push({ left: b.left, right });
      } else if (seqGt(b.right, m)) {
        kept.push(b);
      }
    }
    const len = 2 + 8 * o.blocks.length;
    const bytes = new Uint8Array(len).fill(1);
    if (kept.length > 0) {
      bytes[0] = 5;
      bytes[1] = 2 + 8 * kept.length;
      kept.forEach((b, j) => {
        writeU32(bytes, 2 + 8 * j, b.left);
        writeU32(bytes, 6 + 8 * j, b.right);
      });
    }
    w.patchTcp(w.t + offsets[i]!, bytes);
  });
}

// ---------------------------------------------------------------------------
// The rewriter

export interface RewriterConfig {
  /** This agent's addresses. */
  readonly localAddresses: readonly Address[];
  /** Keys for SYN metadata; without them metadata is unsigned. */
  readonly keys?: KeyRing;
  /** A port allocator, or options for the default one. */
  readonly ports?: PortAllocator | PortAllocatorOptions;
  /** The clock (lastSeen, created); the rewriter has no timers. Default: always 0. */
  readonly now?: () => number;
  /** Seed of the NAT-tag generator. */
  readonly seed?: number;
  readonly table?: SessionTable;
  readonly policies?: readonly Policy[];
}

/**
 * The largest window TCP can advertise (65535 << 14, rounded up): no sender
 * has data in flight further than this beyond what the receiver acknowledged.
 */
export const MAX_TCP_WINDOW = 2 ** 30;

/**
 * Raises an egress entry's sndHigh to the end of a segment sent on it. It is
 * the cutoff of the entry's next reconfiguration, whose old path drains only
 * when the peer acknowledges it, so input that no genuine sender produces must
 * not move it: a SYN on an established entry (a retransmission carries the
 * same initial sequence number; any other is not this session's), and a
 * segment ending more than MAX_TCP_WINDOW beyond it (nothing in flight can
 * lie that far ahead of what was sent before). The rewriting itself is
 * unchanged: such segments are forwarded, and the receiving stack discards
 * them as out of window.
 */
export function advanceSndHigh(e: EgressEntry, end: number, syn: boolean): void {
  if (e.sndHigh === undefined) e.sndHigh = end;
  else if (!syn && seqGt(end, e.sndHigh) && seqSub(end, e.sndHigh) <= MAX_TCP_WINDOW) e.sndHigh = end;
}

/** ackSentHigh follows the stack's acks the same way: never back, never a jump beyond a TCP window. */
export function advanceAckSent(e: EgressEntry, ack: number): void {
  if (e.ackSentHigh === undefined) e.ackSentHigh = ack >>> 0;
  else if (seqGt(ack, e.ackSentHigh) && seqSub(ack, e.ackSentHigh) <= MAX_TCP_WINDOW) e.ackSentHigh = ack >>> 0;
}

/** Counters the rewriter keeps besides the drop reasons. */
export type RewriterCounter =
  | DropReason
  | 'tfoNotSteered'
  | 'natTagNoRoom'
  | 'noLocalAddress'
  | 'twoPathSplit'
  | 'synRetransmitted';

export class Rewriter {
  readonly table: SessionTable;
  readonly counters = new Map<RewriterCounter, number>();
  readonly localAddresses: readonly Address[];
  readonly ports: PortAllocator;
  private readonly keys: KeyRing | undefined;
  private readonly now: () => number;
  private readonly tags: Prng;

  constructor(config: RewriterConfig) {
    this.localAddresses = config.localAddresses;
    this.keys = config.keys;
    this.now = config.now ?? (() => 0);
    this.ports = config.ports instanceof PortAllocator ? config.ports : new PortAllocator(config.ports);
    this.tags = new Prng(((config.seed ?? 1) ^ 0x5eed7a65) >>> 0);
    this.table = config.table ?? new SessionTable();
    if (config.policies) this.table.setPolicies(config.policies);
  }

  count(c: RewriterCounter): number {
    return this.counters.get(c) ?? 0;
  }

  private bump(c: RewriterCounter): void {
    this.counters.set(c, this.count(c) + 1);
  }

  private pass(pkt: Uint8Array, events: DataPlaneEvent[] = []): RewriteResult {
    return { verdict: 'pass', packets: [pkt], events };
  }

  private drop(reason: DropReason): RewriteResult {
    this.bump(reason);
    return { verdict: 'drop', packets: [], reason, events: [] };
  }

  private out(packets: Uint8Array[], events: DataPlaneEvent[]): RewriteResult {
    return { verdict: 'rewrite', packets, events };
  }

  /** The parsed packet, or the verdict for a packet that is not TCP or is malformed. */
  private classify(pkt: Uint8Array): TcpPacket | RewriteResult {
    try {
      const p = parsePacket(pkt);
      return p.kind === 'tcp' ? p : this.pass(pkt);
    } catch (e) {
      if (e instanceof PacketError) return this.drop('malformedPacket');
      throw e;
    }
  }

  isLocal(a: Address): boolean {
    return this.localAddresses.some((l) => addressEquals(l, a));
  }

  /** The source address of a new subsession: the session source if local, else the first local address of its family. */
  private localSource(session: FiveTuple): Address | undefined {
    if (this.isLocal(session.src)) return session.src;
    return this.localAddresses.find((a) => a.family === session.src.family);
  }

  /** A subsession toward `next` whose reverse tuple is free as an ingress key (port used as both sport and dport). */
  private allocateSubsession(src: Address, next: Address): FiveTuple | undefined {
    const make = (port: number): FiveTuple => ({ src, dst: next, sport: port, dport: port });
    const port = this.ports.allocate((p) => this.table.ingress.has(tupleKey(reverseTuple(make(p)))));
    return port === undefined ? undefined : make(port);
  }

  private freshNatTag(): number {
    for (;;) {
      const tag = this.tags.next();
      if (tag !== 0 && !this.table.natTags.has(tag)) return tag;
    }
  }

  private touch(e: { packets: number; bytes: number; lastSeen: number }, p: TcpPacket): void {
    e.packets++;
    e.bytes += p.ipLength;
    e.lastSeen = this.now();
  }

  private newEgress(key: FiveTuple, old: FiveTuple, synPayload?: Uint8Array): EgressEntry {
    return {
      key,
      old: plainRewrite(old),
      twoPath: undefined,
      sndHigh: undefined,
      packets: 0,
      bytes: 0,
      lastSeen: this.now(),
      synPayload,
      finSent: false,
      finReceived: false,
      ended: false,
    };
  }

  private newIngress(key: FiveTuple, session: FiveTuple, egressKey: FiveTuple): IngressEntry {
    return { key, rewrite: plainRewrite(session), path: 'old', egressKey, packets: 0, bytes: 0, lastSeen: this.now() };
  }

  /** Records FIN/RST on the entry pair of egress key `key` and reports the end once. */
  private closeTracking(
    e: EgressEntry | undefined,
    key: FiveTuple,
    flags: number,
    dir: 'out' | 'in',
    events: DataPlaneEvent[],
  ): void {
    if (flags & TCP_RST) {
      if (!e) {
        events.push({ type: 'sessionEnded', key, reason: 'rst' });
      } else if (!e.ended) {
        e.ended = true;
        events.push({ type: 'sessionEnded', key, reason: 'rst' });
      }
      return;
    }
    if ((flags & TCP_FIN) === 0 || !e) return;
    if (dir === 'out') e.finSent = true;
    else e.finReceived = true;
    if (e.finSent && e.finReceived && !e.ended) {
      e.ended = true;
      events.push({ type: 'sessionEnded', key, reason: 'fin' });
    }
  }

  private natTagOf(p: TcpPacket): { tag: number; offset: number } | undefined {
    for (let i = 0; i < p.options.length; i++) {
      const o = p.options[i]!;
      if (o.kind !== 'unknown' || o.code !== NAT_TAG_OPTION_KIND || o.data.length !== NAT_TAG_OPTION_LENGTH - 2) continue;
      const raw = new Uint8Array(NAT_TAG_OPTION_LENGTH);
      raw[0] = o.code;
      raw[1] = NAT_TAG_OPTION_LENGTH;
      raw.set(o.data, 2);
      try {
        return { tag: decodeNatTagOption(raw), offset: p.optionOffsets[i]! };
      } catch {
        // Another experiment's option with the same kind: not ours.
      }
    }
    return undefined;
  }

  private stripNatTag(w: Work, p: TcpPacket): void {
    const t = this.natTagOf(p);
    if (t) w.removeTcpHeaderBytes(w.t + t.offset, NAT_TAG_OPTION_LENGTH);
  }

  private addNatTag(w: Work, tag: number): void {
    if (w.headerLength + NAT_TAG_OPTION_LENGTH > TCP_HEADER_MIN + TCP_OPTIONS_MAX) {
      this.bump('natTagNoRoom');
      return;
    }
    w.insertOptionsAtStart(encodeNatTagOption(tag));
  }

  private encodeMetadata(m: SynMetadata): Uint8Array | undefined {
    const bytes = encodeSynMetadata(m, this.keys);
    return bytes.length > MAX_SYN_PAYLOAD ? undefined : bytes;
  }

  private decodeMetadata(payload: Uint8Array): SynMetadata | DropReason {
    try {
      return decodeSynMetadata(payload, this.keys);
    } catch (e) {
      if (e instanceof DyscoError && e.code === 'ERR_AUTHENTICATION') return 'authFailed';
      if (e instanceof DyscoError) return 'malformedMetadata';
      throw e;
    }
  }

  // ----- egress -----------------------------------------------------------

  /** A packet emitted by the local stack or middlebox application. */
  egress(pkt: Uint8Array): RewriteResult {
    const p = this.classify(pkt);
    if (!('kind' in p)) return p;
    const syn = (p.flags & TCP_SYN) !== 0;
    const ack = (p.flags & TCP_ACK) !== 0;
    let e = this.table.getEgress(p.tuple);
    if (e?.ended && syn && !ack) {
      // a new connection on the tuple of one that ended (its client reused the port while the entries lingered)
      this.table.removeSession(p.tuple);
      e = undefined;
    }
    if (e) return this.egressEstablished(pkt, p, e);
    if (!syn || ack) return this.pass(pkt);
    const pending = this.table.getPending(p.tuple);
    if (pending) return this.egressPending(pkt, p, pending, false);
    const tag = this.natTagOf(p);
    if (tag) {
      const byTag = this.table.pendingByNatTag(tag.tag);
      if (byTag) return this.egressPending(pkt, p, byTag, true);
    }
    const policy = this.table.policies.find((pol) => policyMatches(pol, p.tuple));
    if (policy) return this.egressOriginate(pkt, p, policy);
    return this.pass(pkt);
  }

  private egressEstablished(pkt: Uint8Array, p: TcpPacket, e: EgressEntry): RewriteResult {
    const events: DataPlaneEvent[] = [];
    this.touch(e, p);
    const end = seqAdd(p.seq, p.payload.length + (p.flags & TCP_SYN ? 1 : 0) + (p.flags & TCP_FIN ? 1 : 0));
    advanceSndHigh(e, end, (p.flags & TCP_SYN) !== 0);
    if (p.flags & TCP_ACK) advanceAckSent(e, p.ack);
    this.closeTracking(e, e.key, p.flags, 'out', events);
    const syn = (p.flags & TCP_SYN) !== 0;
    if (syn || !e.twoPath) {
      const w = workOf(pkt, p);
      if (syn && (p.flags & TCP_ACK) === 0 && e.synPayload && p.payload.length === 0) {
        // A retransmitted steered SYN carries the same metadata again.
        this.bump('synRetransmitted');
        this.stripNatTag(w, p);
        w.setPayload(e.synPayload);
      }
      applyPath(w, e.old);
      return this.out([w.finish()], events);
    }
    const tp = e.twoPath;
    if (!tp.received && tp.peerEnd !== undefined && e.ackSentHigh !== undefined && seqGeq(e.ackSentHigh, tp.peerEnd)) {
      // the stack acknowledged the last of what the peer sent on the old path
      tp.received = true;
      if (tp.drained) events.push({ type: 'oldPathDrained', egressKey: e.key });
    }
    return this.out(this.twoPathEgress(pkt, p, e, tp), events);
  }

  private twoPathEgress(pkt: Uint8Array, p: TcpPacket, e: EgressEntry, tp: TwoPathStateOf): Uint8Array[] {
    if (tp.cutoffPending) {
      tp.seqCutoff = p.seq;
      tp.cutoffPending = false;
    }
    const held = tp.awaitingCutover === true;
    const S = p.seq;
    const A = p.ack;
    const c = tp.seqCutoff;
    const m = tp.newPathMinSeq;
    const hasAck = (p.flags & TCP_ACK) !== 0;
    const fin = (p.flags & TCP_FIN) !== 0;
    const L = p.payload.length;
    const len = L + (fin ? 1 : 0);
    const oldAck = m === undefined ? A : seqMin(A, m);
    const ackPath: 'old' | 'new' | undefined = !hasAck ? undefined : m === undefined || seqLeq(A, m) ? 'old' : 'new';
    const rwOf = (path: 'old' | 'new') => (path === 'old' ? e.old : tp.newPath);

    const finishOn = (w: Work, path: 'old' | 'new'): Uint8Array => {
      if (hasAck) w.setAck(path === 'old' ? oldAck : A);
      filterSack(w, path, m);
      applyPath(w, rwOf(path));
      return w.finish();
    };

    if (p.flags & TCP_RST) {
      // An RST goes on both paths, so that the boxes of each see it.
      return [finishOn(workOf(pkt, p), 'old'), finishOn(workOf(pkt, p), 'new')];
    }

    let dataPath: 'old' | 'new' | 'split' | undefined;
    if (len === 0) dataPath = undefined;
    else if (held) dataPath = 'old';
    else if (seqGeq(S, c)) dataPath = 'new';
    else if (seqLeq(seqAdd(S, len), c)) dataPath = 'old';
    else dataPath = 'split';

    if (dataPath === 'split') {
      this.bump('twoPathSplit');
      const cut = (c - S) >>> 0; // bytes before the cutoff, 0 < cut <= L
      const oldPart = partOf(pkt, p, 0, cut, S, p.flags & ~TCP_FIN);
      const newPart = partOf(pkt, p, cut, L, c, p.flags);
      return [finishOn(oldPart, 'old'), finishOn(newPart, 'new')];
    }
    if (dataPath === undefined) return [finishOn(workOf(pkt, p), ackPath ?? 'old')];
    if (ackPath === undefined || ackPath === dataPath) return [finishOn(workOf(pkt, p), dataPath)];
    // Data and ack belong to different paths: the data packet on its path, then a pure ACK on the ack path.
    this.bump('twoPathSplit');
    const data = finishOn(workOf(pkt, p), dataPath);
    const pure = partOf(pkt, p, 0, 0, e.sndHigh ?? seqAdd(S, len), p.flags & ~(TCP_FIN | TCP_PSH | TCP_URG));
    pure.setUrgent(0);
    return [data, finishOn(pure, ackPath)];
  }

  private egressOriginate(pkt: Uint8Array, p: TcpPacket, policy: Policy): RewriteResult {
    if (hasFastOpen(p)) {
      this.bump('tfoNotSteered');
      return this.pass(pkt);
    }
    const session = p.tuple;
    if (policy.chain.length > MAX_CHAIN_LENGTH) return this.drop('chainTooLong');
    const src = this.localSource(session);
    if (!src) {
      this.bump('noLocalAddress');
      return this.pass(pkt);
    }
    const full = [...policy.chain, session.dst];
    return this.steerSyn(pkt, p, session, src, full, 'originator', undefined, undefined);
  }

  private egressPending(pkt: Uint8Array, p: TcpPacket, pending: PendingEntry, byTag: boolean): RewriteResult {
    if (hasFastOpen(p)) {
      this.bump('tfoNotSteered');
      return this.pass(pkt);
    }
    const session = p.tuple;
    // The chain's last element is the destination: a NAT that changed it is followed.
    const full = [...pending.chain.slice(0, -1), session.dst];
    const src = this.localSource(session);
    if (!src) {
      this.bump('noLocalAddress');
      return this.pass(pkt);
    }
    const adopted = byTag && !tupleEquals(session, pending.sessionTuple) ? pending.sessionTuple : undefined;
    return this.steerSyn(pkt, p, session, src, full, 'middlebox', pending, adopted);
  }

  /** Rewrites a SYN onto a new subsession toward full[0], with full[1..] as metadata. */
  private steerSyn(
    pkt: Uint8Array,
    p: TcpPacket,
    session: FiveTuple,
    src: Address,
    full: readonly Address[],
    role: 'originator' | 'middlebox',
    pending: PendingEntry | undefined,
    natAdoptedFrom: FiveTuple | undefined,
  ): RewriteResult {
    if (full.some((a) => a.family !== session.src.family)) return this.drop('malformedMetadata');
    const next = full[0]!;
    const metadata = this.encodeMetadata({ session, chain: full.slice(1) });
    if (!metadata) return this.drop('chainTooLong');
    const sub = this.allocateSubsession(src, next);
    if (!sub) return this.drop('noPortAvailable');
    const w = workOf(pkt, p);
    this.stripNatTag(w, p);
    w.setPayload(metadata);
    applyPath(w, plainRewrite(sub));
    const e = this.newEgress(session, sub, metadata);
    this.touch(e, p);
    e.sndHigh = seqAdd(p.seq, 1);
    this.table.installEgress(e);
    this.table.installIngress(this.newIngress(reverseTuple(sub), reverseTuple(session), session));
    if (pending) this.table.removePending(pending.sessionTuple);
    const ev: DataPlaneEvent = { type: 'sessionCreated', role, session, subsession: sub, side: 'right', natAdoptedFrom };
    return this.out([w.finish()], [ev]);
  }

  // ----- ingress ----------------------------------------------------------

  /** A packet arriving from the wire. */
  ingress(pkt: Uint8Array): RewriteResult {
    const p = this.classify(pkt);
    if (!('kind' in p)) return p;
    const dyscoSyn =
      (p.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && p.payload.length > 0 && isSynMetadataCandidate(p.payload);
    const i = this.table.getIngress(p.tuple);
    if (i) {
      if (dyscoSyn) return this.ingressSynAgain(pkt, p, i);
      return this.ingressEstablished(pkt, p, i);
    }
    const local = this.isLocal(p.tuple.dst);
    if (dyscoSyn && local) return this.ingressSyn(pkt, p);
    const port = p.tuple.dport;
    if (local && p.tuple.sport === port && port >= this.ports.low && port <= this.ports.high) return this.drop('staleSubsession');
    return this.pass(pkt);
  }

  private ingressEstablished(pkt: Uint8Array, p: TcpPacket, i: IngressEntry): RewriteResult {
    const events: DataPlaneEvent[] = [];
    this.touch(i, p);
    const w = workOf(pkt, p);
    applyPath(w, i.rewrite);
    if (p.flags & TCP_ACK) i.ackHigh = i.ackHigh === undefined ? w.ack : seqMax(i.ackHigh, w.ack);
    // the egress entry only when this packet has something to tell it (as the data plane)
    const e = i.feedsTwoPath || p.flags & (TCP_FIN | TCP_RST) ? this.table.getEgress(i.egressKey) : undefined;
    const tp = i.feedsTwoPath ? e?.twoPath : undefined;
    if (tp) {
      if (i.path === 'new' && (p.payload.length > 0 || p.flags & TCP_FIN)) {
        tp.newPathMinSeq = tp.newPathMinSeq === undefined ? w.seq : seqMin(tp.newPathMinSeq, w.seq);
      }
      if (p.flags & TCP_ACK) {
        tp.peerAckHigh = tp.peerAckHigh === undefined ? w.ack : seqMax(tp.peerAckHigh, w.ack);
        if (!tp.drained && !tp.awaitingCutover && !tp.cutoffPending && seqGeq(tp.peerAckHigh, tp.seqCutoff)) {
          tp.drained = true;
          if (tp.received) events.push({ type: 'oldPathDrained', egressKey: i.egressKey });
        }
      }
    }
    this.closeTracking(e, i.egressKey, p.flags, 'in', events);
    return this.out([w.finish()], events);
  }

  /** Validated metadata of a Dysco SYN, or the drop reason. */
  private checkedMetadata(p: TcpPacket): SynMetadata | DropReason {
    const m = this.decodeMetadata(p.payload);
    if (typeof m === 'string') return m;
    if (m.chain.length > MAX_CHAIN_LENGTH) return 'chainTooLong';
    const fam = p.family;
    if (m.session.src.family !== fam || m.session.dst.family !== fam || m.chain.some((a) => a.family !== fam)) {
      return 'malformedMetadata';
    }
    const last = m.chain[m.chain.length - 1];
    if (last && !addressEquals(last, m.session.dst)) return 'malformedMetadata';
    return m;
  }

  /** A retransmitted Dysco SYN on a subsession we already know. */
  private ingressSynAgain(pkt: Uint8Array, p: TcpPacket, i: IngressEntry): RewriteResult {
    const m = this.checkedMetadata(p);
    if (typeof m === 'string') return this.drop(m);
    if (!tupleEquals(m.session, i.rewrite.tuple)) return this.drop('entryConflict');
    this.bump('synRetransmitted');
    this.touch(i, p);
    const w = workOf(pkt, p);
    w.setPayload(new Uint8Array(0));
    applyPath(w, i.rewrite);
    const pending = this.table.getPending(m.session);
    if (pending) this.addNatTag(w, pending.natTag);
    return this.out([w.finish()], []);
  }

  private ingressSyn(pkt: Uint8Array, p: TcpPacket): RewriteResult {
    const m = this.checkedMetadata(p);
    if (typeof m === 'string') return this.drop(m);
    const session = m.session;
    const back = reverseTuple(session);
    const prior = this.table.getEgress(back);
    if (prior && !prior.ended) return this.drop('entryConflict');
    // the entries of an ended session with this tuple, lingering: a new connection takes their place
    if (prior) this.table.removeSession(back);
    // a pending entry without its session's egress entry outlived the session (a terminating proxy never consumes it)
    if (this.table.getPending(session)) this.table.removePending(session);
    const role = m.chain.length === 0 ? 'lastHop' : 'middlebox';
    const w = workOf(pkt, p);
    w.setPayload(new Uint8Array(0));
    applyPath(w, plainRewrite(session));
    const ing = this.newIngress(p.tuple, session, back);
    this.touch(ing, p);
    this.table.installIngress(ing);
    this.table.installEgress(this.newEgress(back, reverseTuple(p.tuple)));
    if (role === 'middlebox') {
      const natTag = this.freshNatTag();
      this.table.installPending({ sessionTuple: session, chain: m.chain, fromSubsession: p.tuple, natTag, created: this.now() });
      this.addNatTag(w, natTag);
    }
    return this.out([w.finish()], [{ type: 'sessionCreated', role, session, subsession: p.tuple, side: 'left' }]);
  }
}

export function policyMatches(pol: Policy, t: FiveTuple): boolean {
  if (pol.src && !prefixMatches(pol.src, t.src)) return false;
  if (pol.dst && !prefixMatches(pol.dst, t.dst)) return false;
  if (pol.sport && (t.sport < pol.sport[0] || t.sport > pol.sport[1])) return false;
  if (pol.dport && (t.dport < pol.dport[0] || t.dport > pol.dport[1])) return false;
  return pol.chain.every((a) => a.family === t.src.family);
}
