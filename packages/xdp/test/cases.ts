/**
 * Generators of session tables and packets for the differential tests: the
 * same case goes through the reference rewriter and through the compiled
 * programs. Values cluster around the cutoffs and the lowest new-path
 * sequence number, where the two-path rules change their answer.
 */
import fc from 'fast-check';
import {
  type Address,
  type EgressEntry,
  type FiveTuple,
  type IngressEntry,
  type PathRewrite,
  type TcpOption,
  buildTcpPacket,
  fillChecksums,
} from '@dysco/protocol';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 1, max: 0xffff });

function addrOf(family: 4 | 6): fc.Arbitrary<Address> {
  const n = family === 4 ? 4 : 16;
  return fc.uint8Array({ minLength: n, maxLength: n }).map((bytes) => ({ family, bytes }));
}

export function tupleOf(family: 4 | 6): fc.Arbitrary<FiveTuple> {
  return fc.record({ src: addrOf(family), dst: addrOf(family), sport: port, dport: port });
}

const delta = fc.oneof(fc.constant(0), u32, fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0xfffff000, max: 0xffffffff }));

export function pathOf(family: 4 | 6): fc.Arbitrary<PathRewrite> {
  return fc.record({
    tuple: tupleOf(family),
    seqDelta: delta,
    ackDelta: delta,
    tsvalDelta: delta,
    tsecrDelta: delta,
    ws: fc.oneof(fc.constant([0, 0] as const), fc.tuple(fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 14 }))),
  }).map(({ ws, ...r }) => ({ ...r, wsFrom: ws[0], wsTo: ws[1] }));
}

/** A sequence number near `base` (within a few segments), or anywhere. */
function near(base: number): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -3000, max: 3000 }).map((d) => (base + d) >>> 0) },
    { weight: 1, arbitrary: u32 },
  );
}

export interface TwoPathSpec {
  readonly kind: 'awaiting' | 'cutoffPending' | 'twoPaths';
  readonly newPath: PathRewrite;
  readonly cutoff: number;
  readonly m: number | undefined;
  readonly peerAckHigh: number | undefined;
  readonly drained: boolean;
  readonly peerEnd: number | undefined;
  readonly received: boolean;
}

export interface EgressSpec {
  readonly old: PathRewrite;
  readonly twoPath: TwoPathSpec | undefined;
  readonly sndHigh: number | undefined;
  readonly ackSentHigh: number | undefined;
  readonly finSent: boolean;
  readonly finReceived: boolean;
  readonly ended: boolean;
}

function egressSpecOf(family: 4 | 6, base: number): fc.Arbitrary<EgressSpec> {
  const twoPath: fc.Arbitrary<TwoPathSpec> = fc
    .record({
      kind: fc.constantFrom('awaiting', 'cutoffPending', 'twoPaths', 'twoPaths'),
      newPath: pathOf(family),
      cutoff: near(base),
      m: fc.option(near(base), { nil: undefined }),
      peerAckHigh: fc.option(near(base), { nil: undefined }),
      drained: fc.boolean(),
      peerEnd: fc.option(near(base), { nil: undefined }),
      received: fc.boolean(),
    })
    .map((t) => ({
      ...t,
      cutoff: t.kind === 'twoPaths' ? t.cutoff : 0,
      drained: t.kind === 'cutoffPending' ? true : t.kind === 'awaiting' ? false : t.drained,
    }));
  return fc.record({
    old: pathOf(family),
    twoPath: fc.oneof(fc.constant(undefined), twoPath, twoPath),
    sndHigh: fc.option(near(base), { nil: undefined }),
    ackSentHigh: fc.option(near(base), { nil: undefined }),
    finSent: fc.boolean(),
    finReceived: fc.boolean(),
    ended: fc.boolean(),
  });
}

export function egressEntry(key: FiveTuple, s: EgressSpec): EgressEntry {
  const tp = s.twoPath;
  return {
    key,
    old: s.old,
    twoPath: tp && {
      newPath: tp.newPath,
      seqCutoff: tp.cutoff,
      newPathMinSeq: tp.m,
      peerAckHigh: tp.peerAckHigh,
      drained: tp.drained,
      ...(tp.peerEnd !== undefined ? { peerEnd: tp.peerEnd } : {}),
      received: tp.received,
      ...(tp.kind === 'cutoffPending' ? { cutoffPending: true } : {}),
      ...(tp.kind === 'awaiting' ? { awaitingCutover: true } : {}),
    },
    sndHigh: s.sndHigh,
    ...(s.ackSentHigh !== undefined ? { ackSentHigh: s.ackSentHigh } : {}),
    packets: 7,
    bytes: 7000,
    lastSeen: 0,
    finSent: s.finSent,
    finReceived: s.finReceived,
    ended: s.ended,
  };
}

const TCP_FLAG_SETS = [0x10, 0x10, 0x18, 0x11, 0x19, 0x14, 0x04, 0x01, 0x00, 0x12, 0x02, 0x30, 0x38];

