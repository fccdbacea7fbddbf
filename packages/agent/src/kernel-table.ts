import {
  EGRESS_FLAG_SYN_PAYLOAD,
  EGRESS_OFFSETS,
  type EgressEntry,
  type FiveTuple,
  type IngressEntry,
  type PathRewrite,
  type PendingEntry,
  type Policy,
  type ReclaimResult,
  SessionTable,
  type TableSize,
  decodeEgressEntry,
  decodeIngressEntry,
  decodePendingEntry,
  decodePolicy,
  decodeSynPayloadValue,
  decodeTupleKey,
  encodeEgressValue,
  encodeIngressValue,
  encodeNatTagKey,
  encodePolicyKey,
  encodePolicyValue,
  encodeSynPayloadValue,
  encodeTupleKey,
  tupleKey,
} from '@dysco/protocol';
import type { DataPlane } from '@dysco/xdp';

type TwoPath = NonNullable<EgressEntry['twoPath']>;

const keyOf = (t: FiveTuple) => Buffer.from(encodeTupleKey(t));

/**
 * Policy ids from here up are per-connection policies, installed for one
 * connection a local application is about to open (a classifier choosing
 * its chain) and removed once it is set up; the kernel tries them first.
 */
export const CONNECTION_POLICY_BASE = 0xf0000000;

/**
 * The session table of @dysco/protocol, held in the kernel's maps instead of
 * in memory: every read decodes the entry the data plane holds now, every
 * write encodes it back. The reconfiguration's path actions
 * (`applyPathAction`) run unchanged on it, so the agent changes the kernel's
 * table exactly as the reference and the simulator change theirs.
 *
 * A two-path transition reads the entries it needs, changes them and writes
 * them back within one synchronous call (a few microseconds); a packet the
 * kernel handles in between updates counters or high-water marks that the
 * write-back may set back by that packet, which the next packet corrects.
 */
export class KernelTable extends SessionTable {
  /** Entries read during one transition, written back at its end. */
  private tx: Map<string, { kind: 'egress'; e: EgressEntry } | { kind: 'ingress'; e: IngressEntry }> | undefined;

  constructor(private readonly dp: DataPlane) {
    super();
    // policies survive a restart in the kernel: start from them
    const ps: Policy[] = [];
    for (const [, v] of this.dp.map('policies').entries()) ps.push(decodePolicy(v));
    super.setPolicies(ps);
  }

  override getEgress(key: FiveTuple): EgressEntry | undefined {
    const cached = this.tx?.get(`e${tupleKey(key)}`);
    if (cached) return cached.e as EgressEntry;
    const k = keyOf(key);
    const v = this.dp.map('egress').lookup(k);
    if (!v) return undefined;
    const flags = v.readUInt32LE(EGRESS_OFFSETS.flags);
    let payload: Uint8Array | undefined;
    if (flags & EGRESS_FLAG_SYN_PAYLOAD) {
      const p = this.dp.map('synPayloads').lookup(k);
      if (p) payload = decodeSynPayloadValue(p);
      // the payload map is an LRU a sixteenth the size: an evicted payload only matters for a retransmitted SYN
      else v.writeUInt32LE(flags & ~EGRESS_FLAG_SYN_PAYLOAD, EGRESS_OFFSETS.flags);
    }
    const e = decodeEgressEntry(k, v, payload);
    this.tx?.set(`e${tupleKey(key)}`, { kind: 'egress', e });
    return e;
  }

  override getIngress(key: FiveTuple): IngressEntry | undefined {
    const cached = this.tx?.get(`i${tupleKey(key)}`);
    if (cached) return cached.e as IngressEntry;
    const k = keyOf(key);
    const v = this.dp.map('ingress').lookup(k);
    if (!v) return undefined;
    const e = decodeIngressEntry(k, v);
    this.tx?.set(`i${tupleKey(key)}`, { kind: 'ingress', e });
    return e;
  }

  override getPending(session: FiveTuple): PendingEntry | undefined {
    const k = keyOf(session);
    const v = this.dp.map('pending').lookup(k);
    return v ? decodePendingEntry(k, v) : undefined;
  }

  override installEgress(e: EgressEntry): void {
    const k = keyOf(e.key);
    if (e.synPayload) this.dp.map('synPayloads').update(k, Buffer.from(encodeSynPayloadValue(e.synPayload)));
    this.dp.map('egress').update(k, Buffer.from(encodeEgressValue(e)));
  }

  override installIngress(e: IngressEntry): void {
    this.dp.map('ingress').update(keyOf(e.key), Buffer.from(encodeIngressValue(e)));
  }

  override removeEgress(key: FiveTuple): EgressEntry | undefined {
    const e = this.getEgress(key);
    const k = keyOf(key);
    this.dp.map('egress').delete(k);
    this.dp.map('synPayloads').delete(k);
    return e;
  }

  override removeIngress(key: FiveTuple): IngressEntry | undefined {
    const e = this.getIngress(key);
    this.dp.map('ingress').delete(keyOf(key));
    return e;
  }

