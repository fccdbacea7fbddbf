import t from 'tap';
import fc from 'fast-check';
import {
  EGRESS_OFFSETS,
  EGRESS_VALUE_SIZE,
  INGRESS_VALUE_SIZE,
  LayoutError,
  MAX_CHAIN_LENGTH,
  MAX_SYN_PAYLOAD,
  NAT_TAG_KEY_SIZE,
  PATH_REWRITE_SIZE,
  PENDING_VALUE_SIZE,
  POLICY_VALUE_SIZE,
  SYN_PAYLOAD_VALUE_SIZE,
  TUPLE_KEY_SIZE,
  type Address,
  type EgressEntry,
  type FiveTuple,
  type IngressEntry,
  type PathRewrite,
  type PendingEntry,
  type Policy,
  decodeEgressEntry,
  decodeIngressEntry,
  decodeNatTagKey,
  decodePathRewrite,
  decodePendingEntry,
  decodePolicy,
  decodeSynPayloadValue,
  decodeTupleKey,
  encodeEgressValue,
  encodeIngressValue,
  encodeNatTagKey,
  encodePathRewrite,
  encodePendingValue,
  encodePolicyKey,
  encodePolicyValue,
  encodeSynPayloadValue,
  encodeTableMaps,
  encodeTupleKey,
  fromHex,
  hex,
  ip,
  parsePrefix,
  tuple,
} from '@dysco/protocol';

t.test('fixed sizes', async (t) => {
  t.equal(TUPLE_KEY_SIZE, 40);
  t.equal(PATH_REWRITE_SIZE, 60);
  t.equal(EGRESS_VALUE_SIZE, 176);
  t.equal(INGRESS_VALUE_SIZE, 136);
  t.equal(PENDING_VALUE_SIZE, 216);
  t.equal(POLICY_VALUE_SIZE, 216);
  t.equal(SYN_PAYLOAD_VALUE_SIZE, 4 + MAX_SYN_PAYLOAD);
  t.equal(NAT_TAG_KEY_SIZE, 4);
  t.equal(MAX_CHAIN_LENGTH, 8);
  // u64 fields are 8-aligned.
  for (const o of [EGRESS_OFFSETS.packets, EGRESS_OFFSETS.bytes, EGRESS_OFFSETS.lastSeen, 104, 112, 120, 48]) t.equal(o % 8, 0);
});

t.test('tuple key bytes: zero-padded IPv4, network-order ports, family byte', async (t) => {
  const k = encodeTupleKey(tuple('10.0.0.1', 0x1234, '192.168.1.2', 80));
  t.equal(
    hex(k),
    '0a000001000000000000000000000000' + 'c0a80102000000000000000000000000' + '1234' + '0050' + '04' + '000000',
  );
  const k6 = encodeTupleKey(tuple('fd00::1', 1, 'fd00::2', 2));
  t.equal(hex(k6.subarray(32)), '0001000206000000');
  t.same(decodeTupleKey(k6), tuple('fd00::1', 1, 'fd00::2', 2));
  const bad = Uint8Array.from(k6);
  bad[36] = 5;
  t.throws(() => decodeTupleKey(bad), LayoutError);
  t.throws(() => decodeTupleKey(k6.subarray(1)), LayoutError);
});

