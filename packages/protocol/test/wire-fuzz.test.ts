import t from 'tap';
import fc from 'fast-check';
import {
  AuthenticationError,
  CONTROL_MAX_BYTES,
  CONTROL_MAX_CHAIN,
  CONTROL_TYPES,
  KeyRing,
  NACK_REASONS,
  ReplayWindow,
  SYN_METADATA_MAX_BYTES,
  SYN_METADATA_MAX_CHAIN,
  WireFormatError,
  type Address,
  type ControlMessage,
  type FiveTuple,
  type SynMetadata,
  decodeControl,
  decodeNatTagOption,
  decodeSynMetadata,
  encodeControl,
  encodeNatTagOption,
  encodeSynMetadata,
  hex,
  isSynMetadataCandidate,
} from '@dysco/protocol';

/*
 * Decoders face bytes from the network. On any input they either return a
 * value or throw WireFormatError / AuthenticationError: never another
 * exception, never a hang. Each property runs under a time budget (raise
 * DYSCO_FUZZ_MS for longer campaigns) and must complete thousands of runs.
 */

const BUDGET_MS = Number(process.env['DYSCO_FUZZ_MS'] ?? 1200);
const MIN_RUNS = 2000;

const ring = new KeyRing([{ keyId: 9, secret: new Uint8Array(32).fill(0x5a) }]);

function typed(e: unknown): boolean {
  return e instanceof WireFormatError || e instanceof AuthenticationError;
}

/** Runs `f`: 'ok' with its value, 'refused' for a typed error; anything else is rethrown (and fails the property). */
function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (typed(e)) return { ok: false };
    throw e;
  }
}

function fuzz<T>(tt: { ok: (v: unknown, m: string) => void; fail: (m: string) => void }, arb: fc.Arbitrary<T>, pred: (v: T) => boolean, seed?: number): number {
  const r = fc.check(fc.property(arb, pred), {
    numRuns: 1_000_000,
    interruptAfterTimeLimit: BUDGET_MS,
    ...(seed === undefined ? {} : { seed }),
  });
  if (r.failed) tt.fail(fc.defaultReportMessage(r) ?? 'property failed');
  tt.ok(r.numRuns >= MIN_RUNS, `${r.numRuns} runs within ${BUDGET_MS} ms (at least ${MIN_RUNS})`);
  return r.numRuns;
}

// ---------------------------------------------------------------------------
// Value generators (valid encodings to mutate)

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
const metaArb: fc.Arbitrary<SynMetadata> = fc.record({ session: tupleArb, chain: fc.array(addrArb, { maxLength: SYN_METADATA_MAX_CHAIN }) });
const deltasArb = fc.record({ seqLR: i32, seqRL: i32, tsLR: i32, tsRL: i32, wsFromLR: shift, wsToLR: shift, wsFromRL: shift, wsToRL: shift });
const chainArb = fc.array(addrArb, { maxLength: CONTROL_MAX_CHAIN });

// One generator for all types: every field any type could need, then the type picks.
const controlArb: fc.Arbitrary<ControlMessage> = fc
  .record({
    type: fc.constantFrom(...CONTROL_TYPES),
    subsession: tupleArb,
    reconfigId: u32,
    msgSeq: u32,
    requester: addrArb,
    leftAnchor: addrArb,
    rightAnchor: addrArb,
    session: tupleArb,
    chain: chainArb,
    deltas: deltasArb,
    reason: fc.constantFrom(...NACK_REASONS),
    fromLeft: fc.boolean(),
    upTo: fc.oneof(fc.constant(undefined), fc.constant(null), u32),
  })
  .map((f): ControlMessage => {
    const c = { subsession: f.subsession, reconfigId: f.reconfigId, msgSeq: f.msgSeq, requester: f.requester };
    switch (f.type) {
      case 'requestLock':
      case 'ackLock':
        return { type: f.type, ...c, rightAnchor: f.rightAnchor, deltas: f.deltas };
      case 'nackLock':
      case 'cancelLock':
        return { type: f.type, ...c, reason: f.reason };
      case 'ackCancel':
      case 'synAck':
        return { type: f.type, ...c };
      case 'ack':
        return { type: f.type, ...c, ...(f.upTo !== undefined ? { upTo: f.upTo } : {}) };
      case 'rightRequest':
        return { type: f.type, ...c, rightAnchor: f.rightAnchor, newChain: f.chain };
      case 'syn':
        return { type: f.type, ...c, leftAnchor: f.leftAnchor, rightAnchor: f.rightAnchor, session: f.session, chain: f.chain, deltas: f.deltas };
      case 'teardown':
        return { type: f.type, ...c, fromLeft: f.fromLeft, ...(f.upTo !== undefined ? { upTo: f.upTo } : {}) };
    }
  });

