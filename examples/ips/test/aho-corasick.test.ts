import { deepStrictEqual } from 'node:assert';
import t from 'tap';
import fc from 'fast-check';
import { AhoCorasick, type Match, PatternError, StreamScanner, naiveFindAll } from '../dist/aho-corasick.js';

const enc = (s: string) => new TextEncoder().encode(s);
const sorted = (ms: readonly Match[]) => [...ms].sort((a, b) => a.end - b.end || a.pattern - b.pattern);

/** Scans `data` cut at the given points (offsets, in any order, duplicates allowed). */
function scanChunked(ac: AhoCorasick, data: Uint8Array, cuts: readonly number[]): Match[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const s = new StreamScanner(ac);
  const out: Match[] = [];
  let prev = 0;
  for (const c of [...at, data.length]) {
    s.feed(data.subarray(prev, c), (m) => void out.push(m));
    prev = c;
  }
  return out;
}

t.test('the textbook example', async (t) => {
  const ac = new AhoCorasick(['he', 'she', 'his', 'hers']);
  const found = ac.findAll(enc('ushers')).map((m) => [['he', 'she', 'his', 'hers'][m.pattern], m.end]);
  t.same(sorted(ac.findAll(enc('ushers'))), sorted(naiveFindAll(['he', 'she', 'his', 'hers'].map(enc), enc('ushers'))));
  t.same(new Set(found.map((x) => x.join('@'))), new Set(['she@4', 'he@4', 'hers@6']));
});

t.test('a term split across chunks is found at its stream offset', async (t) => {
  const ac = new AhoCorasick(['/etc/passwd', 'cmd.exe']);
  const s = new StreamScanner(ac);
  const got: Match[] = [];
  s.feed(enc('GET /../../etc/pa'), (m) => void got.push(m));
  t.same(got, [], 'nothing in the first half');
  s.feed(enc('sswd HTTP/1.1'), (m) => void got.push(m));
  t.same(got, [{ pattern: 0, end: 'GET /../../etc/passwd'.length }]);
  t.equal(s.offset, 'GET /../../etc/passwd HTTP/1.1'.length);
});

t.test('stopping at the first match consumes up to it', async (t) => {
  const ac = new AhoCorasick(['bad']);
  const s = new StreamScanner(ac);
  const n = s.feed(enc('xxbadyybad'), () => true);
  t.equal(n, 5);
  t.equal(s.offset, 5);
});

t.test('reset forgets a partial match (a gap in the stream)', async (t) => {
  const ac = new AhoCorasick(['abcd']);
  const s = new StreamScanner(ac);
  const got: Match[] = [];
  s.feed(enc('xab'), (m) => void got.push(m));
  s.reset(10);
  s.feed(enc('cd abcd'), (m) => void got.push(m));
  t.same(got, [{ pattern: 0, end: 3 + 10 + 7 }], 'only the whole occurrence after the gap');
});

t.test('case-insensitive terms', async (t) => {
  const ac = new AhoCorasick(['Select ', 'UNION'], { caseInsensitive: true });
  t.same(ac.findAll(enc('1 union SELECT *')).map((m) => m.pattern).sort(), [0, 1]);
  const strict = new AhoCorasick(['Select ']);
  t.same(strict.findAll(enc('SELECT ')), []);
});

t.test('duplicate and nested patterns each report', async (t) => {
  const ac = new AhoCorasick(['aa', 'aa', 'a', 'aaa']);
  t.same(sorted(ac.findAll(enc('aaaa'))), sorted(naiveFindAll(['aa', 'aa', 'a', 'aaa'].map(enc), enc('aaaa'))));
});

t.test('every byte value, and a pattern of all 256', async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const ac = new AhoCorasick([all, Uint8Array.of(0xff, 0x00)]);
  const data = new Uint8Array([...all, ...all]);
  t.same(sorted(ac.findAll(data)), sorted(naiveFindAll([all, Uint8Array.of(0xff, 0x00)], data)));
  t.equal(ac.classes, 257, 'one class per byte value, plus the unused "other" class');
});

t.test('an empty pattern is refused', async (t) => {
  t.throws(() => new AhoCorasick(['ok', '']), PatternError);
});

t.test('property: the automaton finds exactly what a naive search finds, across any chunking', async (t) => {
  // a small alphabet makes overlaps and shared prefixes common
  const small = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => b.map((x) => 97 + (x % 3)));
  fc.assert(
    fc.property(
      fc.array(small, { minLength: 1, maxLength: 12 }),
      fc.uint8Array({ maxLength: 300 }).map((b) => b.map((x) => 97 + (x % 3))),
      fc.array(fc.nat(), { maxLength: 20 }),
      (patterns, data, cuts) => {
        const ac = new AhoCorasick(patterns);
        const want = sorted(naiveFindAll(patterns, data));
        deepStrictEqual(sorted(scanChunked(ac, data, cuts)), want);
        deepStrictEqual(sorted(ac.findAll(data)), want);
      },
    ),
    { numRuns: 500 },
  );
  t.pass('500 cases');
});

t.test('property: any bytes, case-insensitive, byte-by-byte chunks', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff][x % 6]!)), { minLength: 1, maxLength: 8 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => b.map((x) => [0x41, 0x61, 0x42, 0x62, 0x00, 0xff, 0x43][x % 7]!)),
      (patterns, data) => {
        const ac = new AhoCorasick(patterns, { caseInsensitive: true });
        deepStrictEqual(sorted(scanChunked(ac, data, [...data.keys()])), sorted(naiveFindAll(patterns, data, true)));
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 cases');
});

t.test('throughput with many terms (linear in the stream)', async (t) => {
  // 2000 random 8..24-byte terms; 16 MB of random bytes, scanned in 64 KiB chunks
  let x = 2463534242;
  const rnd = () => {
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) & 0xff;
  };
  const terms = Array.from({ length: 2000 }, () => Uint8Array.from({ length: 8 + (rnd() % 17) }, rnd));
  const built = process.hrtime.bigint();
  const ac = new AhoCorasick(terms);
  const buildMs = Number(process.hrtime.bigint() - built) / 1e6;
  const data = Uint8Array.from({ length: 16 << 20 }, rnd);
  const s = new StreamScanner(ac);
  const start = process.hrtime.bigint();
  let matches = 0;
  for (let off = 0; off < data.length; off += 1 << 16) s.feed(data.subarray(off, off + (1 << 16)), () => void matches++);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`2000 terms: ${ac.states} states, ${ac.classes} byte classes, ${(ac.tableBytes / 1048576).toFixed(1)} MiB table, built in ${buildMs.toFixed(0)} ms; 16 MiB scanned in ${ms.toFixed(0)} ms (${((16 / ms) * 1000).toFixed(0)} MiB/s), ${matches} matches`);
  t.equal(s.offset, data.length);
  // a planted term is found
  const planted = new Uint8Array(100);
  planted.set(terms[1234]!, 50);
  t.ok(ac.findAll(planted).some((m) => m.pattern === 1234 && m.end === 50 + terms[1234]!.length));
});
