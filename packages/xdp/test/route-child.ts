/**
 * Runs in namespace A of route.test.ts: the data plane on both of A's
 * veths, a session to B's address rewritten onto a subsession to C's, and a
 * TCP connection from an unmodified socket. Prints what the server said (or
 * "timeout") as one JSON line, then cleans up.
 */
import { connect } from 'node:net';
import { SessionTable, encodeTableMaps, ip, plainRewrite, reverseTuple, tuple } from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';

const [pinRoot, routeArg] = process.argv.slice(2) as [string, string];
const localPort = 40123;
const session = tuple('10.1.0.1', localPort, '10.1.0.2', 8080);
const sub = tuple('10.2.0.1', localPort, '10.2.0.2', 8080);
const table = new SessionTable();
table.installEgress({ key: session, old: plainRewrite(sub), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0 });
table.installIngress({ key: reverseTuple(sub), rewrite: plainRewrite(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });

const dp = DataPlane.open({ pinRoot, maxSessions: 4096 });
dp.configure({ localAddresses: [ip('10.1.0.1'), ip('10.2.0.1')], route: routeArg === 'route' });
dp.install(encodeTableMaps(table));
dp.attach('ab', 'tc');
dp.attach('ac', 'tc');

const answer = await new Promise<string>((resolve) => {
  const sock = connect({ host: '10.1.0.2', port: 8080, localAddress: '10.1.0.1', localPort });
  let got = '';
  const timer = setTimeout(() => {
    sock.destroy();
    resolve('timeout');
  }, 3000);
  sock.on('data', (d) => {
    got += d.toString();
  });
  sock.on('end', () => {
    clearTimeout(timer);
    resolve(got);
  });
  sock.on('error', (e) => {
    clearTimeout(timer);
    resolve(`error: ${e.message}`);
  });
});
const counters = dp.counters();
dp.detachAll();
dp.close();
process.stdout.write(`${JSON.stringify({ answer, rewritten: Number(counters.rewritten), routeMiss: Number(counters.routeMiss), counters: Object.fromEntries(Object.entries(counters).filter(([, v]) => v > 0n).map(([k, v]) => [k, Number(v)])) })}\n`);