  override prepareTwoPath(egressKey: FiveTuple, newPath: PathRewrite): TwoPath {
    return this.transaction(() => super.prepareTwoPath(egressKey, newPath));
  }

  override enterTwoPath(egressKey: FiveTuple, newPath: PathRewrite, seqCutoff?: number, awaitPeerData = false): TwoPath {
    return this.transaction(() => super.enterTwoPath(egressKey, newPath, seqCutoff, awaitPeerData));
  }

  override setPeerEnd(egressKey: FiveTuple, upTo: number | undefined): TwoPath | undefined {
    return this.transaction(() => super.setPeerEnd(egressKey, upTo));
  }

  override leaveTwoPath(egressKey: FiveTuple, keep: 'old' | 'new'): PathRewrite {
    return this.transaction(() => super.leaveTwoPath(egressKey, keep));
  }

  /**
   * Runs a two-path step on entries read from the maps and writes back what
   * it read. Ingress entries that feed two paths go first and the others
   * last: an entry starts feeding before its egress entry enters two paths,
   * so no ack of the old path goes unseen, and stops only after it left them.
   */
  private transaction<T>(fn: () => T): T {
    this.tx = new Map();
    try {
      const out = fn();
      const writes = [...this.tx.values()];
      for (const w of writes) if (w.kind === 'ingress' && w.e.feedsTwoPath) this.installIngress(w.e);
      for (const w of writes) if (w.kind === 'egress') this.installEgress(w.e);
      for (const w of writes) if (w.kind === 'ingress' && !w.e.feedsTwoPath) this.installIngress(w.e);
      return out;
    } finally {
      this.tx = undefined;
    }
  }

  // ---- policies: the kernel matches them in id order ----------------------------

  override setPolicies(ps: readonly Policy[]): void {
    super.setPolicies(ps);
    const m = this.dp.map('policies');
    const want = new Set(this.policies.map((p) => p.id));
    for (const k of [...m.keys()]) if (!want.has(k.readUInt32LE(0))) m.delete(k);
    for (const p of this.policies) m.update(Buffer.from(encodePolicyKey(p.id)), Buffer.from(encodePolicyValue(p)));
    // per-connection policies (a classifier's choice for one connection) come before every standing policy
    const ids = this.policies.map((p) => p.id);
    this.dp.setPolicyOrder([...ids.filter((i) => i >= CONNECTION_POLICY_BASE), ...ids.filter((i) => i < CONNECTION_POLICY_BASE)]);
  }

  override removePolicy(id: number): boolean {
    const before = this.policies.length;
    this.setPolicies(this.policies.filter((p) => p.id !== id));
    return this.policies.length !== before;
  }

  // ---- scans ---------------------------------------------------------------------

  /** Every egress entry the kernel holds. */
  egressEntries(): EgressEntry[] {
    const out: EgressEntry[] = [];
    for (const [k] of this.dp.map('egress').lookupBatch()) {
      const e = this.getEgress(decodeTupleKey(k));
      if (e) out.push(e);
    }
    return out;
  }

  /** Every ingress entry the kernel holds. */
  ingressEntries(): IngressEntry[] {
    return this.dp
      .map('ingress')
      .lookupBatch()
      .map(([k, v]) => decodeIngressEntry(k, v));
  }

  pendingEntries(): PendingEntry[] {
    return this.dp
      .map('pending')
      .lookupBatch()
      .map(([k, v]) => decodePendingEntry(k, v));
  }

  override size(): TableSize {
    const count = (m: 'egress' | 'ingress' | 'pending') => this.dp.map(m).lookupBatch().length;
    const egress = count('egress');
    const ingress = count('ingress');
    const pending = count('pending');
    return { egress, ingress, pending, policies: this.policies.length, total: egress + ingress + pending };
  }

  /** Entries idle longer than `idleTimeout` (both in the kernel's monotonic nanoseconds), removed. */
  override reclaimIdle(now: number, idleTimeout: number): ReclaimResult {
    const out: { egress: EgressEntry[]; ingress: IngressEntry[]; pending: PendingEntry[] } = { egress: [], ingress: [], pending: [] };
    for (const e of this.egressEntries()) if (now - e.lastSeen > idleTimeout) out.egress.push(e);
    for (const e of this.ingressEntries()) if (now - e.lastSeen > idleTimeout) out.ingress.push(e);
    for (const e of this.pendingEntries()) if (now - e.created > idleTimeout) out.pending.push(e);
    for (const e of out.egress) this.removeEgress(e.key);
    for (const e of out.ingress) this.removeIngress(e.key);
    for (const e of out.pending) this.removePending(e.sessionTuple);
    return out;
  }

  override removePending(session: FiveTuple): PendingEntry | undefined {
    const e = this.getPending(session);
    if (e) {
      this.dp.map('pending').delete(keyOf(session));
      this.dp.map('natTags').delete(Buffer.from(encodeNatTagKey(e.natTag)));
    }
    return e;
  }
}
