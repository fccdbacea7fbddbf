/**
 * The proxy: accepts the HTTP/1.1 connections steered to it, answers from
 * its cache or its deny list, forwards the rest to the origin server named
 * by the Host header, and splices itself out of a connection whose next
 * response is large, so that the body flows from the server to the client
 * without crossing it.
 *
 * Each client connection has its own upstream connections (one per origin
 * and chain), so that a spliced upstream connection belongs to exactly one
 * client connection. Requests on a connection are processed in order: a
 * pipelined request waits in the parser until the previous response is out.
 */
import { lookup } from 'node:dns/promises';
import { isIP, type AddressInfo, type Server, type Socket, connect as tcpConnect, createServer } from 'node:net';
import { HttpCache, cacheKey, etagMatches, storability } from './cache.js';
import type { ProxyConfig } from './config.js';
import { UrlMatcher, normalizeHost, splitHostPort } from './filter.js';
import {
  type BodyKind,
  type Headers,
  HttpError,
  type HttpEvent,
  HttpParser,
  type RequestHead,
  type ResponseHead,
  STATUS_TEXT,
  encodeChunk,
  encodeLastChunk,
  header,
  headerValues,
  keepAlive,
  serializeHead,
  tokens,
  withoutHeaders,
} from './http.js';

/** What the proxy needs of the Dysco client library (`DyscoClient` has it). */
export interface DyscoApi {
  splice(clientSide: Socket, serverSide: Socket): Promise<{ readonly result: 'completed' | 'aborted'; readonly reason?: string | undefined; readonly durationMs: number }>;
  connectVia(chain: readonly string[], o: { host: string; port: number }): Promise<Socket>;
  sessionOf(sock: Socket): Promise<unknown>;
}

export type CacheStatus = 'hit' | 'miss' | 'denied' | 'spliced' | 'error';

/** The log record written once per request. */
export interface RequestRecord {
  readonly msg: 'request';
  readonly client: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly status: number;
  /** Body bytes sent to the client (for a spliced response: its Content-Length, most of which the proxy never saw). */
  readonly bytes: number;
  readonly cache: CacheStatus;
  /** Milliseconds from the request's head to the end of the response (to the completed splice). */
  readonly ms: number;
  readonly stored?: boolean;
  readonly rule?: string;
  readonly upstream?: string;
  readonly via?: readonly string[];
  readonly splice?: { readonly result: string; readonly reason?: string; readonly durationMs: number; readonly relayedBytes: number };
  readonly error?: string;
  readonly aborted?: boolean;
}

export interface ProxyOptions {
  /** The agent's client; without it the proxy neither splices nor classifies. */
  readonly dysco?: DyscoApi;
  /** Receives every log record (request records and the proxy's own events). */
  readonly log?: (record: Record<string, unknown>) => void;
  /** The clock (ms since the epoch); default Date.now. */
  readonly now?: () => number;
}

// hop-by-hop fields (RFC 9110 section 7.6.1), plus the framing the proxy redoes itself
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'content-length'];
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
const MAX_PIPELINED = 1024 * 1024;

/** The end-to-end fields of a message: without hop-by-hop fields, those its Connection names, and framing. */
function endToEnd(headers: Headers): Headers {
  return withoutHeaders(headers, [...HOP_BY_HOP, ...tokens(headers, 'connection')]);
}

function ep(address: string | undefined, port: number | undefined): string {
  const a = (address ?? '?').replace(/^::ffff:/, '');
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

interface Exchange {
  readonly start: number;
  readonly head: RequestHead;
  readonly reqBody: BodyKind;
  readonly reqLength: number;
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly key: string;
  readonly clientKeepAlive: boolean;
  requestDone: boolean;
  /** A response the proxy makes itself, sent when the request ends. */
  local?: { status: number; headers: Headers; body: Buffer; cache: CacheStatus; rule?: string; error?: string };
  up?: Upstream;
  via: readonly string[];
  inspectRule?: string;
  waiting: boolean;
  bodyPaused: boolean;
  upstreamHead?: Buffer;
  /** The upstream connection's address, once there is one. */
  upstream?: string;
  retried: boolean;
  reqTrailers?: Headers;
  res?: ResponseHead;
  framing?: 'none' | 'length' | 'chunked' | 'close';
  resTrailers?: Headers;
  responsePaused: boolean;
  spliceCheck: boolean;
  /** Between an interim (1xx) response's head and its end. */
  interim: boolean;
  bytes: number;
  store?: { chunks: Buffer[]; size: number; freshFor: number };
  stored?: boolean;
  done: boolean;
}

class Upstream {
  readonly parser = new HttpParser('response');
  reused = false;
  ended = false;
  closed = false;
  failed: Error | undefined;
  /** The response bytes of the current exchange received so far. */
  received = 0;

  constructor(
    readonly conn: ClientConn,
    readonly sock: Socket,
    readonly key: string,
    readonly target: string,
    readonly via: readonly string[],
  ) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => conn.onUpstreamData(this, d));
    sock.on('end', () => {
      this.ended = true;
      conn.onUpstreamEnd(this);
    });
    sock.on('error', (e) => (this.failed = e));
    sock.on('close', () => {
      this.closed = true;
      conn.onUpstreamClose(this);
    });
    sock.setTimeout(conn.proxy.config.upstream.timeoutMs, () => conn.onUpstreamTimeout(this));
  }
}