t.test('path rewrite bytes: little-endian deltas', async (t) => {
  const r: PathRewrite = { tuple: tuple('10.0.0.1', 1, '10.0.0.2', 2), seqDelta: 0x01020304, ackDelta: 0xfffffffe, tsvalDelta: 5, tsecrDelta: 6, wsFrom: 7, wsTo: 2 };
  const b = encodePathRewrite(r);
  t.equal(hex(b.subarray(40)), '04030201' + 'feffffff' + '05000000' + '06000000' + '07' + '02' + '0000');
  t.same(decodePathRewrite(b), r);
  t.throws(() => encodePathRewrite({ ...r, wsFrom: 15 }), LayoutError);
});

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 0xffff });
const counter = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const addr4: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4, bytes }));
const addr6: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6, bytes }));
const tupleArb: fc.Arbitrary<FiveTuple> = fc.oneof(
  fc.record({ src: addr4, dst: addr4, sport: port, dport: port }),
  fc.record({ src: addr6, dst: addr6, sport: port, dport: port }),
);
const shift = fc.integer({ min: 0, max: 14 });
const pathArb: fc.Arbitrary<PathRewrite> = fc.record({ tuple: tupleArb, seqDelta: u32, ackDelta: u32, tsvalDelta: u32, tsecrDelta: u32, wsFrom: shift, wsTo: shift });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const egressArb: fc.Arbitrary<EgressEntry> = fc.record({
  key: tupleArb,
  old: pathArb,
  twoPath: opt(
    fc.record(
      { newPath: pathArb, seqCutoff: u32, newPathMinSeq: opt(u32), peerAckHigh: opt(u32), drained: fc.boolean(), peerEnd: u32, received: fc.boolean() },
      { requiredKeys: ['newPath', 'seqCutoff', 'newPathMinSeq', 'peerAckHigh', 'drained', 'received'] },
    ),
  ),
  sndHigh: opt(u32),
  ackSentHigh: opt(u32),
  packets: counter,
  bytes: counter,
  lastSeen: counter,
  synPayload: opt(fc.uint8Array({ maxLength: MAX_SYN_PAYLOAD })),
  finSent: fc.boolean(),
  finReceived: fc.boolean(),
  ended: fc.boolean(),
});
const ingressArb: fc.Arbitrary<IngressEntry> = fc.record({
  key: tupleArb,
  rewrite: pathArb,
  path: fc.constantFrom('old' as const, 'new' as const),
  egressKey: tupleArb,
  packets: counter,
  bytes: counter,
  lastSeen: counter,
});
const chainArb = fc.array(fc.oneof(addr4, addr6), { maxLength: MAX_CHAIN_LENGTH });
const pendingArb: fc.Arbitrary<PendingEntry> = fc.record({ sessionTuple: tupleArb, chain: chainArb, fromSubsession: tupleArb, natTag: u32, created: counter });
const rangeArb = fc.tuple(port, port);
const prefixArb = fc.oneof(
  fc.tuple(addr4, fc.integer({ min: 0, max: 32 })).map(([address, length]) => ({ address, length })),
  fc.tuple(addr6, fc.integer({ min: 0, max: 128 })).map(([address, length]) => ({ address, length })),
);
const policyArb: fc.Arbitrary<Policy> = fc.record(
  { id: u32, src: prefixArb, dst: prefixArb, sport: rangeArb, dport: rangeArb, chain: chainArb },
  { requiredKeys: ['id', 'chain'] },
);

t.test('property: round trips', async (t) => {
  const runs = { numRuns: 1000 };
  fc.assert(fc.property(tupleArb, (x) => t.same(decodeTupleKey(encodeTupleKey(x)), x) || true), runs);
  fc.assert(
    fc.property(egressArb, (e) => {
      const v = encodeEgressValue(e);
      if (v.length !== EGRESS_VALUE_SIZE) return false;
      const d = decodeEgressEntry(encodeTupleKey(e.key), v, e.synPayload);
      return JSON.stringify(norm(d)) === JSON.stringify(norm(e));
    }),
    runs,
  );
  fc.assert(
    fc.property(ingressArb, (e) => {
      const v = encodeIngressValue(e);
      return v.length === INGRESS_VALUE_SIZE && JSON.stringify(norm(decodeIngressEntry(encodeTupleKey(e.key), v))) === JSON.stringify(norm(e));
    }),
    runs,
  );
  fc.assert(
    fc.property(pendingArb, (e) => {
      const v = encodePendingValue(e);
      return v.length === PENDING_VALUE_SIZE && JSON.stringify(norm(decodePendingEntry(encodeTupleKey(e.sessionTuple), v))) === JSON.stringify(norm(e));
    }),
    runs,
  );
  fc.assert(
    fc.property(policyArb, (p) => {
      const v = encodePolicyValue(p);
      return v.length === POLICY_VALUE_SIZE && JSON.stringify(norm(decodePolicy(v))) === JSON.stringify(norm(p));
    }),
    runs,
  );
  fc.assert(fc.property(u32, (tag) => decodeNatTagKey(encodeNatTagKey(tag)) === tag), runs);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: MAX_SYN_PAYLOAD }), (b) => Buffer.from(decodeSynPayloadValue(encodeSynPayloadValue(b))).equals(Buffer.from(b))),
    runs,
  );
});

