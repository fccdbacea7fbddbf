import t from 'tap';
import {
  type Address,
  type EgressEntry,
  type FiveTuple,
  type PathRewrite,
  type RewriteResult,
  type TcpOption,
  type TcpPacketSpec,
  PortAllocator,
  Rewriter,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  KeyRing,
  buildTcpPacket,
  encodeNatTagOption,
  encodeSynMetadata,
  hex,
  ip,
  parsePrefix,
  parseTcpPacket,
  formatTuple,
  plainRewrite,
  reverseTuple,
  tuple,
  verifyChecksums,
} from '@dysco/protocol';

// Golden packets: every expected output is built independently with
// buildTcpPacket (full checksum computation) and compared byte for byte;
// every output is also checked with verifyChecksums.

const A = ip('10.0.0.1');
const M = ip('10.0.1.1');
const S = ip('10.0.2.1');
const session = tuple(A, 40000, S, 80);

const synOptions: TcpOption[] = [
  { kind: 'mss', mss: 1460 },
  { kind: 'sackPermitted' },
  { kind: 'timestamps', tsval: 100, tsecr: 0 },
  { kind: 'nop' },
  { kind: 'wscale', shift: 7 },
];

function pkt(spec: Partial<TcpPacketSpec> & { tuple: FiveTuple }): Uint8Array {
  return buildTcpPacket({ seq: 1000, ack: 0, flags: TCP_ACK, window: 502, ...spec });
}

interface Asserts {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  equal: (...args: any[]) => boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  ok: (...args: any[]) => boolean;
}

function outputs(t: Asserts, r: RewriteResult, n: number): Uint8Array[] {
  t.equal(r.verdict, 'rewrite', 'rewritten');
  t.equal(r.packets.length, n, `${n} output packet(s)`);
  for (const p of r.packets) t.ok(verifyChecksums(p), 'output checksums verify (full recomputation)');
  return r.packets;
}

function same(t: Asserts, actual: Uint8Array | undefined, expected: Uint8Array, msg: string): void {
  t.equal(actual ? hex(actual) : 'none', hex(expected), msg);
}

function egressEntry(key: FiveTuple, old: PathRewrite, extra: Partial<EgressEntry> = {}): EgressEntry {
  return { key, old, twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0, ...extra };
}

function rw(tu: FiveTuple, d: Partial<PathRewrite> = {}): PathRewrite {
  return { ...plainRewrite(tu), ...d };
}

t.test('established rewrite, IPv4, both directions (pinned bytes)', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(sub)));
  r.table.installIngress({ key: reverseTuple(sub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  const input = pkt({ tuple: session, payload: Uint8Array.of(0x68, 0x69) });
  // Pinned: 10.0.0.1:40000 > 10.0.2.1:80 seq 1000 ack 0 ACK win 502, payload "hi".
  t.equal(hex(input), '4500002a00004000400624cd0a0000010a000201' + '9c400050000003e800000000501001f68ef900006869');
  const [out] = outputs(t, r.egress(input), 1);
  // Pinned: 10.0.0.1:61000 > 10.0.1.1:61000, same segment; both checksums updated incrementally.
  t.equal(hex(out!), '4500002a00004000400625cd0a0000010a000101' + 'ee48ee48000003e800000000501001f64ff800006869');
  same(t, out, pkt({ tuple: sub, payload: Uint8Array.of(0x68, 0x69) }), 'egress: session -> subsession');
  const back = pkt({ tuple: reverseTuple(sub), seq: 7, ack: 1002 });
  const [inn] = outputs(t, r.ingress(back), 1);
  same(t, inn, pkt({ tuple: reverseTuple(session), seq: 7, ack: 1002 }), 'ingress: subsession -> session');
  const e = r.table.getEgress(session)!;
  t.equal(e.packets, 1);
  t.equal(e.sndHigh, 1002);
});

t.test('sndHigh follows what a genuine sender sends: neither a SYN on an established entry nor a segment beyond the largest window moves it', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(sub), { sndHigh: 5000 }));
  const high = () => r.table.getEgress(session)!.sndHigh;
  const send = (spec: Partial<TcpPacketSpec>) => outputs(t, r.egress(pkt({ tuple: session, ...spec })), 1);
  send({ seq: 5000, payload: new Uint8Array(100) });
  t.equal(high(), 5100, 'an in-order segment raises it');
  send({ seq: 4000, payload: new Uint8Array(100) });
  t.equal(high(), 5100, 'a retransmission below it does not lower it');
  send({ seq: (5100 + 2 ** 30 + 1) >>> 0, payload: new Uint8Array(1) });
  t.equal(high(), 5100, 'a segment ending 2^30 + 2 bytes ahead is forwarded but does not move it');
  send({ seq: (5100 + 2 ** 30 - 1) >>> 0, payload: new Uint8Array(1) });
  t.equal(high(), (5100 + 2 ** 30) >>> 0, 'one ending exactly 2^30 ahead does (the largest window TCP can open)');
  const r2 = new Rewriter({ localAddresses: [A] });
  r2.table.installEgress(egressEntry(session, rw(sub), { sndHigh: 5000 }));
  outputs(t, r2.egress(pkt({ tuple: session, seq: 900_000_000, flags: TCP_SYN })), 1);
  t.equal(r2.table.getEgress(session)!.sndHigh, 5000, 'a SYN on an established entry does not move it');
  const r3 = new Rewriter({ localAddresses: [A] });
  r3.table.installEgress(egressEntry(session, rw(sub)));
  outputs(t, r3.egress(pkt({ tuple: session, seq: 77, flags: TCP_SYN | TCP_ACK })), 1);
  t.equal(r3.table.getEgress(session)!.sndHigh, 78, 'an entry without one takes it from the first segment, SYN or not');
});

