import t from 'tap';
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import {
  AuthConfigError,
  AuthenticationError,
  CONTROL_MAX_BYTES,
  CONTROL_MAX_CHAIN,
  CONTROL_TYPES,
  DyscoError,
  KeyRing,
  NACK_REASONS,
  ReplayCounter,
  ReplayWindow,
  WireFormatError,
  ZERO_DELTAS,
  type Address,
  type ControlMessage,
  type ControlType,
  type Deltas,
  type FiveTuple,
  decodeControl,
  encodeControl,
  fromHex,
  hex,
  ip,
  tuple,
} from '@dysco/protocol';

// ---------------------------------------------------------------------------
// Helpers

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 .. 1f
const KEY_ID = 0x2a;
const ring = new KeyRing([{ keyId: KEY_ID, secret: SECRET }]);

/** Plain-data form for comparisons: bytes as hex, bigints as text. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return hex(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = norm((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

function authReason(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof AuthenticationError) return e.reason;
    throw e;
  }
  return undefined;
}

function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const h8 = (n: number) => n.toString(16).padStart(2, '0');
const h16 = (n: number) => n.toString(16).padStart(4, '0');
const h32 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

// ---------------------------------------------------------------------------
// Golden vectors, written field by field from docs/wire-format.md.

const SUB4 = tuple('10.0.0.1', 40001, '10.0.0.2', 40002);
const SUB4_HEX = '0a000001' + '0a000002' + '9c41' + '9c42';
const SUB6 = tuple('fd00::1', 1000, 'fd00::2', 2000);
const SUB6_HEX = 'fd000000000000000000000000000001' + 'fd000000000000000000000000000002' + '03e8' + '07d0';
const RECONFIG = 7;
const MSGSEQ = 3;

/** Common header: magic, version, type, flags, family, body length, reconfigId, msgSeq, subsession. */
function header(type: ControlType, flags: number, family: 4 | 6, bodyLen: number): string {
  return (
    'dc5c' +
    '01' +
    h8(CONTROL_TYPES.indexOf(type)) +
    h8(flags) +
    h8(family) +
    h16(bodyLen) +
    h32(RECONFIG) +
    h32(MSGSEQ) +
    (family === 4 ? SUB4_HEX : SUB6_HEX)
  );
}

const A_10_0_0_1 = '04' + '0a000001';
const A_10_0_0_9 = '04' + '0a000009';
const A_FD00_1 = '06' + 'fd000000000000000000000000000001';
const A_DB8_9 = '06' + '20010db8000000000000000000000009';
const A_DB8_A = '06' + '20010db800000000000000000000000a';

interface Golden {
  name: string;
  value: ControlMessage;
  family: 4 | 6;
  bodyLen: number;
  body: string;
}

const common4 = { subsession: SUB4, reconfigId: RECONFIG, msgSeq: MSGSEQ };
const common6 = { subsession: SUB6, reconfigId: RECONFIG, msgSeq: MSGSEQ };

