import t from 'tap';
import fc from 'fast-check';
import {
  type Address,
  type FiveTuple,
  type PathRewrite,
  type TcpOption,
  type TcpPacketSpec,
  Rewriter,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  buildTcpPacket,
  hex,
  isSynMetadataCandidate,
  packetSpec,
  parsePrefix,
  parseTcpPacket,
  plainRewrite,
  reverseTuple,
  seqAdd,
  seqGeq,
  seqGt,
  seqLeq,
  seqSub,
  tupleEquals,
  verifyChecksums,
} from '@dysco/protocol';

// Properties of the reference rewriter. Runs: >= 1000 each.
const RUNS = { numRuns: 1000 };

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Sequence numbers, often close to the 2^32 wrap. */
const seqArb = fc.oneof(u32, fc.integer({ min: 0xffffff00, max: 0xffffffff }), fc.integer({ min: 0, max: 0xff }));
const port = fc.integer({ min: 1, max: 0xffff });
const addr4: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4, bytes }));
const addr6: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6, bytes }));

/** Two tuples of one family: a session and a subsession. */
const tuplePair: fc.Arbitrary<[FiveTuple, FiveTuple]> = fc.oneof(
  fc.tuple(addr4, addr4, addr4, addr4, port, port, port, port),
  fc.tuple(addr6, addr6, addr6, addr6, port, port, port, port),
).map(([a, b, c, d, p, q, r, s]) => [
  { src: a, dst: b, sport: p, dport: q },
  { src: c, dst: d, sport: r, dport: s },
]);

const optionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: 'nop' }),
  fc.integer({ min: 0, max: 0xffff }).map((mss): TcpOption => ({ kind: 'mss', mss })),
  fc.integer({ min: 0, max: 14 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sackPermitted' }),
  fc.array(fc.record({ left: seqArb, right: seqArb }), { minLength: 1, maxLength: 3 }).map((blocks): TcpOption => ({ kind: 'sack', blocks })),
  fc.record({ tsval: u32, tsecr: u32 }).map((r): TcpOption => ({ kind: 'timestamps', ...r })),
  fc.record({ code: fc.integer({ min: 9, max: 252 }).filter((c) => c !== 34), data: fc.uint8Array({ maxLength: 4 }) }).map((r): TcpOption => ({ kind: 'unknown', ...r })),
);

function optionBytes(os: readonly TcpOption[]): number {
  let n = 0;
  for (const o of os) {
    n += o.kind === 'nop' ? 1 : o.kind === 'mss' ? 4 : o.kind === 'wscale' ? 3 : o.kind === 'sackPermitted' ? 2 : o.kind === 'sack' ? 2 + 8 * o.blocks.length : o.kind === 'timestamps' ? 10 : o.kind === 'unknown' ? 2 + o.data.length : 1;
  }
  return n;
}

const optionsArb = fc.array(optionArb, { maxLength: 5 }).filter((os) => optionBytes(os) <= 40);

const deltasArb = fc.record({ seqDelta: u32, ackDelta: u32, tsvalDelta: u32, tsecrDelta: u32 });

function path(tuple: FiveTuple, d: { seqDelta: number; ackDelta: number; tsvalDelta: number; tsecrDelta: number }, ws = 0): PathRewrite {
  return { tuple, ...d, wsFrom: ws, wsTo: ws };
}

function inverse(d: { seqDelta: number; ackDelta: number; tsvalDelta: number; tsecrDelta: number }) {
  return { seqDelta: -d.seqDelta >>> 0, ackDelta: -d.ackDelta >>> 0, tsvalDelta: -d.tsvalDelta >>> 0, tsecrDelta: -d.tsecrDelta >>> 0 };
}

function specFor(tu: FiveTuple) {
  return fc.record({
    tuple: fc.constant(tu),
    seq: seqArb,
    ack: seqArb,
    flags: fc.integer({ min: 0, max: 255 }),
    window: fc.integer({ min: 0, max: 0xffff }),
    options: optionsArb,
    payload: fc.uint8Array({ maxLength: 40 }),
    ttl: fc.integer({ min: 1, max: 255 }),
    urgent: fc.integer({ min: 0, max: 0xffff }),
  });
}

const entryCounters = { packets: 0, bytes: 0, lastSeen: 0 };

/** Agent X sends session `s` onto subsession `sub`; agent Y (mirrored table) rewrites it back. */
function pairOfAgents(s: FiveTuple, sub: FiveTuple, d: ReturnType<typeof inverse>, ws: number) {
  const x = new Rewriter({ localAddresses: [sub.src] });
  const y = new Rewriter({ localAddresses: [sub.dst] });
  x.table.installEgress({ key: s, old: path(sub, d, ws), twoPath: undefined, sndHigh: undefined, ...entryCounters });
  y.table.installIngress({ key: sub, rewrite: path(s, inverse(d), ws), path: 'old', egressKey: reverseTuple(s), ...entryCounters });
  return { x, y };
}

function isDyscoSynLike(spec: TcpPacketSpec): boolean {
  return (spec.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && (spec.payload?.length ?? 0) > 0 && isSynMetadataCandidate(spec.payload!);
}

t.test('subsession and back is the identity, deltas applied and inverted', async (t) => {
  fc.assert(
    fc.property(
      tuplePair.chain(([s, sub]) => fc.tuple(fc.constant(s), fc.constant(sub), specFor(s), deltasArb, fc.integer({ min: 0, max: 14 }))),
      ([s, sub, spec, d, ws]) => {
        fc.pre(!isDyscoSynLike(spec) && !tupleEquals(s, sub));
        const { x, y } = pairOfAgents(s, sub, d, ws);
        const input = buildTcpPacket(spec);
        const a = x.egress(input);
        if (a.verdict !== 'rewrite' || a.packets.length !== 1) return false;
        const mid = a.packets[0]!;
        if (!verifyChecksums(mid) || !tupleEquals(parseTcpPacket(mid).tuple, sub)) return false;
        const b = y.ingress(mid);
        if (b.verdict !== 'rewrite' || b.packets.length !== 1) return false;
        return hex(b.packets[0]!) === hex(input);
      },
    ),
    RUNS,
  );
  t.pass('identity');
});

t.test('every output carries exactly the checksums a full recomputation gives', async (t) => {
  fc.assert(
    fc.property(
      tuplePair.chain(([s, sub]) =>
        fc.tuple(fc.constant(s), fc.constant(sub), specFor(s), deltasArb, fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 14 })),
      ),
      ([s, sub, spec, d, wsFrom, wsTo]) => {
        const x = new Rewriter({ localAddresses: [] });
        x.table.installEgress({ key: s, old: { tuple: sub, ...d, wsFrom, wsTo }, twoPath: undefined, sndHigh: undefined, ...entryCounters });
        const r = x.egress(buildTcpPacket(spec));
        return r.packets.every((p) => verifyChecksums(p) && hex(buildTcpPacket(packetSpec(parseTcpPacket(p)))) === hex(p));
      },
    ),
    RUNS,
  );
  t.pass('checksums');
});

interface TwoPathCase {
  s: FiveTuple;
  oldSub: FiveTuple;
  newSub: FiveTuple;
  oldD: ReturnType<typeof inverse>;
  newD: ReturnType<typeof inverse>;
  cutoff: number;
  m: number | undefined;
  spec: TcpPacketSpec;
}