/** Byte strings assembled from plausible field pieces, so random bodies often get deep into a parser. */
const piecesArb: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      fc.constantFrom(Uint8Array.of(4), Uint8Array.of(6)),
      fc.integer({ min: 0, max: 17 }).map((n) => Uint8Array.of(n)),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 1, maxLength: 3 }),
    ),
    { maxLength: 24 },
  )
  .map((parts) => Uint8Array.from(parts.flatMap((p) => [...p])));

// ---------------------------------------------------------------------------
// Mutations

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'insert'; at: number; extra: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 17 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), extra: fc.uint8Array({ minLength: 1, maxLength: 17 }) }),
);
const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

function mutate(input: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of muts) {
    const at = b.length === 0 ? 0 : (m as { at?: number }).at === undefined ? 0 : (m as { at: number }).at % (b.length + 1);
    switch (m.kind) {
      case 'flip':
        if (at < b.length) b[at]! ^= 1 << m.bit;
        break;
      case 'set':
        if (at < b.length) b[at] = m.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'extend':
        b = Uint8Array.of(...b, ...m.extra);
        break;
      case 'delete':
        b = Uint8Array.of(...b.subarray(0, at), ...b.subarray(at + m.count));
        break;
      case 'insert':
        b = Uint8Array.of(...b.subarray(0, at), ...m.extra, ...b.subarray(at));
        break;
    }
  }
  return b;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && hex(a) === hex(b);

// ---------------------------------------------------------------------------

t.test('SYN metadata: random payloads only ever throw typed errors, and never decode', async (t) => {
  let decoded = 0;
  let candidates = 0;
  fuzz(t, fc.tuple(fc.uint8Array({ maxLength: SYN_METADATA_MAX_BYTES + 64 }), fc.boolean()), ([b, withKeys]) => {
    if (isSynMetadataCandidate(b)) candidates++;
    if (attempt(() => decodeSynMetadata(b, withKeys ? ring : undefined)).ok) decoded++;
    return true;
  });
  t.equal(decoded, 0, 'no random payload decoded');
  t.equal(candidates, 0, 'no random payload passed even the cheap check');
});

t.test('SYN metadata: random bodies behind a consistent header', async (t) => {
  // Magic, version and length agree, flags are 0 or 1: the parser goes deep.
  let decoded = 0;
  // Half the bodies start with a well-formed session tuple, so the chain parser gets random input too.
  const tupleBytes = tupleArb.map((s) => Uint8Array.of(s.src.family, ...s.src.bytes, ...s.dst.bytes, s.sport >> 8, s.sport & 0xff, s.dport >> 8, s.dport & 0xff));
  const entryArb = fc.oneof(
    addrArb.map((a) => Uint8Array.of(a.family, ...a.bytes)),
    addrArb.map((a) => Uint8Array.of(a.family === 4 ? 6 : 4, ...a.bytes)), // family and size disagree
    fc.uint8Array({ minLength: 1, maxLength: 17 }),
  );
  const chainBytes = fc
    .tuple(fc.array(entryArb, { maxLength: 18 }), fc.option(fc.integer({ min: 0, max: 255 }), { freq: 3 }))
    .map(([entries, count]) => Uint8Array.of(count ?? entries.length, ...entries.flatMap((e) => [...e])));
  const bodyArb = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    piecesArb,
    fc.tuple(tupleBytes, chainBytes).map(([a, b]) => Uint8Array.of(...a, ...b)),
  );
  const arb = fc.tuple(bodyArb, fc.boolean(), fc.boolean());
  fuzz(t, arb, ([body, authFlag, withKeys]) => {
    const n = 8 + body.length;
    const b = Uint8Array.of(0xc4, 0x59, 0x53, 0x43, 1, authFlag ? 1 : 0, n >> 8, n & 0xff, ...body);
    if (!isSynMetadataCandidate(b)) return false;
    const r = attempt(() => decodeSynMetadata(b, withKeys ? ring : undefined));
    if (r.ok) {
      decoded++;
      if (withKeys) return false; // unsigned refused, signed would need a forged tag
      // Whatever decodes unsigned is the canonical encoding of its value.
      if (!authFlag && !same(encodeSynMetadata(r.value), b)) return false;
    }
    return true;
  });
  t.ok(decoded > 0, `${decoded} random bodies were well formed and re-encoded identically`);
});

