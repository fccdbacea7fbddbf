/**
 * Tuples and ports used again while something still remembers them:
 * - a client that opens a new connection from the port of one that just
 *   ended (the server closed first, so the client kept no TIME_WAIT) while
 *   the agents still let the old session's entries linger: the new
 *   connection is a new session on every host, with its own subsessions,
 *   and outlives the linger of the old one;
 * - a box removed from a session and inserted again, its new subsession on
 *   a port that the box still remembers from its old place in the path (it
 *   forwards late teardowns for a while): the insert completes.
 */
import t from 'tap';
import { type AgentProcess, type Host, Topology } from '@dysco/agent/topology';
import { privilegedSkipReason, sleep, transfer } from './helpers.js';
import { streamSha256 } from '@dysco/agent/tools/stream';

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

t.test('a box inserted into a session on subsession ports it still remembers from sessions it left', skip ? { skip } : {}, async (t) => {
  const bed = Topology.create({ hosts: ['client', { name: 'box', router: true }, 'server'] });
  t.teardown(() => bed.destroy());
  const [client, box, server] = (['client', 'box', 'server'] as const).map((n) => bed.host(n)) as [Host, Host, Host];
  // two subsession ports at the client; port 9000 goes through the box, 9001 directly
  const policies = [
    { id: 1, match: `dst ${server.address}/32 dport 9000`, chain: [box.address] },
    { id: 2, match: `dst ${server.address}/32 dport 9001`, chain: [] },
  ];
  await client.startAgent({ config: { ports: { low: 61000, high: 61001 }, closedLinger: 1, policies } });
  await box.startAgent();
  await server.startAgent();
  const reconfig = (id: number, args: string[]) => {
    const r = client.agent!.cli('reconfig', String(id), ...args, '--json');
    try {
      const o = JSON.parse(r.stdout) as { result: string; reason?: string };
      return `${o.result}${o.reason ? ` (${o.reason})` : ''}`;
    } catch {
      return `no outcome: ${r.stdout}${r.stderr}`;
    }
  };
  const check = async (tr: Awaited<ReturnType<typeof transfer>>, bytes: number, what: string) => {
    const [c, s] = await Promise.all([tr.client, tr.server]);
    t.ok(s.received === bytes && c.received === bytes && s.receivedSha256 === streamSha256(1, bytes) && c.receivedSha256 === streamSha256(2, bytes), `${what}: every byte arrived once, both ways`);
  };

  // session A leaves the box twice: the box then remembers both client ports (its old places in A's path)
  const bytes = 800_000;
  const a = await transfer(client, server, { port: 9000, bytes, rate: 200_000 });
  await a.connected;
  const idA = sessionsAt(client.agent!)[0]!.id;
  const stepsA = [reconfig(idA, ['--remove', box.address]), reconfig(idA, ['--insert', box.address, '--after', client.address]), reconfig(idA, ['--remove', box.address])];
  t.same(stepsA, ['completed', 'completed', 'completed'], 'session A: remove, insert, remove');
  await check(a, bytes, 'session A');
  // A ends; once the client has forgotten it, both ports are free again at the client
  for (let i = 0; i < 50 && sessionsAt(client.agent!).length > 0; i++) await sleep(100);
  t.equal(sessionsAt(client.agent!).length, 0, 'the client forgot session A');

  // session B, direct, gets the box inserted: its new subsession takes a port the box still remembers
  const b = await transfer(client, server, { port: 9001, bytes, rate: 200_000 });
  await b.connected;
  const idB = sessionsAt(client.agent!)[0]!.id;
  t.equal(reconfig(idB, ['--insert', box.address, '--after', client.address]), 'completed', 'session B: the box is inserted');
  t.equal(sessionsAt(client.agent!)[0]?.right?.agent, box.address, 'session B now goes through the box');
  await check(b, bytes, 'session B');
});