function optionsOf(base: number): fc.Arbitrary<TcpOption[]> {
  const edge = near(base);
  const one: fc.Arbitrary<TcpOption> = fc.oneof(
    fc.constant<TcpOption>({ kind: 'nop' }),
    fc.integer({ min: 0, max: 0xffff }).map((mss): TcpOption => ({ kind: 'mss', mss })),
    fc.integer({ min: 0, max: 14 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
    fc.constant<TcpOption>({ kind: 'sackPermitted' }),
    fc.array(fc.record({ left: edge, right: edge }), { minLength: 1, maxLength: 4 }).map((blocks): TcpOption => ({ kind: 'sack', blocks })),
    fc.array(fc.tuple(edge, fc.integer({ min: 1, max: 3000 })), { minLength: 1, maxLength: 3 }).map(
      (bs): TcpOption => ({ kind: 'sack', blocks: bs.map(([l, n]) => ({ left: l, right: (l + n) >>> 0 })) }),
    ),
    fc.record({ tsval: u32, tsecr: u32 }).map((r): TcpOption => ({ kind: 'timestamps', ...r })),
    fc
      .record({ code: fc.constantFrom(9, 30, 34, 99, 252, 253, 254), data: fc.uint8Array({ maxLength: 6 }) })
      .map((r): TcpOption => ({ kind: 'unknown', ...r })),
  );
  const size = (o: TcpOption): number =>
    o.kind === 'nop' ? 1 : o.kind === 'mss' ? 4 : o.kind === 'wscale' ? 3 : o.kind === 'sackPermitted' ? 2 : o.kind === 'sack' ? 2 + 8 * o.blocks.length : o.kind === 'timestamps' ? 10 : o.kind === 'unknown' ? 2 + o.data.length : 1;
  return fc.array(one, { maxLength: 6 }).filter((os) => os.reduce((n, o) => n + size(o), 0) <= 40);
}

export interface PacketSpecArgs {
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly options: TcpOption[];
  readonly payload: Uint8Array;
  readonly ipOptions: Uint8Array;
}

function packetArgsOf(base: number): fc.Arbitrary<PacketSpecArgs> {
  return fc.record({
    seq: near(base),
    ack: near(base),
    flags: fc.constantFrom(...TCP_FLAG_SETS),
    window: fc.integer({ min: 0, max: 0xffff }),
    options: optionsOf(base),
    payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 80 })),
    ipOptions: fc.oneof({ weight: 5, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.constant(Uint8Array.of(1, 1, 1, 0)) }),
  });
}

export function packetOf(tuple: FiveTuple, a: PacketSpecArgs): Uint8Array {
  return buildTcpPacket({
    tuple,
    seq: a.seq,
    ack: a.ack,
    flags: a.flags,
    window: a.window,
    options: a.options,
    payload: a.payload,
    ...(tuple.src.family === 4 && a.ipOptions.length > 0 ? { ipv4: { options: a.ipOptions } } : {}),
  });
}

/** Ways to damage a packet: the reference decides whether it still parses. */
export type Damage =
  | { readonly kind: 'none' }
  | { readonly kind: 'truncate'; readonly keep: number }
  | { readonly kind: 'byte'; readonly at: number; readonly value: number }
  | { readonly kind: 'pad'; readonly extra: number };

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Damage>({ kind: 'none' }) },
  { weight: 1, arbitrary: fc.nat().map((keep): Damage => ({ kind: 'truncate', keep })) },
  { weight: 2, arbitrary: fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }).map((r): Damage => ({ kind: 'byte', ...r })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }).map((extra): Damage => ({ kind: 'pad', extra })) },
);

/** Damages a packet, keeping the checksums of what a parser would still accept meaningless but harmless. */
export function damaged(pkt: Uint8Array, d: Damage): Uint8Array {
  switch (d.kind) {
    case 'none':
      return pkt;
    case 'truncate':
    {
      // Never below the fixed IP header: the kernel refuses such test runs for IPv6.
      const min = pkt[0]! >> 4 === 6 ? 40 : 20;
      return pkt.slice(0, min + (d.keep % (pkt.length - min + 1)));
    }
    case 'byte': {
      const out = pkt.slice();
      // Headers only: damaged payload bytes change nothing the data plane reads.
      const headerish = Math.min(out.length, 100);
      out[d.at % headerish] = d.value;
      // Inputs carry valid checksums (the rewriter's precondition): fix them if it still parses as TCP.
      try {
        fillChecksums(out);
      } catch {
        // not TCP any more, or lengths beyond the buffer: nothing to fix
      }
      return out;
    }
    case 'pad': {
      const out = new Uint8Array(pkt.length + d.extra);
      out.set(pkt);
      return out;
    }
  }
}

