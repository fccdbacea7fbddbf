/**
 * HTTP/1.1 messages (RFC 9112): an incremental parser for requests and
 * responses, and the serializers the proxy writes with. Pure: no sockets.
 *
 * The parser is pull-based: `feed()` appends input, `next()` returns the
 * next event, or `undefined` when it needs more input. A connection can
 * stop pulling after a message ends (a pipelined request waits in the
 * parser's buffer until the response to the previous one is out).
 *
 * Events of one message: `head`, then zero or more `data` (the body,
 * decoded: chunk framing removed), `trailers` for a chunked message that
 * has some, then `end`.
 */

export type Header = [name: string, value: string];
export type Headers = Header[];

export interface RequestHead {
  readonly kind: 'request';
  readonly method: string;
  readonly target: string;
  /** Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x). */
  readonly minor: number;
  readonly headers: Headers;
}

export interface ResponseHead {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
  readonly minor: number;
  readonly headers: Headers;
}

export type Head = RequestHead | ResponseHead;

/** How a message's body is delimited. */
export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

/** A message's head; `length` with a Content-Length body; `method` (responses) the request's. */
export interface HeadEvent {
  readonly type: 'head';
  readonly head: Head;
  readonly body: BodyKind;
  readonly length?: number;
  readonly method?: string;
}

export type HttpEvent =
  | HeadEvent
  | { readonly type: 'data'; readonly data: Buffer }
  | { readonly type: 'trailers'; readonly trailers: Headers }
  | { readonly type: 'end' };

/** A malformed or unsupported message. `status` is what a server answers to it. */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ParserLimits {
  /** Largest start line plus header section, in bytes (default 64 KiB). */
  readonly maxHead?: number;
  /** Largest chunk-size line, extensions included (default 4 KiB). */
  readonly maxChunkLine?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field values: VCHAR, obs-text, SP and HTAB; no other control characters
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const BAD_TARGET = /[\x00-\x20\x7f]/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: (.*))?$/;
const CHUNK_LINE = /^([0-9A-Fa-f]+)[ \t]*(?:;(.*))?$/;

const CR = 0x0d;
const LF = 0x0a;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'close' | 'closed' | 'failed';

