import t from 'tap';
import fc from 'fast-check';
import { HttpCache, cacheKey, etagMatches, parseCacheControl, requestAllowsCached, storability } from '../dist/cache.js';
import type { Headers } from '../dist/http.js';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const ok = (headers: Headers) => ({ status: 200, reason: 'OK', headers });

t.test('Cache-Control parsing', async (t) => {
  const d = parseCacheControl('public, Max-Age=60, no-cache="Set-Cookie, X", s-maxage = 10 ,private');
  t.equal(d.get('public'), true);
  t.equal(d.get('max-age'), '60');
  t.equal(d.get('no-cache'), 'Set-Cookie, X', 'quoted values with commas');
  t.equal(d.get('s-maxage'), '10');
  t.equal(d.get('private'), true);
  t.equal(parseCacheControl(undefined).size, 0);
  t.equal(parseCacheControl('max-age=1, max-age=2').get('max-age'), '1', 'the first of a repeated directive');
});

t.test('what may be stored', async (t) => {
  const st = (method: string, req: Headers, status: number, res: Headers) => storability(method, req, status, res, T0);
  t.same(st('GET', [], 200, [['Cache-Control', 'max-age=60']]), { ok: true, freshFor: 60 });
  t.same(st('GET', [], 200, [['Cache-Control', 'max-age=60, s-maxage=5']]), { ok: true, freshFor: 5 }, 's-maxage wins in a shared cache');
  t.same(st('GET', [], 200, [['Date', new Date(T0).toUTCString()], ['Expires', new Date(T0 + 120_000).toUTCString()]]), { ok: true, freshFor: 120 }, 'Expires minus Date');
  t.same(st('GET', [], 200, [['Expires', '0']]), { ok: false, why: 'no freshness' }, 'an invalid Expires is in the past');
  t.same(st('POST', [], 200, [['Cache-Control', 'max-age=60']]), { ok: false, why: 'method' });
  t.same(st('GET', [], 206, [['Cache-Control', 'max-age=60']]), { ok: false, why: 'status' });
  t.same(st('GET', [], 200, []), { ok: false, why: 'no freshness' }, 'no heuristic freshness');
  for (const d of ['no-store', 'private', 'no-cache']) t.same(st('GET', [], 200, [['Cache-Control', `max-age=60, ${d}`]]), { ok: false, why: d });
  t.same(st('GET', [['Cache-Control', 'no-store']], 200, [['Cache-Control', 'max-age=60']]), { ok: false, why: 'request no-store' });
  t.same(st('GET', [['Authorization', 'Basic x']], 200, [['Cache-Control', 'max-age=60']]), { ok: false, why: 'authorization' });
  t.same(st('GET', [], 200, [['Cache-Control', 'max-age=60'], ['Vary', 'Accept']]), { ok: false, why: 'vary' });
  t.same(st('GET', [], 200, [['Cache-Control', 'max-age=60'], ['Set-Cookie', 'a=b']]), { ok: false, why: 'set-cookie' });
});

t.test('lookups: fresh entries served, stale ones and refusing requests are misses', async (t) => {
  const c = new HttpCache();
  const key = cacheKey('Example.TEST', 80, '/a?x=1');
  t.equal(key, 'example.test/a?x=1');
  t.equal(cacheKey('h', 8080, '/'), 'h:8080/');
  t.ok(c.store(key, ok([['Cache-Control', 'max-age=60'], ['Age', '10'], ['ETag', '"v1"']]), Buffer.from('body'), 60, T0));
  const hit = c.lookup(key, 'GET', [], T0 + 5_000);
  t.equal(hit?.entry.body?.toString(), 'body');
  t.equal(hit?.age, 15, 'age: the Age received plus the time since');
  t.equal(hit?.entry.etag, '"v1"');
  t.equal(c.lookup(key, 'HEAD', [], T0), undefined, 'only GET is answered');
  t.equal(c.lookup(key, 'GET', [['Cache-Control', 'no-cache']], T0), undefined);
  t.equal(c.lookup(key, 'GET', [['Pragma', 'no-cache']], T0), undefined);
  t.ok(c.lookup(key, 'GET', [['Pragma', 'no-cache'], ['Cache-Control', 'max-age=100']], T0), 'Pragma only counts without Cache-Control');
  t.equal(c.lookup(key, 'GET', [['Cache-Control', 'max-age=12']], T0 + 5_000), undefined, 'older than the request accepts');
  t.equal(c.lookup(key, 'GET', [], T0 + 50_000), undefined, 'stale: age 60 is not below 60');
  t.ok(c.lookup(key, 'GET', [], T0 + 49_999));
  t.equal(c.stats.hits, 3);
  t.notOk(requestAllowsCached([['Authorization', 'x']], 0));
});