t.test('established rewrite, IPv6, both directions', async (t) => {
  const a6 = ip('fd00::1');
  const m6 = ip('fd00:1::1');
  const s6 = ip('fd00:2::1');
  const sess = tuple(a6, 40000, s6, 443);
  const sub = tuple(a6, 61234, m6, 61234);
  const r = new Rewriter({ localAddresses: [a6] });
  r.table.installEgress(egressEntry(sess, rw(sub)));
  r.table.installIngress({ key: reverseTuple(sub), rewrite: rw(reverseTuple(sess)), path: 'old', egressKey: sess, packets: 0, bytes: 0, lastSeen: 0 });
  const opts: TcpOption[] = [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', tsval: 5, tsecr: 6 }];
  const [out] = outputs(t, r.egress(pkt({ tuple: sess, options: opts, payload: new Uint8Array(100).fill(7), ipv6: { flowLabel: 0x12345 } })), 1);
  same(t, out, pkt({ tuple: sub, options: opts, payload: new Uint8Array(100).fill(7), ipv6: { flowLabel: 0x12345 } }), 'egress');
  const [inn] = outputs(t, r.ingress(pkt({ tuple: reverseTuple(sub), options: opts, ttl: 3 })), 1);
  same(t, inn, pkt({ tuple: reverseTuple(sess), options: opts, ttl: 3 }), 'ingress (TTL untouched)');
});

t.test('deltas: seq, ack, SACK edges, timestamps; only where nonzero', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  const r = new Rewriter({ localAddresses: [A] });
  const d = { seqDelta: 1000, ackDelta: 0xffffff00 /* -256 */, tsvalDelta: 7, tsecrDelta: 0xfffffff0 };
  r.table.installEgress(egressEntry(session, rw(sub, d)));
  const opts = (base: number, ts: [number, number]): TcpOption[] => [
    { kind: 'nop' },
    { kind: 'nop' },
    { kind: 'timestamps', tsval: ts[0], tsecr: ts[1] },
    { kind: 'nop' },
    { kind: 'nop' },
    { kind: 'sack', blocks: [{ left: base + 100, right: base + 200 }, { left: 0xffffff80, right: 0x40 }] },
  ];
  const input = pkt({ tuple: session, seq: 0xfffffe00, ack: 5000, options: opts(5000, [10, 0x8]), payload: Uint8Array.of(1) });
  const [out] = outputs(t, r.egress(input), 1);
  const expected = pkt({
    tuple: sub,
    seq: 0xfffffe00 + 1000 - 2 ** 32,
    ack: 5000 - 256,
    options: [
      { kind: 'nop' },
      { kind: 'nop' },
      { kind: 'timestamps', tsval: 17, tsecr: 0xfffffff8 },
      { kind: 'nop' },
      { kind: 'nop' },
      { kind: 'sack', blocks: [{ left: 5100 - 256, right: 5200 - 256 }, { left: 0xfffffe80, right: 0xffffff40 }] },
    ],
    payload: Uint8Array.of(1),
  });
  same(t, out, expected, 'deltas applied mod 2^32, SACK edges moved by the ack delta');
  // A segment without ACK: no ack delta, no TSecr delta (both fields are meaningless).
  const r2 = new Rewriter({ localAddresses: [A] });
  r2.table.installEgress(egressEntry(session, rw(sub, d)));
  const [o2] = outputs(t, r2.egress(pkt({ tuple: session, flags: TCP_SYN, ack: 0, options: [{ kind: 'timestamps', tsval: 1, tsecr: 0 }] })), 1);
  same(t, o2, pkt({ tuple: sub, flags: TCP_SYN, seq: 2000, ack: 0, options: [{ kind: 'timestamps', tsval: 8, tsecr: 0 }] }), 'SYN: ack and TSecr untouched');
});

t.test('window rescaling', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  for (const [from, to, w, want] of [
    [7, 9, 1000, 250],
    [9, 7, 1000, 4000],
    [14, 0, 4, 0xffff],
    [3, 3, 1234, 1234],
  ] as const) {
    const r = new Rewriter({ localAddresses: [A] });
    r.table.installEgress(egressEntry(session, rw(sub, { wsFrom: from, wsTo: to })));
    const [out] = outputs(t, r.egress(pkt({ tuple: session, window: w })), 1);
    same(t, out, pkt({ tuple: sub, window: want }), `window ${w} << ${from} >> ${to} = ${want}`);
  }
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(sub, { wsFrom: 7, wsTo: 9 })));
  const [syn] = outputs(t, r.egress(pkt({ tuple: session, flags: TCP_SYN | TCP_ACK, window: 1000 })), 1);
  same(t, syn, pkt({ tuple: sub, flags: TCP_SYN | TCP_ACK, window: 1000 }), 'SYN windows are never scaled');
});

/** A three-agent chain A -> M -> S with policy on A, plus the packets it produced. */
function chain(opts: { seed?: number; synOpts?: TcpOption[]; keysMismatch?: boolean } = {}) {
  const ra = new Rewriter({ localAddresses: [A], policies: [{ id: 1, dst: parsePrefix('10.0.2.0/24'), chain: [M] }], ports: { seed: opts.seed ?? 1 } });
  const rm = new Rewriter({ localAddresses: [M], ports: { seed: (opts.seed ?? 1) + 1 } });
  const rs = new Rewriter({ localAddresses: [S] });
  const synIn = pkt({ tuple: session, flags: TCP_SYN, seq: 77, window: 64240, options: opts.synOpts ?? synOptions });
  return { ra, rm, rs, synIn };
}

t.test('SYN steering: originator inserts metadata, middlebox strips and tags, last hop strips', async (t) => {
  const { ra, rm, rs, synIn } = chain();
  const r1 = ra.egress(synIn);
  const [s1] = outputs(t, r1, 1);
  const ev1 = r1.events[0];
  t.equal(ev1?.type, 'sessionCreated');
  if (ev1?.type !== 'sessionCreated') throw new Error('no event');
  t.equal(ev1.role, 'originator');
  const sub1 = ev1.subsession;
  t.same(sub1.src, A);
  t.same(sub1.dst, M);
  t.equal(sub1.sport, sub1.dport, 'one allocated port for both ends');
  t.ok(sub1.sport >= 61000 && sub1.sport <= 65535);
  const meta1 = encodeSynMetadata({ session, chain: [S] });
  same(t, s1, pkt({ tuple: sub1, flags: TCP_SYN, seq: 77, window: 64240, options: synOptions, payload: meta1 }), 'originator SYN: subsession + metadata (rest of chain, then destination)');
  t.same(ra.table.getEgress(session)?.old.tuple, sub1);
  t.same(ra.table.getIngress(reverseTuple(sub1))?.rewrite.tuple, reverseTuple(session));

  // Middlebox ingress: strip, rewrite to the session, add the NAT tag.
  const r2 = rm.ingress(s1!);
  const [s2] = outputs(t, r2, 1);
  t.same(r2.events, [{ type: 'sessionCreated', role: 'middlebox', session, subsession: sub1, side: 'left' }]);
  const pending = rm.table.getPending(session)!;
  t.ok(pending, 'pending entry');
  t.same(pending.chain, [S]);
  const tag = encodeNatTagOption(pending.natTag);
  const tagged = pkt({
    tuple: session,
    flags: TCP_SYN,
    seq: 77,
    window: 64240,
    options: [{ kind: 'unknown', code: tag[0]!, data: tag.subarray(2) }, ...synOptions],
  });
  same(t, s2, tagged, 'middlebox sees the session SYN, NAT tag first among the options');

  // Middlebox egress: the application forwards the SYN unchanged.
  const r3 = rm.egress(s2!);
  const [s3] = outputs(t, r3, 1);
  const ev3 = r3.events[0];
  if (ev3?.type !== 'sessionCreated') throw new Error('no event');
  t.equal(ev3.role, 'middlebox');
  t.equal(ev3.side, 'right');
  const sub2 = ev3.subsession;
  t.same([sub2.src, sub2.dst], [M, S]);
  same(t, s3, pkt({ tuple: sub2, flags: TCP_SYN, seq: 77, window: 64240, options: synOptions, payload: encodeSynMetadata({ session, chain: [] }) }), 'tag stripped, next subsession, empty chain for the last hop');
  t.equal(rm.table.getPending(session), undefined, 'pending entry consumed');

  // Last hop: the server sees exactly the client's SYN.
  const r4 = rs.ingress(s3!);
  const [s4] = outputs(t, r4, 1);
  same(t, s4, synIn, 'end to end, the SYN is the original byte for byte');
  t.same(r4.events, [{ type: 'sessionCreated', role: 'lastHop', session, subsession: sub2, side: 'left' }]);

  // SYN-ACK all the way back.
  const synAck = pkt({ tuple: reverseTuple(session), flags: TCP_SYN | TCP_ACK, seq: 5000, ack: 78, options: synOptions });
  const [b1] = outputs(t, rs.egress(synAck), 1);
  same(t, b1, pkt({ tuple: reverseTuple(sub2), flags: TCP_SYN | TCP_ACK, seq: 5000, ack: 78, options: synOptions }), 'last hop egress');
  const [b2] = outputs(t, rm.ingress(b1!), 1);
  same(t, b2, synAck, 'middlebox ingress restores the session');
  const [b3] = outputs(t, rm.egress(b2!), 1);
  const [b4] = outputs(t, ra.ingress(b3!), 1);
  same(t, b4, synAck, 'client sees the server SYN-ACK byte for byte');
  t.same(rm.table.size(), { egress: 2, ingress: 2, pending: 0, policies: 0, total: 4 });
});