export class HttpParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private state: State = 'head';
  private remaining = 0;
  private readonly methods: string[] = [];
  private readonly maxHead: number;
  private readonly maxChunkLine: number;
  private pendingEnd = false;

  constructor(
    readonly kind: 'request' | 'response',
    limits: ParserLimits = {},
  ) {
    this.maxHead = limits.maxHead ?? 64 * 1024;
    this.maxChunkLine = limits.maxChunkLine ?? 4096;
  }

  /** For a response parser: the method of the request the next response answers (HEAD responses have no body). */
  expect(method: string): void {
    this.methods.push(method);
  }

  /** Appends input. */
  feed(data: Buffer): void {
    if (data.length === 0) return;
    if (this.pos >= this.buf.length) this.buf = data;
    else this.buf = Buffer.concat([this.buf.subarray(this.pos), data]);
    this.pos = 0;
  }

  /** Bytes fed and not yet consumed by an event. */
  buffered(): number {
    return this.buf.length - this.pos;
  }

  /** True between messages (nothing of a next message consumed yet). */
  idle(): boolean {
    return this.state === 'head' && !this.pendingEnd;
  }

  /** The unconsumed input, removed from the parser (which should not be used afterwards). */
  takeRest(): Buffer {
    const rest = this.buf.subarray(this.pos);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.state = 'failed';
    return rest;
  }

  /** In a body of known length: the body bytes still to come. */
  remainingLength(): number {
    return this.state === 'length' ? this.remaining : 0;
  }

  /**
   * The input has ended (the peer closed its side). Returns the `end` of a
   * body delimited by the close, undefined at a clean boundary, and throws
   * when a message was cut short.
   */
  finish(): HttpEvent | undefined {
    if (this.state === 'close') {
      this.state = 'closed';
      return { type: 'end' };
    }
    if (this.state === 'head' && !this.pendingEnd) {
      const rest = this.buf.subarray(this.pos);
      if (rest.every((b) => b === CR || b === LF)) return undefined;
    }
    if (this.state === 'closed' || this.state === 'failed') return undefined;
    this.state = 'failed';
    throw new HttpError(`connection closed in the middle of a ${this.kind}`, this.kind === 'request' ? 400 : 502);
  }

  /** The next event, or undefined when more input is needed. Throws HttpError on a malformed message. */
  next(): HttpEvent | undefined {
    if (this.pendingEnd) {
      this.pendingEnd = false;
      return { type: 'end' };
    }
    try {
      return this.step();
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
  }

  private avail(): number {
    return this.buf.length - this.pos;
  }

  private step(): HttpEvent | undefined {
    switch (this.state) {
      case 'head':
        return this.parseHead();
      case 'length': {
        if (this.avail() === 0) return undefined;
        const n = Math.min(this.avail(), this.remaining);
        const data = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          this.state = 'head';
          this.pendingEnd = true;
        }
        return { type: 'data', data };
      }
      case 'close': {
        if (this.avail() === 0) return undefined;
        const data = this.buf.subarray(this.pos);
        this.pos = this.buf.length;
        return { type: 'data', data };
      }
      case 'chunk-size': {
        const line = this.line(this.maxChunkLine, 'chunk size line');
        if (line === undefined) return undefined;
        const m = CHUNK_LINE.exec(line);
        if (!m) throw new HttpError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`, this.errorStatus());
        const hex = m[1]!.replace(/^0+(?=.)/, '');
        if (hex.length > 12) throw new HttpError('chunk too large', this.errorStatus());
        if (m[2] !== undefined && BAD_VALUE.test(m[2])) throw new HttpError('bad chunk extension', this.errorStatus());
        const size = parseInt(hex, 16);
        if (size === 0) {
          this.state = 'trailers';
          return this.step();
        }
        this.remaining = size;
        this.state = 'chunk-data';
        return this.step();
      }
      case 'chunk-data': {
        if (this.avail() === 0) return undefined;
        const n = Math.min(this.avail(), this.remaining);
        const data = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = 'chunk-crlf';
        return { type: 'data', data };
      }
      case 'chunk-crlf': {
        if (this.avail() === 0) return undefined;
        if (this.buf[this.pos] === LF) {
          this.pos += 1;
        } else if (this.buf[this.pos] === CR) {
          if (this.avail() < 2) return undefined;
          if (this.buf[this.pos + 1] !== LF) throw new HttpError('chunk data not followed by CRLF', this.errorStatus());
          this.pos += 2;
        } else {
          throw new HttpError('chunk data longer than its size', this.errorStatus());
        }
        this.state = 'chunk-size';
        return this.step();
      }
      case 'trailers': {
        const end = this.findSectionEnd(this.pos, true);
        if (end === undefined) {
          if (this.avail() > this.maxHead) throw new HttpError('trailer section too large', this.errorStatus());
          return undefined;
        }
        const text = this.buf.toString('latin1', this.pos, end.contentEnd);
        this.pos = end.next;
        const trailers = text.length === 0 ? [] : parseFields(splitLines(text), this.errorStatus());
        this.state = 'head';
        if (trailers.length > 0) {
          this.pendingEnd = true;
          return { type: 'trailers', trailers };
        }
        return { type: 'end' };
      }
      case 'closed':
        if (this.avail() > 0) throw new HttpError('data after a message delimited by the connection close', this.errorStatus());
        return undefined;
      case 'failed':
        return undefined;
    }
  }

  private errorStatus(): number {
    return this.kind === 'request' ? 400 : 502;
  }

  /** One line (without its CRLF or LF) if complete. */
  private line(max: number, what: string): string | undefined {
    const nl = this.buf.indexOf(LF, this.pos);
    if (nl < 0) {
      if (this.avail() > max) throw new HttpError(`${what} too long`, this.errorStatus());
      return undefined;
    }
    if (nl - this.pos > max) throw new HttpError(`${what} too long`, this.errorStatus());
    const end = nl > this.pos && this.buf[nl - 1] === CR ? nl - 1 : nl;
    const line = this.buf.toString('latin1', this.pos, end);
    this.pos = nl + 1;
    if (line.includes('\r')) throw new HttpError(`bare CR in ${what}`, this.errorStatus());
    return line;
  }

  /**
   * Where a field section starting at `from` ends: the empty line. With
   * `emptyAllowed`, the section may be empty (trailers: the empty line
   * comes at once).
   */
  private findSectionEnd(from: number, emptyAllowed: boolean): { contentEnd: number; next: number } | undefined {
    if (emptyAllowed) {
      if (this.buf[from] === LF) return { contentEnd: from, next: from + 1 };
      if (this.buf[from] === CR) {
        if (from + 1 >= this.buf.length) return undefined;
        if (this.buf[from + 1] === LF) return { contentEnd: from, next: from + 2 };
      }
    }
    let i = from;
    for (;;) {
      const nl = this.buf.indexOf(LF, i);
      if (nl < 0) return undefined;
      const after = nl + 1;
      if (after >= this.buf.length) return undefined;
      if (this.buf[after] === LF) return { contentEnd: nl > from && this.buf[nl - 1] === CR ? nl - 1 : nl, next: after + 1 };
      if (this.buf[after] === CR) {
        if (after + 1 >= this.buf.length) return undefined;
        if (this.buf[after + 1] === LF) return { contentEnd: nl > from && this.buf[nl - 1] === CR ? nl - 1 : nl, next: after + 2 };
      }
      i = after;
    }
  }

  private parseHead(): HttpEvent | undefined {
    // empty lines before a message are ignored (RFC 9112 section 2.2)
    while (this.pos < this.buf.length) {
      if (this.buf[this.pos] === LF) this.pos += 1;
      else if (this.buf[this.pos] === CR && this.pos + 1 < this.buf.length && this.buf[this.pos + 1] === LF) this.pos += 2;
      else break;
    }
    if (this.avail() === 0 || (this.avail() === 1 && this.buf[this.pos] === CR)) return undefined;
    const end = this.findSectionEnd(this.pos, false);
    if (end === undefined) {
      if (this.avail() > this.maxHead) throw new HttpError('header section too large', this.kind === 'request' ? 431 : 502);
      return undefined;
    }
    if (end.next - this.pos > this.maxHead) throw new HttpError('header section too large', this.kind === 'request' ? 431 : 502);
    const text = this.buf.toString('latin1', this.pos, end.contentEnd);
    this.pos = end.next;
    const lines = splitLines(text);
    const start = lines.shift()!;
    const status = this.errorStatus();
    if (this.kind === 'request') {
      const m = REQUEST_LINE.exec(start);
      if (!m) throw new HttpError(`bad request line ${JSON.stringify(start.slice(0, 60))}`);
      const [, method, target, major, minor] = m as unknown as [string, string, string, string, string];
      if (!TOKEN.test(method)) throw new HttpError(`bad method ${JSON.stringify(method)}`);
      if (BAD_TARGET.test(target)) throw new HttpError('bad request target');
      if (major !== '1') throw new HttpError(`HTTP/${major}.${minor} is not supported`, 505);
      const headers = parseFields(lines, status);
      const head: RequestHead = { kind: 'request', method, target, minor: Number(minor), headers };
      return this.startBody(head, requestBody(head));
    }
    const m = STATUS_LINE.exec(start);
    if (!m) throw new HttpError(`bad status line ${JSON.stringify(start.slice(0, 60))}`, 502);
    const [, major, minor, code, reason] = m as unknown as [string, string, string, string, string | undefined];
    if (major !== '1') throw new HttpError(`HTTP/${major}.${minor} response`, 502);
    if (reason !== undefined && BAD_VALUE.test(reason)) throw new HttpError('bad reason phrase', 502);
    const headers = parseFields(lines, status);
    const head: ResponseHead = { kind: 'response', status: Number(code), reason: reason ?? '', minor: Number(minor), headers };
    const interim = head.status >= 100 && head.status < 200 && head.status !== 101;
    const method = interim ? this.methods[0] : this.methods.shift();
    if (method === undefined) throw new HttpError('a response to no request', 502);
    if (head.status === 101) throw new HttpError('protocol upgrades are not supported', 502);
    return { ...this.startBody(head, responseBody(head, method)), method };
  }

  private startBody(head: Head, b: { body: BodyKind; length?: number }): HeadEvent {
    switch (b.body) {
      case 'none':
        this.pendingEnd = true;
        break;
      case 'length':
        if (b.length === 0) this.pendingEnd = true;
        else {
          this.state = 'length';
          this.remaining = b.length!;
        }
        break;
      case 'chunked':
        this.state = 'chunk-size';
        break;
      case 'close':
        this.state = 'close';
        break;
    }
    return b.length === undefined ? { type: 'head', head, body: b.body } : { type: 'head', head, body: b.body, length: b.length };
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  for (const l of lines) if (l.includes('\r')) throw new HttpError('bare CR in the header section');
  return lines;
}

/** Field lines (headers or trailers): obs-fold is replaced by a space, whitespace before the colon refused. */
function parseFields(lines: readonly string[], status: number): Headers {
  const out: Headers = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = out[out.length - 1];
      if (!last) throw new HttpError('a header section starting with whitespace', status);
      const more = line.replace(/^[ \t]+|[ \t]+$/g, '');
      if (BAD_VALUE.test(more)) throw new HttpError(`bad value of ${last[0]}`, status);
      last[1] = last[1] ? (more ? `${last[1]} ${more}` : last[1]) : more;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpError(`bad header line ${JSON.stringify(line.slice(0, 40))}`, status);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpError(`bad header name ${JSON.stringify(name.slice(0, 40))}`, status);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE.test(value)) throw new HttpError(`bad value of ${name}`, status);
    out.push([name, value]);
  }
  return out;
}

// ---- header helpers -------------------------------------------------------

/** Every value of a field (case-insensitive name), in order. */
export function headerValues(headers: Headers, name: string): string[] {
  const n = name.toLowerCase();
  return headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

/** A field's combined value (values joined with ", "), or undefined. */
export function header(headers: Headers, name: string): string | undefined {
  const v = headerValues(headers, name);
  return v.length === 0 ? undefined : v.join(', ');
}

/** The comma-separated tokens of a list field, lowercased. */
export function tokens(headers: Headers, name: string): string[] {
  return headerValues(headers, name)
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

export function hasToken(headers: Headers, name: string, token: string): boolean {
  return tokens(headers, name).includes(token.toLowerCase());
}

/** The headers without the named fields (case-insensitive). */
export function withoutHeaders(headers: Headers, names: Iterable<string>): Headers {
  const drop = new Set([...names].map((n) => n.toLowerCase()));
  return headers.filter(([k]) => !drop.has(k.toLowerCase()));
}

/** Whether the connection persists after this message (RFC 9112 section 9.3). */
export function keepAlive(head: Head): boolean {
  const conn = tokens(head.headers, 'connection');
  if (conn.includes('close')) return false;
  if (head.minor >= 1) return true;
  return conn.includes('keep-alive');
}

/** The value of Content-Length: a number, undefined when absent; throws when invalid. */
export function contentLength(headers: Headers, status = 400): number | undefined {
  const values = headerValues(headers, 'content-length').flatMap((v) => v.split(',')).map((v) => v.trim());
  if (values.length === 0) return undefined;
  const first = values[0]!;
  if (!values.every((v) => /^\d+$/.test(v) && v === first)) throw new HttpError(`bad Content-Length ${JSON.stringify(values.join(', '))}`, status);
  const n = Number(first);
  if (!Number.isSafeInteger(n)) throw new HttpError('Content-Length too large', status);
  return n;
}

function requestBody(head: RequestHead): { body: BodyKind; length?: number } {
  const te = tokens(head.headers, 'transfer-encoding');
  const hasTe = headerValues(head.headers, 'transfer-encoding').length > 0;
  if (hasTe) {
    if (head.minor === 0) throw new HttpError('Transfer-Encoding in an HTTP/1.0 request');
    if (headerValues(head.headers, 'content-length').length > 0) throw new HttpError('both Transfer-Encoding and Content-Length');
    if (te.length !== 1 || te[0] !== 'chunked') throw new HttpError(`transfer coding ${JSON.stringify(te.join(', '))} not implemented`, 501);
    return { body: 'chunked' };
  }
  const n = contentLength(head.headers);
  if (n === undefined || n === 0) return n === 0 ? { body: 'length', length: 0 } : { body: 'none' };
  return { body: 'length', length: n };
}

function responseBody(head: ResponseHead, method: string): { body: BodyKind; length?: number } {
  if (method === 'HEAD' || (head.status >= 100 && head.status < 200) || head.status === 204 || head.status === 304) return { body: 'none' };
  const hasTe = headerValues(head.headers, 'transfer-encoding').length > 0;
  // HTTP/1.0 with Transfer-Encoding: faulty framing, read until the close (RFC 9112 section 6.1)
  if (hasTe && head.minor === 0) return { body: 'close' };
  if (hasTe) {
    const te = tokens(head.headers, 'transfer-encoding');
    if (te.length !== 1 || te[0] !== 'chunked') throw new HttpError(`transfer coding ${JSON.stringify(te.join(', '))} not supported`, 502);
    return { body: 'chunked' };
  }
  const n = contentLength(head.headers, 502);
  if (n !== undefined) return { body: 'length', length: n };
  return { body: 'close' };
}

// ---- serializers ----------------------------------------------------------

function fieldLines(headers: Headers): string {
  let s = '';
  for (const [k, v] of headers) {
    if (!TOKEN.test(k) || BAD_VALUE.test(v)) throw new HttpError(`refusing to write the header ${JSON.stringify(k)}`, 500);
    s += `${k}: ${v}\r\n`;
  }
  return s;
}

export function serializeHead(head: Head): Buffer {
  const start =
    head.kind === 'request' ? `${head.method} ${head.target} HTTP/1.${head.minor}\r\n` : `HTTP/1.${head.minor} ${head.status} ${head.reason}\r\n`;
  return Buffer.from(`${start}${fieldLines(head.headers)}\r\n`, 'latin1');
}

/** One chunk of a chunked body (nothing for empty data: an empty chunk would end the body). */
export function encodeChunk(data: Buffer): Buffer {
  if (data.length === 0) return Buffer.alloc(0);
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, Buffer.from('\r\n', 'latin1')]);
}

/** The last chunk and the trailer section. */
export function encodeLastChunk(trailers: Headers = []): Buffer {
  return Buffer.from(`0\r\n${fieldLines(trailers)}\r\n`, 'latin1');
}

/** A whole chunked body: one chunk per part. */
export function encodeChunked(parts: readonly Buffer[], trailers: Headers = []): Buffer {
  return Buffer.concat([...parts.map(encodeChunk), encodeLastChunk(trailers)]);
}

export const STATUS_TEXT: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};
