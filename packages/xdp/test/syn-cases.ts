/**
 * SYN cases for the differential tests: an agent's local addresses, port
 * range and generator seeds, policies, pending entries and NAT tags, entries
 * that collide or make a SYN a retransmission, and the SYN itself (steered
 * or not, with metadata or not, damaged or not).
 */
import fc from 'fast-check';
import type { DataPlaneAuth } from '@dysco/xdp';
import {
  type Address,
  type EgressEntry,
  type FiveTuple,
  type IngressEntry,
  KeyRing,
  type PendingEntry,
  type Policy,
  SessionTable,
  type TcpOption,
  buildTcpPacket,
  encodeNatTagOption,
  encodeSynMetadata,
  plainRewrite,
  reverseTuple,
} from '@dysco/protocol';

export interface Prepared {
  readonly direction: 'egress' | 'ingress';
  readonly family: 4 | 6;
  /** A fresh table for each run (the reference changes the one it gets). */
  readonly makeTable: () => SessionTable;
  readonly packet: Uint8Array;
  readonly localAddresses: readonly Address[];
  readonly ports: { readonly low: number; readonly high: number; readonly seed: number };
  readonly seed: number;
  readonly checksumComplete: boolean;
  /** The agent's key ring (undefined: none, as a Rewriter without keys). */
  readonly auth?: DataPlaneAuth;
}

const secret7 = new Uint8Array(32).fill(9);
const secret8 = new Uint8Array(40).fill(3);
/** Key rings an agent may have. */
const authArb: fc.Arbitrary<DataPlaneAuth | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant<DataPlaneAuth>({ keys: [{ keyId: 7, secret: secret7 }] }) },
  { weight: 1, arbitrary: fc.constant<DataPlaneAuth>({ keys: [{ keyId: 7, secret: secret7 }, { keyId: 8, secret: secret8 }], sendKeyId: 8, requireAuth: false }) },
  { weight: 1, arbitrary: fc.constant<DataPlaneAuth>({ keys: [{ keyId: 8, secret: secret8 }] }) },
  { weight: 1, arbitrary: fc.constant<DataPlaneAuth>({ keys: [] }) },
);

const port = fc.integer({ min: 1, max: 0xffff });
const addr = (family: 4 | 6): fc.Arbitrary<Address> =>
  fc.uint8Array({ minLength: family === 4 ? 4 : 16, maxLength: family === 4 ? 4 : 16 }).map((bytes) => ({ family, bytes }));
const keys = new KeyRing([{ keyId: 7, secret: new Uint8Array(32).fill(9) }]);
export { keys as senderKeys };

function egress(key: FiveTuple, to: FiveTuple, synPayload?: Uint8Array): EgressEntry {
  return { key, old: plainRewrite(to), twoPath: undefined, sndHigh: 5, packets: 1, bytes: 60, lastSeen: 0, synPayload };
}

function ingress(key: FiveTuple, to: FiveTuple, egressKey: FiveTuple): IngressEntry {
  return { key, rewrite: plainRewrite(to), path: 'old', egressKey, packets: 0, bytes: 0, lastSeen: 0 };
}

const synOptions: fc.Arbitrary<TcpOption[]> = fc.oneof(
  fc.constant<TcpOption[]>([]),
  fc.constant<TcpOption[]>([{ kind: 'mss', mss: 1460 }, { kind: 'sackPermitted' }, { kind: 'timestamps', tsval: 1, tsecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }]),
  // 36 bytes of options: no room for a NAT tag
  fc.constant<TcpOption[]>([{ kind: 'unknown', code: 99, data: new Uint8Array(34) }]),
  fc.constant<TcpOption[]>([{ kind: 'unknown', code: 34, data: new Uint8Array(0) }]),
  fc.constant<TcpOption[]>([{ kind: 'unknown', code: 254, data: Uint8Array.of(0xf9, 0x89) }]),
);

/** The options with a NAT tag first (as a middlebox's ingress inserts it). */
function withTag(os: readonly TcpOption[], tag: number | undefined): TcpOption[] {
  if (tag === undefined) return [...os];
  const raw = encodeNatTagOption(tag);
  const rest = os.filter((o) => !(o.kind === 'unknown' && o.data.length > 20));
  return [{ kind: 'unknown', code: raw[0]!, data: raw.subarray(2) }, ...rest];
}