const twoPathArb: fc.Arbitrary<TwoPathCase> = fc
  .tuple(tuplePair, port, seqArb, fc.option(fc.integer({ min: -300, max: 300 }), { nil: undefined }), deltasArb, deltasArb)
  .chain(([[s, oldSub], newPort, cutoff, mOff, oldD, newD]) => {
    const newSub = { ...oldSub, sport: oldSub.sport ^ newPort || 1, dport: newPort };
    const m = mOff === undefined ? undefined : seqAdd(cutoff, 0x10000 + mOff);
    const near = (base: number, span: number) => fc.integer({ min: -span, max: span }).map((o) => seqAdd(base, o));
    const sack = fc
      .array(fc.tuple(near(m ?? cutoff, 200), fc.integer({ min: 1, max: 150 })), { minLength: 1, maxLength: 3 })
      .map((bs): TcpOption => ({ kind: 'sack', blocks: bs.map(([l, n]) => ({ left: l, right: seqAdd(l, n) })) }));
    const spec = fc.record({
      tuple: fc.constant(s),
      seq: near(cutoff, 60),
      ack: near(m ?? seqAdd(cutoff, 0x10000), 60),
      flags: fc.constantFrom(TCP_ACK, TCP_ACK | TCP_FIN, TCP_ACK | 0x08, TCP_FIN, 0, TCP_ACK | TCP_RST, TCP_ACK | TCP_FIN | 0x08),
      window: fc.integer({ min: 0, max: 0xffff }),
      options: fc.oneof(fc.constant<TcpOption[]>([]), sack.map((o): TcpOption[] => [{ kind: 'nop' }, { kind: 'nop' }, o, { kind: 'timestamps', tsval: 1, tsecr: 2 }])),
      payload: fc.uint8Array({ maxLength: 80 }),
    });
    return spec.map((sp) => ({ s, oldSub, newSub, oldD, newD, cutoff, m, spec: sp }));
  });

t.test('two-path outputs: paths, acks, SACK and data split as specified', async (t) => {
  fc.assert(
    fc.property(twoPathArb, (c) => {
      fc.pre(!tupleEquals(c.oldSub, c.newSub));
      const r = new Rewriter({ localAddresses: [] });
      r.table.installEgress({ key: c.s, old: path(c.oldSub, c.oldD), twoPath: undefined, sndHigh: c.cutoff, ...entryCounters });
      r.table.enterTwoPath(c.s, path(c.newSub, c.newD));
      r.table.getEgress(c.s)!.twoPath!.newPathMinSeq = c.m;
      const res = r.egress(buildTcpPacket(c.spec));
      if (res.verdict !== 'rewrite' || res.packets.length < 1 || res.packets.length > 2) return false;
      const hasAck = (c.spec.flags & TCP_ACK) !== 0;
      const A = c.spec.ack;
      const payload = c.spec.payload ?? new Uint8Array(0);
      const rst = (c.spec.flags & TCP_RST) !== 0;
      const data: { seq: number; bytes: Uint8Array; fin: boolean; path: string }[] = [];
      let ackCarried = false;
      for (const out of res.packets) {
        if (!verifyChecksums(out)) return false;
        const p = parseTcpPacket(out);
        const onOld = tupleEquals(p.tuple, c.oldSub);
        if (!onOld && !tupleEquals(p.tuple, c.newSub)) return false;
        const d = onOld ? c.oldD : c.newD;
        const seq = seqSub(p.seq, d.seqDelta);
        const ack = hasAck ? seqSub(p.ack, d.ackDelta) : p.ack;
        const sackBlocks = p.options.flatMap((o) => (o.kind === 'sack' ? o.blocks : [])).map((b) => ({ left: seqSub(b.left, d.ackDelta), right: seqSub(b.right, d.ackDelta) }));
        if (hasAck && c.m !== undefined) {
          // Never ack on the old path beyond what it delivered; SACK likewise.
          if (onOld && !seqLeq(ack, c.m)) return false;
          if (onOld && !sackBlocks.every((b) => seqLeq(b.right, c.m!) && seqGt(b.right, b.left))) return false;
          if (!onOld && !sackBlocks.every((b) => seqGt(b.right, c.m!))) return false;
        }
        if (hasAck && ack === A) ackCarried = true;
        const fin = (p.flags & TCP_FIN) !== 0;
        if (p.payload.length > 0 || fin) {
          if (!rst) {
            const end = seqAdd(seq, p.payload.length + (fin ? 1 : 0));
            if (onOld && !seqLeq(end, c.cutoff)) return false;
            if (!onOld && !seqGeq(seq, c.cutoff)) return false;
          }
          data.push({ seq, bytes: p.payload, fin, path: onOld ? 'old' : 'new' });
        }
      }
      if (hasAck) {
        // The full ack reaches the path it belongs to.
        if (!ackCarried) return false;
      }
      if (rst) return res.packets.length === 2;
      // Data conservation: the pieces, in order, are the original segment.
      const joined = Buffer.concat(data.map((x) => Buffer.from(x.bytes)));
      if (!joined.equals(Buffer.from(payload))) return false;
      if (data.length > 0 && data[0]!.seq !== c.spec.seq) return false;
      const fins = data.filter((x) => x.fin).length;
      if (fins !== ((c.spec.flags & TCP_FIN) !== 0 ? 1 : 0)) return false;
      if (fins === 1 && !data[data.length - 1]!.fin) return false;
      return true;
    }),
    RUNS,
  );
  t.pass('two-path');
});

