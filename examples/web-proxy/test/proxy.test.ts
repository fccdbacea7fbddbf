/**
 * The proxy over loopback, without an agent (no root needed): HTTP/1.1
 * behaviour, caching, filtering, and the splice decision with a stand-in
 * for the library's splice.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { parseConfig } from '../dist/config.js';
import { type Headers, HttpParser, type ResponseHead, encodeChunked, header } from '../dist/http.js';
import { type DyscoApi, WebProxy } from '../dist/proxy.js';
import { CHUNKED_BODY, PAGE, pattern, startOrigin } from '../dist/origin.js';

interface Resp {
  status: number;
  headers: Headers;
  body: Buffer;
  trailers?: Headers;
}

/** A client on a raw TCP connection: writes requests as bytes, reads responses with the proxy's own parser. */
class Client {
  readonly sock: Socket;
  private readonly parser = new HttpParser('response');
  private readonly ready: Resp[] = [];
  private readonly waiters: ((r: Resp | undefined) => void)[] = [];
  private cur: { head: ResponseHead; body: Buffer[]; trailers?: Headers } | undefined;
  ended = false;
  readonly connected: Promise<void>;

  constructor(port: number) {
    this.sock = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.connected = new Promise((r) => this.sock.once('connect', () => r()));
    this.sock.on('data', (d: Buffer) => {
      this.parser.feed(d);
      this.pull();
    });
    this.sock.on('end', () => {
      try {
        const ev = this.parser.finish();
        if (ev) this.take(ev);
      } catch {
        // cut short: the waiter gets undefined
      }
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
    this.sock.on('error', () => undefined);
  }

  private pull(): void {
    for (let ev = this.parser.next(); ev; ev = this.parser.next()) this.take(ev);
  }

  private take(ev: NonNullable<ReturnType<HttpParser['next']>>): void {
    if (ev.type === 'head') this.cur = { head: ev.head as ResponseHead, body: [] };
    else if (ev.type === 'data') this.cur!.body.push(Buffer.from(ev.data));
    else if (ev.type === 'trailers') this.cur!.trailers = ev.trailers;
    else {
      const r: Resp = { status: this.cur!.head.status, headers: this.cur!.head.headers, body: Buffer.concat(this.cur!.body), ...(this.cur!.trailers ? { trailers: this.cur!.trailers } : {}) };
      this.cur = undefined;
      const w = this.waiters.shift();
      if (w) w(r);
      else this.ready.push(r);
    }
  }

  /** Sends raw bytes, telling the parser which methods the responses answer. */
  send(wire: string | Buffer, ...methods: string[]): void {
    for (const m of methods) this.parser.expect(m);
    this.sock.write(wire);
  }

  /** The next complete response (undefined if the connection ended first). */
  response(timeoutMs = 10_000): Promise<Resp | undefined> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response in time')), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
  }

  /** Resolves when the proxy closed the connection. */
  closed(timeoutMs = 5000): Promise<boolean> {
    if (this.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.sock.once('end', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

const req = (method: string, path: string, headers: Headers = [], body?: string | Buffer, minor = 1): Buffer => {
  const hs: Headers = [['Host', 'origin.test'], ...headers];
  if (body !== undefined && !hs.some(([k]) => k.toLowerCase() === 'transfer-encoding')) hs.push(['Content-Length', String(Buffer.byteLength(body))]);
  return Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.${minor}\r\n${hs.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1'), Buffer.from(body ?? '')]);
};

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function setup(t: Test, cfg: Record<string, unknown> = {}, o: { dysco?: DyscoApi; now?: () => number; originPort?: number } = {}) {
  const origin = await startOrigin(0, '127.0.0.1');
  const oport = o.originPort ?? (origin.server.address() as AddressInfo).port;
  const records: Record<string, unknown>[] = [];
  const upstream = { ...((cfg.upstream as object) ?? {}), hosts: { 'origin.test': `127.0.0.1:${oport}`, ...(((cfg.upstream as { hosts?: object })?.hosts) ?? {}) } };
  const config = parseConfig({ ...cfg, upstream });
  const proxy = new WebProxy(config, { log: (r) => records.push(r), ...(o.dysco ? { dysco: o.dysco } : {}), ...(o.now ? { now: o.now } : {}) });
  const { port } = await proxy.listen(0, '127.0.0.1');
  const clients: Client[] = [];
  t.teardown(async () => {
    for (const c of clients) c.sock.destroy();
    await proxy.close();
    origin.server.closeAllConnections();
    await new Promise((r) => origin.server.close(r));
  });
  const client = async () => {
    const c = new Client(port);
    clients.push(c);
    await c.connected;
    return c;
  };
  const requests = () => records.filter((r) => r.msg === 'request');
  return { origin, proxy, port, records, requests, client };
}

t.test('keep-alive: several requests on one connection, bodies both ways', async (t) => {
  const { client, origin, requests } = await setup(t);
  const c = await client();
  c.send(req('GET', '/page'), 'GET');
  const r1 = (await c.response())!;
  t.equal(r1.status, 200);
  t.equal(r1.body.toString(), PAGE);
  c.send(req('POST', '/echo', [['Content-Type', 'text/plain']], 'hello body'), 'POST');
  const r2 = JSON.parse((await c.response())!.body.toString()) as { method: string; length: number; sha256: string };
  t.same(r2, { method: 'POST', length: 10, sha256: sha('hello body') }, 'a Content-Length request body forwarded');
  const parts = [Buffer.from('chunk one|'), Buffer.alloc(5000, 7), Buffer.from('|last')];
  c.send(req('PUT', '/echo', [['Transfer-Encoding', 'chunked']], encodeChunked(parts, [['X-Check', 'yes']])), 'PUT');
  const r3 = JSON.parse((await c.response())!.body.toString()) as { length: number; sha256: string };
  t.same(r3, { method: 'PUT', length: 5015, sha256: sha(Buffer.concat(parts)) }, 'a chunked request body forwarded');
  c.send(req('GET', '/chunked'), 'GET');
  const r4 = (await c.response())!;
  t.equal(r4.body.toString(), CHUNKED_BODY, 'a chunked response relayed');
  t.equal(header(r4.headers, 'transfer-encoding'), 'chunked');
  t.same(r4.trailers, [['X-Digest', sha(CHUNKED_BODY)]], 'with its trailer');
  t.equal(origin.requests.length, 4);
  const recs = requests();
  t.equal(recs.length, 4, 'one log record per request');
  t.equal(new Set(recs.map((r) => r.client)).size, 1, 'all on one client connection');
  t.same(recs.map((r) => [r.method, r.path, r.status, r.cache]), [['GET', '/page', 200, 'miss'], ['POST', '/echo', 200, 'miss'], ['PUT', '/echo', 200, 'miss'], ['GET', '/chunked', 200, 'miss']]);
  for (const r of recs) {
    t.equal(r.host, 'origin.test');
    t.type(r.ms, 'number');
    t.type(r.t, 'string');
  }
  t.equal(recs[3]!.bytes, CHUNKED_BODY.length, 'bytes: the body bytes sent');
  t.notOk(c.ended, 'the connection is still open');
});

t.test('pipelined requests are answered in order, hits and denials included', async (t) => {
  const { client, origin } = await setup(t, { deny: { urlPrefixes: ['/private/'] } });
  const c = await client();
  c.send(Buffer.concat([req('GET', '/page'), req('GET', '/page'), req('GET', '/private/x'), req('GET', '/b'), req('HEAD', '/page'), req('GET', '/c')]), 'GET', 'GET', 'GET', 'GET', 'HEAD', 'GET');
  const rs: Resp[] = [];
  for (let i = 0; i < 6; i++) rs.push((await c.response())!);
  t.same(rs.map((r) => r.status), [200, 200, 403, 200, 200, 200]);
  t.same(rs.map((r) => header(r.headers, 'x-cache') ?? '-'), ['MISS', 'HIT', '-', 'MISS', 'MISS', 'MISS']);
  t.equal(rs[3]!.body.toString(), 'GET /b\n');
  t.equal(rs[4]!.body.length, 0, 'HEAD: no body');
  t.equal(header(rs[4]!.headers, 'content-length'), String(PAGE.length), "HEAD: the length of the GET's body");
  t.equal(rs[5]!.body.toString(), 'GET /c\n', 'the request after a HEAD is read right');
  t.same(origin.requests.map((r) => r.url), ['/page', '/b', '/page', '/c']);
});

t.test('bodiless responses: 204 and 304 (from the origin and from the cache)', async (t) => {
  const { client, origin, requests } = await setup(t);
  const c = await client();
  c.send(req('GET', '/empty'), 'GET');
  t.equal((await c.response())!.status, 204);
  c.send(req('GET', '/etag', [['If-None-Match', '"v0"']]), 'GET');
  const full = (await c.response())!;
  t.equal(full.status, 200);
  t.equal(full.body.toString(), 'etag body\n');
  c.send(req('GET', '/etag', [['If-None-Match', '"v1"'], ['Cache-Control', 'no-cache']]), 'GET');
  const r304 = (await c.response())!;
  t.equal(r304.status, 304, "the origin's 304");
  t.equal(r304.body.length, 0);
  c.send(req('GET', '/etag', [['If-None-Match', 'W/"v1"']]), 'GET');
  const cached304 = (await c.response())!;
  t.equal(cached304.status, 304, 'a 304 from the cache (the stored ETag matches)');
  t.equal(header(cached304.headers, 'etag'), '"v1"');
  c.send(req('GET', '/last'), 'GET');
  t.equal((await c.response())!.body.toString(), 'GET /last\n', 'framing intact after bodiless responses');
  t.equal(origin.count('/etag'), 2);
  t.same(requests().map((r) => r.cache), ['miss', 'miss', 'miss', 'hit', 'miss']);
});

t.test('cache: hits, no-store, expiry, request no-cache, invalidation by an unsafe method', async (t) => {
  let now = Date.parse('2026-03-02T10:00:00Z');
  const { client, origin, requests, proxy } = await setup(t, {}, { now: () => now });
  const c = await client();
  const get = async (path: string, headers: Headers = []) => {
    c.send(req('GET', path, headers), 'GET');
    return (await c.response())!;
  };
  await get('/page');
  const hit = await get('/page');
  t.equal(hit.body.toString(), PAGE);
  t.equal(header(hit.headers, 'x-cache'), 'HIT');
  t.equal(origin.count('/page'), 1, 'the second request did not reach the origin');
  now += 100_000;
  t.equal(header((await get('/page')).headers, 'age'), '100', 'Age grows with the time in the cache');
  now += 201_000;
  t.equal(header((await get('/page')).headers, 'x-cache'), 'MISS', 'stale after max-age: fetched again');
  t.equal(origin.count('/page'), 2);
  await get('/page', [['Cache-Control', 'no-cache']]);
  t.equal(origin.count('/page'), 3, 'a no-cache request goes to the origin');
  await get('/nostore');
  await get('/nostore');
  t.equal(origin.count('/nostore'), 2, 'no-store responses are not kept');
  c.send(req('DELETE', '/page'), 'DELETE');
  await c.response();
  await get('/page');
  t.equal(origin.requests.filter((r) => r.method === 'GET' && r.url === '/page').length, 4, 'a DELETE dropped the stored page');
  t.same(requests().map((r) => r.cache), ['miss', 'hit', 'hit', 'miss', 'miss', 'miss', 'miss', 'miss', 'miss']);
  t.equal(requests()[0]!.stored, true);
  t.ok(proxy.cache.stats.hits >= 2);
});

t.test('denied URLs and hosts: 403, logged, the origin never contacted', async (t) => {
  const { client, origin, requests } = await setup(t, { deny: { hosts: ['.blocked.test'], urlPatterns: ['\\.exe$'], urlPrefixes: ['/private/'] } });
  const c = await client();
  for (const [host, path] of [['origin.test', '/private/a'], ['x.blocked.test', '/'], ['origin.test', '/%70rivate/b'], ['origin.test', '/dl/setup.exe']]) {
    c.send(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`), 'GET');
    const r = (await c.response())!;
    t.equal(r.status, 403, `${host}${path} denied`);
  }
  t.equal(origin.requests.length, 0, 'the origin heard nothing');
  const recs = requests();
  t.same(recs.map((r) => r.cache), ['denied', 'denied', 'denied', 'denied']);
  t.same(recs.map((r) => r.rule), ['prefix /private/', 'host .blocked.test', 'prefix /private/', 'pattern \\.exe$']);
  // a denied request with a body: answered at once, and the connection closed (the body is not read)
  const c2 = await client();
  c2.send(req('POST', '/private/upload', [], 'x'.repeat(100_000)), 'POST');
  t.equal((await c2.response())!.status, 403);
  t.ok(await c2.closed(), 'closed after the answer');
  t.equal(origin.requests.length, 0);
});

t.test('HTTP/1.0 clients and close-delimited responses', async (t) => {
  const { client } = await setup(t);
  const c = await client();
  c.send(req('GET', '/chunked', [], undefined, 0), 'GET');
  const r = (await c.response())!;
  t.equal(r.body.toString(), CHUNKED_BODY, 'an HTTP/1.0 client gets the body unchunked');
  t.equal(header(r.headers, 'transfer-encoding'), undefined);
  t.ok(await c.closed(), 'delimited by the close');
  const c2 = await client();
  c2.send(req('GET', '/close'), 'GET');
  const r2 = (await c2.response())!;
  t.equal(r2.body.toString(), 'body until the close\n', 'a close-delimited response');
  t.equal(header(r2.headers, 'transfer-encoding'), 'chunked', 'reframed as chunked for an HTTP/1.1 client');
  c2.send(req('GET', '/after'), 'GET');
  t.equal((await c2.response())!.body.toString(), 'GET /after\n', 'which keeps its connection');
  const c3 = await client();
  c3.send(req('GET', '/page', [['Connection', 'keep-alive']], undefined, 0), 'GET');
  const r3 = (await c3.response())!;
  t.equal(header(r3.headers, 'connection'), 'keep-alive', 'HTTP/1.0 keep-alive honoured (a response with a length)');
  c3.send(req('GET', '/ka2', [], undefined, 0), 'GET');
  t.equal((await c3.response())!.body.toString(), 'GET /ka2\n');
  t.ok(await c3.closed(), 'and the next request without keep-alive closes');
});

t.test('Connection: close, Expect: 100-continue, hop-by-hop headers', async (t) => {
  const { client, origin } = await setup(t);
  const c = await client();
  c.send(req('GET', '/echo', [['Connection', 'close, X-Secret'], ['X-Secret', 'hop'], ['Keep-Alive', 'timeout=5'], ['Upgrade', 'websocket']]), 'GET');
  const r = (await c.response())!;
  t.equal(header(r.headers, 'connection'), 'close');
  t.ok(await c.closed(), 'closed after the response to a Connection: close request');
  const c2 = await client();
  c2.send(Buffer.from('POST /echo HTTP/1.1\r\nHost: origin.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n'), 'POST');
  const cont = (await c2.response())!;
  t.equal(cont.status, 100, '100 Continue passed on');
  c2.sock.write('abcde');
  const r2 = JSON.parse((await c2.response())!.body.toString()) as { length: number };
  t.equal(r2.length, 5);
  t.equal(origin.requests.length, 2);
});

t.test('errors: malformed requests, no Host, unreachable and silent origins', async (t) => {
  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    silent.close();
  });
  const sport = (silent.address() as AddressInfo).port;
  const { client, requests } = await setup(t, { upstream: { hosts: { 'down.test': '127.0.0.1:1', 'silent.test': `127.0.0.1:${sport}` }, timeoutMs: 300 } });
  const c = await client();
  c.send(Buffer.from('GET / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 1, 2\r\n\r\n'), 'GET');
  t.equal((await c.response())!.status, 400);
  t.ok(await c.closed(), 'a malformed request closes the connection');
  const c2 = await client();
  c2.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'GET');
  t.equal((await c2.response())!.status, 400, 'no Host');
  const c3 = await client();
  c3.send(Buffer.from('GET / HTTP/1.1\r\nHost: down.test\r\n\r\n'), 'GET');
  t.equal((await c3.response())!.status, 502, 'connection refused: 502');
  c3.send(Buffer.from('GET / HTTP/1.1\r\nHost: silent.test\r\n\r\n'), 'GET');
  t.equal((await c3.response())!.status, 504, 'no answer: 504');
  c3.send(Buffer.from('CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n'), 'CONNECT');
  t.equal((await c3.response())!.status, 405, 'CONNECT refused');
  c3.send(Buffer.from('GET / HTTP/1.1\r\nHost: origin.test\r\nVia: 1.1 dysco-web-proxy\r\n\r\n'), 'GET');
  t.equal((await c3.response())!.status, 508, 'a request that already went through this proxy');
  c3.send(Buffer.from('GET /fine HTTP/1.1\r\nHost: origin.test\r\n\r\n'), 'GET');
  t.equal((await c3.response())!.status, 200, 'the connection survives answered errors');
  t.same(requests().map((r) => r.cache), ['error', 'error', 'error', 'error', 'error', 'error', 'miss']);
});

t.test('absolute-form request targets (a client configured to use the proxy)', async (t) => {
  const { client, origin } = await setup(t);
  const c = await client();
  c.send(Buffer.from('GET http://origin.test/abs?q=1 HTTP/1.1\r\nHost: ignored.test\r\n\r\n'), 'GET');
  t.equal((await c.response())!.body.toString(), 'GET /abs?q=1\n', 'sent to the origin in origin form');
  t.same(origin.requests.map((r) => r.url), ['/abs?q=1']);
});

t.test('a kept-alive upstream connection the origin closed: the request is retried on a new one', async (t) => {
  let conns = 0;
  // answers the first request of each connection, then drops the connection when the next one comes
  const flaky = createServer((s) => {
    conns += 1;
    let n = 0;
    s.on('data', () => {
      if (n++ === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else s.destroy();
    });
  });
  await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    flaky.close();
  });
  const { client } = await setup(t, {}, { originPort: (flaky.address() as AddressInfo).port });
  const c = await client();
  for (let i = 0; i < 3; i++) {
    c.send(req('GET', `/r${i}`), 'GET');
    const r = (await c.response())!;
    t.equal(r.status, 200, `request ${i}`);
  }
  t.equal(conns, 3, 'a new upstream connection for each retried request');
});

// ---- the splice decision, with a stand-in for the library --------------------

interface FakeDysco extends DyscoApi {
  calls: number;
}

function fakeDysco(o: { steered: boolean; outcome: 'aborted' | 'completed' | 'throw' }): FakeDysco {
  const f: FakeDysco = {
    calls: 0,
    sessionOf: async () => (o.steered ? { id: 1 } : undefined),
    connectVia: async () => {
      throw new Error('not here');
    },
    splice: async (a: Socket, b: Socket) => {
      f.calls += 1;
      await new Promise((r) => setTimeout(r, 20));
      if (o.outcome === 'throw') throw new Error('TCP timestamps are on');
      if (o.outcome === 'aborted') return { result: 'aborted', reason: 'contention', durationMs: 3 };
      // what the library does once the box is off the path: unpipe, close
      a.unpipe();
      b.unpipe();
      a.destroy();
      b.destroy();
      return { result: 'completed', durationMs: 4.2 };
    },
  };
  return f;
}

const BIG = 3 * 1024 * 1024;

t.test('splice aborted: the proxy relays the rest of the connection, the body arrives intact', async (t) => {
  const dysco = fakeDysco({ steered: true, outcome: 'aborted' });
  const { client, requests, records } = await setup(t, {}, { dysco });
  const c = await client();
  c.send(req('GET', `/big?size=${BIG}`), 'GET');
  const r = (await c.response())!;
  t.equal(dysco.calls, 1, 'a splice was asked for');
  t.equal(r.body.length, BIG);
  t.equal(sha(r.body), sha(pattern(BIG)), 'content intact');
  t.equal(header(r.headers, 'content-length'), String(BIG));
  c.send(req('GET', '/next'), 'GET');
  t.equal((await c.response())!.body.toString(), 'GET /next\n', 'the connection goes on (as a relay to the same server)');
  await until(() => requests().length > 0);
  const rec = requests()[0]!;
  t.equal(rec.cache, 'miss');
  t.match(rec.splice, { result: 'aborted', reason: 'contention' });
  t.ok(records.some((x) => x.level === 'warn' && /splice failed/.test(String(x.msg))));
});

t.test('splice refused by the library (it throws): relayed the same way', async (t) => {
  const dysco = fakeDysco({ steered: true, outcome: 'throw' });
  const { client, requests } = await setup(t, {}, { dysco });
  const c = await client();
  c.send(req('GET', `/big?size=${BIG}`), 'GET');
  const r = (await c.response())!;
  t.equal(sha(r.body), sha(pattern(BIG)));
  await until(() => requests().length > 0);
  t.match(requests()[0]!.splice, { result: 'aborted', reason: 'TCP timestamps are on' });
});

t.test('no splice for connections that are not Dysco sessions, small responses, or requests waiting behind', async (t) => {
  const notSteered = fakeDysco({ steered: false, outcome: 'completed' });
  const a = await setup(t, {}, { dysco: notSteered });
  const c = await a.client();
  c.send(req('GET', `/big?size=${BIG}`), 'GET');
  t.equal(sha((await c.response())!.body), sha(pattern(BIG)));
  t.equal(notSteered.calls, 0, 'not a steered session: relayed by the proxy');
  t.equal(a.proxy.cache.peek(`origin.test/big?size=${BIG}`)?.notStored, 'too-large', 'too large to store: only remembered');

  const steered = fakeDysco({ steered: true, outcome: 'completed' });
  const b = await setup(t, {}, { dysco: steered });
  const c2 = await b.client();
  c2.send(req('GET', '/big?size=1000'), 'GET');
  t.equal((await c2.response())!.body.length, 1000);
  c2.send(Buffer.concat([req('GET', `/big?size=${BIG}`), req('GET', '/behind')]), 'GET', 'GET');
  t.equal(sha((await c2.response())!.body), sha(pattern(BIG)));
  t.equal((await c2.response())!.body.toString(), 'GET /behind\n');
  t.equal(steered.calls, 0, 'a pipelined request behind the large response keeps the proxy on the path');
});

t.test('keepAlive "final": splice only when no other request can follow', async (t) => {
  const dysco = fakeDysco({ steered: true, outcome: 'aborted' });
  const { client } = await setup(t, { splice: { keepAlive: 'final' } }, { dysco });
  const c = await client();
  c.send(req('GET', `/big?size=${BIG}`), 'GET');
  await c.response();
  t.equal(dysco.calls, 0, 'a kept-alive request: not spliced');
  c.send(req('GET', `/big?size=${BIG}`, [['Connection', 'close']]), 'GET');
  await c.response();
  t.equal(dysco.calls, 1, 'the last request of the connection: spliced');
});

t.test('splice completed: logged as spliced, the cache remembers the headers, the proxy lets go of the sockets', async (t) => {
  const dysco = fakeDysco({ steered: true, outcome: 'completed' });
  const { client, requests, proxy } = await setup(t, {}, { dysco });
  const c = await client();
  c.send(req('GET', `/big?size=${BIG}&rate=20000000`), 'GET');
  await c.closed();
  await until(() => requests().length > 0);
  const rec = requests()[0]!;
  t.equal(rec.cache, 'spliced');
  t.equal(rec.status, 200);
  t.equal(rec.bytes, BIG, 'bytes: the Content-Length');
  t.match(rec.splice, { result: 'completed', durationMs: 4.2 });
  t.ok((rec.splice as { relayedBytes: number }).relayedBytes < BIG, 'the proxy relayed only part of the body');
  const e = proxy.cache.peek(`origin.test/big?size=${BIG}&rate=20000000`)!;
  t.equal(e.stored, false);
  t.equal(e.notStored, 'spliced');
  t.equal(e.size, BIG);
  t.equal(e.etag, `"big-${BIG}"`);
  t.equal(e.lastModified, 'Mon, 02 Mar 2026 10:00:00 GMT');
  t.equal(proxy.spliced, 1);
  t.equal(proxy.conns.size, 0, 'the connection is no longer the proxy’s');
});

t.test('classifier: suspicious requests go through the configured boxes, on their own upstream connection', async (t) => {
  const chains: string[][] = [];
  let hang = false;
  const dysco: DyscoApi = {
    sessionOf: async () => undefined,
    splice: async () => ({ result: 'aborted', durationMs: 0 }),
    connectVia: (chain, o) => {
      chains.push([...chain]);
      if (hang) return new Promise(() => undefined); // a box that never answers
      return new Promise((resolve, reject) => {
        const s = connect({ host: o.host, port: o.port, allowHalfOpen: true }, () => resolve(s));
        s.once('error', reject);
      });
    },
  };
  const { client, requests, origin } = await setup(t, { inspect: { via: ['10.0.0.7'], urlPatterns: ['/cgi-bin/'] }, upstream: { connectTimeoutMs: 300 } }, { dysco });
  const c = await client();
  c.send(Buffer.concat([req('GET', '/plain'), req('GET', '/cgi-bin/x'), req('GET', '/plain2'), req('GET', '/cgi-bin/y')]), 'GET', 'GET', 'GET', 'GET');
  for (let i = 0; i < 4; i++) t.equal((await c.response())!.status, 200);
  t.same(chains, [['10.0.0.7']], 'one connection through the box, reused for the second suspicious request');
  t.same(requests().map((r) => r.via ?? null), [null, ['10.0.0.7'], null, ['10.0.0.7']]);
  t.equal(requests()[1]!.rule, 'pattern /cgi-bin/');
  hang = true;
  const c2 = await client();
  c2.send(req('GET', '/cgi-bin/z'), 'GET');
  t.equal((await c2.response())!.status, 504, 'no path through the box: the request fails, it does not go around the box');
  t.equal(origin.count('/cgi-bin/z'), 0);
});