t.test('retransmitted SYNs carry the same metadata and tag', async (t) => {
  const { ra, rm, synIn } = chain();
  const [s1] = outputs(t, ra.egress(synIn), 1);
  const [again] = outputs(t, ra.egress(synIn), 1);
  same(t, again, s1!, 'originator: identical retransmission');
  t.equal(ra.count('synRetransmitted'), 1);
  const [m1] = outputs(t, rm.ingress(s1!), 1);
  const r = rm.ingress(again!);
  const [m2] = outputs(t, r, 1);
  same(t, m2, m1!, 'middlebox: same session SYN, same NAT tag');
  t.same(r.events, [], 'no second session');
  const [o1] = outputs(t, rm.egress(m1!), 1);
  const [o2] = outputs(t, rm.egress(m2!), 1);
  same(t, o2, o1!, 'middlebox egress: identical retransmission toward the next hop');
});

t.test('NAT middlebox: the tag finds the pending entry and the new tuple is adopted', async (t) => {
  const { ra, rm, rs, synIn } = chain();
  const [s1] = outputs(t, ra.egress(synIn), 1);
  const [s2] = outputs(t, rm.ingress(s1!), 1);
  const p = parseTcpPacket(s2!);
  const natted = tuple(M, 33333, S, 8080); // source NAT to the box, destination port changed
  const fromNat = buildTcpPacket({ tuple: natted, seq: p.seq, ack: 0, flags: p.flags, window: p.window, options: p.options, ttl: 63 });
  const r3 = rm.egress(fromNat);
  const [s3] = outputs(t, r3, 1);
  const ev = r3.events[0];
  if (ev?.type !== 'sessionCreated') throw new Error('no event');
  t.same(ev.natAdoptedFrom, session);
  t.same(ev.session, natted);
  same(
    t,
    s3,
    pkt({ tuple: ev.subsession, flags: TCP_SYN, seq: 77, window: 64240, options: synOptions, payload: encodeSynMetadata({ session: natted, chain: [] }), ttl: 63 }),
    'tag stripped, metadata names the adopted tuple',
  );
  const [s4] = outputs(t, rs.ingress(s3!), 1);
  same(t, s4, buildTcpPacket({ ...parseAsSpec(synIn), tuple: natted, ttl: 63 }), 'server sees the NAT tuple');
  t.equal(rm.table.size().pending, 0);
  t.equal(rm.table.natTags.size, 0);
});

function parseAsSpec(b: Uint8Array): TcpPacketSpec {
  const p = parseTcpPacket(b);
  return { tuple: p.tuple, seq: p.seq, ack: p.ack, flags: p.flags, window: p.window, options: p.options, payload: Uint8Array.from(p.payload), ttl: p.ttl };
}

t.test('NAT tag is skipped when the options are full', async (t) => {
  const full: TcpOption[] = [
    { kind: 'mss', mss: 1460 },
    { kind: 'sackPermitted' },
    { kind: 'timestamps', tsval: 100, tsecr: 0 },
    { kind: 'nop' },
    { kind: 'wscale', shift: 7 },
    { kind: 'unknown', code: 30, data: new Uint8Array(14) }, // 36 option bytes: no room for 8 more
  ];
  const { ra, rm, synIn } = chain({ synOpts: full });
  const [s1] = outputs(t, ra.egress(synIn), 1);
  const [s2] = outputs(t, rm.ingress(s1!), 1);
  same(t, s2, synIn, 'no room: the SYN goes on untagged');
  t.equal(rm.count('natTagNoRoom'), 1);
  t.ok(rm.table.getPending(session), 'still pending by session tuple');
});

t.test('a TFO SYN is not taken for a chain (defect regression)', async (t) => {
  const { ra, rm } = chain();
  const tfo = pkt({ tuple: session, flags: TCP_SYN, options: [{ kind: 'unknown', code: 34, data: new Uint8Array(8).fill(3) }], payload: Uint8Array.of(1, 2, 3) });
  const r = ra.egress(tfo);
  t.equal(r.verdict, 'pass');
  t.equal(r.packets[0], tfo);
  t.equal(ra.count('tfoNotSteered'), 1);
  t.equal(ra.table.size().total, 0);
  const cookieRequest = pkt({ tuple: session, flags: TCP_SYN, options: [{ kind: 'unknown', code: 34, data: new Uint8Array(0) }] });
  t.equal(ra.egress(cookieRequest).verdict, 'pass', 'a cookie request alone is enough');
  // At a middlebox host: a SYN to a local address with a payload that is not metadata is a normal SYN.
  const toM = pkt({ tuple: tuple(A, 40001, M, 80), flags: TCP_SYN, payload: Uint8Array.of(0x47, 0x45, 0x54, 0x20) });
  const rr = rm.ingress(toM);
  t.equal(rr.verdict, 'pass');
  t.equal(rm.table.size().total, 0);
});

t.test('bad metadata drops; the right reason is counted', async (t) => {
  const { rm } = chain();
  const meta = encodeSynMetadata({ session, chain: [S] });
  const sub = tuple(A, 61000, M, 61000);
  const truncated = pkt({ tuple: sub, flags: TCP_SYN, payload: meta.subarray(0, meta.length - 3) });
  const notMeta = rm.ingress(truncated);
  t.equal(notMeta.verdict, 'drop', 'length field disagrees: not even a candidate, so a plain packet to a subsession port nothing maps');
  t.equal(notMeta.reason, 'staleSubsession');
  const elsewhere = pkt({ tuple: tuple(A, 40000, M, 80), flags: TCP_SYN, payload: meta.subarray(0, meta.length - 3) });
  t.equal(rm.ingress(elsewhere).verdict, 'pass', 'the same payload to an ordinary port is a normal SYN');
  const badFamily = Uint8Array.from(meta);
  badFamily[8] = 5; // the session's family byte
  const r = rm.ingress(pkt({ tuple: sub, flags: TCP_SYN, payload: badFamily }));
  t.equal(r.verdict, 'drop');
  t.equal(r.reason, 'malformedMetadata');
  t.equal(rm.count('malformedMetadata'), 1);
  const wrongLast = pkt({ tuple: sub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [A] }) });
  t.equal(rm.ingress(wrongLast).reason, 'malformedMetadata', 'chain must end at the session destination');
  const long = pkt({ tuple: sub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [...new Array<Address>(8).fill(M), S] }) });
  t.equal(rm.ingress(long).reason, 'chainTooLong');
  t.equal(rm.table.size().total, 0, 'nothing installed');
});

