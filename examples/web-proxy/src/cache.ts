/**
 * The proxy's response cache: a shared cache in the sense of RFC 9111,
 * simplified. Pure: the clock is a parameter.
 *
 * - Stores the responses to GET with status 200 whose freshness is explicit
 *   (`Cache-Control: s-maxage` or `max-age`, else `Expires` minus `Date`),
 *   keyed by host and path (the request target with its query).
 * - Does not store: `no-store`, `private` or `no-cache` responses, requests
 *   with `no-store` or `Authorization`, responses with `Vary` or
 *   `Set-Cookie`, bodies above `maxEntryBytes`.
 * - Serves a stored response while it is fresh, unless the request says
 *   `no-cache`, `no-store`, `Pragma: no-cache` or a `max-age` the entry is
 *   older than. Nothing is revalidated: a stale entry is a miss.
 * - Keeps, for a response it could not store (a spliced one: its body never
 *   crossed the proxy), what it learned: status, headers, validators and
 *   size, marked as not stored. Such an entry is never served.
 * - Evicts the least recently used entries beyond `maxBytes` of bodies or
 *   `maxEntries` entries.
 */
import { type Headers, header, headerValues, tokens } from './http.js';

export interface CacheOptions {
  /** Total bytes of stored bodies (default 64 MiB). */
  readonly maxBytes?: number;
  /** Largest body stored (default 1 MiB). */
  readonly maxEntryBytes?: number;
  /** Entries, stored or not (default 10000). */
  readonly maxEntries?: number;
}

export interface CacheEntry {
  readonly key: string;
  readonly status: number;
  readonly reason: string;
  /** The response's end-to-end headers, as received. */
  readonly headers: Headers;
  /** The body: present only when `stored`. */
  readonly body?: Buffer;
  readonly stored: boolean;
  /** Why the body is not stored (`spliced`, `too-large`, or the reason it was not storable). */
  readonly notStored?: string;
  /** The body's length (Content-Length when the body was not seen). */
  readonly size: number;
  readonly etag?: string;
  readonly lastModified?: string;
  /** When the response was received (ms since the epoch, the cache's clock). */
  readonly receivedAt: number;
  /** The response's age when received (its Age header), in seconds. */
  readonly initialAge: number;
  /** Freshness lifetime, in seconds (0 when unknown). */
  readonly freshFor: number;
  hits: number;
}

export type Directives = Map<string, string | true>;

/** Parses Cache-Control: `name` or `name=token` or `name="quoted"`, names lowercased. */
export function parseCacheControl(value: string | undefined): Directives {
  const out: Directives = new Map();
  if (!value) return out;
  const re = /\s*([^=,\s]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*)))?\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
    if (m[0] === '') break;
    const name = m[1]!.toLowerCase();
    const v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3] !== undefined ? m[3].trim() : true;
    if (!out.has(name)) out.set(name, v);
  }
  return out;
}

function seconds(v: string | true | undefined): number | undefined {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}

/** The cache key of a request: lowercased host (with its port when not 80) and the target's path and query. */
export function cacheKey(host: string, port: number, path: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  return `${port === 80 ? h : `${h}:${port}`}${path}`;
}

export type Storability = { ok: true; freshFor: number } | { ok: false; why: string };

/** Whether a response may be stored, and for how long it is fresh. */
export function storability(method: string, reqHeaders: Headers, status: number, resHeaders: Headers, now: number): Storability {
  if (method !== 'GET') return { ok: false, why: 'method' };
  if (status !== 200) return { ok: false, why: 'status' };
  const req = parseCacheControl(header(reqHeaders, 'cache-control'));
  if (req.has('no-store')) return { ok: false, why: 'request no-store' };
  if (header(reqHeaders, 'authorization') !== undefined) return { ok: false, why: 'authorization' };
  const cc = parseCacheControl(header(resHeaders, 'cache-control'));
  for (const d of ['no-store', 'private', 'no-cache']) if (cc.has(d)) return { ok: false, why: d };
  if (headerValues(resHeaders, 'vary').length > 0) return { ok: false, why: 'vary' };
  if (headerValues(resHeaders, 'set-cookie').length > 0) return { ok: false, why: 'set-cookie' };
  const freshFor = freshness(cc, resHeaders, now);
  if (freshFor <= 0) return { ok: false, why: 'no freshness' };
  return { ok: true, freshFor };
}

function freshness(cc: Directives, headers: Headers, now: number): number {
  const s = seconds(cc.get('s-maxage')) ?? seconds(cc.get('max-age'));
  if (s !== undefined) return s;
  const expires = header(headers, 'expires');
  if (expires === undefined) return 0;
  const e = Date.parse(expires);
  if (Number.isNaN(e)) return 0; // an invalid Expires means already expired
  const d = Date.parse(header(headers, 'date') ?? '');
  return Math.max(0, Math.floor((e - (Number.isNaN(d) ? now : d)) / 1000));
}

