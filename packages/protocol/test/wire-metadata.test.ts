import t from 'tap';
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import {
  AuthenticationError,
  KeyRing,
  SYN_METADATA_MAX_BYTES,
  SYN_METADATA_MAX_CHAIN,
  WireFormatError,
  type Address,
  type FiveTuple,
  type SynMetadata,
  decodeSynMetadata,
  encodeSynMetadata,
  fromHex,
  hex,
  ip,
  isSynMetadataCandidate,
  tuple,
} from '@dysco/protocol';

// ---------------------------------------------------------------------------
// Helpers

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 .. 1f
const KEY_ID = 0x2a;
const ring = new KeyRing([{ keyId: KEY_ID, secret: SECRET }]);
const otherRing = new KeyRing([{ keyId: KEY_ID, secret: new Uint8Array(32).fill(0xee) }]);
const optionalRing = new KeyRing([{ keyId: KEY_ID, secret: SECRET }], { requireAuth: false });

/** Comparable form: addresses as text-free hex, so t.strictSame sees plain data. */
function norm(m: SynMetadata): unknown {
  const a = (x: Address) => `${x.family}/${hex(x.bytes)}`;
  const tu = (x: FiveTuple) => [a(x.src), x.sport, a(x.dst), x.dport];
  return { session: tu(m.session), chain: m.chain.map(a) };
}

function hmacTag(bytes: string, len = 16, secret = SECRET): string {
  return createHmac('sha256', secret).update(fromHex(bytes)).digest('hex').slice(0, 2 * len);
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

// ---------------------------------------------------------------------------
// Golden vectors, written field by field from docs/wire-format.md.

const MAGIC = 'c4595343';

const golden: { name: string; value: SynMetadata; hex: string; signed?: boolean }[] = [
  {
    name: 'IPv4 session, two IPv4 hops, unsigned',
    value: { session: tuple('10.0.0.1', 1234, '10.0.0.2', 80), chain: [ip('10.1.1.1'), ip('10.2.2.2')] },
    hex:
      MAGIC +
      '01' + // version
      '00' + // flags
      '0020' + // total length 32
      '04' + '0a000001' + '0a000002' + '04d2' + '0050' + // session
      '02' + // chain count
      '04' + '0a010101' +
      '04' + '0a020202',
  },
  {
    name: 'IPv6 session, one IPv6 hop, unsigned',
    value: { session: tuple('2001:db8::1', 40000, '2001:db8::2', 443), chain: [ip('2001:db8:0:1::5')] },
    hex:
      MAGIC +
      '01' +
      '00' +
      '003f' + // 63
      '06' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002' + '9c40' + '01bb' +
      '01' +
      '06' + '20010db8000000010000000000000005',
  },
  {
    name: 'IPv4 session, empty chain (last hop), unsigned',
    value: { session: tuple('192.0.2.1', 65535, '192.0.2.2', 0), chain: [] },
    hex: MAGIC + '01' + '00' + '0016' + '04' + 'c0000201' + 'c0000202' + 'ffff' + '0000' + '00',
  },
];

// Signed, with a mixed-family chain: the tag is HMAC-SHA256 over everything
// before it (key id included), computed here with node:crypto directly.
const signedBody =
  MAGIC +
  '01' +
  '01' + // flags: authenticated
  '0045' + // 69 = 8 + 13 + 1 + 5 + 17 + 5 + 20
  '04' + 'c000020a' + 'c6336414' + '1388' + '1f90' + // 192.0.2.10:5000 > 198.51.100.20:8080
  '03' +
  '04' + 'cb007101' + // 203.0.113.1
  '06' + '20010db8000000000000000000000007' + // 2001:db8::7
  '04' + 'c6336414' + // 198.51.100.20
  '0000002a'; // key id
golden.push({
  name: 'IPv4 session, mixed IPv4/IPv6 chain, signed',
  value: {
    session: tuple('192.0.2.10', 5000, '198.51.100.20', 8080),
    chain: [ip('203.0.113.1'), ip('2001:db8::7'), ip('198.51.100.20')],
  },
  hex: signedBody + hmacTag(signedBody),
  signed: true,
});

t.test('golden vectors: encode and decode both ways', async (t) => {
  for (const g of golden) {
    const bytes = fromHex(g.hex);
    t.equal(hex(encodeSynMetadata(g.value, g.signed ? ring : undefined)), g.hex, `encode: ${g.name}`);
    t.strictSame(norm(decodeSynMetadata(bytes, g.signed ? ring : undefined)), norm(g.value), `decode: ${g.name}`);
    t.ok(isSynMetadataCandidate(bytes), `candidate: ${g.name}`);
    t.equal(((bytes[6]! << 8) | bytes[7]!), bytes.length, `length field: ${g.name}`);
  }
  // Without keys the signed vector still parses (tag not checked); with
  // keys that require auth, the unsigned ones are refused.
  const signed = golden.find((g) => g.signed)!;
  t.strictSame(norm(decodeSynMetadata(fromHex(signed.hex))), norm(signed.value));
  for (const g of golden.filter((g) => !g.signed)) {
    t.equal(authReason(() => decodeSynMetadata(fromHex(g.hex), ring)), 'unsigned', `downgrade refused: ${g.name}`);
    t.strictSame(norm(decodeSynMetadata(fromHex(g.hex), optionalRing)), norm(g.value), `rollout mode accepts: ${g.name}`);
  }
});

t.test('tag is HMAC-SHA256 with the standard pads, truncated to 16 bytes', async (t) => {
  const signed = golden.find((g) => g.signed)!;
  const bytes = fromHex(signed.hex);
  const covered = bytes.subarray(0, bytes.length - 16);
  // HMAC built by hand from SHA-256: H((K ^ opad) || H((K ^ ipad) || m)), K zero-padded to 64 bytes.
  const k = new Uint8Array(64);
  k.set(SECRET);
  const inner = createHash('sha256')
    .update(k.map((b) => b ^ 0x36))
    .update(covered)
    .digest();
  const outer = createHash('sha256')
    .update(k.map((b) => b ^ 0x5c))
    .update(inner)
    .digest();
  t.equal(hex(bytes.subarray(bytes.length - 16)), outer.toString('hex').slice(0, 32));
  // Swapped pads give a different tag, which must not verify.
  const swappedInner = createHash('sha256').update(k.map((b) => b ^ 0x5c)).update(covered).digest();
  const swapped = createHash('sha256').update(k.map((b) => b ^ 0x36)).update(swappedInner).digest();
  const forged = Uint8Array.from(bytes);
  forged.set(swapped.subarray(0, 16), bytes.length - 16);
  t.equal(authReason(() => decodeSynMetadata(forged, ring)), 'bad-tag');
});

// ---------------------------------------------------------------------------
// Properties

const port = fc.integer({ min: 0, max: 0xffff });
const addr4: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4, bytes }));
const addr6: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6, bytes }));
const addrArb = fc.oneof(addr4, addr6);
const tupleArb: fc.Arbitrary<FiveTuple> = fc.oneof(
  fc.record({ src: addr4, dst: addr4, sport: port, dport: port }),
  fc.record({ src: addr6, dst: addr6, sport: port, dport: port }),
);
const metaArb: fc.Arbitrary<SynMetadata> = fc.record({
  session: tupleArb,
  chain: fc.array(addrArb, { maxLength: SYN_METADATA_MAX_CHAIN }),
});