const goldens: Golden[] = [
  {
    name: 'requestLock, IPv4 hop, IPv6 right anchor, non-zero deltas',
    value: {
      type: 'requestLock',
      ...common4,
      requester: ip('10.0.0.1'),
      rightAnchor: ip('2001:db8::9'),
      deltas: { seqLR: 100, seqRL: -1, tsLR: 0, tsRL: 7, wsFromLR: 7, wsToLR: 7, wsFromRL: 2, wsToRL: 14 },
    },
    family: 4,
    bodyLen: 42,
    body: A_10_0_0_1 + A_DB8_9 + '00000064' + 'ffffffff' + '00000000' + '00000007' + '07' + '07' + '02' + '0e',
  },
  {
    name: 'ackLock, IPv6 hop, extreme deltas',
    value: {
      type: 'ackLock',
      ...common6,
      requester: ip('fd00::1'),
      rightAnchor: ip('10.9.9.9'),
      deltas: { seqLR: -0x80000000, seqRL: 0x7fffffff, tsLR: 0x12345678, tsRL: -2, wsFromLR: 0, wsToLR: 0, wsFromRL: 0, wsToRL: 0 },
    },
    family: 6,
    bodyLen: 42,
    body: A_FD00_1 + '04' + '0a090909' + '80000000' + '7fffffff' + '12345678' + 'fffffffe' + '00000000',
  },
  {
    name: 'nackLock, IPv4 hop, reason contention',
    value: { type: 'nackLock', ...common4, requester: ip('10.0.0.1'), reason: 'contention' },
    family: 4,
    bodyLen: 6,
    body: A_10_0_0_1 + '02',
  },
  {
    name: 'cancelLock, IPv6 hop, IPv4 requester, reason timeout',
    value: { type: 'cancelLock', ...common6, requester: ip('10.0.0.1'), reason: 'timeout' },
    family: 6,
    bodyLen: 6,
    body: A_10_0_0_1 + '06',
  },
  {
    name: 'ackCancel, IPv4 hop',
    value: { type: 'ackCancel', ...common4, requester: ip('10.0.0.1') },
    family: 4,
    bodyLen: 5,
    body: A_10_0_0_1,
  },
  {
    name: 'rightRequest, IPv4 hop, mixed new chain',
    value: {
      type: 'rightRequest',
      ...common4,
      requester: ip('10.0.0.5'),
      rightAnchor: ip('10.0.0.9'),
      newChain: [ip('10.1.1.1'), ip('2001:db8::a')],
    },
    family: 4,
    bodyLen: 33,
    body: '04' + '0a000005' + A_10_0_0_9 + '02' + '04' + '0a010101' + A_DB8_A,
  },
  {
    name: 'rightRequest, IPv6 hop, empty new chain (direct)',
    value: { type: 'rightRequest', ...common6, requester: ip('fd00::1'), rightAnchor: ip('10.0.0.9'), newChain: [] },
    family: 6,
    bodyLen: 23,
    body: A_FD00_1 + A_10_0_0_9 + '00',
  },
  {
    name: 'syn, IPv6 hop, IPv4 session, mixed chain',
    value: {
      type: 'syn',
      ...common6,
      requester: ip('10.0.0.1'),
      leftAnchor: ip('10.0.0.1'),
      rightAnchor: ip('10.0.0.9'),
      session: tuple('192.0.2.1', 1234, '198.51.100.2', 80),
      chain: [ip('2001:db8::a'), ip('10.1.1.1')],
      deltas: { seqLR: 5, seqRL: 0, tsLR: 0, tsRL: 0, wsFromLR: 2, wsToLR: 7, wsFromRL: 7, wsToRL: 2 },
    },
    family: 6,
    bodyLen: 71,
    body:
      A_10_0_0_1 +
      A_10_0_0_1 +
      A_10_0_0_9 +
      '04' + 'c0000201' + 'c6336402' + '04d2' + '0050' +
      '02' + A_DB8_A + '04' + '0a010101' +
      '00000005' + '00000000' + '00000000' + '00000000' + '02' + '07' + '07' + '02',
  },
  {
    name: 'syn, IPv4 hop, IPv6 session, empty chain',
    value: {
      type: 'syn',
      ...common4,
      requester: ip('10.0.0.1'),
      leftAnchor: ip('10.0.0.1'),
      rightAnchor: ip('2001:db8::9'),
      session: tuple('2001:db8::1', 443, '2001:db8::2', 55000),
      chain: [],
      deltas: ZERO_DELTAS,
    },
    family: 4,
    bodyLen: 5 + 5 + 17 + 37 + 1 + 20,
    body:
      A_10_0_0_1 +
      A_10_0_0_1 +
      A_DB8_9 +
      '06' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002' + '01bb' + 'd6d8' +
      '00' +
      '00'.repeat(20),
  },
  {
    name: 'synAck, IPv4 hop',
    value: { type: 'synAck', ...common4, requester: ip('10.0.0.1') },
    family: 4,
    bodyLen: 5,
    body: A_10_0_0_1,
  },
  {
    name: 'ack, IPv6 hop',
    value: { type: 'ack', ...common6, requester: ip('fd00::1') },
    family: 6,
    bodyLen: 18,
    body: A_FD00_1 + '00',
  },
  {
    name: 'ack with upTo, IPv4 hop',
    value: { type: 'ack', ...common4, requester: ip('10.0.0.1'), upTo: 0x01020304 },
    family: 4,
    bodyLen: 10,
    body: A_10_0_0_1 + '02' + '01020304',
  },
  {
    name: 'teardown from the left, IPv4 hop',
    value: { type: 'teardown', ...common4, requester: ip('10.0.0.9'), fromLeft: true },
    family: 4,
    bodyLen: 6,
    body: A_10_0_0_9 + '01',
  },
  {
    name: 'teardown from the right, IPv6 hop',
    value: { type: 'teardown', ...common6, requester: ip('fd00::1'), fromLeft: false },
    family: 6,
    bodyLen: 18,
    body: A_FD00_1 + '00',
  },
  {
    name: 'teardown from the right, nothing sent on the old path, IPv4 hop',
    value: { type: 'teardown', ...common4, requester: ip('10.0.0.9'), fromLeft: false, upTo: null },
    family: 4,
    bodyLen: 6,
    body: A_10_0_0_9 + '04',
  },
  {
    name: 'teardown from the left with upTo, IPv4 hop',
    value: { type: 'teardown', ...common4, requester: ip('10.0.0.9'), fromLeft: true, upTo: 0xfffffffe },
    family: 4,
    bodyLen: 10,
    body: A_10_0_0_9 + '03' + 'fffffffe',
  },
];