/** JSON-comparable form: byte arrays as hex, undefined fields dropped, keys sorted. */
function norm(x: unknown): unknown {
  if (x instanceof Uint8Array) return hex(x);
  if (Array.isArray(x)) return x.map(norm);
  if (x && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) {
      const v = (x as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = norm(v);
    }
    return out;
  }
  return x;
}

t.test('egress value: flag bits and offsets', async (t) => {
  const e: EgressEntry = {
    key: tuple('10.0.0.1', 1000, '10.0.0.9', 80),
    old: { tuple: tuple('10.0.0.1', 61000, '10.0.0.5', 61000), seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 },
    twoPath: {
      newPath: { tuple: tuple('10.0.0.1', 61001, '10.0.0.6', 61001), seqDelta: 1, ackDelta: 2, tsvalDelta: 3, tsecrDelta: 4, wsFrom: 0, wsTo: 0 },
      seqCutoff: 0x11223344,
      newPathMinSeq: undefined,
      peerAckHigh: 0x55667788,
      drained: true,
      received: false,
    },
    sndHigh: 0x99aabbcc,
    packets: 3,
    bytes: 0x1_0000_0001,
    lastSeen: 42,
    synPayload: Uint8Array.of(1, 2, 3),
    finSent: true,
    finReceived: false,
    ended: false,
  };
  const v = encodeEgressValue(e);
  // TWO_PATH | PEER_ACK_HIGH | DRAINED | SND_HIGH | FIN_SENT | SYN_PAYLOAD
  t.equal(hex(v.subarray(120, 124)), '3d010000');
  t.equal(hex(v.subarray(124, 128)), '44332211');
  t.equal(hex(v.subarray(128, 132)), '00000000', 'invalid newPathMinSeq left zero');
  t.equal(hex(v.subarray(140, 148)), '0000000000000000', 'invalid ackSentHigh and peerEnd left zero');
  const v2 = encodeEgressValue({ ...e, ackSentHigh: 0x01020304, twoPath: { ...e.twoPath!, peerEnd: 0x0a0b0c0d, received: true } });
  // ... | ACK_SENT_HIGH | PEER_END | RECEIVED
  t.equal(hex(v2.subarray(120, 124)), '3d390000');
  t.equal(hex(v2.subarray(140, 148)), '040302010d0c0b0a');
  t.equal(hex(v.subarray(160, 168)), '0100000001000000', 'u64 little-endian');
  t.throws(() => decodeEgressEntry(encodeTupleKey(e.key), v), LayoutError, 'payload flag without payload');
  const d = decodeEgressEntry(encodeTupleKey(e.key), v, e.synPayload);
  t.same(norm(d), norm(e));
  const junk = Uint8Array.from(v);
  junk[122] = 1;
  t.throws(() => decodeEgressEntry(encodeTupleKey(e.key), junk, e.synPayload), LayoutError, 'unknown flag bits');
  t.throws(() => encodeEgressValue({ ...e, lastSeen: 1.5 }), LayoutError, 'non-integer clock');
  t.throws(() => encodeEgressValue({ ...e, packets: -1 }), LayoutError);
});

