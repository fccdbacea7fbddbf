import { deepStrictEqual, ok, strictEqual } from 'node:assert';
import t from 'tap';
import fc from 'fast-check';
import { type Piece, Reassembler } from '../dist/reassembly.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** The data pieces joined, checking they are contiguous from `from`. */
function joined(pieces: readonly Piece[], from = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = from;
  for (const p of pieces) {
    if (p.kind !== 'data') throw new Error(`unexpected gap at ${p.offset} (${p.length} bytes, ${p.cause})`);
    strictEqual(p.offset, at, 'pieces are contiguous');
    parts.push(p.data.slice());
    at += p.data.length;
  }
  const out = new Uint8Array(at - from);
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
}

/** A segment: stream bytes [off, off + len). */
interface Seg {
  off: number;
  len: number;
}

/**
 * Segments covering a stream of `n` bytes: a segmentation of the whole, plus
 * retransmissions of arbitrary ranges (with other boundaries) and duplicates,
 * in a random order.
 */
const segmentsOf = (n: number) =>
  fc
    .tuple(
      fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 60 }),
      fc.array(fc.tuple(fc.nat({ max: Math.max(0, n - 1) }), fc.integer({ min: 1, max: 300 })), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 10 }),
    )
    .chain(([sizes, retrans, dups]) => {
      const segs: Seg[] = [];
      let off = 0;
      for (let i = 0; off < n; i++) {
        const len = Math.min(sizes[i % sizes.length]!, n - off);
        segs.push({ off, len });
        off += len;
      }
      for (const [o, l] of retrans) if (n > 0) segs.push({ off: o, len: Math.min(l, n - o) });
      for (const d of dups) if (segs.length > 0) segs.push({ ...segs[d % segs.length]! });
      return fc.shuffledSubarray(segs, { minLength: segs.length, maxLength: segs.length });
    });

const streamAndSegments = fc
  .uint8Array({ minLength: 1, maxLength: 6000 })
  .chain((data) => fc.tuple(fc.constant(data), segmentsOf(data.length), fc.oneof(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0xfffff000, max: 0xffffffff }))));

t.test('in order, out of order, duplicated, with sequence numbers wrapping', async (t) => {
  const r = new Reassembler(0xfffffffe);
  const out: Piece[] = [];
  out.push(...r.push(0xfffffffe + 4, enc('efgh'))); // ahead, wraps to 2
  t.equal(r.buffered, 4);
  out.push(...r.push(0xfffffffe, enc('abcd')));
  out.push(...r.push(0xfffffffe + 2, enc('cdef'))); // old
  out.push(...r.push(6, enc('ij')));
  t.equal(dec(joined(out)), 'abcdefghij');
  t.equal(r.offset, 10);
  t.equal(r.stats.duplicateBytes, 4);
  t.equal(r.stats.outOfOrderSegments, 1);
  t.equal(r.buffered, 0);
});

t.test('the first copy of a byte wins', async (t) => {
  const r = new Reassembler(100);
  const out: Piece[] = [];
  out.push(...r.push(104, enc('XXXX')));
  out.push(...r.push(102, enc('ccdddd'))); // overlaps the buffered segment: only 102..104 is new
  out.push(...r.push(100, enc('aa')));
  t.equal(dec(joined(out)), 'aaccXXXX');
});

t.test('FIN: the stream is finished once every byte before it is delivered', async (t) => {
  const r = new Reassembler(1);
  r.push(4, enc('def'), { fin: true });
  t.notOk(r.finished, 'bytes 0..3 are still missing');
  r.push(1, enc('abc'));
  t.ok(r.finished);
  const r2 = new Reassembler(1);
  r2.push(1, enc('abc'));
  r2.push(4, new Uint8Array(0), { fin: true });
  t.ok(r2.finished, 'a bare FIN');
});