t.test('end to end through a middlebox, the server sees the client SYN byte for byte', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.tuple(addr4, addr4, addr4), fc.tuple(addr6, addr6, addr6)),
      port,
      port,
      u32,
      optionsArb.filter((os) => optionBytes(os) <= 32),
      fc.integer({ min: 1, max: 1 << 30 }),
      ([a, mb, srv], sport, dport, seq, options, seed) => {
        fc.pre(hex(a.bytes) !== hex(mb.bytes) && hex(mb.bytes) !== hex(srv.bytes) && hex(a.bytes) !== hex(srv.bytes));
        const fam = a.family;
        const ra = new Rewriter({ localAddresses: [a], policies: [{ id: 1, dst: parsePrefix(fam === 4 ? '0.0.0.0/0' : '::/0'), chain: [mb] }], ports: { seed } });
        const rm = new Rewriter({ localAddresses: [mb], ports: { seed: seed + 1 }, seed });
        const rs = new Rewriter({ localAddresses: [srv] });
        const session = { src: a, dst: srv, sport, dport };
        const syn = buildTcpPacket({ tuple: session, seq, ack: 0, flags: TCP_SYN, window: 1000, options });
        const hop = (r: ReturnType<Rewriter['egress']>) => {
          if (r.verdict !== 'rewrite' || r.packets.length !== 1 || !verifyChecksums(r.packets[0]!)) throw new Error(`bad hop ${r.verdict} ${r.reason}`);
          return r.packets[0]!;
        };
        const atServer = hop(rs.ingress(hop(rm.egress(hop(rm.ingress(hop(ra.egress(syn))))))));
        if (hex(atServer) !== hex(syn)) return false;
        const synAck = buildTcpPacket({ tuple: reverseTuple(session), seq: 5, ack: seqAdd(seq, 1), flags: TCP_SYN | TCP_ACK, window: 1000, options });
        const atClient = hop(ra.ingress(hop(rm.egress(hop(rm.ingress(hop(rs.egress(synAck))))))));
        return hex(atClient) === hex(synAck);
      },
    ),
    RUNS,
  );
  t.pass('end to end');
});

t.test('plain rewrite helper has no deltas', async (t) => {
  const p = plainRewrite({ src: { family: 4, bytes: Uint8Array.of(1, 2, 3, 4) }, dst: { family: 4, bytes: Uint8Array.of(1, 2, 3, 5) }, sport: 1, dport: 2 });
  t.same([p.seqDelta, p.ackDelta, p.tsvalDelta, p.tsecrDelta, p.wsFrom, p.wsTo], [0, 0, 0, 0, 0, 0]);
});
