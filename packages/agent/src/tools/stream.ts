#!/usr/bin/env node
/**
 * A paced bidirectional TCP transfer with integrity check, for tests, the
 * demo and benchmarks: both ends send a deterministic pseudo-random byte
 * stream at a given rate for a given number of bytes, hash what they send
 * and what they receive, and report the longest gap between arrivals.
 *
 *   node stream.js server --port 9000 [--bind ADDR] [--bytes N] [--rate BYTES_PER_S] [--progress MS] [--inject TERM@OFFSET]
 *   node stream.js client --host ADDR --port 9000 [--bytes N] [--rate BYTES_PER_S] [--progress MS] [--inject TERM@OFFSET]
 *
 * `--progress MS` prints `progress <ms since start> <bytes received> <bytes sent>`
 * every MS milliseconds; `--inject` puts TERM into the sent stream at OFFSET
 * (the hashes cover the stream as sent).
 *
 * The server accepts one connection, prints `listening` when ready, and
 * each end prints one JSON line when its connection is done: bytes sent and
 * received, their SHA-256, the peer's tuple as the application saw it,
 * the longest silence between received chunks (ms), and whether the
 * connection was reset.
 */
import { createHash } from 'node:crypto';
import { type Socket, connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';

export interface StreamReport {
  readonly role: 'client' | 'server';
  readonly local: string;
  readonly remote: string;
  readonly sent: number;
  readonly received: number;
  readonly sentSha256: string;
  readonly receivedSha256: string;
  readonly maxGapMs: number;
  readonly reset: boolean;
  readonly error?: string;
  readonly durationMs: number;
  /** Bytes received per 100 ms interval since the connection was set up. */
  readonly timeline: number[];
}

/** The deterministic content: byte i of a stream seeded s. */
export function streamBytes(seed: number, offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(offset + i, 0x9e3779b1) ^ seed) >>> 0;
    x = Math.imul(x ^ (x >>> 15), 0x85ebca6b) >>> 0;
    b[i] = (x ^ (x >>> 13)) & 0xff;
  }
  return b;
}

/** SHA-256 of the first `n` bytes of stream `seed` (what the other end should have received). */
export function streamSha256(seed: number, n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += 1 << 16) h.update(streamBytes(seed, off, Math.min(1 << 16, n - off)));
  return h.digest('hex');
}

export interface RunOptions {
  readonly progressMs?: number;
  readonly inject?: { readonly term: Buffer; readonly offset: number };
}

function run(sock: Socket, role: 'client' | 'server', bytes: number, rate: number, seed: number, o: RunOptions = {}): Promise<StreamReport> {
  return new Promise((resolve) => {
    const start = Date.now();
    // read now: a closed socket no longer knows its ends
    const v4 = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');
    const local = `${v4(sock.localAddress)}:${sock.localPort}`;
    const remote = `${v4(sock.remoteAddress)}:${sock.remotePort}`;
    const sentHash = createHash('sha256');
    const recvHash = createHash('sha256');
    let sent = 0;
    let received = 0;
    let last = Date.now();
    let maxGap = 0;
    let reset = false;
    let error: string | undefined;
    const timeline: number[] = [];
    const chunk = 16 * 1024;
    const progress = o.progressMs ? setInterval(() => process.stdout.write(`progress ${Date.now() - start} ${received} ${sent}\n`), o.progressMs) : undefined;
    const inject = o.inject;
    const content = (off: number, n: number) => {
      const b = streamBytes(seed, off, n);
      if (inject) {
        for (let i = 0; i < inject.term.length; i++) {
          const at = inject.offset + i - off;
          if (at >= 0 && at < n) b[at] = inject.term[i]!;
        }
      }
      return b;
    };
    sock.on('data', (d: Buffer) => {
      const now = Date.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      received += d.length;
      recvHash.update(d);
      const slot = Math.floor((now - start) / 100);
      while (timeline.length <= slot) timeline.push(0);
      timeline[slot]! += d.length;
    });
    const pump = () => {
      // send what the pace allows by now, respecting back-pressure
      const allowed = rate > 0 ? Math.min(bytes, Math.floor(((Date.now() - start) / 1000) * rate) + chunk) : bytes;
      while (sent < allowed) {
        const n = Math.min(chunk, allowed - sent);
        const b = content(sent, n);
        sentHash.update(b);
        sent += n;
        if (!sock.write(b)) {
          sock.once('drain', pump);
          return;
        }
      }
      if (sent >= bytes) sock.end();
      else setTimeout(pump, 10);
    };
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') reset = true;
      error = e.message;
    });
    sock.on('close', () => {
      if (progress) clearInterval(progress);
      resolve({
        role,
        local,
        remote,
        sent,
        received,
        sentSha256: sentHash.digest('hex'),
        receivedSha256: recvHash.digest('hex'),
        maxGapMs: maxGap,
        reset,
        ...(error ? { error } : {}),
        durationMs: Date.now() - start,
        timeline,
      });
    });
    pump();
  });
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      bind: { type: 'string' },
      port: { type: 'string', default: '9000' },
      bytes: { type: 'string', default: '1000000' },
      rate: { type: 'string', default: '0' },
      seed: { type: 'string' },
      progress: { type: 'string' },
      inject: { type: 'string' },
    },
  });
  const role = positionals[0];
  const port = Number(values.port);
  const bytes = Number(values.bytes);
  const rate = Number(values.rate);
  let inject: RunOptions['inject'];
  if (values.inject) {
    const at = values.inject.lastIndexOf('@');
    if (at <= 0) throw new Error('--inject takes TERM@OFFSET');
    inject = { term: Buffer.from(values.inject.slice(0, at)), offset: Number(values.inject.slice(at + 1)) };
  }
  const ro: RunOptions = { ...(values.progress ? { progressMs: Number(values.progress) } : {}), ...(inject ? { inject } : {}) };
  if (role === 'server') {
    const seed = Number(values.seed ?? 2);
    const server = createServer({ allowHalfOpen: true }, (s) => {
      server.close();
      void run(s, 'server', bytes, rate, seed, ro).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
    });
    server.listen(port, values.bind, () => process.stdout.write('listening\n'));
  } else if (role === 'client') {
    if (!values.host) throw new Error('client needs --host');
    const seed = Number(values.seed ?? 1);
    const s = connect({ host: values.host, port, allowHalfOpen: true });
    s.once('connect', () => {
      process.stdout.write(`connected ${s.localAddress}:${s.localPort}\n`);
      void run(s, 'client', bytes, rate, seed, ro).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
    });
    s.once('error', (e) => {
      if (!s.remotePort) {
        process.stdout.write(`${JSON.stringify({ role: 'client', error: e.message, sent: 0, received: 0 })}\n`);
        process.exitCode = 1;
      }
    });
  } else {
    process.stderr.write('usage: stream.js server|client [--host H] [--port P] [--bytes N] [--rate B/s]\n');
    process.exitCode = 2;
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) void main();