export function egressSynArb(): fc.Arbitrary<Prepared> {
  return fc.constantFrom<4 | 6>(4, 4, 6).chain((family) =>
    fc
      .record({
        local: addr(family),
        otherLocal: fc.option(addr(family === 4 ? 6 : 4), { nil: undefined }),
        noLocal: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        fromLocal: fc.boolean(),
        src: addr(family),
        dst: addr(family),
        sport: port,
        dport: fc.constantFrom(80, 443, 8080, 22),
        policies: fc.uniqueArray(
          fc.record({
            id: fc.integer({ min: 0, max: 20 }),
            srcLen: fc.option(fc.integer({ min: 0, max: family === 4 ? 32 : 128 }), { nil: undefined }),
            dstLen: fc.option(fc.integer({ min: 0, max: family === 4 ? 32 : 128 }), { nil: undefined }),
            dport: fc.option(fc.tuple(fc.constantFrom(0, 80, 81, 443), fc.constantFrom(80, 443, 1000, 65535)), { nil: undefined }),
            sport: fc.option(fc.tuple(fc.integer({ min: 0, max: 30000 }), fc.integer({ min: 30000, max: 65535 })), { nil: undefined }),
            chain: fc.array(addr(family), { maxLength: 3 }),
            mixed: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
            otherPrefix: addr(family),
          }),
          { maxLength: 3, selector: (p) => p.id },
        ),
        pending: fc.option(
          fc.record({ byTag: fc.boolean(), natSrc: addr(family), natPort: port, chain: fc.array(addr(family), { minLength: 1, maxLength: 4 }), tag: fc.integer({ min: 1, max: 0xffffffff }) }),
          { nil: undefined },
        ),
        retransmit: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.record({ tag: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }), ended: fc.boolean() }) }),
        range: fc.oneof(fc.constant({ low: 61000, high: 65535 }), fc.integer({ min: 0, max: 3 }).map((k) => ({ low: 62000, high: 62000 + k }))),
        occupied: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
        portSeed: fc.integer({ min: 0, max: 0xffffffff }),
        tagSeed: fc.integer({ min: 0, max: 0xffffffff }),
        options: synOptions,
        flags: fc.constantFrom(0x02, 0x02, 0x02, 0x12),
        payload: fc.oneof({ weight: 9, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 20 }) }),
        auth: authArb,
      })
      .map((r): Prepared => {
        const locals = r.noLocal ? (r.otherLocal ? [r.otherLocal] : []) : [r.local, ...(r.otherLocal ? [r.otherLocal] : [])];
        const session: FiveTuple = { src: r.fromLocal ? r.local : r.src, dst: r.dst, sport: r.sport, dport: r.dport };
        const build = (): SessionTable => {
        const t = new SessionTable();
        t.setPolicies(
          r.policies.map((p): Policy => ({
            id: p.id,
            ...(p.srcLen === undefined ? {} : { src: { address: p.mixed ? p.otherPrefix : session.src, length: p.srcLen } }),
            ...(p.dstLen === undefined ? {} : { dst: { address: p.mixed ? p.otherPrefix : session.dst, length: p.dstLen } }),
            ...(p.dport ? { dport: p.dport } : {}),
            ...(p.sport ? { sport: p.sport } : {}),
            chain: p.chain,
          })),
        );
        let pkTuple = session;
        if (r.pending) {
          pkTuple = r.pending.byTag ? { ...session, src: r.pending.natSrc, sport: r.pending.natPort } : session;
          const pe: PendingEntry = { sessionTuple: pkTuple, chain: r.pending.chain, fromSubsession: reverseTuple(session), natTag: r.pending.tag, created: 0 };
          t.installPending(pe);
        }
        const next = r.pending ? r.pending.chain[0]! : r.policies.length > 0 ? (t.policies[0]!.chain[0] ?? session.dst) : session.dst;
        const src = locals.find((a) => a.family === family) ?? r.local;
        for (const k of r.occupied) {
          const p = r.range.low + (k % (r.range.high - r.range.low + 1));
          const key: FiveTuple = { src: next, dst: src, sport: p, dport: p };
          t.installIngress(ingress(key, reverseTuple(session), session));
        }
        if (r.retransmit) {
          const meta = encodeSynMetadata({ session, chain: [session.dst] });
          const sub: FiveTuple = { src, dst: next, sport: 61111, dport: 61111 };
          // ended: the session is over and its entries linger; the SYN is a new connection from the same port
          t.installEgress({ ...egress(session, sub, meta), ...(r.retransmit.ended ? { finSent: true, finReceived: true, ended: true } : {}) });
          t.installIngress(ingress(reverseTuple(sub), reverseTuple(session), session));
        }
        return t;
        };
        let tag: number | undefined = r.pending?.byTag ? r.pending.tag : undefined;
        if (r.retransmit) tag = r.retransmit.tag;
        const packet = buildTcpPacket({ tuple: session, seq: 1000, ack: 0, flags: r.flags, window: 65535, options: withTag(r.options, tag), payload: r.payload });
        return {
          direction: 'egress',
          family,
          makeTable: build,
          packet,
          localAddresses: locals,
          ports: { ...r.range, seed: r.portSeed },
          seed: r.tagSeed,
          checksumComplete: false,
          auth: r.auth,
        };
      }),
  );
}

