/**
 * An origin server to try the proxy with, and the one its tests and the
 * demo use: a small HTTP server on node:http.
 *   node dist/origin.js --port 80 [--host ADDR]
 * prints `listening PORT`, then one JSON line per request ({method, url}).
 *
 * - /page         a small page, Cache-Control: max-age=300, ETag "page-v1"
 * - /nostore      Cache-Control: no-store
 * - /big?size=N&rate=R  N bytes (default 20 MB) of {@link pattern}, with Content-Length, paced at R bytes/s (0: as fast as possible)
 * - /chunked      a chunked body written in pieces, with an X-Digest trailer (SHA-256 of the body)
 * - /etag         ETag "v1"; If-None-Match: "v1" gets a 304
 * - /empty        204
 * - /close        a body delimited by the connection's close
 * - /echo         the request's method, body length and body SHA-256, as JSON
 * - anything else 200 with the method and URL
 */
import { createHash } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

const BLOCK = (() => {
  const out: Buffer[] = [];
  for (let i = 0; out.length < 2048; i++) out.push(createHash('sha256').update(`block ${i}`).digest());
  return Buffer.concat(out); // 64 KiB
})();

/** The deterministic content of /big: the 64 KiB block repeated. */
export function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let o = 0; o < size; o += BLOCK.length) BLOCK.copy(b, o, 0, Math.min(BLOCK.length, size - o));
  return b;
}

export const CHUNKED_PARTS = ['first part, ', 'second part, ', 'x'.repeat(70000), ', the end\n'];
export const CHUNKED_BODY = CHUNKED_PARTS.join('');
export const PAGE = '<html><body>a small cacheable page</body></html>\n';

export interface Origin {
  readonly server: Server;
  readonly requests: { method: string; url: string }[];
  count(prefix: string): number;
}

function sendPaced(res: ServerResponse, size: number, rate: number): void {
  let off = 0;
  const step = 64 * 1024;
  const started = Date.now();
  const next = () => {
    while (off < size) {
      if (rate > 0 && off > ((Date.now() - started) / 1000) * rate) {
        setTimeout(next, 5);
        return;
      }
      const n = Math.min(step, size - off);
      const chunk = Buffer.alloc(n);
      for (let o = 0; o < n; ) {
        const at = (off + o) % BLOCK.length;
        const k = Math.min(BLOCK.length - at, n - o);
        BLOCK.copy(chunk, o, at, at + k);
        o += k;
      }
      off += n;
      if (!res.write(chunk)) {
        res.once('drain', next);
        return;
      }
    }
    res.end();
  };
  next();
}

function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const url = new URL(req.url ?? '/', 'http://origin');
  switch (url.pathname) {
    case '/page':
      res.writeHead(200, { 'Content-Type': 'text/html', 'Cache-Control': 'max-age=300', ETag: '"page-v1"', 'Content-Length': Buffer.byteLength(PAGE) });
      res.end(req.method === 'HEAD' ? undefined : PAGE);
      return;
    case '/nostore':
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      res.end('not to be stored\n');
      return;
    case '/big': {
      const size = Number(url.searchParams.get('size') ?? 20 * 1024 * 1024);
      const rate = Number(url.searchParams.get('rate') ?? 0);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'max-age=300', ETag: `"big-${size}"`, 'Last-Modified': 'Mon, 02 Mar 2026 10:00:00 GMT' });
      if (req.method === 'HEAD') res.end();
      else sendPaced(res, size, rate);
      return;
    }
    case '/chunked': {
      res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Digest' });
      let i = 0;
      const next = () => {
        if (i < CHUNKED_PARTS.length) {
          res.write(CHUNKED_PARTS[i++]!);
          setTimeout(next, 10);
        } else {
          res.addTrailers({ 'X-Digest': createHash('sha256').update(CHUNKED_BODY).digest('hex') });
          res.end();
        }
      };
      next();
      return;
    }
    case '/etag':
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { ETag: '"v1"', 'Cache-Control': 'max-age=60' });
        res.end();
      } else {
        res.writeHead(200, { ETag: '"v1"', 'Cache-Control': 'max-age=60', 'Content-Type': 'text/plain' });
        res.end('etag body\n');
      }
      return;
    case '/empty':
      res.writeHead(204, {});
      res.end();
      return;
    case '/close':
      // no Content-Length, no chunking: HTTP/1.0 style
      res.socket?.write('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until the close\n');
      res.socket?.end();
      return;
    case '/echo':
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, length: body.length, sha256: createHash('sha256').update(body).digest('hex') }));
      return;
    default:
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`${req.method} ${req.url}\n`);
  }
}

export function startOrigin(port: number, host?: string, onRequest?: (r: { method: string; url: string }) => void): Promise<Origin> {
  const requests: { method: string; url: string }[] = [];
  const server = createServer((req, res) => {
    const r = { method: req.method ?? '', url: req.url ?? '' };
    requests.push(r);
    onRequest?.(r);
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => handle(req, res, Buffer.concat(parts)));
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) =>
    server.listen(port, host, () => resolve({ server, requests, count: (prefix) => requests.filter((r) => r.url.startsWith(prefix)).length })),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const o = await startOrigin(Number(opt('--port') ?? 80), opt('--host'), (r) => process.stdout.write(`${JSON.stringify(r)}\n`));
  process.stdout.write(`listening ${(o.server.address() as { port: number }).port}\n`);
}
