#!/usr/bin/env node
/**
 * The applications of the namespace test: plain sockets, one JSON line of
 * result each.
 *
 *   node peers.js server --port P                   accepts one connection, counts what it receives
 *                                                   (and says so every 200 ms until it closes)
 *   node peers.js connect --host H --port P --timeout MS
 *   node peers.js split --host H --port P --first A --second B [--pause MS] [--then BYTES]
 *
 * `split` writes A, waits (so that A leaves in a segment of its own), writes
 * B, then keeps writing 1 KiB every 20 ms until BYTES more are sent or the
 * connection fails.
 */
import { createServer, connect } from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    timeout: { type: 'string', default: '3000' },
    first: { type: 'string' },
    second: { type: 'string' },
    pause: { type: 'string', default: '300' },
    then: { type: 'string', default: '200000' },
  },
});
/** A result line; `final` marks the last one. */
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const port = Number(values.port);

switch (positionals[0]) {
  case 'server': {
    const server = createServer((s) => {
      server.close();
      let received = 0;
      let text = '';
      let reset = false;
      s.on('data', (d: Buffer) => {
        received += d.length;
        if (text.length < 4096) text += d.toString('latin1');
      });
      s.on('error', (e: NodeJS.ErrnoException) => (reset = e.code === 'ECONNRESET'));
      // a box that drops the connection's packets leaves it open here: say how far it got meanwhile
      const progress = setInterval(() => out({ received }), 200);
      s.on('close', () => {
        clearInterval(progress);
        out({ final: true, received, reset, head: text.slice(0, 200) });
      });
    });
    server.listen(port, () => process.stdout.write('listening\n'));
    break;
  }
  case 'connect': {
    const start = Date.now();
    const s = connect({ host: values.host!, port });
    const timer = setTimeout(() => {
      out({ final: true, connected: false, error: 'timeout', ms: Date.now() - start });
      s.destroy();
    }, Number(values.timeout));
    s.once('connect', () => {
      clearTimeout(timer);
      out({ final: true, connected: true, ms: Date.now() - start });
      s.destroy();
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      out({ final: true, connected: false, error: e.message, ms: Date.now() - start });
    });
    break;
  }
  case 'split': {
    const s = connect({ host: values.host!, port, noDelay: true });
    let sent = 0;
    let done = false;
    const finish = (o: Record<string, unknown>) => {
      if (done) return;
      done = true;
      out({ final: true, sent, ...o });
      s.destroy();
    };
    s.on('error', (e: NodeJS.ErrnoException) => finish({ error: e.message, reset: e.code === 'ECONNRESET' }));
    s.once('connect', async () => {
      const write = (b: Buffer) => {
        s.write(b);
        sent += b.length;
      };
      write(Buffer.from(values.first!));
      await new Promise((r) => setTimeout(r, Number(values.pause)));
      write(Buffer.from(values.second!));
      const more = Number(values.then);
      const chunk = Buffer.alloc(1024, 0x2e);
      for (let n = 0; n < more && !done; n += chunk.length) {
        await new Promise((r) => setTimeout(r, 20));
        if (!done) write(chunk);
      }
      await new Promise((r) => setTimeout(r, 500));
      finish({ reset: false });
    });
    break;
  }
  default:
    process.stderr.write('usage: peers.js server|connect|split ...\n');
    process.exitCode = 2;
}