t.test('golden vectors (unsigned): encode and decode both ways', async (t) => {
  const covered = new Set<string>();
  for (const g of goldens) {
    t.equal(g.body.length, 2 * g.bodyLen, `vector self-check: body length of ${g.name}`);
    const h = header(g.value.type, 0, g.family, g.bodyLen) + g.body;
    t.equal(hex(encodeControl(g.value)), h, `encode: ${g.name}`);
    const d = decodeControl(fromHex(h));
    t.strictSame(norm(d.message), norm(g.value), `decode: ${g.name}`);
    t.equal(d.authenticated, false);
    t.equal(d.keyId, undefined);
    t.equal(d.counter, undefined);
    covered.add(g.value.type);
  }
  t.strictSame([...covered].sort(), [...CONTROL_TYPES].sort(), 'every message type has a vector');
});

t.test('golden vector (signed): trailer and tag computed independently', async (t) => {
  const g = goldens.find((x) => x.value.type === 'nackLock')!;
  const signedPart = header('nackLock', 0x01, 4, g.bodyLen) + g.body + '0000002a' + '0000000100000002';
  const tag = createHmac('sha256', SECRET).update(fromHex(signedPart)).digest('hex');
  const h = signedPart + tag;
  t.equal(hex(encodeControl(g.value, ring, 0x100000002n)), h, 'encode');
  const d = decodeControl(fromHex(h), ring);
  t.strictSame(norm(d.message), norm(g.value), 'decode');
  t.equal(d.authenticated, true);
  t.equal(d.keyId, KEY_ID);
  t.equal(d.counter, 0x100000002n);

  // The same tag built from SHA-256 and the RFC 2104 pads by hand.
  const k = new Uint8Array(64);
  k.set(SECRET);
  const inner = createHash('sha256').update(k.map((b) => b ^ 0x36)).update(fromHex(signedPart)).digest();
  const outer = createHash('sha256').update(k.map((b) => b ^ 0x5c)).update(inner).digest('hex');
  t.equal(tag, outer, 'HMAC with ipad inside and opad outside');
  // Swapped pads produce a tag that must not verify.
  const sInner = createHash('sha256').update(k.map((b) => b ^ 0x5c)).update(fromHex(signedPart)).digest();
  const sOuter = createHash('sha256').update(k.map((b) => b ^ 0x36)).update(sInner).digest('hex');
  t.equal(authReason(() => decodeControl(fromHex(signedPart + sOuter), ring)), 'bad-tag', 'swapped pads refused');
  // A secret longer than the SHA-256 block is hashed first (RFC 2104): checked against node:crypto.
  const longSecret = Uint8Array.from({ length: 100 }, (_, i) => 255 - i);
  const longRing = new KeyRing([{ keyId: KEY_ID, secret: longSecret }]);
  const enc = encodeControl(g.value, longRing, 1n);
  t.equal(
    hex(enc.subarray(enc.length - 32)),
    createHmac('sha256', longSecret).update(enc.subarray(0, enc.length - 32)).digest('hex'),
  );
});

// ---------------------------------------------------------------------------
// Round trips

const port = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const shift = fc.integer({ min: 0, max: 14 });
const addr4: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4, bytes }));
const addr6: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6, bytes }));
const addrArb = fc.oneof(addr4, addr6);
const tupleArb: fc.Arbitrary<FiveTuple> = fc.oneof(
  fc.record({ src: addr4, dst: addr4, sport: port, dport: port }),
  fc.record({ src: addr6, dst: addr6, sport: port, dport: port }),
);
const chainArb = fc.array(addrArb, { maxLength: CONTROL_MAX_CHAIN });
const deltasArb: fc.Arbitrary<Deltas> = fc.record({
  seqLR: i32,
  seqRL: i32,
  tsLR: i32,
  tsRL: i32,
  wsFromLR: shift,
  wsToLR: shift,
  wsFromRL: shift,
  wsToRL: shift,
});
const reasonArb = fc.constantFrom(...NACK_REASONS);
const commonArb = { subsession: tupleArb, reconfigId: u32, msgSeq: u32, requester: addrArb };