class ClientConn {
  private readonly parser = new HttpParser('request');
  /** `http`: the proxy speaks HTTP on it; `relay`: a byte relay (splicing, or after a failed splice); `spliced`: the library closed the sockets. */
  state: 'http' | 'closing' | 'relay' | 'spliced' | 'closed' = 'http';
  private ex: Exchange | undefined;
  private readonly idle = new Map<string, Upstream>();
  private readonly upstreams = new Set<Upstream>();
  private inputEnded = false;
  private drainWait = false;
  private pumping = false;
  /** The upstream connection being relayed (state `relay`). */
  private relayUp: Upstream | undefined;
  readonly client: string;

  constructor(
    readonly proxy: WebProxy,
    readonly sock: Socket,
  ) {
    this.client = ep(sock.remoteAddress, sock.remotePort);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('end', () => this.onEnd());
    sock.on('error', (e) => this.proxy.debug('client error', { client: this.client, error: e.message }));
    sock.on('close', (hadError) => this.onClose(hadError));
    sock.setTimeout(proxy.config.clientIdleMs, () => {
      if (this.state === 'http' && !this.ex) this.sock.destroy();
    });
  }

  destroy(): void {
    if (this.state === 'spliced') return;
    this.sock.destroy();
    for (const u of this.upstreams) u.sock.destroy();
  }

  // ---- the client's side ---------------------------------------------------

  private onData(d: Buffer): void {
    if (this.state !== 'http') return; // relaying: the pipes carry the bytes; closing: input ignored
    this.parser.feed(d);
    this.pump();
  }

  private onEnd(): void {
    this.inputEnded = true;
    if (this.state === 'http') this.pump();
  }

  private onClose(hadError: boolean): void {
    const was = this.state;
    this.proxy.conns.delete(this);
    if (was === 'spliced') return;
    this.state = 'closed';
    if (was === 'relay') {
      for (const u of this.upstreams) if (hadError) u.sock.destroy();
      else this.endSoon(u.sock);
      return;
    }
    for (const u of this.upstreams) u.sock.destroy();
    const ex = this.ex;
    if (ex && !ex.done) this.finish(ex, { aborted: true });
  }

  /** Half-closes a relayed socket and destroys it if it is still there later. */
  private endSoon(s: Socket): void {
    s.end();
    setTimeout(() => s.destroy(), 10_000).unref();
  }

  /** Pulls requests from the parser while nothing holds them back. */
  private pump(): void {
    if (this.pumping) return; // the running loop picks up where this call would
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
  }

  private pumpLoop(): void {
    while (this.state === 'http') {
      const ex = this.ex;
      if (ex && (ex.waiting || ex.bodyPaused || ex.requestDone)) break;
      let ev: HttpEvent | undefined;
      try {
        ev = this.parser.next();
      } catch (e) {
        this.badRequest(e as Error);
        return;
      }
      if (!ev) {
        if (this.inputEnded) this.onInputEnded();
        break;
      }
      this.onRequestEvent(ev);
    }
    if (this.state !== 'http') return;
    // too many pipelined bytes: stop reading until they are processed
    if (this.parser.buffered() > MAX_PIPELINED) this.sock.pause();
    else if (this.sock.isPaused()) this.sock.resume();
  }

  private onInputEnded(): void {
    try {
      this.parser.finish();
    } catch {
      // cut in the middle of a request
      if (this.ex) {
        this.destroy();
        return;
      }
    }
    if (!this.ex) this.closeClient();
  }

  private closeClient(): void {
    if (this.state === 'http') this.state = 'closing';
    this.sock.end();
    for (const u of this.upstreams) u.sock.destroy();
  }