t.test('what a splice leaves in the cache: headers, validators, size; never served', async (t) => {
  const c = new HttpCache();
  const key = 'h/big';
  c.store(key, ok([['Cache-Control', 'max-age=60']]), Buffer.from('old small version'), 60, T0);
  const e = c.remember(key, ok([['Cache-Control', 'max-age=60'], ['ETag', '"big"'], ['Last-Modified', 'Mon, 02 Mar 2026 10:00:00 GMT'], ['Content-Length', '20971520']]), 20971520, 'spliced', T0 + 1000);
  t.equal(e.stored, false);
  t.equal(e.notStored, 'spliced');
  t.equal(e.size, 20971520);
  t.equal(e.etag, '"big"');
  t.equal(e.lastModified, 'Mon, 02 Mar 2026 10:00:00 GMT');
  t.equal(e.body, undefined);
  t.equal(c.lookup(key, 'GET', [], T0 + 1000), undefined, 'a remembered response is not served');
  t.equal(c.size, 0, 'the older stored body is gone');
  t.equal(c.peek(key)?.notStored, 'spliced');
});

t.test('limits: bodies too large, LRU eviction by bytes and by count, invalidation', async (t) => {
  const c = new HttpCache({ maxBytes: 100, maxEntryBytes: 60, maxEntries: 3 });
  const res = ok([['Cache-Control', 'max-age=60']]);
  t.notOk(c.store('big', res, Buffer.alloc(61), 60, T0), 'above maxEntryBytes');
  t.equal(c.peek('big')?.notStored, 'too-large');
  c.store('a', res, Buffer.alloc(40), 60, T0);
  c.store('b', res, Buffer.alloc(40), 60, T0);
  t.ok(c.lookup('a', 'GET', [], T0), 'a is now the most recently used');
  c.store('c', res, Buffer.alloc(40), 60, T0);
  t.equal(c.size, 80);
  t.ok(c.peek('a'));
  t.notOk(c.peek('b'), 'b was the least recently used');
  t.ok(c.count <= 3);
  c.store('d', res, Buffer.alloc(1), 60, T0);
  c.store('e', res, Buffer.alloc(1), 60, T0);
  t.equal(c.count, 3, 'at most maxEntries');
  t.ok(c.invalidate('e'));
  t.notOk(c.invalidate('e'));
  t.ok(c.stats.evictions >= 2);
});

t.test('property: the stored bytes never exceed maxBytes and match the entries', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), fc.nat(50), fc.boolean()), { maxLength: 60 }), (ops) => {
      const c = new HttpCache({ maxBytes: 120, maxEntryBytes: 50, maxEntries: 4 });
      for (const [k, n, spliced] of ops) {
        if (spliced) c.remember(k, ok([]), n, 'spliced', T0);
        else c.store(k, ok([['Cache-Control', 'max-age=9']]), Buffer.alloc(n), 9, T0);
        const sum = c.all().reduce((s, e) => s + (e.body?.length ?? 0), 0);
        if (sum !== c.size || c.size > 120 || c.count > 4) return false;
      }
      return true;
    }),
  );
  t.pass();
});

t.test('entity tags', async (t) => {
  t.ok(etagMatches('"a"', '"a"'));
  t.ok(etagMatches('W/"a"', '"a"'), 'weak comparison');
  t.ok(etagMatches('"x", "a"', 'W/"a"'));
  t.ok(etagMatches('*', '"a"'));
  t.notOk(etagMatches('"b"', '"a"'));
  t.notOk(etagMatches('"a"', undefined));
});