function messageArb(type: ControlType): fc.Arbitrary<ControlMessage> {
  const c = <T extends ControlType>(ty: T) => fc.constant(ty);
  switch (type) {
    case 'requestLock':
    case 'ackLock':
      return fc.record({ type: c(type), ...commonArb, rightAnchor: addrArb, deltas: deltasArb });
    case 'nackLock':
    case 'cancelLock':
      return fc.record({ type: c(type), ...commonArb, reason: reasonArb });
    case 'ackCancel':
    case 'synAck':
      return fc.record({ type: c(type), ...commonArb });
    case 'ack':
      return fc.record({ type: c(type), ...commonArb, upTo: fc.oneof(fc.constant(undefined), fc.constant(null), u32) }).map(({ upTo, ...m }) => (upTo === undefined ? m : { ...m, upTo }));
    case 'rightRequest':
      return fc.record({ type: c(type), ...commonArb, rightAnchor: addrArb, newChain: chainArb });
    case 'syn':
      return fc.record({
        type: c(type),
        ...commonArb,
        leftAnchor: addrArb,
        rightAnchor: addrArb,
        session: tupleArb,
        chain: chainArb,
        deltas: deltasArb,
      });
    case 'teardown':
      return fc
        .record({ type: c(type), ...commonArb, fromLeft: fc.boolean(), upTo: fc.oneof(fc.constant(undefined), fc.constant(null), u32) })
        .map(({ upTo, ...m }) => (upTo === undefined ? m : { ...m, upTo }));
  }
}

const counterArb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

for (const type of CONTROL_TYPES) {
  t.test(`round trip: ${type}`, async (t) => {
    let signedRuns = 0;
    fc.assert(
      fc.property(messageArb(type), fc.boolean(), counterArb, (m, signed, counter) => {
        const bytes = signed ? encodeControl(m, ring, counter) : encodeControl(m);
        if (bytes.length > CONTROL_MAX_BYTES) return false;
        const d = decodeControl(bytes, signed ? ring : undefined);
        if (JSON.stringify(norm(d.message)) !== JSON.stringify(norm(m))) return false;
        if (signed) {
          signedRuns++;
          if (!d.authenticated || d.keyId !== KEY_ID || d.counter !== counter) return false;
        } else if (d.authenticated || d.keyId !== undefined || d.counter !== undefined) return false;
        // Canonical: re-encoding the decoded value gives the same bytes.
        return hex(signed ? encodeControl(d.message, ring, counter) : encodeControl(d.message)) === hex(bytes);
      }),
      { numRuns: 1000 },
    );
    t.ok(signedRuns > 300, `signed and unsigned both exercised (${signedRuns} signed of 1000)`);
  });
}

// ---------------------------------------------------------------------------
// Structural rejections

t.test('structural rejections', async (t) => {
  const g = goldens[0]!; // requestLock, IPv4 hop, 28-byte header + 42-byte body
  const valid = fromHex(header(g.value.type, 0, 4, g.bodyLen) + g.body);
  const patched = (at: number, ...bytes: number[]) => {
    const b = Uint8Array.from(valid);
    bytes.forEach((v, i) => (b[at + i] = v));
    return b;
  };
  const bad = (b: Uint8Array, why: string) => t.throws(() => decodeControl(b), WireFormatError, why);
  bad(patched(0, 0xdd), 'magic');
  bad(patched(1, 0x5d), 'magic (second byte)');
  bad(patched(2, 0), 'version 0');
  bad(patched(2, 2), 'version 2');
  bad(patched(3, CONTROL_TYPES.length), 'type one past the last');
  bad(patched(3, 0xff), 'type 255');
  for (let bit = 1; bit < 8; bit++) bad(patched(4, 1 << bit), `unknown flag bit ${bit}`);
  bad(patched(4, 1), 'auth flag without a trailer');
  bad(patched(5, 0), 'family 0');
  bad(patched(5, 5), 'family 5');
  bad(patched(5, 6), 'family 6 on an IPv4-sized message');
  bad(patched(6, 0, 41), 'body length one short');
  bad(patched(6, 0, 43), 'body length one long');
  bad(patched(28, 7), 'requester family 7');
  bad(patched(33, 4), 'right anchor family 4 where 16 bytes follow');
  bad(patched(66, 15), 'window scale 15');
  bad(patched(69, 0xff), 'window scale 255');
  bad(Uint8Array.of(...valid, 0), 'trailing byte');
  for (let n = 0; n < valid.length; n++) bad(valid.subarray(0, n), `truncated to ${n}`);

  // Type-specific fields.
  const reasonMsg = fromHex(header('nackLock', 0, 4, 6) + A_10_0_0_1 + h8(NACK_REASONS.length));
  bad(reasonMsg, 'reason index one past the last');
  bad(fromHex(header('teardown', 0, 4, 6) + A_10_0_0_1 + '02'), 'upTo announced, missing');
  bad(fromHex(header('ack', 0, 4, 6) + A_10_0_0_1 + '01'), 'fromLeft on an ack');
  bad(fromHex(header('ack', 0, 4, 10) + A_10_0_0_1 + '06' + '00000001'), 'upTo and nothing sent at once');
  bad(fromHex(header('teardown', 0, 4, 6) + A_10_0_0_1 + '08'), 'ends bit 3');
  bad(fromHex(header('ack', 0, 4, 5) + A_10_0_0_1), 'ack without its ends byte');
  bad(fromHex(header('ackCancel', 0, 4, 6) + A_10_0_0_1 + '00'), 'a byte of body past the fields');
  const entries = Array.from({ length: 17 }, () => '04' + '0a010101').join('');
  bad(fromHex(header('rightRequest', 0, 4, 11 + 17 * 5) + A_10_0_0_1 + A_10_0_0_9 + '11' + entries), 'chain of 17');
  bad(fromHex(header('rightRequest', 0, 4, 11 + 2 * 5) + A_10_0_0_1 + A_10_0_0_9 + '01' + entries.slice(0, 20)), 'count 1, two entries');

  // Oversize input is refused before anything else is read.
  const big = new Uint8Array(CONTROL_MAX_BYTES + 1);
  big.set(valid);
  bad(big, 'over the hard limit');
});