t.test('SYN metadata: mutations of valid encodings', async (t) => {
  let decodedMutants = 0;
  fuzz(t, fc.tuple(metaArb, fc.boolean(), mutationsArb), ([m, signed, muts]) => {
    const orig = encodeSynMetadata(m, signed ? ring : undefined);
    const b = mutate(orig, muts);
    // With keys, only the untouched signed payload verifies.
    const withKeys = attempt(() => decodeSynMetadata(b, ring));
    if (withKeys.ok && !(signed && same(b, orig))) return false;
    const noKeys = attempt(() => decodeSynMetadata(b));
    if (noKeys.ok && !same(b, orig)) {
      decodedMutants++;
      if ((b[5]! & 1) === 0 && !same(encodeSynMetadata(noKeys.value), b)) return false;
    }
    return true;
  });
  t.ok(decodedMutants > 0, `some mutants (e.g. flipped address bits) still parse without keys: ${decodedMutants}`);
});

t.test('control: random datagrams only ever throw typed errors, and never decode', async (t) => {
  let decoded = 0;
  const window = new ReplayWindow();
  fuzz(t, fc.tuple(fc.uint8Array({ maxLength: CONTROL_MAX_BYTES + 64 }), fc.boolean()), ([b, withKeys]) => {
    if (attempt(() => decodeControl(b, withKeys ? ring : undefined, { window, sender: 'fuzz' })).ok) decoded++;
    return true;
  });
  t.equal(decoded, 0);
  t.equal(window.size, 0, 'nothing unauthenticated reached the replay window');
});

t.test('control: random bodies behind a consistent header', async (t) => {
  let decoded = 0;
  const arb = fc.tuple(
    fc.integer({ min: 0, max: CONTROL_TYPES.length - 1 }),
    fc.constantFrom(4 as const, 6 as const),
    fc.uint8Array({ minLength: 44, maxLength: 44 }), // reconfigId, msgSeq, tuple (room for IPv6)
    fc.oneof(fc.uint8Array({ maxLength: 120 }), piecesArb),
  );
  fuzz(t, arb, ([type, family, fixed, body]) => {
    const fixedLen = family === 4 ? 20 : 44;
    const b = Uint8Array.of(0xdc, 0x5c, 1, type, 0, family, body.length >> 8, body.length & 0xff, ...fixed.subarray(0, fixedLen), ...body);
    const r = attempt(() => decodeControl(b));
    if (r.ok) {
      decoded++;
      if (!same(encodeControl(r.value.message), b)) return false;
    }
    return attempt(() => decodeControl(b, ring)).ok === false;
  });
  t.comment(`${decoded} random bodies were well formed and re-encoded identically`);
});

t.test('control: mutations of valid encodings', async (t) => {
  let decodedMutants = 0;
  let counter = 0n;
  fuzz(t, fc.tuple(controlArb, fc.boolean(), mutationsArb), ([m, signed, muts]) => {
    counter++;
    const orig = signed ? encodeControl(m, ring, counter) : encodeControl(m);
    const b = mutate(orig, muts);
    const window = new ReplayWindow();
    const withKeys = attempt(() => decodeControl(b, ring, { window, sender: 'peer' }));
    if (withKeys.ok !== (signed && same(b, orig))) return false;
    if (!withKeys.ok && window.size !== 0) return false; // refused messages commit nothing
    const noKeys = attempt(() => decodeControl(b));
    if (noKeys.ok && !same(b, orig)) {
      decodedMutants++;
      if (!noKeys.value.authenticated && (b[4]! & 1) === 0 && !same(encodeControl(noKeys.value.message), b)) return false;
    }
    return true;
  });
  t.ok(decodedMutants > 0, `${decodedMutants} mutants still parse without keys`);
});

t.test('NAT tag: arbitrary bytes and mutations', async (t) => {
  fuzz(t, fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 0xffffffff }), mutationsArb, fc.boolean()), ([raw, tag, muts, useRaw]) => {
    const b = useRaw ? raw : mutate(encodeNatTagOption(tag), muts);
    const r = attempt(() => decodeNatTagOption(b));
    if (!r.ok) return true;
    return b[0] === 253 && b[1] === 8 && b[2] === 0x44 && b[3] === 0x59 && r.value === ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
  });
});