t.test('a segment the capture cut short leaves a gap for its missing tail', async (t) => {
  const r = new Reassembler(0);
  const p = [...r.push(0, enc('abc'), { wireLength: 6 }), ...r.push(6, enc('ghi'))];
  t.same(
    p.map((x) => (x.kind === 'data' ? ['data', x.offset, dec(x.data)] : ['gap', x.offset, x.length, x.cause])),
    [['data', 0, 'abc'], ['gap', 3, 3, 'truncated'], ['data', 6, 'ghi']],
  );
});

t.test('a full out-of-order buffer gives up the missing bytes as a gap', async (t) => {
  const r = new Reassembler(0, { maxBufferedBytes: 10, maxSegments: 100 });
  t.same(r.push(5, enc('fghij')), [], 'buffered');
  const p = r.push(10, enc('klmnop')); // 11 bytes held: over the bound
  t.same(
    p.map((x) => (x.kind === 'data' ? ['data', x.offset, dec(x.data)] : ['gap', x.offset, x.length, x.cause])),
    [['gap', 0, 5, 'overflow'], ['data', 5, 'fghij'], ['data', 10, 'klmnop']],
  );
  t.same(r.push(0, enc('abcde')), [], 'the missing bytes, too late, are old');
});

t.test('a segment absurdly far ahead is rejected', async (t) => {
  const r = new Reassembler(0);
  t.same(r.push(0x50000000, enc('x')), []);
  t.equal(r.stats.rejectedSegments, 1);
  t.equal(r.buffered, 0);
});

t.test('property: any segmentation, reordering, duplication and retransmission gives back the stream', async (t) => {
  fc.assert(
    fc.property(streamAndSegments, ([data, segs, isn]) => {
      const r = new Reassembler(isn, { maxBufferedBytes: 1 << 20, maxSegments: 10_000 });
      const out: Piece[] = [];
      for (const s of segs) out.push(...r.push((isn + s.off) >>> 0, data.slice(s.off, s.off + s.len)));
      deepStrictEqual(joined(out), data);
      strictEqual(r.buffered, 0);
    }),
    { numRuns: 400 },
  );
  t.pass('400 cases');
});

t.test('property: started mid-stream at the first segment seen, it gives back the stream from there', async (t) => {
  fc.assert(
    fc.property(streamAndSegments, ([data, segs, isn]) => {
      const first = segs[0]!;
      const r = new Reassembler((isn + first.off) >>> 0, { maxBufferedBytes: 1 << 20, maxSegments: 10_000 });
      const out: Piece[] = [];
      for (const s of segs) out.push(...r.push((isn + s.off) >>> 0, data.slice(s.off, s.off + s.len)));
      // earlier bytes went by before the observer arrived; the rest is complete (it covers the stream to its end)
      deepStrictEqual(joined(out), data.slice(first.off));
    }),
    { numRuns: 400 },
  );
  t.pass('400 cases');
});

t.test('property: with a small buffer, what is delivered is right, in order, and the buffer stays bounded', async (t) => {
  fc.assert(
    fc.property(streamAndSegments, fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 8 }), ([data, segs, isn], maxBytes, maxSegs) => {
      const r = new Reassembler(isn, { maxBufferedBytes: maxBytes, maxSegments: maxSegs });
      let at = 0;
      for (const s of segs) {
        for (const p of r.push((isn + s.off) >>> 0, data.slice(s.off, s.off + s.len))) {
          strictEqual(p.offset, at, 'data and gaps are contiguous');
          if (p.kind === 'data') deepStrictEqual(p.data, data.slice(at, at + p.data.length), 'data is the stream at its offset');
          else ok(p.length > 0 && p.cause === 'overflow');
          at += p.kind === 'data' ? p.data.length : p.length;
        }
        ok(r.buffered <= maxBytes, 'bytes held within the bound');
      }
      strictEqual(r.offset, at);
    }),
    { numRuns: 400 },
  );
  t.pass('400 cases');
});