t.test('encoder refuses values it cannot represent', async (t) => {
  const m = goldens[0]!.value as Extract<ControlMessage, { type: 'requestLock' }>;
  const no = (v: unknown, why: string) => t.throws(() => encodeControl(v as ControlMessage), WireFormatError, why);
  no({ ...m, type: 'hello' }, 'unknown type');
  no({ ...m, reconfigId: -1 }, 'reconfigId -1');
  no({ ...m, reconfigId: 2 ** 32 }, 'reconfigId 2^32');
  no({ ...m, msgSeq: 1.5 }, 'msgSeq 1.5');
  no({ ...m, subsession: { ...SUB4, dst: ip('fd00::1') } }, 'mixed-family subsession');
  no({ ...m, subsession: { ...SUB4, sport: 70000 } }, 'port 70000');
  no({ ...m, deltas: { ...m.deltas, seqLR: 2 ** 31 } }, 'seq delta 2^31');
  no({ ...m, deltas: { ...m.deltas, tsRL: -(2 ** 31) - 1 } }, 'ts delta below i32');
  no({ ...m, deltas: { ...m.deltas, wsToLR: 15 } }, 'window scale 15');
  no({ ...m, deltas: { ...m.deltas, wsFromRL: -1 } }, 'window scale -1');
  no({ ...m, rightAnchor: { family: 6, bytes: new Uint8Array(4) } }, 'IPv6 with 4 bytes');
  no({ type: 'nackLock', ...common4, requester: ip('10.0.0.1'), reason: 'because' }, 'unknown reason');
  no({ type: 'teardown', ...common4, requester: ip('10.0.0.1'), fromLeft: 1 }, 'fromLeft not boolean');
  no({ type: 'teardown', ...common4, requester: ip('10.0.0.1'), fromLeft: true, upTo: 2 ** 32 }, 'upTo 2^32');
  no({ type: 'ack', ...common4, requester: ip('10.0.0.1'), upTo: -1 }, 'upTo -1');
  no(
    { type: 'rightRequest', ...common4, requester: ip('10.0.0.1'), rightAnchor: ip('10.0.0.2'), newChain: Array(17).fill(ip('10.0.0.3')) },
    'chain of 17',
  );
  t.throws(() => encodeControl(m, ring), WireFormatError, 'signing without a counter');
  t.throws(() => encodeControl(m, ring, -1n), WireFormatError, 'negative counter');
  t.throws(() => encodeControl(m, ring, 1n << 64n), WireFormatError, 'counter past u64');
  t.equal(encodeControl(m, ring, (1n << 64n) - 1n).length, 28 + 42 + 44, 'largest counter');
  t.equal(hex(encodeControl(m, new KeyRing([]), 5n)), hex(encodeControl(m)), 'an empty ring signs nothing');
});

// ---------------------------------------------------------------------------
// Authentication

const synMsg = goldens.find((g) => g.value.type === 'syn')!.value;

t.test('signed messages verify; any tampering is caught', async (t) => {
  const bytes = encodeControl(synMsg, ring, 77n);
  const d = decodeControl(bytes, ring);
  t.equal(d.authenticated, true);
  t.strictSame(norm(d.message), norm(synMsg));
  const bodyEnd = bytes.length - 44;
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0x80]) {
      const b = Uint8Array.from(bytes);
      b[i]! ^= mask;
      const e = errorOf(() => decodeControl(b, ring));
      if (i < 8) {
        t.ok(e instanceof WireFormatError || e instanceof AuthenticationError, `header byte ${i} refused`);
      } else if (i >= bodyEnd && i < bodyEnd + 4) {
        t.equal((e as AuthenticationError).reason, 'unknown-key', `key id byte ${i}`);
      } else {
        t.equal((e as AuthenticationError).reason, 'bad-tag', `byte ${i} ^ ${mask}`);
      }
    }
  }
});