/** Whether the request lets the cache answer from a stored response of this age. */
export function requestAllowsCached(reqHeaders: Headers, age: number): boolean {
  if (header(reqHeaders, 'authorization') !== undefined) return false;
  const ccv = header(reqHeaders, 'cache-control');
  const cc = parseCacheControl(ccv);
  if (cc.has('no-cache') || cc.has('no-store')) return false;
  if (ccv === undefined && tokens(reqHeaders, 'pragma').includes('no-cache')) return false;
  const maxAge = seconds(cc.get('max-age'));
  if (maxAge !== undefined && age > maxAge) return false;
  return true;
}

export interface Lookup {
  readonly entry: CacheEntry;
  /** The Age to send, in seconds. */
  readonly age: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  stored: number;
  notStored: number;
  evictions: number;
}

export class HttpCache {
  private readonly entries = new Map<string, CacheEntry>();
  private bytes = 0;
  readonly maxBytes: number;
  readonly maxEntryBytes: number;
  readonly maxEntries: number;
  readonly stats: CacheStats = { hits: 0, misses: 0, stored: 0, notStored: 0, evictions: 0 };

  constructor(o: CacheOptions = {}) {
    this.maxBytes = o.maxBytes ?? 64 * 1024 * 1024;
    this.maxEntryBytes = o.maxEntryBytes ?? 1024 * 1024;
    this.maxEntries = o.maxEntries ?? 10000;
  }

  /** Bytes of stored bodies. */
  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  /** The entry under a key, stored or not, without touching it. */
  peek(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  all(): CacheEntry[] {
    return [...this.entries.values()];
  }

  /** A fresh stored response the request may be answered with; counts a hit or a miss. */
  lookup(key: string, method: string, reqHeaders: Headers, now: number): Lookup | undefined {
    const entry = method === 'GET' ? this.entries.get(key) : undefined;
    if (entry?.stored) {
      const age = entry.initialAge + Math.max(0, Math.floor((now - entry.receivedAt) / 1000));
      if (age < entry.freshFor && requestAllowsCached(reqHeaders, age)) {
        this.entries.delete(key);
        this.entries.set(key, entry); // most recently used
        entry.hits += 1;
        this.stats.hits += 1;
        return { entry, age };
      }
    }
    this.stats.misses += 1;
    return undefined;
  }

  /** Stores a complete response (the caller checked {@link storability}). Returns whether it was stored. */
  store(key: string, res: { status: number; reason: string; headers: Headers }, body: Buffer, freshFor: number, now: number): boolean {
    if (body.length > this.maxEntryBytes || body.length > this.maxBytes) {
      this.remember(key, res, body.length, 'too-large', now);
      return false;
    }
    this.put({ ...this.meta(key, res, body.length, now), body, stored: true, freshFor });
    this.stats.stored += 1;
    return true;
  }

  /**
   * Keeps what is known of a response whose body the cache did not see or
   * cannot keep (`why`: `spliced`, `too-large`): its headers, validators and
   * size. It replaces any stored response under the key (the newer response
   * wins) and is never served.
   */
  remember(key: string, res: { status: number; reason: string; headers: Headers }, size: number, why: string, now: number): CacheEntry {
    const entry: CacheEntry = { ...this.meta(key, res, size, now), stored: false, notStored: why, freshFor: 0 };
    this.put(entry);
    this.stats.notStored += 1;
    return entry;
  }

  /** Drops the entry under a key (an unsafe method went through for that URL). */
  invalidate(key: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    this.drop(key, e);
    return true;
  }

  private meta(key: string, res: { status: number; reason: string; headers: Headers }, size: number, now: number) {
    const age = Number(header(res.headers, 'age'));
    const etag = header(res.headers, 'etag');
    const lastModified = header(res.headers, 'last-modified');
    return {
      key,
      status: res.status,
      reason: res.reason,
      headers: res.headers,
      size,
      receivedAt: now,
      initialAge: Number.isSafeInteger(age) && age > 0 ? age : 0,
      hits: 0,
      ...(etag !== undefined ? { etag } : {}),
      ...(lastModified !== undefined ? { lastModified } : {}),
    };
  }

  private drop(key: string, e: CacheEntry): void {
    this.entries.delete(key);
    if (e.body) this.bytes -= e.body.length;
  }

  private put(entry: CacheEntry): void {
    const old = this.entries.get(entry.key);
    if (old) this.drop(entry.key, old);
    this.entries.set(entry.key, entry);
    if (entry.body) this.bytes += entry.body.length;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes && this.entries.size <= this.maxEntries) break;
      if (k === entry.key) continue;
      this.drop(k, e);
      this.stats.evictions += 1;
    }
  }
}

/** Weak comparison of entity tags (If-None-Match, RFC 9110 section 13.1.2). */
export function etagMatches(ifNoneMatch: string, etag: string | undefined): boolean {
  if (etag === undefined) return false;
  const strip = (t: string) => t.trim().replace(/^W\//, '');
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => strip(t) === strip(etag));
}