t.test('policy with a chain that is too long drops the SYN', async (t) => {
  const r = new Rewriter({ localAddresses: [A], policies: [{ id: 1, chain: new Array<Address>(9).fill(M) }] });
  const res = r.egress(pkt({ tuple: session, flags: TCP_SYN }));
  t.equal(res.verdict, 'drop');
  t.equal(res.reason, 'chainTooLong');
});

t.test('policies: first match in id order, ports and prefixes', async (t) => {
  const M2 = ip('10.0.1.2');
  const r = new Rewriter({
    localAddresses: [A],
    policies: [
      { id: 5, dst: parsePrefix('10.0.2.0/24'), chain: [M2] },
      { id: 2, dst: parsePrefix('10.0.2.0/24'), dport: [443, 443], chain: [M] },
      { id: 3, src: parsePrefix('10.9.0.0/16'), chain: [M] },
    ],
  });
  const ev = (res: RewriteResult) => (res.events[0]?.type === 'sessionCreated' ? res.events[0].subsession.dst : undefined);
  t.same(ev(r.egress(pkt({ tuple: tuple(A, 1, S, 443), flags: TCP_SYN }))), M, 'id 2 first');
  t.same(ev(r.egress(pkt({ tuple: tuple(A, 1, S, 80), flags: TCP_SYN }))), M2, 'id 5 when 2 does not match');
  t.equal(r.egress(pkt({ tuple: tuple(A, 1, ip('10.0.3.1'), 80), flags: TCP_SYN })).verdict, 'pass', 'no policy: pass');
  t.equal(r.egress(pkt({ tuple: tuple(A, 2, S, 80), flags: TCP_SYN | TCP_ACK })).verdict, 'pass', 'SYN-ACK never steered');
});

t.test('port allocation never collides (defect regression)', async (t) => {
  const r = new Rewriter({ localAddresses: [A], policies: [{ id: 1, chain: [M] }], ports: { low: 40000, high: 40099, seed: 7 } });
  const seen = new Set<number>();
  for (let i = 0; i < 95; i++) {
    const res = r.egress(pkt({ tuple: tuple(A, 1000 + i, S, 80), flags: TCP_SYN }));
    const ev = res.events[0];
    if (ev?.type !== 'sessionCreated') throw new Error(`no session ${i}`);
    t.notOk(seen.has(ev.subsession.sport), `port ${ev.subsession.sport} fresh`);
    seen.add(ev.subsession.sport);
  }
  // Other next hops may reuse ports: uniqueness is per ingress key.
  r.table.addPolicy({ id: 0, dst: parsePrefix('10.0.9.9/32'), chain: [ip('10.0.1.9')] });
  for (let i = 0; i < 5; i++) t.equal(r.egress(pkt({ tuple: tuple(A, 3000 + i, ip('10.0.9.9'), 80), flags: TCP_SYN })).verdict, 'rewrite');
  for (let i = 95; i < 100; i++) t.equal(r.egress(pkt({ tuple: tuple(A, 1000 + i, S, 80), flags: TCP_SYN })).verdict, 'rewrite');
  const full = r.egress(pkt({ tuple: tuple(A, 9999, S, 80), flags: TCP_SYN }));
  t.equal(full.verdict, 'drop');
  t.equal(full.reason, 'noPortAvailable');
  // Reproducible: the same seed gives the same choices.
  const a = new PortAllocator({ low: 1, high: 1000, seed: 3 });
  const b = new PortAllocator({ low: 1, high: 1000, seed: 3 });
  for (let i = 0; i < 10; i++) t.equal(a.allocate(() => false), b.allocate(() => false));
});

t.test('idle entries are reclaimed (defect regression)', async (t) => {
  let now = 0;
  const { rm } = chain();
  const ra = new Rewriter({ localAddresses: [A], policies: [{ id: 1, chain: [M] }], now: () => now });
  const [s1] = outputs(t, ra.egress(pkt({ tuple: session, flags: TCP_SYN })), 1);
  now = 10;
  const other = tuple(A, 40001, S, 80);
  ra.egress(pkt({ tuple: other, flags: TCP_SYN }));
  t.equal(ra.table.size().total, 4);
  now = 50;
  const gone = ra.table.reclaimIdle(now, 45);
  t.equal(gone.egress.length, 1);
  t.equal(gone.ingress.length, 1);
  t.same(gone.egress[0]?.key, session);
  t.equal(ra.table.size().total, 2, 'the younger session stays');
  t.same(ra.table.reclaimIdle(100, 10).egress.map((e) => e.key), [other]);
  t.equal(ra.table.size().total, 0);
  rm.ingress(s1!);
  t.equal(rm.table.reclaimIdle(1, 0).pending.length, 1, 'pending entries too');
  t.equal(rm.table.natTags.size, 0);
});

t.test('FIN both ways and RST end the session (events)', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  const mk = () => {
    const r = new Rewriter({ localAddresses: [A] });
    r.table.installEgress(egressEntry(session, rw(sub)));
    r.table.installIngress({ key: reverseTuple(sub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
    return r;
  };
  const r = mk();
  t.same(r.egress(pkt({ tuple: session, flags: TCP_FIN | TCP_ACK })).events, [], 'one FIN: not yet');
  t.same(r.egress(pkt({ tuple: session, flags: TCP_FIN | TCP_ACK })).events, [], 'retransmitted FIN: not yet');
  t.same(r.ingress(pkt({ tuple: reverseTuple(sub), flags: TCP_FIN | TCP_ACK })).events, [{ type: 'sessionEnded', key: session, reason: 'fin' }]);
  t.same(r.ingress(pkt({ tuple: reverseTuple(sub), flags: TCP_FIN | TCP_ACK })).events, [], 'reported once');
  const r2 = mk();
  t.same(r2.ingress(pkt({ tuple: reverseTuple(sub), flags: TCP_RST })).events, [{ type: 'sessionEnded', key: session, reason: 'rst' }]);
  const r3 = mk();
  const res = r3.egress(pkt({ tuple: session, flags: TCP_RST | TCP_ACK }));
  outputs(t, res, 1);
  t.same(res.events, [{ type: 'sessionEnded', key: session, reason: 'rst' }]);
  const removed = r3.table.removeSession(session);
  t.equal(removed.ingress.length, 1);
  t.equal(r3.table.size().total, 0);
});

t.test('not TCP passes; malformed TCP drops with a counter', async (t) => {
  const r = new Rewriter({ localAddresses: [A] });
  const good = pkt({ tuple: session });
  const udp = Uint8Array.from(good);
  udp[9] = 17;
  const res = r.ingress(udp);
  t.equal(res.verdict, 'pass');
  t.equal(res.packets[0], udp, 'the very same bytes');
  const bad = Uint8Array.from(good);
  bad[32] = 0x40; // data offset 4
  const d = r.egress(bad);
  t.equal(d.verdict, 'drop');
  t.equal(d.reason, 'malformedPacket');
  t.equal(r.count('malformedPacket'), 1);
  t.equal(r.ingress(pkt({ tuple: session })).verdict, 'pass', 'no entry: pass');
});

t.test('trailing link padding is trimmed from rewritten packets', async (t) => {
  const sub = tuple(A, 61000, M, 61000);
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(sub)));
  const input = pkt({ tuple: session });
  const padded = new Uint8Array(input.length + 6);
  padded.set(input);
  const [out] = outputs(t, r.egress(padded), 1);
  same(t, out, pkt({ tuple: sub }), 'datagram only');
});