t.test('unknown key, no shared default key, downgrade refused', async (t) => {
  const bytes = encodeControl(synMsg, ring, 1n);
  t.equal(authReason(() => decodeControl(bytes, new KeyRing([{ keyId: 7, secret: SECRET }]))), 'unknown-key');
  t.equal(authReason(() => decodeControl(bytes, new KeyRing([]))), 'unknown-key', 'an empty ring verifies nothing');
  const sameIdOtherSecret = new KeyRing([{ keyId: KEY_ID, secret: new Uint8Array(16).fill(0xab) }]);
  t.equal(authReason(() => decodeControl(bytes, sameIdOtherSecret)), 'bad-tag');
  t.not(hex(encodeControl(synMsg, sameIdOtherSecret, 1n)), hex(bytes), 'different secrets, different tags');

  const unsigned = encodeControl(synMsg);
  t.equal(authReason(() => decodeControl(unsigned, ring)), 'unsigned', 'unsigned input refused when keys require auth');
  // The downgrade check happens before the body is even parsed.
  const unsignedJunk = fromHex(header('ackCancel', 0, 4, 5) + '09' + '00000000');
  t.equal(authReason(() => decodeControl(unsignedJunk, ring)), 'unsigned');
  // Rollout mode and no keys: unsigned accepted, flagged as not authenticated.
  const rollout = new KeyRing([{ keyId: KEY_ID, secret: SECRET }], { requireAuth: false });
  t.equal(decodeControl(unsigned, rollout).authenticated, false);
  t.equal(decodeControl(bytes, rollout).authenticated, true);
  t.equal(authReason(() => decodeControl(encodeControl(synMsg, sameIdOtherSecret, 1n), rollout)), 'bad-tag', 'rollout still verifies signed input');
  const noKeys = decodeControl(bytes);
  t.equal(noKeys.authenticated, false, 'without keys a signed message is parsed, not trusted');
  t.equal(noKeys.counter, 1n);
  t.equal(noKeys.keyId, KEY_ID);
});

t.test('the tag is verified before the body is parsed', async (t) => {
  // A body with an invalid reason index, signed correctly: only then is it parsed and refused.
  const part = header('nackLock', 1, 4, 6) + A_10_0_0_1 + 'ff' + '0000002a' + '0000000000000001';
  const good = fromHex(part + createHmac('sha256', SECRET).update(fromHex(part)).digest('hex'));
  t.throws(() => decodeControl(good, ring), WireFormatError, 'verified, then refused as malformed');
  const forged = fromHex(part + '00'.repeat(32));
  t.equal(authReason(() => decodeControl(forged, ring)), 'bad-tag', 'unverified: refused by the tag, not parsed');
  // And a malformed but verified message commits nothing to the replay window.
  const window = new ReplayWindow();
  t.throws(() => decodeControl(good, ring, { window, sender: 'a' }), WireFormatError);
  t.equal(window.size, 0);
});

t.test('a replay window saved and restored refuses what it accepted before', async (t) => {
  const window = new ReplayWindow();
  const at = (counter: bigint) => encodeControl(synMsg, ring, counter);
  decodeControl(at(5000n), ring, { window, sender: '10.0.0.1' });
  decodeControl(at(4990n), ring, { window, sender: '10.0.0.1' });
  const restored = ReplayWindow.restore(JSON.parse(JSON.stringify(window.save())));
  const from = { window: restored, sender: '10.0.0.1' };
  t.equal(authReason(() => decodeControl(at(5000n), ring, from)), 'replay', 'the highest counter accepted before');
  t.equal(authReason(() => decodeControl(at(4990n), ring, from)), 'replay', 'one accepted out of order before');
  t.equal(decodeControl(at(4991n), ring, from).counter, 4991n, 'one never seen inside the window is still accepted');
  t.equal(decodeControl(at(5001n), ring, { window: restored, sender: '10.0.0.2' }).counter, 5001n, 'other senders are unaffected');
  t.equal(ReplayWindow.restore({ 'x|1': { top: '1', seen: '1' }, '1|a': { top: 'z', seen: '1' }, '2|b': null }).save()['x|1'], undefined, 'malformed entries are skipped');
  t.same(ReplayWindow.restore('nonsense').save(), {}, 'and a malformed save gives an empty window');
});