  private badRequest(e: Error): void {
    const status = e instanceof HttpError ? e.status : 400;
    const ex = this.ex;
    if (ex && ex.res) {
      // the response is under way: nothing sensible can follow
      this.destroy();
      return;
    }
    const body = Buffer.from(`${STATUS_TEXT[status] ?? 'Error'}: ${e.message}\n`);
    const fake: Exchange = ex ?? this.exchange({ kind: 'request', method: '-', target: '-', minor: 1, headers: [] }, 'none', 0, '-', 80, '-');
    this.ex = fake;
    fake.requestDone = true;
    this.respondLocal(fake, { status, headers: [['Content-Type', 'text/plain']], body, cache: 'error', error: e.message }, true);
  }

  private exchange(head: RequestHead, reqBody: BodyKind, reqLength: number, host: string, port: number, path: string): Exchange {
    return {
      start: this.proxy.now(),
      head,
      reqBody,
      reqLength,
      host,
      port,
      path,
      key: cacheKey(host, port, path),
      clientKeepAlive: keepAlive(head),
      requestDone: false,
      via: [],
      waiting: false,
      bodyPaused: false,
      retried: false,
      responsePaused: false,
      spliceCheck: false,
      interim: false,
      bytes: 0,
      done: false,
    };
  }

  private onRequestEvent(ev: HttpEvent): void {
    switch (ev.type) {
      case 'head':
        this.onRequestHead(ev.head as RequestHead, ev.body, ev.length ?? 0);
        return;
      case 'data': {
        const ex = this.ex!;
        if (!ex.up) return; // a local answer: the body is dropped
        const out = ex.reqBody === 'chunked' ? encodeChunk(ev.data) : ev.data;
        if (!ex.up.sock.write(out)) {
          ex.bodyPaused = true;
          const up = ex.up;
          up.sock.once('drain', () => {
            ex.bodyPaused = false;
            if (this.ex === ex && ex.up === up) this.pump();
          });
        }
        return;
      }
      case 'trailers':
        this.ex!.reqTrailers = ev.trailers;
        return;
      case 'end': {
        const ex = this.ex!;
        ex.requestDone = true;
        if (ex.local) this.respondLocal(ex, ex.local, false);
        else if (ex.up && ex.reqBody === 'chunked') ex.up.sock.write(encodeLastChunk(endToEnd(ex.reqTrailers ?? [])));
        return;
      }
    }
  }