// ---- two paths -----------------------------------------------------------

const oldSub = tuple(A, 61000, M, 61000);
const newSub = tuple(A, 61001, ip('10.0.1.7'), 61001);
const newDeltas = { seqDelta: 100000, ackDelta: 0xfffff000, tsvalDelta: 0, tsecrDelta: 0 };

/** An anchor with cutoff 1000, m (newPathMinSeq) 5000 unless given. */
function anchor(m: number | null = 5000, awaitPeerData = false) {
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub), { sndHigh: 1000 }));
  r.table.enterTwoPath(session, rw(newSub, newDeltas), undefined, awaitPeerData);
  r.table.getEgress(session)!.twoPath!.newPathMinSeq = m ?? undefined;
  return r;
}

const onNew = (spec: Partial<TcpPacketSpec>) =>
  pkt({
    ...spec,
    tuple: newSub,
    seq: ((spec.seq ?? 1000) + newDeltas.seqDelta) >>> 0,
    ack: spec.flags !== undefined && !(spec.flags & TCP_ACK) ? (spec.ack ?? 0) : ((spec.ack ?? 0) + newDeltas.ackDelta) >>> 0,
  });
const onOld = (spec: Partial<TcpPacketSpec>) => pkt({ ...spec, tuple: oldSub });

t.test('two-path: new data on the new path, retransmission on the old path', async (t) => {
  const r = anchor();
  t.equal(r.table.getEgress(session)?.twoPath?.seqCutoff, 1000, 'cutoff defaults to sndHigh');
  const data = new Uint8Array(100).fill(1);
  const [n] = outputs(t, r.egress(pkt({ tuple: session, seq: 1000, ack: 6000, payload: data })), 1);
  same(t, n, onNew({ seq: 1000, ack: 6000, payload: data }), 'seq >= cutoff and ack > m: new path, with its deltas');
  const [o] = outputs(t, r.egress(pkt({ tuple: session, seq: 900, ack: 4000, payload: data })), 1);
  same(t, o, onOld({ seq: 900, ack: 4000, payload: data }), 'retransmission below the cutoff, ack <= m: old path');
  const [pureOld] = outputs(t, r.egress(pkt({ tuple: session, seq: 1100, ack: 5000 })), 1);
  same(t, pureOld, onOld({ seq: 1100, ack: 5000 }), 'pure ack <= m: old path');
  const [pureNew] = outputs(t, r.egress(pkt({ tuple: session, seq: 1100, ack: 5001 })), 1);
  same(t, pureNew, onNew({ seq: 1100, ack: 5001 }), 'pure ack > m: new path');
  const r2 = anchor(null);
  const [u] = outputs(t, r2.egress(pkt({ tuple: session, seq: 1100, ack: 9999 })), 1);
  same(t, u, onOld({ seq: 1100, ack: 9999 }), 'nothing received on the new path yet: acks stay on the old path');
});

t.test('two-path: a segment straddling the cutoff is split, FIN with the new part', async (t) => {
  const r = anchor();
  const data = Uint8Array.from({ length: 100 }, (_, i) => i);
  const res = r.egress(pkt({ tuple: session, seq: 950, ack: 6000, flags: TCP_ACK | TCP_PSH | TCP_FIN, payload: data }));
  const [o, n] = outputs(t, res, 2);
  same(t, o, onOld({ seq: 950, ack: 5000, flags: TCP_ACK | TCP_PSH, payload: data.subarray(0, 50) }), 'old part: bytes below the cutoff, ack clipped to m');
  same(t, n, onNew({ seq: 1000, ack: 6000, flags: TCP_ACK | TCP_PSH | TCP_FIN, payload: data.subarray(50) }), 'new part: from the cutoff, with the FIN');
  t.equal(r.table.getEgress(session)?.sndHigh, 1051);
  // Only the FIN beyond the cutoff.
  const r2 = anchor();
  const [o2, n2] = outputs(t, r2.egress(pkt({ tuple: session, seq: 990, ack: 100, flags: TCP_ACK | TCP_FIN, payload: data.subarray(0, 10) })), 2);
  same(t, o2, onOld({ seq: 990, ack: 100, payload: data.subarray(0, 10) }), 'all data on the old path');
  same(t, n2, onNew({ seq: 1000, ack: 100, flags: TCP_ACK | TCP_FIN }), 'the FIN alone on the new path');
});

t.test('two-path: data and ack on different paths are split (both orders)', async (t) => {
  const data = new Uint8Array(10).fill(9);
  const opts: TcpOption[] = [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', tsval: 11, tsecr: 22 }];
  const r = anchor();
  const res = r.egress(pkt({ tuple: session, seq: 900, ack: 6000, flags: TCP_ACK | TCP_PSH, payload: data, options: opts, window: 77 }));
  const [d1, a1] = outputs(t, res, 2);
  same(t, d1, onOld({ seq: 900, ack: 5000, flags: TCP_ACK | TCP_PSH, payload: data, options: opts, window: 77 }), 'old data first, carrying only ack m');
  same(t, a1, onNew({ seq: 1000, ack: 6000, flags: TCP_ACK, options: opts, window: 77 }), 'then a pure ACK on the new path at sndHigh');
  const r2 = anchor();
  const [d2, a2] = outputs(t, r2.egress(pkt({ tuple: session, seq: 1000, ack: 4000, flags: TCP_ACK | TCP_PSH, payload: data, options: opts })), 2);
  same(t, d2, onNew({ seq: 1000, ack: 4000, flags: TCP_ACK | TCP_PSH, payload: data, options: opts }), 'new data first');
  same(t, a2, onOld({ seq: 1010, ack: 4000, flags: TCP_ACK, options: opts }), 'then the pure ACK on the old path');
});

t.test('two-path: SACK blocks clipped on the old path, removed on the new', async (t) => {
  const blocks = [
    { left: 4000, right: 4500 },
    { left: 4800, right: 5200 },
    { left: 5500, right: 6000 },
  ];
  const opts: TcpOption[] = [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks }];
  const nops = (n: number): TcpOption[] => new Array<TcpOption>(n).fill({ kind: 'nop' });
  const r = anchor();
  const [o] = outputs(t, r.egress(pkt({ tuple: session, seq: 1100, ack: 3000, options: opts })), 1);
  same(
    t,
    o,
    onOld({ seq: 1100, ack: 3000, options: [...nops(2), { kind: 'sack', blocks: [blocks[0]!, { left: 4800, right: 5000 }] }, ...nops(8)] }),
    'old path: clipped at m, the empty block dropped, NOPs keep the length',
  );
  const [n] = outputs(t, r.egress(pkt({ tuple: session, seq: 1100, ack: 7000, options: opts })), 1);
  const shifted = (b: { left: number; right: number }) => ({ left: (b.left + newDeltas.ackDelta) >>> 0, right: (b.right + newDeltas.ackDelta) >>> 0 });
  same(
    t,
    n,
    onNew({ seq: 1100, ack: 7000, options: [...nops(2), { kind: 'sack', blocks: [shifted(blocks[1]!), shifted(blocks[2]!)] }, ...nops(8)] }),
    'new path: blocks ending at or below m removed, the others moved by the new path ack delta',
  );
  const [all] = outputs(t, anchor(3000).egress(pkt({ tuple: session, seq: 1100, ack: 3000, options: opts })), 1);
  same(t, all, onOld({ seq: 1100, ack: 3000, options: nops(28) }), 'no block left: the option becomes NOPs');
});