t.test('replay protection', async (t) => {
  const window = new ReplayWindow();
  const from = (sender: string) => ({ window, sender });
  const at = (counter: bigint, m: ControlMessage = synMsg) => encodeControl(m, ring, counter);

  const first = at(1000n);
  t.equal(decodeControl(first, ring, from('10.0.0.1')).counter, 1000n);
  t.equal(authReason(() => decodeControl(first, ring, from('10.0.0.1'))), 'replay', 'same bytes again');
  t.equal(decodeControl(first, ring, from('10.0.0.2')).authenticated, true, 'another sender has its own window');

  // A retransmission repeats msgSeq but is re-signed with a fresh counter.
  const retrans = at(1001n);
  t.equal(decodeControl(retrans, ring, from('10.0.0.1')).message.msgSeq, synMsg.msgSeq);

  // Out of order inside the window: accepted once.
  t.equal(decodeControl(at(990n), ring, from('10.0.0.1')).counter, 990n);
  t.equal(authReason(() => decodeControl(at(990n), ring, from('10.0.0.1'))), 'replay');
  // Window is 64 wide below the highest counter (1001): 938 is the oldest still acceptable.
  t.equal(authReason(() => decodeControl(at(937n), ring, from('10.0.0.1'))), 'replay', 'older than the window');
  t.equal(decodeControl(at(938n), ring, from('10.0.0.1')).counter, 938n, 'oldest in the window');
  t.equal(authReason(() => decodeControl(at(0n), ring, from('10.0.0.1'))), 'replay', 'far too old');

  // A forged message (bad tag) with a fresh counter does not advance the window...
  const forged = Uint8Array.from(at(5000n));
  forged[forged.length - 1]! ^= 1;
  t.equal(authReason(() => decodeControl(forged, ring, from('10.0.0.1'))), 'bad-tag');
  // ...so counters it would have pushed out are still accepted.
  t.equal(decodeControl(at(1002n), ring, from('10.0.0.1')).counter, 1002n);
  t.equal(decodeControl(at(5000n), ring, from('10.0.0.1')).counter, 5000n, 'and its counter is still fresh');
  // A replay whose tag is also broken reports the tag, not the replay.
  const brokenReplay = Uint8Array.from(first);
  brokenReplay[40]! ^= 1;
  t.equal(authReason(() => decodeControl(brokenReplay, ring, from('10.0.0.2'))), 'bad-tag');

  // Unverified paths never touch the window.
  const before = window.size;
  decodeControl(at(9999n), undefined, from('10.0.0.3'));
  t.equal(window.size, before, 'no keys: nothing committed');
  t.equal(decodeControl(at(9999n), ring, from('10.0.0.3')).counter, 9999n, 'the counter is still fresh afterwards');

  // Separate keys from one sender have separate windows.
  const two = new KeyRing([{ keyId: 1, secret: new Uint8Array(16).fill(1) }, { keyId: KEY_ID, secret: SECRET }]);
  const w2 = new ReplayWindow();
  decodeControl(encodeControl(synMsg, two, 5n), two, { window: w2, sender: 's' });
  t.equal(decodeControl(encodeControl(synMsg, ring, 5n), two, { window: w2, sender: 's' }).keyId, KEY_ID);
  t.equal(w2.size, 2);
  w2.forget('s');
  t.equal(w2.size, 0);
});

t.test('ReplayWindow against a reference model', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.bigInt({ min: 0n, max: 400n }), { maxLength: 80 }), (counters) => {
      const w = new ReplayWindow();
      const seen = new Set<bigint>();
      let max = -1n;
      for (const c of counters) {
        const expected = !seen.has(c) && (max < 0n || c > max - 64n);
        if (w.check('x', 1, c) !== expected) return false;
        if (w.checkAndCommit('x', 1, c) !== expected) return false;
        if (expected) {
          seen.add(c);
          if (c > max) max = c;
        }
      }
      return true;
    }),
    { numRuns: 1000 },
  );
  const w = new ReplayWindow();
  t.equal(w.check('x', 1, -1n), false, 'negative');
  t.equal(w.check('x', 1, 1n << 64n), false, 'past u64');
  t.equal(w.checkAndCommit('x', 1, (1n << 64n) - 1n), true, 'largest u64');
  t.equal(w.check('x', 1, 5n), false);
  t.equal(w.check('x', 2, 5n), true, 'other key');
  t.equal(w.check('y', 1, 5n), true, 'other sender');
  t.equal(w.check('1|x', 1, 5n), true, 'sender names cannot collide through the separator');
});

t.test('ReplayCounter', async (t) => {
  const c = new ReplayCounter();
  const a = c.next();
  const b = c.next();
  t.ok(b > a);
  t.equal(c.peek(), b + 1n);
  t.ok(a >= BigInt(Date.now() - 60_000) << 20n, 'starts from the wall clock');
  const d = new ReplayCounter(7n);
  t.equal(d.next(), 7n);
  t.throws(() => new ReplayCounter(-1n), AuthConfigError);
  const last = new ReplayCounter((1n << 64n) - 1n);
  t.equal(last.next(), (1n << 64n) - 1n);
  t.throws(() => last.next(), AuthConfigError, 'never wraps');
});

