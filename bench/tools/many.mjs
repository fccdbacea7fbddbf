#!/usr/bin/env node
// Many concurrent paced TCP connections carrying data both ways, for the
// concurrent-reconfiguration benchmark (one process per side instead of a
// stream tool pair per connection).
//
//   node many.mjs server --port P [--rate BYTES_PER_S]
//   node many.mjs client --host H --port P --count N [--rate BYTES_PER_S]
//
// Every connection sends the deterministic stream of the stream tool (seed 1
// client to server, seed 2 back) at --rate, hashing what it sends and what
// it receives. The client prints `ready` once its N connections are up and
// keeps sending until it gets SIGUSR2; then it half-closes each
// connection, and the server half-closes when it sees the end. Each side
// prints one JSON line per connection when it closes: its ends, the bytes
// sent and received and their SHA-256, and whether it was reset.
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { streamBytes } from '@dysco/agent/tools/stream';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { host: { type: 'string' }, port: { type: 'string', default: '9002' }, count: { type: 'string', default: '16' }, rate: { type: 'string', default: '65536' } },
});
const role = positionals[0];
const rate = Number(values.rate);
const PATTERN = 1 << 20;
const CHUNK = 16384;
const pattern = streamBytes(role === 'client' ? 1 : 2, 0, PATTERN);
const v4 = (a) => (a ?? '').replace(/^::ffff:/, '');

/** Drives one connection; `stopped()` says when to stop sending. */
function drive(sock, stopped) {
  const c = { sent: 0, received: 0, sh: createHash('sha256'), rh: createHash('sha256'), reset: false, start: Date.now(), ended: false, blocked: false };
  const local = `${v4(sock.localAddress)}:${sock.localPort}`;
  const remote = `${v4(sock.remoteAddress)}:${sock.remotePort}`;
  sock.on('data', (d) => {
    c.received += d.length;
    c.rh.update(d);
  });
  sock.on('drain', () => (c.blocked = false));
  sock.on('error', (e) => {
    if (e.code === 'ECONNRESET') c.reset = true;
  });
  sock.on('close', () => {
    clearInterval(timer);
    process.stdout.write(`${JSON.stringify({ local, remote, sent: c.sent, received: c.received, sentSha256: c.sh.digest('hex'), receivedSha256: c.rh.digest('hex'), reset: c.reset })}\n`);
  });
  const tick = () => {
    if (c.ended) return;
    if (stopped()) {
      c.ended = true;
      sock.end();
      return;
    }
    const allowed = Math.floor(((Date.now() - c.start) / 1000) * rate) + CHUNK;
    while (!c.blocked && c.sent < allowed) {
      const off = c.sent % PATTERN;
      const n = Math.min(CHUNK, allowed - c.sent, PATTERN - off);
      const b = pattern.subarray(off, off + n);
      c.sh.update(b);
      c.sent += n;
      if (!sock.write(b)) c.blocked = true;
    }
  };
  const timer = setInterval(tick, 10);
  return c;
}

if (role === 'server') {
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    let peerDone = false;
    sock.on('end', () => (peerDone = true));
    drive(sock, () => peerDone);
  });
  server.listen(Number(values.port), () => process.stdout.write('listening\n'));
} else if (role === 'client') {
  let stop = false;
  process.on('SIGUSR2', () => (stop = true));
  const n = Number(values.count);
  let up = 0;
  for (let i = 0; i < n; i++) {
    const sock = connect({ host: values.host, port: Number(values.port), allowHalfOpen: true });
    sock.once('connect', () => {
      drive(sock, () => stop);
      if (++up === n) process.stdout.write('ready\n');
    });
    sock.once('error', (e) => {
      if (!sock.remotePort) process.stdout.write(`${JSON.stringify({ error: e.message })}\n`);
    });
  }
} else {
  process.stderr.write('usage: many.mjs server --port P [--rate B/s] | client --host H --port P --count N [--rate B/s]\n');
  process.exitCode = 2;
}