t.test('two-path: RST goes on both paths', async (t) => {
  const r = anchor();
  const res = r.egress(pkt({ tuple: session, seq: 1100, ack: 6000, flags: TCP_RST | TCP_ACK }));
  const [o, n] = outputs(t, res, 2);
  same(t, o, onOld({ seq: 1100, ack: 5000, flags: TCP_RST | TCP_ACK }), 'old path, ack clipped');
  same(t, n, onNew({ seq: 1100, ack: 6000, flags: TCP_RST | TCP_ACK }), 'new path');
  t.equal(res.events[0]?.type, 'sessionEnded');
});

t.test('two-path ingress: first new-path sequence number and drain', async (t) => {
  // ingress entries installed after the two paths: feeding them, as the table sets it on those it holds
  const r = anchor(null);
  const inv = { seqDelta: 0x10000, ackDelta: 0xffffff9c /* -100 */, tsvalDelta: 0, tsecrDelta: 0 };
  r.table.installIngress({ key: reverseTuple(newSub), rewrite: rw(reverseTuple(session), inv), path: 'new', egressKey: session, feedsTwoPath: true, packets: 0, bytes: 0, lastSeen: 0 });
  r.table.installIngress({ key: reverseTuple(oldSub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, feedsTwoPath: true, packets: 0, bytes: 0, lastSeen: 0 });
  const tp = () => r.table.getEgress(session)!.twoPath!;
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(newSub), seq: 7000 - 0x10000, ack: 900 + 100 })), 1);
  t.equal(tp().newPathMinSeq, undefined, 'a pure ack does not set it');
  t.equal(tp().peerAckHigh, 900);
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(newSub), seq: 7000 - 0x10000, ack: 1000, payload: Uint8Array.of(1) })), 1);
  t.equal(tp().newPathMinSeq, 7000, 'in the local ack space (after the inverse delta)');
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(newSub), seq: 6500 - 0x10000, ack: 1000, payload: Uint8Array.of(1) })), 1);
  t.equal(tp().newPathMinSeq, 6500, 'minimum, whatever the order');
  t.ok(tp().received, 'no box on the old segment changes the stream: the peer\'s acks say it all');
  const res = r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1000 }));
  t.same(res.events, [{ type: 'oldPathDrained', egressKey: session }], 'peer acked up to the cutoff on the old path');
  t.same(r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1001 })).events, [], 'once');
  t.ok(tp().drained);
  r.table.leaveTwoPath(session, 'new');
  t.same(r.table.getEgress(session)?.old.tuple, newSub, 'completion: the new path is the only path');
  t.equal(r.table.getEgress(session)?.twoPath, undefined);
});

t.test('the receiving half: the old path is done only once the stack acknowledged where the peer says its old-path data ends', async (t) => {
  // A splicing proxy acknowledges the peer's last bytes before it delivers
  // them: the peer's teardown says where they end, and this anchor keeps
  // the old path until its own stack has acknowledged that far.
  const r = anchor(null, true);
  r.table.installIngress({ key: reverseTuple(oldSub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, feedsTwoPath: true, packets: 0, bytes: 0, lastSeen: 0 });
  const tp = () => r.table.getEgress(session)!.twoPath!;
  t.same(r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1000 })).events, [], 'our data is acknowledged, but the peer has not said where its data ends');
  t.same([tp().drained, tp().received], [true, false]);
  outputs(t, r.egress(pkt({ tuple: session, seq: 1000, ack: 6500 })), 1);
  t.equal(r.table.getEgress(session)!.ackSentHigh, 6500, 'the highest ack the stack sent is kept');
  t.same(r.table.setPeerEnd(session, 8000)?.received, false, 'the peer says its data ends at 8000: not yet received');
  t.equal(r.table.setPeerEnd(session, 9000)?.peerEnd, 8000, 'the first value told stays');
  t.same(r.egress(pkt({ tuple: session, seq: 1000, ack: (6500 + 2 ** 31) >>> 0 })).events, [], 'an ack far beyond a window does not count');
  t.equal(r.table.getEgress(session)!.ackSentHigh, 6500);
  t.same(r.egress(pkt({ tuple: session, seq: 1000, ack: 7999 })).events, [], 'one byte short');
  t.same(r.egress(pkt({ tuple: session, seq: 1000, ack: 8000 })).events, [{ type: 'oldPathDrained', egressKey: session }], 'the stack acknowledged the last old-path byte');
  t.same(r.egress(pkt({ tuple: session, seq: 1000, ack: 8001 })).events, [], 'once');

  // the other order: received first, then our own data acknowledged
  const q = anchor(null, true);
  q.table.installIngress({ key: reverseTuple(oldSub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, feedsTwoPath: true, packets: 0, bytes: 0, lastSeen: 0 });
  outputs(t, q.egress(pkt({ tuple: session, seq: 1000, ack: 8000 })), 1);
  t.same(q.table.setPeerEnd(session, 8000)?.received, true, 'already acknowledged when told');
  t.same(q.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 8000, ack: 999 })).events, []);
  t.same(q.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 8000, ack: 1000 })).events, [{ type: 'oldPathDrained', egressKey: session }]);
  t.equal(new Rewriter({ localAddresses: [A] }).table.setPeerEnd(session, 1), undefined, 'no entry on two paths: nothing to record');
  const n = anchor(null, true);
  t.same(n.table.setPeerEnd(session, undefined)?.received, true, 'the peer sent nothing on the old path: nothing to wait for');
});

t.test('two-path on an idle session starts drained; the ack high-water survives completion', async (t) => {
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub), { sndHigh: 1000 }));
  r.table.installIngress({ key: reverseTuple(oldSub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  r.table.installIngress({ key: reverseTuple(newSub), rewrite: rw(reverseTuple(session)), path: 'new', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1000 })), 1);
  t.equal(r.table.getIngress(reverseTuple(oldSub))?.ackHigh, 1000, 'one-path ingress keeps the highest ack');
  const tp = r.table.enterTwoPath(session, rw(newSub));
  t.same([tp.peerAckHigh, tp.drained], [1000, true], 'everything sent is already acknowledged');
  r.table.leaveTwoPath(session, 'new');
  t.equal(r.table.getIngress(reverseTuple(newSub))?.ackHigh, 1000, 'carried to the path that stays');
  const again = r.table.enterTwoPath(session, rw(oldSub));
  t.ok(again.drained, 'so the next reconfiguration of the idle session drains at once too');
});