export interface DiffCase {
  readonly direction: 'egress' | 'ingress';
  readonly family: 4 | 6;
  readonly egress: { key: FiveTuple; spec: EgressSpec } | undefined;
  readonly ingress: { key: FiveTuple; rewrite: PathRewrite; path: 'old' | 'new'; ackHigh: number | undefined; feedsTwoPath: boolean } | undefined;
  /** The tuple of the packet. */
  readonly tuple: FiveTuple;
  readonly packet: PacketSpecArgs;
  readonly damage: Damage;
  /** TC runs: the skb arrives CHECKSUM_COMPLETE and the kernel checks skb->csum afterwards. */
  readonly checksumComplete: boolean;
}

/**
 * What the data plane's fast path takes (and the general path must equal
 * there): a path that changes addresses and ports only, and no TCP option
 * but NOP, NOP, timestamps, or none.
 */
const PLAIN = { seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 } as const;
const fastShape = fc.record({
  plainPath: fc.boolean(),
  options: fc.constantFrom<'as generated' | 'timestamps' | 'none'>('as generated', 'timestamps', 'timestamps', 'none'),
  noIpOptions: fc.boolean(),
});

/**
 * One case: a small table for one session and a packet for it (or a
 * stranger). `o.fastPath`: about half the cases take the shape of the fast
 * path (the split test leaves it off, so its seeds keep their cases).
 */
export function diffCaseArb(o: { fastPath?: boolean } = {}): fc.Arbitrary<DiffCase> {
  return fc
    .record({ direction: fc.constantFrom<'egress' | 'ingress'>('egress', 'ingress'), family: fc.constantFrom<4 | 6>(4, 4, 6), base: u32 })
    .chain(({ direction, family, base }) =>
      fc
        .record({
          egressKey: tupleOf(family),
          egressSpec: egressSpecOf(family, base),
          hasEgress: fc.boolean(),
          ingressKey: tupleOf(family),
          rewrite: pathOf(family),
          path: fc.constantFrom<'old' | 'new'>('old', 'new'),
          ackHigh: fc.option(near(base), { nil: undefined }),
          // mostly as a table keeps it (set while the egress entry has two paths), sometimes not
          feedsTwoPath: fc.integer({ min: 0, max: 9 }),
          stranger: fc.oneof(
            { weight: 7, arbitrary: fc.constant(undefined) },
            { weight: 1, arbitrary: tupleOf(family) },
          ),
          packet: packetArgsOf(base),
          damage: damageArb,
          checksumComplete: fc.boolean(),
          ...(o.fastPath ? { fast: fastShape } : {}),
        })
        .map((r0): DiffCase => {
          const r = 'fast' in r0 ? fastCase(r0 as typeof r0 & { fast: FastShape }) : r0;
          const egress = direction === 'egress' || r.hasEgress ? { key: r.egressKey, spec: r.egressSpec } : undefined;
          const feeds = r.feedsTwoPath === 0 ? r.egressSpec.twoPath === undefined : r.egressSpec.twoPath !== undefined;
          const ingress = direction === 'ingress' ? { key: r.ingressKey, rewrite: r.rewrite, path: r.path, ackHigh: r.ackHigh, feedsTwoPath: feeds } : undefined;
          const own = direction === 'egress' ? r.egressKey : r.ingressKey;
          return { direction, family, egress, ingress, tuple: r.stranger ?? own, packet: r.packet, damage: r.damage, checksumComplete: r.checksumComplete };
        }),
    );
}

export function ingressEntry(c: NonNullable<DiffCase['ingress']>, egressKey: FiveTuple): IngressEntry {
  return {
    key: c.key,
    rewrite: c.rewrite,
    path: c.path,
    egressKey,
    ackHigh: c.ackHigh,
    ...(c.feedsTwoPath ? { feedsTwoPath: true } : {}),
    packets: 3,
    bytes: 300,
    lastSeen: 0,
  };
}

type FastShape = { plainPath: boolean; options: 'as generated' | 'timestamps' | 'none'; noIpOptions: boolean };

/** Bends a generated case toward the fast path's shape. */
function fastCase<R extends { fast: FastShape; egressSpec: EgressSpec; rewrite: PathRewrite; packet: PacketSpecArgs }>(r: R): R {
  const f = r.fast;
  const options: TcpOption[] =
    f.options === 'none' ? [] : f.options === 'timestamps' ? [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', tsval: r.packet.seq ^ 0x5a5a, tsecr: r.packet.ack ^ 0xa5a5 }] : r.packet.options;
  return {
    ...r,
    egressSpec: f.plainPath ? { ...r.egressSpec, old: { ...r.egressSpec.old, ...PLAIN } } : r.egressSpec,
    rewrite: f.plainPath ? { ...r.rewrite, ...PLAIN } : r.rewrite,
    packet: { ...r.packet, options, ...(f.noIpOptions ? { ipOptions: new Uint8Array(0) } : {}) },
  };
}