  private onRequestHead(head: RequestHead, body: BodyKind, length: number): void {
    let host: string;
    let port: number;
    let path: string;
    const reject = (status: number, message: string) => {
      const ex = this.exchange(head, body, length, '-', 80, head.target);
      this.ex = ex;
      this.answer(ex, { status, headers: [['Content-Type', 'text/plain']], body: Buffer.from(`${message}\n`), cache: 'error', error: message });
    };
    try {
      const hosts = headerValues(head.headers, 'host');
      if (head.method === 'CONNECT') return reject(405, 'CONNECT is not supported');
      if (hosts.length > 1) return reject(400, 'more than one Host header');
      const abs = /^http:\/\/([^/?#]*)([^#]*)$/i.exec(head.target);
      if (abs) {
        [host, port] = splitHostPort(abs[1]!);
        path = abs[2] === '' ? '/' : abs[2]!;
        if (!path.startsWith('/')) path = `/${path}`;
      } else if (head.target.startsWith('/') || (head.target === '*' && head.method === 'OPTIONS')) {
        if (hosts.length === 0 || hosts[0] === '') return reject(400, 'no Host header');
        [host, port] = splitHostPort(hosts[0]!);
        path = head.target;
      } else {
        return reject(400, `request target ${JSON.stringify(head.target.slice(0, 60))} not supported (origin or http absolute form)`);
      }
    } catch (e) {
      return reject(400, (e as Error).message);
    }
    host = normalizeHost(host);
    const ex = this.exchange(head, body, length, host, port, path);
    this.ex = ex;
    const cfg = this.proxy.config;
    const local = (l: NonNullable<Exchange['local']>) => this.answer(ex, l);
    if (headerValues(head.headers, 'via').some((v) => v.includes(` ${cfg.name}`))) {
      return local({ status: 508, headers: [['Content-Type', 'text/plain']], body: Buffer.from('Loop Detected\n'), cache: 'error', error: 'loop' });
    }
    const denied = this.proxy.deny.match({ host, port, path });
    if (denied !== undefined) {
      return local({ status: 403, headers: [['Content-Type', 'text/plain']], body: Buffer.from('Forbidden by the proxy\n'), cache: 'denied', rule: denied });
    }
    if (!SAFE.has(head.method)) this.proxy.cache.invalidate(ex.key);
    if (cfg.cache.enabled && head.method === 'GET') {
      const hit = this.proxy.cache.lookup(ex.key, head.method, head.headers, this.proxy.now());
      if (hit) {
        const e = hit.entry;
        const inm = header(head.headers, 'if-none-match');
        const base = withoutHeaders(endToEnd(e.headers), ['age']);
        if (inm !== undefined && etagMatches(inm, e.etag)) {
          const keep = new Set(['etag', 'cache-control', 'date', 'expires', 'vary', 'content-location', 'last-modified']);
          return local({ status: 304, headers: [...base.filter(([k]) => keep.has(k.toLowerCase())), ['Age', String(hit.age)], ['X-Cache', 'HIT']], body: Buffer.alloc(0), cache: 'hit' });
        }
        return local({ status: 200, headers: [...base, ['Age', String(hit.age)], ['X-Cache', 'HIT']], body: e.body!, cache: 'hit' });
      }
    }
    const suspicious = this.proxy.inspect.match({ host, port, path });
    if (suspicious !== undefined && this.proxy.dysco) {
      ex.via = cfg.inspect.via;
      ex.inspectRule = suspicious;
    }
    this.forward(ex);
  }

  // ---- the server's side ----------------------------------------------------

  private forward(ex: Exchange): void {
    ex.waiting = true;
    this.acquire(ex).then(
      (up) => {
        if (this.ex !== ex || this.state !== 'http') {
          up.sock.destroy();
          return;
        }
        ex.waiting = false;
        this.send(ex, up);
        this.pump();
      },
      (e: Error) => {
        ex.waiting = false;
        if (this.ex !== ex || this.state !== 'http') return;
        const timeout = /timed out|ETIMEDOUT/.test(e.message);
        this.answer(ex, { status: timeout ? 504 : 502, headers: [['Content-Type', 'text/plain']], body: Buffer.from(`cannot reach ${ex.host}:${ex.port}: ${e.message}\n`), cache: 'error', error: e.message });
      },
    );
  }

  /** Writes the request head on the upstream connection (the body follows as the parser yields it). */
  private send(ex: Exchange, up: Upstream): void {
    ex.up = up;
    ex.upstream = up.target;
    up.received = 0;
    const h = ex.head;
    if (!ex.upstreamHead) {
      const headers = endToEnd(h.headers).filter(([k]) => k.toLowerCase() !== 'host');
      headers.unshift(['Host', ex.port === 80 ? ex.host : `${ex.host.includes(':') ? `[${ex.host}]` : ex.host}:${ex.port}`]);
      if (ex.reqBody === 'length') headers.push(['Content-Length', String(ex.reqLength)]);
      if (ex.reqBody === 'chunked') headers.push(['Transfer-Encoding', 'chunked']);
      if (!ex.clientKeepAlive) headers.push(['Connection', 'close']);
      headers.push(['Via', `1.${h.minor} ${this.proxy.config.name}`]);
      ex.upstreamHead = serializeHead({ kind: 'request', method: h.method, target: ex.path, minor: 1, headers });
    }
    up.parser.expect(h.method);
    up.sock.write(ex.upstreamHead);
  }

  private async acquire(ex: Exchange): Promise<Upstream> {
    const key = `${ex.via.join(',')}|${ex.host}:${ex.port}`;
    const idle = this.idle.get(key);
    if (idle) {
      this.idle.delete(key);
      if (!idle.ended && !idle.failed && !idle.sock.destroyed) {
        idle.reused = true;
        return idle;
      }
      idle.sock.destroy();
    }
    const target = await this.proxy.resolve(ex.host, ex.port);
    const timeoutMs = this.proxy.config.upstream.connectTimeoutMs;
    const dysco = this.proxy.dysco;
    let sock: Socket;
    if (ex.via.length > 0 && dysco) {
      // the library has no timeout of its own: a connection that comes after ours is closed
      let timer: NodeJS.Timeout | undefined;
      const opening = dysco.connectVia(ex.via, target);
      sock = await Promise.race([
        opening,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`connection through ${ex.via.join(',')} timed out`)), timeoutMs))),
      ])
        .catch((e: unknown) => {
          opening.then((late) => late.destroy(), () => undefined);
          throw e;
        })
        .finally(() => clearTimeout(timer));
    } else {
      sock = await new Promise<Socket>((resolve, reject) => {
        const s = tcpConnect({ host: target.host, port: target.port, allowHalfOpen: true });
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error('connection timed out'));
        }, timeoutMs);
        s.once('connect', () => {
          clearTimeout(timer);
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    }
    if (this.state !== 'http') {
      sock.destroy();
      throw new Error('client gone');
    }
    const up = new Upstream(this, sock, key, `${target.host}:${target.port}`, ex.via);
    this.upstreams.add(up);
    return up;
  }

  onUpstreamData(up: Upstream, d: Buffer): void {
    if (this.state !== 'http') return; // relaying, or done
    const ex = this.ex;
    if (!ex || ex.up !== up || ex.done) {
      // an idle connection talking out of turn
      up.sock.destroy();
      return;
    }
    up.received += d.length;
    up.parser.feed(d);
    this.pumpResponse();
  }

  onUpstreamEnd(up: Upstream): void {
    if (this.state === 'http' && this.ex?.up === up && !this.ex.done) this.pumpResponse();
    else if (this.state !== 'relay') up.sock.destroy();
  }

  onUpstreamClose(up: Upstream): void {
    this.upstreams.delete(up);
    if (this.idle.get(up.key) === up) this.idle.delete(up.key);
    if (this.state === 'relay') {
      if (up !== this.relayUp) return;
      if (up.failed) this.sock.destroy();
      else this.endSoon(this.sock);
      return;
    }
    const ex = this.ex;
    if (this.state === 'http' && ex?.up === up && !ex.done) this.pumpResponse();
  }

  onUpstreamTimeout(up: Upstream): void {
    const ex = this.ex;
    if (this.state === 'http' && ex?.up === up && !ex.done) {
      // a client that reads slowly holds the server back: not the server's fault
      if (!ex.responsePaused && !ex.spliceCheck) this.upstreamFailed(ex, new Error('upstream timed out'));
    }
    else if (this.state === 'http') up.sock.destroy();
  }

  private upstreamFailed(ex: Exchange, e: Error): void {
    const up = ex.up!;
    up.sock.destroy();
    if (!ex.res) {
      // nothing sent to the client yet
      if (up.reused && up.received === 0 && !ex.retried && IDEMPOTENT.has(ex.head.method) && ex.reqBody !== 'chunked' && ex.reqLength === 0 && ex.requestDone) {
        // the server closed a kept-alive connection as the request went out: once more on a new one
        ex.retried = true;
        ex.up = undefined;
        this.forward(ex);
        return;
      }
      const timeout = /timed out/.test(e.message);
      ex.up = undefined;
      this.answer(ex, { status: timeout ? 504 : 502, headers: [['Content-Type', 'text/plain']], body: Buffer.from(`${STATUS_TEXT[timeout ? 504 : 502]}: ${e.message}\n`), cache: 'error', error: e.message });
      return;
    }
    // the response was cut: the client must see the connection fail, not a short body
    this.proxy.warn('upstream failed mid-response', { client: this.client, host: ex.host, path: ex.path, error: e.message });
    this.finish(ex, { error: e.message, aborted: true });
    this.destroy();
  }

  private pumpResponse(): void {
    const ex = this.ex;
    const up = ex?.up;
    if (!ex || !up) return;
    while (this.state === 'http' && this.ex === ex && !ex.responsePaused && !ex.spliceCheck && !ex.done) {
      let ev: HttpEvent | undefined;
      try {
        ev = up.parser.next();
        if (!ev && up.ended) ev = up.parser.finish();
      } catch (e) {
        this.upstreamFailed(ex, e as Error);
        return;
      }
      if (!ev) {
        if (up.ended) this.upstreamFailed(ex, new Error('upstream closed the connection before the end of the response'));
        else if (up.closed) this.upstreamFailed(ex, up.failed ?? new Error('upstream connection closed'));
        return;
      }
      this.onResponseEvent(ex, up, ev);
    }
  }

  private onResponseEvent(ex: Exchange, up: Upstream, ev: HttpEvent): void {
    switch (ev.type) {
      case 'head': {
        const res = ev.head as ResponseHead;
        if (res.status < 200) {
          // interim (100 Continue, 103 Early Hints): passed on to HTTP/1.1 clients
          if (ex.head.minor >= 1) this.sock.write(serializeHead({ ...res, minor: 1, headers: endToEnd(res.headers) }));
          ex.interim = true;
          return;
        }
        ex.res = res;
        if (this.spliceCandidate(ex, up, ev.body, ev.length ?? 0)) {
          ex.spliceCheck = true;
          up.sock.pause();
          void this.considerSplice(ex, up, res, ev.length!);
          return;
        }
        this.startResponse(ex, res, ev.body, ev.length ?? 0);
        return;
      }
      case 'data':
        this.writeBody(ex, ev.data);
        return;
      case 'trailers':
        ex.resTrailers = ev.trailers;
        return;
      case 'end':
        if (ex.interim) ex.interim = false; // the final response is still to come
        else this.endResponse(ex, up);
        return;
    }
  }

  private startResponse(ex: Exchange, res: ResponseHead, body: BodyKind, length: number): void {
    const cfg = this.proxy.config;
    let framing: NonNullable<Exchange['framing']>;
    if (body === 'none') framing = 'none';
    else if (body === 'length') framing = 'length';
    else if (ex.head.minor >= 1) framing = 'chunked';
    else framing = 'close';
    ex.framing = framing;
    const close = framing === 'close' || !ex.clientKeepAlive;
    const headers = endToEnd(res.headers);
    if (framing === 'none') {
      // HEAD and 304 keep the length of the body they stand for
      const cl = headerValues(res.headers, 'content-length')[0];
      if (cl !== undefined && res.status !== 204) headers.push(['Content-Length', cl]);
    } else if (framing === 'length') headers.push(['Content-Length', String(length)]);
    else if (framing === 'chunked') headers.push(['Transfer-Encoding', 'chunked']);
    headers.push(['Via', `1.${res.minor} ${cfg.name}`], ['X-Cache', 'MISS']);
    if (close) headers.push(['Connection', 'close']);
    else if (ex.head.minor === 0) headers.push(['Connection', 'keep-alive']);
    this.sock.write(serializeHead({ kind: 'response', status: res.status, reason: res.reason || (STATUS_TEXT[res.status] ?? ''), minor: 1, headers }));
    if (cfg.cache.enabled) {
      const st = storability(ex.head.method, ex.head.headers, res.status, res.headers, this.proxy.now());
      if (st.ok) {
        if (body === 'length' && length > this.proxy.cache.maxEntryBytes) this.proxy.cache.remember(ex.key, res, length, 'too-large', this.proxy.now());
        else ex.store = { chunks: [], size: 0, freshFor: st.freshFor };
      }
    }
  }

  private writeBody(ex: Exchange, data: Buffer): void {
    if (data.length === 0) return;
    ex.bytes += data.length;
    if (ex.store) {
      ex.store.chunks.push(data);
      ex.store.size += data.length;
      if (ex.store.size > this.proxy.cache.maxEntryBytes) {
        ex.store = undefined;
        this.proxy.cache.remember(ex.key, ex.res!, ex.bytes, 'too-large', this.proxy.now());
      }
    }
    const ok = this.sock.write(ex.framing === 'chunked' ? encodeChunk(data) : data);
    if (!ok && !this.drainWait) {
      ex.responsePaused = true;
      this.drainWait = true;
      const up = ex.up!;
      up.sock.pause();
      this.sock.once('drain', () => {
        this.drainWait = false;
        ex.responsePaused = false;
        if (this.state === 'http' && this.ex === ex) {
          up.sock.resume();
          this.pumpResponse();
        }
      });
    }
  }

  private endResponse(ex: Exchange, up: Upstream): void {
    if (ex.framing === 'chunked') this.sock.write(encodeLastChunk(endToEnd(ex.resTrailers ?? [])));
    const res = ex.res!;
    if (ex.store) {
      ex.stored = this.proxy.cache.store(ex.key, res, Buffer.concat(ex.store.chunks), ex.store.freshFor, this.proxy.now());
      ex.store = undefined;
    }
    // the upstream connection is kept for the next request if both ends agree
    const reusable = ex.requestDone && keepAlive(res) && ex.framing !== 'close' && !up.ended && up.parser.buffered() === 0 && ex.clientKeepAlive;
    ex.up = undefined;
    if (reusable) {
      const old = this.idle.get(up.key);
      if (old && old !== up) old.sock.destroy();
      this.idle.set(up.key, up);
    } else up.sock.destroy();
    const close = !ex.requestDone || ex.framing === 'close' || !ex.clientKeepAlive;
    this.finish(ex, {});
    if (close) this.closeClient();
    else this.pump();
  }

  /**
   * Answers a request with a response the proxy makes itself: at once if
   * the request is complete; at once, closing the connection afterwards, if
   * its body is still coming (it is not read); else when its end is pulled.
   */
  private answer(ex: Exchange, l: NonNullable<Exchange['local']>): void {
    if (ex.up) {
      ex.up.sock.destroy();
      ex.up = undefined;
    }
    if (ex.requestDone) this.respondLocal(ex, l, false);
    else if (ex.reqBody === 'chunked' || ex.reqLength > 0) {
      ex.requestDone = true;
      this.respondLocal(ex, l, true);
    } else {
      ex.local = l;
      ex.waiting = false;
      this.pump();
    }
  }

  /** Writes a response the proxy makes itself; `close` closes the connection after it (its request's body was not read). */
  private respondLocal(ex: Exchange, l: NonNullable<Exchange['local']>, close: boolean): void {
    const closeAfter = close || !ex.clientKeepAlive;
    const headers: Headers = [...l.headers];
    if (l.status !== 304) headers.push(['Content-Length', String(l.body.length)]);
    if (!headers.some(([k]) => k.toLowerCase() === 'date')) headers.push(['Date', new Date(this.proxy.now()).toUTCString()]);
    if (closeAfter) headers.push(['Connection', 'close']);
    else if (ex.head.minor === 0) headers.push(['Connection', 'keep-alive']);
    const res: ResponseHead = { kind: 'response', status: l.status, reason: STATUS_TEXT[l.status] ?? 'Error', minor: 1, headers };
    const withBody = ex.head.method !== 'HEAD' && l.status !== 304;
    this.sock.write(withBody ? Buffer.concat([serializeHead(res), l.body]) : serializeHead(res));
    ex.res = res;
    ex.bytes = withBody ? l.body.length : 0;
    if (ex.up) {
      ex.up.sock.destroy();
      ex.up = undefined;
    }
    this.finish(ex, { cache: l.cache, ...(l.rule !== undefined ? { rule: l.rule } : {}), ...(l.error !== undefined ? { error: l.error } : {}) });
    if (closeAfter) this.closeClient();
    else this.pump();
  }

  /** Logs the exchange and makes room for the next one. */
  private finish(ex: Exchange, o: { cache?: CacheStatus; rule?: string; error?: string; aborted?: boolean; splice?: RequestRecord['splice'] }): void {
    if (ex.done) return;
    ex.done = true;
    if (this.ex === ex) this.ex = undefined;
    const rec: RequestRecord = {
      msg: 'request',
      client: this.client,
      method: ex.head.method,
      host: ex.port === 80 ? ex.host : `${ex.host}:${ex.port}`,
      path: ex.path,
      status: ex.res?.status ?? 0,
      bytes: ex.bytes,
      cache: o.cache ?? 'miss',
      ms: this.proxy.now() - ex.start,
      ...(ex.stored !== undefined ? { stored: ex.stored } : {}),
      ...(o.rule !== undefined ? { rule: o.rule } : {}),
      ...(ex.upstream !== undefined ? { upstream: ex.upstream } : {}),
      ...(ex.via.length > 0 ? { via: ex.via, rule: ex.inspectRule } : {}),
      ...(o.splice ? { splice: o.splice } : {}),
      ...(o.error !== undefined ? { error: o.error } : {}),
      ...(o.aborted ? { aborted: true } : {}),
    };
    this.proxy.record(rec);
  }

  // ---- splicing ---------------------------------------------------------------

  /** Whether this response is one to splice, as far as can be told without asking the agent. */
  private spliceCandidate(ex: Exchange, up: Upstream, body: BodyKind, length: number): boolean {
    const s = this.proxy.config.splice;
    if (!this.proxy.dysco || !s.enabled || body !== 'length' || length <= s.threshold) return false;
    if (s.keepAlive === 'final' && ex.clientKeepAlive && keepAlive(ex.res!)) return false;
    return this.nothingElsePending(ex, up, length);
  }

  /** The client sent nothing after this request, and the server nothing after this response's head that is not its body. */
  private nothingElsePending(ex: Exchange, up: Upstream, length: number): boolean {
    return this.state === 'http' && ex.requestDone && !this.inputEnded && this.parser.idle() && this.parser.buffered() === 0 && !up.ended && up.parser.buffered() <= length;
  }

  private async considerSplice(ex: Exchange, up: Upstream, res: ResponseHead, length: number): Promise<void> {
    const dysco = this.proxy.dysco!;
    let steered = false;
    try {
      const [a, b] = await Promise.all([dysco.sessionOf(this.sock), dysco.sessionOf(up.sock)]);
      steered = a !== undefined && b !== undefined;
    } catch (e) {
      this.proxy.debug('sessionOf failed', { error: (e as Error).message });
    }
    if (this.state !== 'http' || this.ex !== ex) return;
    if (!steered || !this.nothingElsePending(ex, up, length)) {
      // carry on as an ordinary response
      ex.spliceCheck = false;
      this.startResponse(ex, res, 'length', length);
      up.sock.resume();
      this.pumpResponse();
      return;
    }
    const cfg = this.proxy.config;
    const headers = endToEnd(res.headers);
    headers.push(['Content-Length', String(length)], ['Via', `1.${res.minor} ${cfg.name}`], ['X-Cache', 'MISS']);
    // from here the server decides whether the connection persists: the client hears what the server said
    if (!keepAlive(res) || !ex.clientKeepAlive) headers.push(['Connection', 'close']);
    const rest = up.parser.takeRest();
    this.sock.write(serializeHead({ kind: 'response', status: res.status, reason: res.reason || (STATUS_TEXT[res.status] ?? ''), minor: 1, headers }));
    if (rest.length > 0) this.sock.write(rest);
    this.state = 'relay';
    this.relayUp = up;
    for (const u of this.upstreams) if (u !== up) u.sock.destroy();
    this.idle.clear();
    let relayed = rest.length;
    up.sock.on('data', (d: Buffer) => (relayed += d.length));
    this.sock.setTimeout(0);
    up.sock.setTimeout(0);
    // both directions relayed byte for byte until the box is off the path
    up.sock.pipe(this.sock);
    this.sock.pipe(up.sock);
    if (cfg.cache.enabled && ex.head.method === 'GET') this.proxy.cache.remember(ex.key, res, length, 'spliced', this.proxy.now());
    ex.bytes = length;
    let outcome: { result: string; reason?: string | undefined; durationMs: number };
    try {
      outcome = await dysco.splice(this.sock, up.sock);
    } catch (e) {
      outcome = { result: 'aborted', reason: (e as Error).message, durationMs: 0 };
    }
    const splice = { result: outcome.result, ...(outcome.reason !== undefined ? { reason: String(outcome.reason) } : {}), durationMs: Math.round(outcome.durationMs * 100) / 100, relayedBytes: relayed };
    if (outcome.result === 'completed') {
      // the library closed both sockets: they are not the proxy's any more
      this.state = 'spliced';
      this.upstreams.delete(up);
      this.proxy.conns.delete(this);
      this.proxy.spliced += 1;
      this.finish(ex, { cache: 'spliced', splice });
    } else {
      // the proxy stays on the path as a byte relay for the rest of the connection
      this.proxy.warn('splice failed; relaying the rest of the connection', { client: this.client, host: ex.host, path: ex.path, ...splice });
      this.finish(ex, { cache: 'miss', splice });
    }
  }
}