t.test('feedsTwoPath: set on the answering ingress entries for the two paths, and only they feed them', async (t) => {
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub), { sndHigh: 1000 }));
  r.table.installIngress({ key: reverseTuple(oldSub), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  r.table.installIngress({ key: reverseTuple(newSub), rewrite: rw(reverseTuple(session)), path: 'new', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  const stranger = tuple('10.0.0.9', 7000, '10.0.0.1', 40000);
  r.table.installIngress({ key: reverseTuple(stranger), rewrite: rw(reverseTuple(session)), path: 'old', egressKey: tuple('10.0.0.1', 1, '10.0.0.2', 2), packets: 0, bytes: 0, lastSeen: 0 });
  const feeds = (k: FiveTuple) => r.table.getIngress(reverseTuple(k))?.feedsTwoPath === true;
  t.same([feeds(oldSub), feeds(newSub)], [false, false], 'one path: nothing to feed');
  r.table.prepareTwoPath(session, rw(newSub));
  t.same([feeds(oldSub), feeds(newSub), feeds(stranger)], [true, true, false], 'prepared: both paths feed it, an entry answering another egress entry does not');
  const tp = r.table.enterTwoPath(session, rw(newSub));
  t.same([feeds(oldSub), feeds(newSub)], [true, true], 'still after the cutover');
  // an entry that does not feed the two paths tells them nothing, but a FIN still counts
  delete r.table.getIngress(reverseTuple(oldSub))!.feedsTwoPath;
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1000 })), 1);
  t.equal(tp.peerAckHigh, undefined, 'an ack on an entry that does not feed: not seen');
  t.notOk(tp.drained);
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6000, ack: 1000, flags: TCP_ACK | TCP_FIN })), 1);
  t.ok(r.table.getEgress(session)?.finReceived, 'the FIN is tracked all the same');
  t.equal(tp.peerAckHigh, undefined);
  r.table.getIngress(reverseTuple(oldSub))!.feedsTwoPath = true;
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(oldSub), seq: 6001, ack: 1000 })), 1);
  t.same([tp.peerAckHigh, tp.drained], [1000, true], 'feeding again: the ack counts');
  r.table.leaveTwoPath(session, 'new');
  t.same([feeds(oldSub), feeds(newSub)], [false, false], 'left the two paths: cleared');
});

t.test('two-path entered before anything was sent: the first packet fixes the cutoff', async (t) => {
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub)));
  const tp = r.table.enterTwoPath(session, rw(newSub));
  t.same([tp.cutoffPending, tp.drained], [true, true]);
  // its data goes on the new path; its ack (nothing received on the new path yet) on the old one
  const [data, ack] = outputs(t, r.egress(pkt({ tuple: session, seq: 777, ack: 1, payload: Uint8Array.of(9) })), 2);
  same(t, data!, pkt({ tuple: newSub, seq: 777, ack: 1, payload: Uint8Array.of(9) }), 'data on the new path');
  t.equal(formatTuple(parseTcpPacket(ack!).tuple), formatTuple(oldSub), 'the ack on the old path');
  t.same([tp.seqCutoff, tp.cutoffPending], [777, false]);
});

t.test('a prepared new path splits acks before any data moves (found by the Spin model)', async (t) => {
  // The right anchor is Waiting: the peer may already send on the new path.
  // An ack for new-path data must not go on the old path, whose boxes never
  // carried that data; data itself stays on the old path until the cutover.
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub), { sndHigh: 1000 }));
  r.table.installIngress({ key: reverseTuple(newSub), rewrite: rw(reverseTuple(session)), path: 'new', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  const tp = r.table.prepareTwoPath(session, rw(newSub));
  t.same([tp.awaitingCutover, tp.drained], [true, false]);
  outputs(t, r.ingress(pkt({ tuple: reverseTuple(newSub), seq: 5000, ack: 1000, payload: Uint8Array.of(1) })), 1);
  t.equal(tp.newPathMinSeq, 5000, 'the lowest new-path sequence number is tracked while waiting');
  t.notOk(tp.drained, 'no drain before the cutover');
  const data = Uint8Array.of(7, 7);
  const [onOldPath, ackOnNew] = outputs(t, r.egress(pkt({ tuple: session, seq: 1000, ack: 5001, payload: data })), 2);
  same(t, onOldPath!, pkt({ tuple: oldSub, seq: 1000, ack: 5000, payload: data }), 'data stays on the old path, its ack clipped to m');
  t.equal(formatTuple(parseTcpPacket(ackOnNew!).tuple), formatTuple(newSub), 'the full ack goes on the new path');
  const cut = r.table.enterTwoPath(session, rw(newSub));
  t.same([cut.awaitingCutover, cut.seqCutoff, cut.newPathMinSeq], [false, 1002, 5000], 'the cutover keeps m and fixes the cutoff');
  const [moved] = outputs(t, r.egress(pkt({ tuple: session, seq: 1002, ack: 5001, payload: data })), 1);
  t.equal(formatTuple(parseTcpPacket(moved!).tuple), formatTuple(newSub), 'new data moves to the new path');
  r.table.leaveTwoPath(session, 'old');
  t.equal(r.table.getEgress(session)?.twoPath, undefined, 'an abort drops a prepared path');
});

t.test('two-path: sequence wraparound at the cutoff', async (t) => {
  const r = new Rewriter({ localAddresses: [A] });
  r.table.installEgress(egressEntry(session, rw(oldSub), { sndHigh: 0xfffffff0 }));
  r.table.enterTwoPath(session, rw(newSub), 0x10);
  r.table.getEgress(session)!.twoPath!.newPathMinSeq = 0xfffffffe;
  const data = Uint8Array.from({ length: 40 }, (_, i) => i);
  const [o, n] = outputs(t, r.egress(pkt({ tuple: session, seq: 0xfffffff8, ack: 3, payload: data })), 2);
  same(t, o, onOld({ seq: 0xfffffff8, ack: 0xfffffffe, payload: data.subarray(0, 24) }), 'old part wraps past 0 to the cutoff');
  same(t, n, pkt({ tuple: newSub, seq: 0x10, ack: 3, payload: data.subarray(24) }), 'new part from 0x10');
});

t.test('entries conflict: a second session on the same tuple at a box drops', async (t) => {
  const { ra, rm, synIn } = chain();
  const [s1] = outputs(t, ra.egress(synIn), 1);
  outputs(t, rm.ingress(s1!), 1);
  const otherSub = tuple(ip('10.0.0.3'), 61000, M, 61000);
  const res = rm.ingress(pkt({ tuple: otherSub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [S] }) }));
  t.equal(res.reason, 'entryConflict');
  const p = parseTcpPacket(s1!);
  const other = encodeSynMetadata({ session: tuple(A, 40009, S, 80), chain: [S] });
  const res2 = rm.ingress(buildTcpPacket({ ...parseAsSpec(s1!), payload: other, tuple: p.tuple }));
  t.equal(res2.reason, 'entryConflict', 'known subsession, different session');
});

