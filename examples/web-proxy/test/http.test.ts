import t from 'tap';
import fc from 'fast-check';
import {
  type Headers,
  HttpError,
  type HttpEvent,
  HttpParser,
  type RequestHead,
  type ResponseHead,
  contentLength,
  encodeChunk,
  encodeChunked,
  encodeLastChunk,
  header,
  keepAlive,
  serializeHead,
  tokens,
} from '../dist/http.js';

/** A message as the events describe it: head, the whole body, trailers. */
interface Msg {
  head: unknown;
  body: string;
  trailers?: Headers;
}

/** Feeds the chunks one after the other, pulling every event; the messages seen. */
function parse(kind: 'request' | 'response', chunks: readonly Buffer[], o: { methods?: string[]; close?: boolean } = {}): Msg[] {
  const p = new HttpParser(kind);
  for (const m of o.methods ?? []) p.expect(m);
  const out: Msg[] = [];
  let cur: { head: unknown; body: Buffer[]; trailers?: Headers } | undefined;
  const take = (ev: HttpEvent) => {
    switch (ev.type) {
      case 'head':
        cur = { head: { ...ev.head, body: ev.body, length: ev.length }, body: [] };
        break;
      case 'data':
        cur!.body.push(Buffer.from(ev.data));
        break;
      case 'trailers':
        cur!.trailers = ev.trailers;
        break;
      case 'end':
        out.push({ head: cur!.head, body: Buffer.concat(cur!.body).toString('latin1'), ...(cur!.trailers ? { trailers: cur!.trailers } : {}) });
        cur = undefined;
        break;
    }
  };
  for (const c of chunks) {
    p.feed(c);
    for (let ev = p.next(); ev; ev = p.next()) take(ev);
  }
  if (o.close) {
    const ev = p.finish();
    if (ev) take(ev);
  }
  if (cur) out.push({ head: cur.head, body: Buffer.concat(cur.body).toString('latin1'), ...(cur.trailers ? { trailers: cur.trailers } : {}), incomplete: true } as Msg);
  return out;
}