export function ingressSynArb(): fc.Arbitrary<Prepared> {
  return fc.constantFrom<4 | 6>(4, 4, 6).chain((family) =>
    fc
      .record({
        local: addr(family),
        toLocal: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        other: addr(family),
        session: fc.record({ src: addr(family), dst: addr(family), sport: port, dport: port }),
        chain: fc.array(addr(family), { maxLength: 9 }),
        endsAtDst: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        mixedEntry: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: addr(family === 4 ? 6 : 4) }),
        signed: fc.boolean(),
        damage: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })) }),
        subPort: fc.integer({ min: 61000, max: 65535 }),
        conflict: fc.constantFrom('none', 'none', 'none', 'none', 'egress', 'ended', 'pending', 'pendingLive', 'again', 'againOther'),
        options: synOptions,
        tagSeed: fc.integer({ min: 0, max: 0xffffffff }),
        auth: authArb,
      })
      .map((r): Prepared => {
        const session = r.session;
        const chain = r.chain.length > 0 && r.endsAtDst ? [...r.chain.slice(0, -1), session.dst] : r.chain;
        const fullChain = r.mixedEntry ? [...chain.slice(0, 1), r.mixedEntry, ...chain.slice(1)] : chain;
        let payload = encodeSynMetadata({ session, chain: fullChain.slice(0, 16) }, r.signed ? keys : undefined);
        if (r.damage) {
          payload = payload.slice();
          payload[r.damage[0] % payload.length] = r.damage[1];
        }
        const sub: FiveTuple = { src: r.other, dst: r.toLocal ? r.local : r.other, sport: r.subPort, dport: r.subPort };
        const build = (): SessionTable => {
        const t = new SessionTable();
        if (r.conflict === 'egress') t.installEgress(egress(reverseTuple(session), reverseTuple(sub)));
        if (r.conflict === 'ended') {
          // an earlier session with this tuple ended on another subsession; its entries linger
          const before: FiveTuple = { ...sub, sport: sub.sport === 61000 ? 61001 : sub.sport - 1, dport: sub.dport === 61000 ? 61001 : sub.dport - 1 };
          t.installEgress({ ...egress(reverseTuple(session), reverseTuple(before)), finSent: true, finReceived: true, ended: true });
          t.installIngress(ingress(before, session, reverseTuple(session)));
        }
        if (r.conflict === 'pending' || r.conflict === 'pendingLive') {
          // without the egress entry a pending entry is one its session left behind: the new SYN replaces it
          t.installPending({ sessionTuple: session, chain: [session.dst], fromSubsession: sub, natTag: 77, created: 0 });
          if (r.conflict === 'pendingLive') t.installEgress(egress(reverseTuple(session), reverseTuple(sub)));
        }
        if (r.conflict === 'again' || r.conflict === 'againOther') {
          const to = r.conflict === 'again' ? session : { ...session, sport: (session.sport % 65535) + 1 };
          t.installIngress(ingress(sub, to, reverseTuple(to)));
          t.installEgress(egress(reverseTuple(to), reverseTuple(sub)));
          if (r.conflict === 'again' && chain.length > 0 && chain.length <= 8) {
            t.installPending({ sessionTuple: session, chain, fromSubsession: sub, natTag: 4242, created: 0 });
          }
        }
        return t;
        };
        const packet = buildTcpPacket({ tuple: sub, seq: 1000, ack: 0, flags: 0x02, window: 65535, options: r.options, payload });
        return {
          direction: 'ingress',
          family,
          makeTable: build,
          packet,
          localAddresses: [r.local],
          ports: { low: 61000, high: 65535, seed: 1 },
          seed: r.tagSeed,
          checksumComplete: false,
          auth: r.auth,
        };
      }),
  );
}