t.test('a pending entry its session left behind does not keep a new session with the same tuple out', async (t) => {
  const { ra, rm, synIn } = chain();
  const [s1] = outputs(t, ra.egress(synIn), 1);
  outputs(t, rm.ingress(s1!), 1);
  const stale = rm.table.getPending(session)!;
  t.ok(stale, 'the box holds a pending entry for the session');
  // the session ends at the box (a terminating proxy never consumed the pending entry)
  rm.table.removeSession(reverseTuple(session));
  rm.table.removeIngress(parseTcpPacket(s1!).tuple);
  // the client opens a new connection from the same port, on a new subsession
  const otherSub = tuple(ip('10.0.0.3'), 61001, M, 61001);
  const res = rm.ingress(pkt({ tuple: otherSub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [S] }) }));
  t.equal(res.reason, undefined, 'not dropped');
  t.equal(res.packets.length, 1, 'the SYN goes on');
  const fresh = rm.table.getPending(session)!;
  t.same(fresh.fromSubsession, otherSub, 'the pending entry is the new session\'s');
  const byOldTag = rm.table.pendingByNatTag(stale.natTag);
  t.ok(byOldTag === undefined || byOldTag === fresh, 'the old NAT tag leads to nothing or to the new entry');
});

t.test('odd corners: foreign experimental option, no local address, mixed families, config errors', async (t) => {
  const { ra, rm, synIn } = chain();
  const [s1] = outputs(t, ra.egress(synIn), 1);
  const [s2] = outputs(t, rm.ingress(s1!), 1);
  // The application emits a SYN with another tuple and a kind-253 option of another experiment: not ours.
  const p = parseTcpPacket(s2!);
  const foreign: TcpOption = { kind: 'unknown', code: 253, data: Uint8Array.of(0x12, 0x34, 0, 0, 0, 1) };
  const other = buildTcpPacket({ tuple: tuple(M, 5555, S, 80), seq: p.seq, ack: 0, flags: TCP_SYN, window: 1, options: [foreign, ...synOptions] });
  const r = rm.egress(other);
  t.equal(r.verdict, 'pass', 'no pending entry found');
  t.ok(rm.table.getPending(session));
  // The pending entry's onward SYN with data is not steered.
  const withData = buildTcpPacket({ ...parseAsSpec(s2!), payload: Uint8Array.of(1) });
  t.equal(rm.egress(withData).verdict, 'pass');
  t.equal(rm.count('tfoNotSteered'), 1);
  // No local address of the session's family.
  const v6only = new Rewriter({ localAddresses: [ip('fd00::1')], policies: [{ id: 1, chain: [M] }] });
  t.equal(v6only.egress(pkt({ tuple: session, flags: TCP_SYN })).verdict, 'pass');
  t.equal(v6only.count('noLocalAddress'), 1);
  const rm6 = new Rewriter({ localAddresses: [ip('fd00::1')] });
  rm6.table.installPending({ sessionTuple: session, chain: [S], fromSubsession: tuple(A, 1, M, 1), natTag: 9, created: 0 });
  t.equal(rm6.egress(pkt({ tuple: session, flags: TCP_SYN })).verdict, 'pass', 'middlebox without an address of the family');
  // Metadata mixing families.
  const mixed = rm.ingress(pkt({ tuple: tuple(A, 62000, M, 62000), flags: TCP_SYN, payload: encodeSynMetadata({ session: tuple(A, 1, S, 2), chain: [ip('fd00::9'), S] }) }));
  t.equal(mixed.reason, 'malformedMetadata');
  t.throws(() => new PortAllocator({ low: 10, high: 5 }));
  t.throws(() => new PortAllocator({ low: 0, high: 5 }));
  t.equal(new PortAllocator({ low: 7, high: 7 }).allocate((port) => port === 7), undefined);
  t.ok(ra.table.removePolicy(1));
  t.notOk(ra.table.removePolicy(1));
  t.throws(() => rm.table.installPending({ sessionTuple: tuple(A, 9, S, 9), chain: [S], fromSubsession: tuple(A, 1, M, 1), natTag: rm.table.getPending(session)!.natTag, created: 0 }), 'NAT tag in use');
  t.throws(() => ra.table.enterTwoPath(tuple(A, 1, S, 1), plainRewrite(session)), 'no entry');
  t.throws(() => ra.table.leaveTwoPath(session, 'old'), 'not two-path');
  ra.table.installEgress(egressEntry(tuple(A, 2, S, 2), rw(session)));
  // nothing sent yet: nothing to drain, and the first packet sent will fix the cutoff
  const pendingCut = ra.table.enterTwoPath(tuple(A, 2, S, 2), plainRewrite(session));
  t.same([pendingCut.cutoffPending, pendingCut.drained], [true, true], 'nothing sent: cutoff pending, drained');
  ra.table.leaveTwoPath(tuple(A, 2, S, 2), 'old');
  ra.table.enterTwoPath(tuple(A, 2, S, 2), plainRewrite(session), 5);
  t.throws(() => ra.table.enterTwoPath(tuple(A, 2, S, 2), plainRewrite(session), 5), 'already two-path');
  t.same(ra.table.leaveTwoPath(tuple(A, 2, S, 2), 'old'), plainRewrite(session), 'abort returns the dropped new path');
});

t.test('authenticated metadata: signed chains pass, unsigned or foreign ones drop', async (t) => {
  const secret = (b: number) => new Uint8Array(32).fill(b);
  const keys = new KeyRing([{ keyId: 1, secret: secret(1) }]);
  const ra = new Rewriter({ localAddresses: [A], keys, policies: [{ id: 1, chain: [M] }] });
  const rm = new Rewriter({ localAddresses: [M], keys });
  const syn = pkt({ tuple: session, flags: TCP_SYN, options: synOptions });
  const [s1] = outputs(t, ra.egress(syn), 1);
  t.equal(hex(parseTcpPacket(s1!).payload), hex(encodeSynMetadata({ session, chain: [S] }, keys)), 'signed with the send key');
  outputs(t, rm.ingress(s1!), 1);
  const sub = tuple(A, 61000, M, 61000);
  const rm2 = new Rewriter({ localAddresses: [M], keys });
  const unsigned = rm2.ingress(pkt({ tuple: sub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [S] }) }));
  t.equal(unsigned.reason, 'authFailed', 'unsigned metadata refused');
  const foreign = new KeyRing([{ keyId: 1, secret: secret(2) }]);
  const forged = rm2.ingress(pkt({ tuple: sub, flags: TCP_SYN, payload: encodeSynMetadata({ session, chain: [S] }, foreign) }));
  t.equal(forged.reason, 'authFailed', 'wrong key refused');
  t.equal(rm2.count('authFailed'), 2);
  t.equal(rm2.table.size().total, 0);
});

t.test('stragglers to a subsession port nothing maps are dropped, not answered by the stack', async (t) => {
  const { rm } = chain();
  const stray = pkt({ tuple: tuple(A, 61234, M, 61234), flags: TCP_ACK, seq: 5, ack: 9, payload: Uint8Array.of(1, 2, 3) });
  const r = rm.ingress(stray);
  t.equal(r.verdict, 'drop');
  t.equal(r.reason, 'staleSubsession');
  t.equal(rm.count('staleSubsession'), 1);
  t.equal(rm.ingress(pkt({ tuple: tuple(A, 61234, M, 61235), flags: TCP_ACK })).verdict, 'pass', 'ports differ: an ordinary connection');
  t.equal(rm.ingress(pkt({ tuple: tuple(A, 60999, M, 60999), flags: TCP_ACK })).verdict, 'pass', 'below the range');
  t.equal(rm.ingress(pkt({ tuple: tuple(M, 61234, A, 61234), flags: TCP_ACK })).verdict, 'pass', 'not to a local address');
});
