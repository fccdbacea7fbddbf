/**
 * Real TCP sessions between unmodified applications in network namespaces,
 * steered through a router middlebox by the agents, and reconfigured live.
 */
import t from 'tap';
import { Topology } from '@dysco/agent/topology';
import { streamSha256 } from '@dysco/agent/tools/stream';
import { privilegedSkipReason, sleep, transfer } from './helpers.js';

const skip = privilegedSkipReason();

t.test('a session through a router box, the box removed mid-transfer', skip ? { skip } : {}, async (t) => {
  const bed = Topology.create({ hosts: ['client', { name: 'box', router: true }, 'server'] });
  t.teardown(() => bed.destroy());
  const [client, box, server] = ['client', 'box', 'server'].map((n) => bed.host(n));
  const policy = { policies: [{ id: 1, match: `dst ${server!.address}/32 dport 9000`, chain: [box!.address] }] };
  const ca = await client!.startAgent({ config: policy });
  await box!.startAgent();
  await server!.startAgent();

  const bytes = 4_000_000;
  const tr = await transfer(client!, server!, { bytes, rate: 2_000_000 });
  const local = await tr.connected;
  await sleep(500);
  const sessions = JSON.parse(ca.cli('sessions', '--json').stdout) as { id: number; session: string; right?: { agent: string } }[];
  t.equal(sessions.length, 1, 'the client agent has the session');
  t.equal(sessions[0]?.right?.agent, box!.address, 'its right neighbour is the box');
  t.equal(sessions[0]?.session, `${local}>${server!.address}:9000`, 'keyed by the application\'s own tuple');
  const r = ca.cli('reconfig', String(sessions[0]!.id), '--remove', box!.address, '--json');
  t.equal(r.status, 0, `reconfig succeeded: ${r.stdout}${r.stderr}`);
  const outcome = JSON.parse(r.stdout) as { result: string; durationMs: number };
  t.equal(outcome.result, 'completed');
  const after = JSON.parse(ca.cli('sessions', '--json').stdout) as { right?: { agent: string } }[];
  t.equal(after[0]?.right?.agent, server!.address, 'the client now talks to the server directly');
  const [c, s] = await Promise.all([tr.client, tr.server]);
  const brief = (r: typeof c) => ({ ...r, timeline: undefined });
  t.comment(JSON.stringify({ client: brief(c), server: brief(s) }));
  t.equal(s.remote, local, 'the server application saw the client\'s own address and port');
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, 'no reset');
  t.ok(Math.max(c.maxGapMs, s.maxGapMs) < 1000, `longest stall ${Math.max(c.maxGapMs, s.maxGapMs)} ms`);
});
