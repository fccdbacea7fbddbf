/**
 * A client that opens a new connection from the port of one that just
 * ended (the server closed first, so the client kept no TIME_WAIT) while
 * the agents still let the old session's entries linger: the new
 * connection is a new session on every host, with its own subsessions,
 * and outlives the linger of the old one.
 */
import t from 'tap';
import { type AgentProcess, type Host, Topology } from '@dysco/agent/topology';
import { privilegedSkipReason, sleep } from './helpers.js';

const skip = privilegedSkipReason();

interface SessionView {
  id: number;
  session: string;
  left?: { agent: string; subsession: string };
  right?: { agent: string; subsession: string };
}
const sessionsAt = (a: AgentProcess) => JSON.parse(a.cli('sessions', '--json').stdout) as SessionView[];

/** Says hello, answers ping with pong and closes first. */
const SERVER = `
const net = require('node:net');
net.createServer((s) => {
  s.write('hello');
  s.on('data', (d) => { if (String(d).includes('ping')) s.end('pong'); });
  s.on('error', () => {});
}).listen(9000, () => console.log('listening'));
`;

/** Two connections from the same local port, one after the other; the second waits `argv[3]` ms before its ping. */
const CLIENT = `
const net = require('node:net');
const [host, lport, wait] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const once = (delay) => new Promise((resolve, reject) => {
  const s = net.connect({ host, port: 9000, localPort: lport });
  let got = '';
  s.on('connect', () => console.log('connected ' + s.localAddress + ':' + s.localPort));
  s.on('data', (d) => {
    got += d;
    if (got === 'hello') setTimeout(() => s.write('ping'), delay);
  });
  s.on('end', () => resolve(got));
  s.on('error', reject);
});
(async () => {
  console.log('first ' + (await once(0)));
  await new Promise((r) => setTimeout(r, 300));
  console.log('second ' + (await once(wait)));
})().catch((e) => { console.log('error ' + e.message); process.exit(1); });
`;

t.test('a new connection from the port of one that ended is a new session, and outlives the old one\'s linger', skip ? { skip } : {}, async (t) => {
  const bed = Topology.create({ hosts: ['client', { name: 'box', router: true }, 'server'] });
  t.teardown(() => bed.destroy());
  const [client, box, server] = (['client', 'box', 'server'] as const).map((n) => bed.host(n)) as [Host, Host, Host];
  const linger = { closedLinger: 2 };
  await client.startAgent({ config: { ...linger, policies: [{ id: 1, match: `dst ${server.address}/32 dport 9000`, chain: [box.address] }] } });
  await box.startAgent({ config: linger });
  await server.startAgent({ config: linger });

  const lines: string[] = [];
  const collect = (p: ReturnType<Host['spawn']>) => p.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const srv = server.spawn([process.execPath, '-e', SERVER]);
  collect(srv);
  const waitFor = async (what: (l: string) => boolean, ms: number) => {
    for (let i = 0; i < ms / 50 && !lines.some(what); i++) await sleep(50);
    return lines.find(what);
  };
  t.ok(await waitFor((l) => l === 'listening', 5000), 'server listening');

  const port = 23456;
  const cli = client.spawn([process.execPath, '-e', CLIENT, server.address, String(port), '4000']);
  collect(cli);
  t.equal(await waitFor((l) => l.startsWith('first '), 10_000), 'first hellopong', 'the first connection talked and closed');
  const tuple = `${client.address}:${port}>${server.address}:9000`;
  const second = await waitFor((l) => l === `connected ${client.address}:${port}` && lines.filter((x) => x.startsWith('connected ')).length === 2, 5000);
  t.ok(second, 'the second connection came up from the same port');

  // the old session's entries linger 2 s; wait past that while the second connection is open and idle
  await sleep(3000);
  for (const [name, h] of [['client', client], ['box', box], ['server', server]] as const) {
    const mine = sessionsAt(h.agent!).filter((s) => s.session === tuple);
    t.equal(mine.length, 1, `${name}: one session for ${tuple} after the old one's linger`);
  }
  const viaBox = sessionsAt(client.agent!).find((s) => s.session === tuple);
  t.equal(viaBox?.right?.agent, box.address, 'the new session goes through the box');

  t.equal(await waitFor((l) => l.startsWith('second ') || l.startsWith('error '), 10_000), 'second hellopong', 'the second connection talked to the end');
  const counters = (h: Host) => (JSON.parse(h.agent!.cli('stats', '--json').stdout) as { dataplane: Record<string, number> }).dataplane;
  for (const [name, h] of [['box', box], ['server', server]] as const) t.equal(counters(h).entryConflict, 0, `${name}: no SYN refused as a conflict`);
  cli.kill();
  srv.kill();
});