const b = (s: string) => Buffer.from(s, 'latin1');
const one = (kind: 'request' | 'response', s: string, o: { methods?: string[]; close?: boolean } = {}) => parse(kind, [b(s)], o);
const fails = (kind: 'request' | 'response', s: string, o: { methods?: string[]; close?: boolean } = {}): HttpError => {
  try {
    parse(kind, [b(s)], o);
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error(`no error for ${JSON.stringify(s)}`);
};

t.test('a request without a body', async (t) => {
  const [m] = one('request', 'GET /a?b=c HTTP/1.1\r\nHost: example.test\r\nX-Two: a\r\nx-two:  b \r\n\r\n');
  const h = m!.head as RequestHead & { body: string };
  t.equal(h.method, 'GET');
  t.equal(h.target, '/a?b=c');
  t.equal(h.minor, 1);
  t.same(h.headers, [['Host', 'example.test'], ['X-Two', 'a'], ['x-two', 'b']], 'order and case kept, whitespace trimmed');
  t.equal(header(h.headers, 'x-two'), 'a, b');
  t.equal(h.body, 'none');
  t.equal(m!.body, '');
});

t.test('request bodies: Content-Length and chunked with extensions and trailers', async (t) => {
  const [m1] = one('request', 'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello');
  t.equal(m1!.body, 'hello');
  const [m2] = one('request', 'POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q="x y"\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-More: y\r\n\r\n');
  t.equal(m2!.body, 'hello0123456789');
  t.same(m2!.trailers, [['X-Sum', '42'], ['X-More', 'y']]);
  const [m3] = one('request', 'POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  t.equal(m3!.body, '');
  t.notOk(m3!.trailers, 'no trailers event for an empty trailer section');
  const [m4] = one('request', 'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n');
  t.equal(m4!.body, '');
});

t.test('tolerated forms: bare LF, leading empty lines, obs-fold, repeated equal Content-Length', async (t) => {
  const [m] = one('request', '\r\n\nGET / HTTP/1.1\nHost: h\nX-Folded: a\r\n  b\r\n\tc\nContent-Length: 3, 3\n\nabc');
  const h = m!.head as RequestHead;
  t.same(h.headers[1], ['X-Folded', 'a b c']);
  t.equal(m!.body, 'abc');
});

t.test('pipelined requests come out one at a time, the rest stays buffered', async (t) => {
  const p = new HttpParser('request');
  const second = 'GET /2 HTTP/1.1\r\nHost: h\r\n\r\n';
  p.feed(b(`GET /1 HTTP/1.1\r\nHost: h\r\n\r\n${second}`));
  t.equal(p.next()?.type, 'head');
  t.equal(p.next()?.type, 'end');
  t.ok(p.idle());
  t.equal(p.buffered(), second.length, 'the second request waits in the buffer');
  const h = p.next();
  t.equal(h?.type === 'head' && (h.head as RequestHead).target, '/2');
  t.equal(p.next()?.type, 'end');
  t.equal(p.next(), undefined);
  t.equal(parse('request', [b(`GET /1 HTTP/1.1\r\nHost: h\r\n\r\n${second}${second}`)]).length, 3);
});

t.test('malformed and unsupported requests', async (t) => {
  const cases: [string, number, string][] = [
    ['GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 400, 'TE with CL (smuggling)'],
    ['POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabc', 400, 'differing Content-Length'],
    ['POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n', 400, 'negative Content-Length'],
    ['POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n', 400, 'hex Content-Length'],
    ['POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, 'unknown transfer coding'],
    ['POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'TE in HTTP/1.0'],
    ['GET / HTTP/2.0\r\nHost: h\r\n\r\n', 505, 'HTTP/2 in HTTP/1 syntax'],
    ['GET / HTTP/1.1\r\nHost : h\r\n\r\n', 400, 'whitespace before the colon'],
    ['GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n', 400, 'bare CR'],
    ['GET / HTTP/1.1\r\n Host: h\r\n\r\n', 400, 'fold before any field'],
    ['GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'two spaces in the request line'],
    ['GET / HTTP/1.1\r\nHo(st: h\r\n\r\n', 400, 'bad field name'],
    ['GE@T / HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'bad method'],
    ['GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', 400, 'NUL in a value'],
    ['POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'bad chunk size'],
    ['POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n', 400, 'chunk longer than its size'],
    ['POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n', 400, 'huge chunk'],
  ];
  for (const [msg, status, why] of cases) t.equal(fails('request', msg).status, status, why);
  const big = new HttpParser('request', { maxHead: 100 });
  big.feed(b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(200)}`));
  t.throws(() => big.next(), new HttpError('header section too large', 431), 'a header section over the limit');
  t.equal(big.next(), undefined, 'a failed parser yields nothing more');
});

t.test('responses: bodies that depend on the request and the status', async (t) => {
  t.equal(one('response', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', { methods: ['HEAD'] })[0]!.body, '', 'HEAD: no body despite Content-Length');
  t.equal(one('response', 'HTTP/1.1 204 No Content\r\n\r\n', { methods: ['GET'] }).length, 1);
  t.equal(one('response', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', { methods: ['GET'] })[0]!.body, '');
  const two = one('response', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', { methods: ['POST'] });
  t.same(two.map((m) => [(m.head as ResponseHead).status, m.body]), [[100, ''], [200, 'ok']], 'an interim response, then the final one for the same request');
  const closeDelimited = one('response', 'HTTP/1.1 200 OK\r\n\r\nuntil the close', { methods: ['GET'], close: true });
  t.equal(closeDelimited[0]!.body, 'until the close');
  t.equal((closeDelimited[0]!.head as { body: string }).body, 'close');
  const te10 = one('response', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc', { methods: ['GET'], close: true });
  t.equal(te10[0]!.body, '3\r\nabc', 'HTTP/1.0 with Transfer-Encoding: read until the close');
  const both = one('response', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', { methods: ['GET'] });
  t.equal(both[0]!.body, 'ok', 'Transfer-Encoding overrides Content-Length');
  const r = one('response', 'HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n', { methods: ['GET'] })[0]!.head as ResponseHead;
  t.equal(r.status, 404);
  t.equal(r.reason, '', 'a missing reason phrase is tolerated');
  t.equal(fails('response', 'HTTP/1.1 200 OK\r\n\r\n').status, 502, 'a response to no request');
  t.equal(fails('response', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', { methods: ['GET'] }).status, 502, 'upgrades refused');
  t.equal(fails('response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', { methods: ['GET'] }).status, 502);
  t.equal(fails('response', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort', { methods: ['GET'], close: true }).status, 502, 'a body cut short');
  t.equal(fails('response', 'HTTP/1.1 200 OK\r\nContent-Le', { methods: ['GET'], close: true }).status, 502, 'a head cut short');
  t.same(one('response', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\r\n', { methods: ['GET'], close: true }).length, 1, 'a stray CRLF before the close is no message');
});

t.test('takeRest hands over the unparsed input', async (t) => {
  const p = new HttpParser('response');
  p.expect('GET');
  p.feed(b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123'));
  t.equal(p.next()?.type, 'head');
  t.equal(p.remainingLength(), 10);
  t.equal(p.takeRest().toString(), '0123');
  t.equal(p.next(), undefined);
});

t.test('header helpers', async (t) => {
  const h: Headers = [['Connection', 'Keep-Alive, X-Foo'], ['connection', 'upgrade'], ['Content-Length', '7']];
  t.same(tokens(h, 'connection'), ['keep-alive', 'x-foo', 'upgrade']);
  t.equal(contentLength(h), 7);
  t.equal(contentLength([]), undefined);
  const req = (minor: number, headers: Headers): RequestHead => ({ kind: 'request', method: 'GET', target: '/', minor, headers });
  t.equal(keepAlive(req(1, [])), true);
  t.equal(keepAlive(req(1, [['Connection', 'close']])), false);
  t.equal(keepAlive(req(0, [])), false);
  t.equal(keepAlive(req(0, [['Connection', 'keep-alive']])), true);
  t.equal(serializeHead(req(1, [['Host', 'h']])).toString(), 'GET / HTTP/1.1\r\nHost: h\r\n\r\n');
  t.throws(() => serializeHead(req(1, [['Bad Name', 'x']])));
  t.throws(() => serializeHead(req(1, [['X', 'a\r\nInjected: y']])), 'no header injection through a value');
  t.equal(encodeChunk(Buffer.alloc(0)).length, 0, 'no empty chunk (it would end the body)');
  t.equal(encodeLastChunk([['X', '1']]).toString(), '0\r\nX: 1\r\n\r\n');
});

// ---- properties -------------------------------------------------------------

const tokenArb = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/);
const valueArb = fc.stringMatching(/^[!-~]([ !-~]{0,20}[!-~])?$/);
const fieldsArb = fc.array(fc.tuple(tokenArb, valueArb), { maxLength: 6 }).map((fs) =>
  fs.filter(([k]) => !['content-length', 'transfer-encoding', 'host', 'trailer'].includes(k.toLowerCase())),
);
const bodyArb = fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a));
const partsArb = fc.array(fc.uint8Array({ minLength: 0, maxLength: 700 }).map((a) => Buffer.from(a)), { maxLength: 6 });

/** One request with a body framed one of three ways, serialized, and what parsing it must give. */
const requestArb = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH'),
    target: fc.stringMatching(/^\/[a-z0-9/?=&%.-]{0,30}$/),
    minor: fc.constantFrom(0, 1),
    fields: fieldsArb,
    framing: fc.constantFrom('none', 'length', 'chunked'),
    parts: partsArb,
    trailers: fieldsArb,
    lf: fc.boolean(),
  })
  .map((r) => {
    const framing = r.minor === 0 && r.framing === 'chunked' ? 'length' : r.framing;
    const body = framing === 'none' ? Buffer.alloc(0) : Buffer.concat(r.parts);
    const headers: Headers = [['Host', 'example.test'], ...r.fields];
    if (framing === 'length') headers.push(['Content-Length', String(body.length)]);
    if (framing === 'chunked') headers.push(['Transfer-Encoding', 'chunked']);
    let head = serializeHead({ kind: 'request', method: r.method, target: r.target, minor: r.minor, headers });
    if (r.lf) head = Buffer.from(head.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const wire = Buffer.concat([head, framing === 'chunked' ? encodeChunked(r.parts, r.trailers) : body]);
    const trailers = framing === 'chunked' && r.trailers.length > 0 ? r.trailers : undefined;
    return { wire, body: body.toString('latin1'), trailers, target: r.target };
  });

/** Cuts a buffer at the given offsets. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

t.test('property: a stream of requests split at any byte boundaries parses as the whole does', async (t) => {
  fc.assert(
    fc.property(fc.array(requestArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 30 }), (reqs, cuts) => {
      const wire = Buffer.concat(reqs.map((r) => r.wire));
      const whole = parse('request', [wire]);
      const pieces = parse('request', split(wire, cuts));
      if (JSON.stringify(pieces) !== JSON.stringify(whole) || whole.length !== reqs.length) return false;
      return reqs.every((r, i) => whole[i]!.body === r.body && (whole[i]!.head as RequestHead).target === r.target && JSON.stringify(whole[i]!.trailers) === JSON.stringify(r.trailers));
    }),
    { numRuns: 400 },
  );
  t.pass();
});

t.test('property: byte-at-a-time parsing equals whole parsing', async (t) => {
  fc.assert(
    fc.property(requestArb, (r) => {
      const bytes = [...r.wire].map((x) => Buffer.from([x]));
      return JSON.stringify(parse('request', bytes)) === JSON.stringify(parse('request', [r.wire]));
    }),
    { numRuns: 100 },
  );
  t.pass();
});

t.test('property: responses (length, chunked, close-delimited, HEAD, 304) split anywhere parse the same', async (t) => {
  const responseArb = fc
    .record({
      status: fc.constantFrom(200, 201, 204, 304, 404, 500),
      method: fc.constantFrom('GET', 'HEAD', 'POST'),
      fields: fieldsArb,
      framing: fc.constantFrom('length', 'chunked', 'close'),
      parts: partsArb,
      trailers: fieldsArb,
      interim: fc.boolean(),
    })
    .map((r) => {
      const bodiless = r.method === 'HEAD' || r.status === 204 || r.status === 304;
      const body = Buffer.concat(r.parts);
      const headers: Headers = [...r.fields];
      if (r.framing === 'length') headers.push(['Content-Length', String(body.length)]);
      if (r.framing === 'chunked') headers.push(['Transfer-Encoding', 'chunked']);
      const head = serializeHead({ kind: 'response', status: r.status, reason: 'Some Reason', minor: 1, headers });
      const interim = r.interim ? serializeHead({ kind: 'response', status: 100, reason: 'Continue', minor: 1, headers: [] }) : Buffer.alloc(0);
      const payload = bodiless ? Buffer.alloc(0) : r.framing === 'chunked' ? encodeChunked(r.parts, r.trailers) : body;
      const close = r.framing === 'close' && !bodiless;
      return { r, wire: Buffer.concat([interim, head, payload]), body: bodiless ? '' : body.toString('latin1'), close };
    });
  fc.assert(
    fc.property(responseArb, fc.array(fc.nat(), { maxLength: 20 }), ({ r, wire, body, close }, cuts) => {
      const o = { methods: [r.method], close };
      const whole = parse('response', [wire], o);
      const pieces = parse('response', split(wire, cuts), o);
      const last = whole[whole.length - 1]!;
      return JSON.stringify(pieces) === JSON.stringify(whole) && whole.length === (r.interim ? 2 : 1) && last.body === body && (last.head as ResponseHead).status === r.status;
    }),
    { numRuns: 400 },
  );
  t.pass();
});

t.test('property: chunked encoding round trip (any chunk sizes, trailers)', async (t) => {
  fc.assert(
    fc.property(fc.array(bodyArb, { maxLength: 8 }), fieldsArb, fc.array(fc.nat(), { maxLength: 10 }), (parts, trailers, cuts) => {
      const wire = Buffer.concat([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), encodeChunked(parts, trailers)]);
      const [m, ...more] = parse('response', split(wire, cuts), { methods: ['GET'] });
      return more.length === 0 && m!.body === Buffer.concat(parts).toString('latin1') && JSON.stringify(m!.trailers ?? []) === JSON.stringify(trailers);
    }),
    { numRuns: 400 },
  );
  t.pass();
});