export class WebProxy {
  readonly server: Server;
  readonly cache: HttpCache;
  readonly deny: UrlMatcher;
  readonly inspect: UrlMatcher;
  readonly dysco: DyscoApi | undefined;
  readonly conns = new Set<ClientConn>();
  /** Responses spliced so far. */
  spliced = 0;
  /** Requests logged so far. */
  requests = 0;
  private readonly logFn: (r: Record<string, unknown>) => void;
  readonly now: () => number;

  constructor(
    readonly config: ProxyConfig,
    o: ProxyOptions = {},
  ) {
    this.dysco = o.dysco;
    this.logFn = o.log ?? ((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
    this.now = o.now ?? Date.now;
    this.cache = new HttpCache(config.cache);
    this.deny = new UrlMatcher(config.deny);
    this.inspect = new UrlMatcher(config.inspect);
    this.server = createServer({ allowHalfOpen: true }, (sock) => {
      const c = new ClientConn(this, sock);
      this.conns.add(c);
    });
  }

  listen(port: number, host?: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, ...(host ? { host } : {}) }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, and closes every connection the proxy still holds. */
  close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Where requests for a host go: the configured address, else the host itself (resolved). */
  async resolve(host: string, port: number): Promise<{ host: string; port: number }> {
    const hosts = this.config.upstream.hosts;
    const mapped = hosts[`${host}:${port}`] ?? hosts[host];
    let h = host;
    let p = port;
    if (mapped !== undefined) {
      [h, p] = splitHostPort(mapped);
      if (!/(^[^:]*|\]):\d+$/.test(mapped)) p = port; // no port in the mapping: the request's
    }
    if (isIP(h) === 0) h = (await lookup(h)).address;
    return { host: h, port: p };
  }

  record(r: RequestRecord): void {
    this.requests += 1;
    this.logFn({ t: new Date(this.now()).toISOString(), level: 'info', ...r });
  }

  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.logFn({ t: new Date(this.now()).toISOString(), level: 'info', msg, ...fields });
  }

  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.logFn({ t: new Date(this.now()).toISOString(), level: 'warn', msg, ...fields });
  }

  debug(msg: string, fields: Record<string, unknown> = {}): void {
    if (process.env.WEB_PROXY_DEBUG) this.logFn({ t: new Date(this.now()).toISOString(), level: 'debug', msg, ...fields });
  }
}
