/**
 * A TCP proxy that terminates the sessions steered through its host, relays
 * them to their server, and after a while splices itself out through the
 * library. Run in the proxy host's namespace:
 *   node splice-proxy.js SOCKET LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT SPLICE_AFTER_MS [VIA]
 * SPLICE_AFTER_MS `never` keeps relaying; VIA (comma-separated addresses)
 * makes the proxy a classifier: its upstream connection goes through that
 * chain. Prints `ready`, then one JSON line per spliced connection.
 */
import { type Socket, connect as tcpConnect, createServer } from 'node:net';
import { connect } from '@dysco/agent';

const [socketPath, listenPort, upHost, upPort, afterMs, via] = process.argv.slice(2);
const dysco = await connect({ socket: socketPath! });
const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, async (down) => {
  const target = { host: upHost!, port: Number(upPort), allowHalfOpen: true };
  const up = via ? await dysco.connectVia(via.split(','), target) : await new Promise<Socket>((resolve) => {
    const s = tcpConnect(target, () => resolve(s));
  });
  let relayed = 0;
  down.on('data', (d: Buffer) => (relayed += d.length));
  up.on('data', (d: Buffer) => (relayed += d.length));
  {
    down.pipe(up);
    up.pipe(down);
    down.resume();
    if (afterMs !== 'never') setTimeout(() => {
      dysco.splice(down, up).then(
        (outcome) => process.stdout.write(`${JSON.stringify({ outcome, relayed })}\n`),
        (e: Error) => process.stdout.write(`${JSON.stringify({ error: e.message, relayed })}\n`),
      );
    }, Number(afterMs));
  }
  down.on('error', () => undefined);
  up.on('error', () => undefined);
});
server.listen(Number(listenPort), () => process.stdout.write('ready\n'));