t.test('KeyRing configuration', async (t) => {
  const s16 = new Uint8Array(16).fill(3);
  t.throws(() => new KeyRing([{ keyId: 1, secret: new Uint8Array(15) }]), AuthConfigError, '15-byte secret refused');
  t.throws(() => new KeyRing([{ keyId: 1, secret: new Uint8Array(0) }]), AuthConfigError, 'empty secret refused');
  t.ok(errorOf(() => new KeyRing([{ keyId: 1, secret: new Uint8Array(8) }])) instanceof DyscoError, 'a DyscoError');
  t.doesNotThrow(() => new KeyRing([{ keyId: 1, secret: s16 }]), '16 bytes accepted');
  t.throws(() => new KeyRing([{ keyId: 1, secret: s16 }, { keyId: 1, secret: s16 }]), AuthConfigError, 'duplicate id');
  t.throws(() => new KeyRing([{ keyId: -1, secret: s16 }]), AuthConfigError, 'negative id');
  t.throws(() => new KeyRing([{ keyId: 2 ** 32, secret: s16 }]), AuthConfigError, 'id past u32');
  t.throws(() => new KeyRing([{ keyId: 1, secret: s16 }], { sendKeyId: 2 }), AuthConfigError, 'send key not in ring');
  const r = new KeyRing([{ keyId: 5, secret: s16 }, { keyId: 6, secret: s16 }]);
  t.equal(r.sendKeyId, 5, 'default send key: the first');
  t.equal(r.requireAuth, true, 'keys present: auth required by default');
  t.equal(new KeyRing([]).requireAuth, false);
  t.equal(new KeyRing([]).canSign, false);
  t.strictSame(r.keyIds, [5, 6]);
  // The ring copies secrets: changing the caller's array later changes nothing.
  const mutable = new Uint8Array(16).fill(9);
  const r2 = new KeyRing([{ keyId: 1, secret: mutable }]);
  const before = encodeControl(synMsg, r2, 1n);
  mutable.fill(0);
  t.equal(hex(encodeControl(synMsg, r2, 1n)), hex(before));
  // Secrets do not leak through inspection or JSON.
  const { inspect } = await import('node:util');
  t.notMatch(inspect(r2, { depth: 5, showHidden: true }), /9, 9, 9|09090909/);
  t.notMatch(JSON.stringify(r2), /9,9,9/);
});

// ---------------------------------------------------------------------------
// Regression: non-constant-time compare. The tag comparison must go through
// crypto.timingSafeEqual on full-length buffers, whatever byte differs.

t.test('defect: tags are compared with timingSafeEqual', async (t) => {
  const require = createRequire(import.meta.url);
  const cryptoCjs = require('node:crypto') as typeof import('node:crypto');
  const original = cryptoCjs.timingSafeEqual;
  const calls: { a: string; b: string }[] = [];
  cryptoCjs.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    calls.push({
      a: hex(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)),
      b: hex(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)),
    });
    return original(a, b);
  }) as typeof original;
  syncBuiltinESMExports();
  try {
    const bytes = encodeControl(synMsg, ring, 3n);
    const wireTag = hex(bytes.subarray(bytes.length - 32));
    decodeControl(bytes, ring);
    t.equal(calls.length, 1, 'one constant-time comparison for a valid tag');
    t.equal(calls[0]!.b, wireTag);
    t.equal(calls[0]!.a, wireTag);

    for (const pos of [0, 15, 31]) {
      calls.length = 0;
      const b = Uint8Array.from(bytes);
      b[b.length - 32 + pos]! ^= 0xff;
      t.equal(authReason(() => decodeControl(b, ring)), 'bad-tag', `wrong tag byte ${pos}`);
      t.equal(calls.length, 1, `compared by timingSafeEqual (byte ${pos})`);
      t.equal(calls[0]!.a.length, 64, 'full 32-byte expected tag');
      t.equal(calls[0]!.b.length, 64, 'full 32-byte received tag');
    }
    // Same for the SYN-metadata path (truncated 16-byte tag).
    calls.length = 0;
    const { encodeSynMetadata, decodeSynMetadata } = await import('@dysco/protocol');
    const meta = encodeSynMetadata({ session: SUB4, chain: [ip('10.0.0.9')] }, ring);
    meta[meta.length - 1]! ^= 1;
    t.equal(authReason(() => decodeSynMetadata(meta, ring)), 'bad-tag');
    t.equal(calls.length, 1);
    t.equal(calls[0]!.b.length, 32, '16-byte tag compared whole');
  } finally {
    cryptoCjs.timingSafeEqual = original;
    syncBuiltinESMExports();
  }
});