t.test('round trip: decode(encode(m)) == m, signed and unsigned', async (t) => {
  fc.assert(
    fc.property(metaArb, fc.boolean(), (m, signed) => {
      const keys = signed ? ring : undefined;
      const bytes = encodeSynMetadata(m, keys);
      if (bytes.length > SYN_METADATA_MAX_BYTES) return false;
      if (!isSynMetadataCandidate(bytes)) return false;
      const back = decodeSynMetadata(bytes, keys);
      t.strictSame(norm(back), norm(m));
      // Re-encoding is byte-identical (the encoding is canonical).
      return hex(encodeSynMetadata(back, keys)) === hex(bytes);
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 runs');
});

t.test('a signed payload does not verify under another secret with the same key id', async (t) => {
  fc.assert(
    fc.property(metaArb, (m) => authReason(() => decodeSynMetadata(encodeSynMetadata(m, ring), otherRing)) === 'bad-tag'),
    { numRuns: 200 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------
// Rejections

const valid = fromHex(golden[0]!.hex);
function patched(at: number, ...bytes: number[]): Uint8Array {
  const b = Uint8Array.from(valid);
  bytes.forEach((v, i) => (b[at + i] = v));
  return b;
}

t.test('structural rejections', async (t) => {
  t.throws(() => decodeSynMetadata(patched(0, 0xc5)), WireFormatError, 'wrong magic');
  t.throws(() => decodeSynMetadata(patched(3, 0x44)), WireFormatError, 'wrong magic (last byte)');
  t.throws(() => decodeSynMetadata(patched(4, 0)), WireFormatError, 'version 0');
  t.throws(() => decodeSynMetadata(patched(4, 2)), WireFormatError, 'version 2');
  for (let bit = 1; bit < 8; bit++) t.throws(() => decodeSynMetadata(patched(5, 1 << bit)), WireFormatError, `unknown flag bit ${bit}`);
  t.throws(() => decodeSynMetadata(patched(6, 0, 31)), WireFormatError, 'length field one short');
  t.throws(() => decodeSynMetadata(patched(6, 0, 33)), WireFormatError, 'length field one long');
  t.throws(() => decodeSynMetadata(patched(8, 5)), WireFormatError, 'session family 5');
  t.throws(() => decodeSynMetadata(patched(8, 6)), WireFormatError, 'session family 6 with IPv4-sized fields');
  t.throws(() => decodeSynMetadata(patched(22, 0)), WireFormatError, 'chain entry family 0');
  t.throws(() => decodeSynMetadata(patched(27, 16)), WireFormatError, 'chain entry family 16');
  t.throws(() => decodeSynMetadata(patched(21, 1)), WireFormatError, 'count says 1 but 2 entries follow: trailing bytes');
  t.throws(() => decodeSynMetadata(patched(21, 3)), WireFormatError, 'count says 3 but 2 entries follow: truncated');
  // Flag says signed but the payload is unsigned-sized: tag and key id eat the chain.
  t.throws(() => decodeSynMetadata(patched(5, 1)), WireFormatError, 'auth flag on an unsigned payload (no keys)');
  t.throws(() => decodeSynMetadata(patched(5, 1), ring), 'auth flag on an unsigned payload (keys)');

  // Chain longer than 16, however well formed otherwise.
  const entries = Array.from({ length: 17 }, (_, i) => '04' + '0a0000' + i.toString(16).padStart(2, '0')).join('');
  const len = 8 + 13 + 1 + 17 * 5;
  const long = MAGIC + '0100' + len.toString(16).padStart(4, '0') + '04' + '0a000001' + '0a000002' + '04d2' + '0050' + '11' + entries;
  t.throws(() => decodeSynMetadata(fromHex(long)), WireFormatError, 'chain of 17');
  t.throws(
    () => encodeSynMetadata({ session: tuple('10.0.0.1', 1, '10.0.0.2', 2), chain: Array.from({ length: 17 }, () => ip('10.0.0.3')) }),
    WireFormatError,
    'encoder refuses a chain of 17',
  );

  // Oversize: whatever the content, more than 512 bytes never decodes.
  const big = new Uint8Array(SYN_METADATA_MAX_BYTES + 1);
  big.set(valid);
  big[6] = (big.length >> 8) & 0xff;
  big[7] = big.length & 0xff;
  t.throws(() => decodeSynMetadata(big), WireFormatError, 'over the hard limit');
  t.notOk(isSynMetadataCandidate(big));

  // Every strict prefix is rejected.
  for (const g of golden) {
    const b = fromHex(g.hex);
    for (let n = 0; n < b.length; n++) {
      t.throws(() => decodeSynMetadata(b.subarray(0, n), g.signed ? ring : undefined), WireFormatError);
    }
  }
  t.end();
});

t.test('encoder refuses values it cannot represent', async (t) => {
  const s = tuple('10.0.0.1', 1, '10.0.0.2', 2);
  t.throws(() => encodeSynMetadata({ session: { ...s, dst: ip('fd00::1') }, chain: [] }), WireFormatError, 'mixed-family session');
  t.throws(() => encodeSynMetadata({ session: { ...s, sport: 65536 }, chain: [] }), WireFormatError, 'port 65536');
  t.throws(() => encodeSynMetadata({ session: { ...s, dport: -1 }, chain: [] }), WireFormatError, 'port -1');
  t.throws(() => encodeSynMetadata({ session: s, chain: [{ family: 4, bytes: new Uint8Array(16) }] }), WireFormatError, 'IPv4 with 16 bytes');
  t.throws(
    () => encodeSynMetadata({ session: s, chain: [{ family: 5 as 4, bytes: new Uint8Array(4) }] }),
    WireFormatError,
    'family 5',
  );
});

t.test('authentication', async (t) => {
  const m: SynMetadata = { session: tuple('fd00::1', 4000, 'fd00::2', 80), chain: [ip('10.0.0.9'), ip('fd00::9')] };
  const signed = encodeSynMetadata(m, ring);
  t.strictSame(norm(decodeSynMetadata(signed, ring)), norm(m), 'signed payload verifies');
  // Every single-byte change after the header is caught by the tag (or, for
  // the key id, by the key lookup); header changes are caught structurally.
  for (let i = 0; i < signed.length; i++) {
    const b = Uint8Array.from(signed);
    b[i]! ^= 0x01;
    let err: unknown;
    try {
      decodeSynMetadata(b, ring);
    } catch (e) {
      err = e;
    }
    const keyIdAt = signed.length - 20;
    if (i < 8) t.ok(err instanceof WireFormatError || err instanceof AuthenticationError, `header byte ${i}`);
    else if (i >= keyIdAt && i < keyIdAt + 4) t.equal((err as AuthenticationError).reason, 'unknown-key', `key id byte ${i}`);
    else t.equal((err as AuthenticationError).reason, 'bad-tag', `byte ${i}`);
  }
  const wrongId = new KeyRing([{ keyId: 99, secret: SECRET }]);
  t.equal(authReason(() => decodeSynMetadata(signed, wrongId)), 'unknown-key');
  t.equal(authReason(() => decodeSynMetadata(encodeSynMetadata(m), ring)), 'unsigned', 'downgrade refused');
  t.equal(authReason(() => decodeSynMetadata(signed, otherRing)), 'bad-tag', 'no shared default key');
  // Key rotation: a ring holding old and new keys accepts both, signs with the chosen one.
  const rotated = new KeyRing(
    [
      { keyId: 1, secret: new Uint8Array(16).fill(1) },
      { keyId: KEY_ID, secret: SECRET },
    ],
    { sendKeyId: 1 },
  );
  t.strictSame(norm(decodeSynMetadata(signed, rotated)), norm(m));
  const byNew = encodeSynMetadata(m, rotated);
  t.equal(hex(byNew.subarray(byNew.length - 20, byNew.length - 16)), '00000001');
  t.equal(authReason(() => decodeSynMetadata(byNew, ring)), 'unknown-key');
});

// ---------------------------------------------------------------------------
// Regression: "any SYN with payload was taken as a chain".

t.test('defect: SYN payloads that are not metadata are never taken as a chain', async (t) => {
  const real = fromHex(golden[0]!.hex);
  const realSigned = fromHex(golden[3]!.hex);
  const cases: [string, Uint8Array][] = [
    ['TFO HTTP request', new TextEncoder().encode('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n')],
    ['TFO TLS ClientHello start', fromHex('16030100f4010000f00303' + '00'.repeat(32))],
    ['single byte', Uint8Array.of(0xc4)],
    ['empty', new Uint8Array(0)],
    ['garbage', Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff)],
    ['magic only', fromHex(MAGIC)],
    ['header only', fromHex(MAGIC + '01000008')],
    ['truncated real metadata', real.subarray(0, real.length - 1)],
    ['truncated signed metadata', realSigned.subarray(0, realSigned.length - 1)],
    ['metadata followed by extra bytes', Uint8Array.of(...real, 0)],
    ['signed metadata followed by extra bytes', Uint8Array.of(...realSigned, 0xff, 0xff)],
    ['two metadata payloads back to back', Uint8Array.of(...real, ...real)],
  ];
  for (const [name, payload] of cases) {
    t.throws(() => decodeSynMetadata(payload), WireFormatError, `${name} (no keys)`);
    t.throws(() => decodeSynMetadata(payload, ring), `${name} (keys)`);
    // A bare header with a consistent length passes the cheap check; the decoder still refuses it.
    if (name !== 'header only') t.notOk(isSynMetadataCandidate(payload), `${name} is not a candidate`);
  }
  // Extra bytes with the length field adjusted to cover them: still refused.
  const extended = Uint8Array.of(...real, 0);
  extended[7] = extended.length;
  t.ok(isSynMetadataCandidate(extended), 'passes the cheap check...');
  t.throws(() => decodeSynMetadata(extended), WireFormatError, '...but not the decoder (trailing byte)');
});

t.test('decoded addresses do not alias the input buffer', async (t) => {
  const buf = Buffer.from(fromHex(golden[0]!.hex));
  const m = decodeSynMetadata(buf);
  buf.fill(0);
  t.equal(hex(m.chain[0]!.bytes), '0a010101');
  t.equal(hex(m.session.src.bytes), '0a000001');
});