t.test('ingress, pending and policy values: spot checks and rejects', async (t) => {
  const i: IngressEntry = {
    key: tuple('10.0.0.5', 61000, '10.0.0.1', 61000),
    rewrite: { tuple: tuple('10.0.0.9', 80, '10.0.0.1', 1000), seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 },
    path: 'new',
    egressKey: tuple('10.0.0.1', 1000, '10.0.0.9', 80),
    packets: 1,
    bytes: 2,
    lastSeen: 3,
  };
  const v = encodeIngressValue(i);
  t.equal(v[100], 1);
  t.same(norm(decodeIngressEntry(encodeTupleKey(i.key), v)), norm(i));
  const bad = Uint8Array.from(v);
  bad[100] = 2;
  t.throws(() => decodeIngressEntry(encodeTupleKey(i.key), bad), LayoutError);
  t.equal(v[102], 0, 'not feeding two paths');
  const feeding = encodeIngressValue({ ...i, feedsTwoPath: true });
  t.equal(feeding[102], 1, 'feedsTwoPath at 102');
  t.equal(decodeIngressEntry(encodeTupleKey(i.key), feeding).feedsTwoPath, true);
  const badFeed = Uint8Array.from(feeding);
  badFeed[102] = 2;
  t.throws(() => decodeIngressEntry(encodeTupleKey(i.key), badFeed), LayoutError, 'feedsTwoPath is 0 or 1');

  const p: PendingEntry = { sessionTuple: i.egressKey, chain: [ip('10.0.0.7'), ip('10.0.0.9')], fromSubsession: i.key, natTag: 0xcafe, created: 9 };
  const pv = encodePendingValue(p);
  t.equal(hex(pv.subarray(40, 45)), 'feca000002');
  t.equal(hex(pv.subarray(56, 76)), '0a000007' + '00'.repeat(12) + '04000000');
  t.same(norm(decodePendingEntry(encodeTupleKey(p.sessionTuple), pv)), norm(p));
  t.throws(() => encodePendingValue({ ...p, chain: new Array(MAX_CHAIN_LENGTH + 1).fill(ip('10.0.0.1')) }), LayoutError);
  const longChain = Uint8Array.from(pv);
  longChain[44] = MAX_CHAIN_LENGTH + 1;
  t.throws(() => decodePendingEntry(encodeTupleKey(p.sessionTuple), longChain), LayoutError);

  const pol: Policy = { id: 7, dst: parsePrefix('10.0.0.0/24'), dport: [80, 443], chain: [ip('10.0.0.7')] };
  const polv = encodePolicyValue(pol);
  t.equal(hex(encodePolicyKey(7)), '07000000');
  t.equal(hex(polv.subarray(0, 8)), '07000000' + '0a' + '00' + '18' + '01');
  t.equal(hex(polv.subarray(52, 56)), '5000bb01');
  t.same(norm(decodePolicy(polv)), norm(pol));
  const badPrefix = Uint8Array.from(polv);
  badPrefix[6] = 33;
  t.throws(() => decodePolicy(badPrefix), LayoutError);
  t.throws(() => encodeSynPayloadValue(new Uint8Array(MAX_SYN_PAYLOAD + 1)), LayoutError);
  t.same(decodeSynPayloadValue(fromHex('0200' + '0000' + 'abcd' + '00'.repeat(MAX_SYN_PAYLOAD - 2))), Uint8Array.of(0xab, 0xcd));
});

t.test('whole-table export', async (t) => {
  const key = tuple('10.0.0.1', 1000, '10.0.0.9', 80);
  const sub = tuple('10.0.0.1', 61000, '10.0.0.5', 61000);
  const plain = (tu: FiveTuple): PathRewrite => ({ tuple: tu, seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 });
  const e: EgressEntry = { key, old: plain(sub), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0, synPayload: Uint8Array.of(1) };
  const pending: PendingEntry = { sessionTuple: key, chain: [ip('10.0.0.9')], fromSubsession: sub, natTag: 5, created: 0 };
  const maps = encodeTableMaps({
    egress: new Map([['k', e]]),
    ingress: new Map(),
    pending: new Map([['k', pending]]),
    policies: [{ id: 1, chain: [] }],
  });
  t.equal(maps.egress.length, 1);
  t.equal(maps.synPayloads.length, 1);
  t.same(maps.natTags[0]?.key, encodeNatTagKey(5));
  t.same(maps.natTags[0]?.value, encodeTupleKey(key));
  t.equal(maps.policies.length, 1);
});
