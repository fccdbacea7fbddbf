/**
 * A terminating TCP proxy spliced out of live sessions: the proxy (a
 * TypeScript application on the library) relays a transfer in both
 * directions, then joins its two connections and leaves; the client and the
 * server carry on directly, each under its own tuple and sequence space.
 */
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import { type Host, Topology } from '@dysco/agent/topology';
import { streamSha256 } from '@dysco/agent/tools/stream';
import { privilegedSkipReason, sleep, transfer } from './helpers.js';

const skip = privilegedSkipReason();
const PROXY = fileURLToPath(new URL('./splice-proxy.js', import.meta.url));

/** The hosts of a splice test: the proxy's host takes the server's port 9000 and hands it to the TypeScript proxy. */
interface ProxyBed {
  client: Host;
  proxy: Host;
  server: Host;
  box: Host | undefined;
  /** The proxy's output lines (one JSON line per splice), as they come. */
  lines: string[];
}

/**
 * Builds client, proxy and server, each with an agent (`o.config` added to
 * every agent's), and starts the proxy, which splices each connection
 * `o.spliceAfter` ms after it starts. With `o.classifier`, a router `box`
 * too, through which the proxy (then a classifier) opens its connections.
 */
/** What the agents logged last, into the test's output: the story of a session that lost bytes or was reset. */
function tellAgents(t: Test, hosts: readonly Host[]): void {
  for (const h of hosts) t.comment(`${h.name}'s agent, last 40 log lines:\n${(h.agent?.logs ?? []).slice(-40).join('\n')}`);
}

async function proxyBed(t: Test, o: { spliceAfter: number; classifier?: boolean; config?: Record<string, unknown> }): Promise<ProxyBed> {
  const bed = Topology.create({ hosts: ['client', 'proxy', ...(o.classifier ? [{ name: 'box', router: true }] : []), 'server'] });
  t.teardown(() => bed.destroy());
  const [client, proxy, server] = (['client', 'proxy', 'server'] as const).map((n) => bed.host(n)) as [Host, Host, Host];
  const box = o.classifier ? bed.host('box') : undefined;
  // sessions for the server are taken by the local proxy; its own connections to the server are Dysco sessions too (empty chain)
  proxy.run(
    `nft add table ip px && nft add chain ip px pre '{ type nat hook prerouting priority -100; }' && nft add chain ip px post '{ type nat hook postrouting priority 100; }' && nft add rule ip px pre ip daddr ${server.address} tcp dport 9000 redirect to :8000`,
  );
  proxy.run('sysctl -qw net.ipv4.tcp_timestamps=0');
  const config = o.config ?? {};
  await client.startAgent({ config: { ...config, policies: [{ id: 1, match: `dst ${server.address}/32 dport 9000`, chain: [proxy.address] }] } });
  // with a classifier, the standing policy says direct; its choice for each connection wins
  await proxy.startAgent({ config: { ...config, policies: [{ id: 1, match: `dst ${server.address}/32 dport 9000`, chain: [] }] } });
  if (box) await box.startAgent({ config });
  await server.startAgent({ config });
  const app = proxy.node(PROXY, [proxy.socket, '8000', server.address, '9000', String(o.spliceAfter), ...(box ? [box.address] : [])]);
  const lines: string[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  let err = '';
  app.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  app.stdout!.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n')) if (l) (l === 'ready' ? ready() : lines.push(l));
  });
  await Promise.race([isReady, sleep(10_000).then(() => { throw new Error(`proxy not ready: ${err}`); })]);
  return { client, proxy, server, box, lines };
}


t.test('a TypeScript proxy splices itself out mid-transfer; every byte arrives once', skip ? { skip } : {}, async (t) => {
  const { client, proxy, server, lines } = await proxyBed(t, { spliceAfter: 700 });

  const bytes = 6_000_000;
  const tr = await transfer(client, server, { bytes, rate: 2_000_000 });
  const local = await tr.connected;
  for (let i = 0; i < 60 && lines.length === 0; i++) await sleep(100);
  const r = JSON.parse(lines[0] ?? '{}') as { outcome?: { result: string; reason?: string; durationMs: number }; error?: string; relayed?: number };
  t.equal(r.error, undefined, 'the splice was accepted');
  t.equal(r.outcome?.result, 'completed', `the proxy spliced itself out in ${r.outcome?.durationMs?.toFixed(1)} ms${r.outcome?.reason ? ` (${r.outcome.reason})` : ''}`);
  t.ok((r.relayed ?? 0) > 0, `after relaying ${r.relayed} bytes itself`);
  const at = (h: Host) => JSON.parse(h.agent!.cli('sessions', '--json').stdout) as { session: string; left?: { agent: string }; right?: { agent: string } }[];
  t.equal(at(client)[0]?.right?.agent, server.address, 'the client now talks to the server directly');
  t.equal(at(server)[0]?.left?.agent, client.address, 'and the server to the client');
  const [c, s] = await Promise.all([tr.client, tr.server]);
  t.equal(c.local, local);
  t.equal(s.remote.split(':')[0], proxy.address, "the server's application still sees the proxy's connection");
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, 'no reset');
  const gap = Math.max(c.maxGapMs, s.maxGapMs);
  t.ok(gap < 1000, `longest stall ${gap} ms`);
  // the SYN's pending entry, which a terminating proxy never consumes, left with the proxy: a new connection from the same client port is not refused
  const table = (JSON.parse(proxy.agent!.cli('stats', '--json').stdout) as { table: { pending: number; egress: number } }).table;
  t.equal(table.pending, 0, 'the proxy holds no pending entry once it is off the path');
});

t.test('a proxy spliced out while it still holds data it acknowledged: the anchors keep it until both ends have every byte', skip ? { skip } : {}, async (t) => {
  // The proxy's own data segments (to the client and to the server) are held
  // back around the splice: its TCP has acknowledged bytes it cannot deliver
  // yet, and both anchors' own data is acknowledged (by the proxy) at once.
  // If the anchors finished then, the proxy would leave with those bytes and
  // both transfers would stall for good.
  const spliceAfter = 1500;
  const { client, proxy, server, lines } = await proxyBed(t, { spliceAfter });
  const bytes = 3_000_000;
  const tr = await transfer(client, server, { bytes, rate: 1_000_000 });
  await tr.connected;
  const t0 = Date.now();
  await sleep(spliceAfter - 150);
  // from 150 ms before the splice to 600 ms after it, nothing but pure acks leaves the proxy
  proxy.run(`nft add table ip hold && nft add chain ip hold out '{ type filter hook output priority 0; }' && nft add rule ip hold out ip length '>' 200 counter drop`);
  const held = Date.now() - t0;
  await sleep(spliceAfter + 600 - (Date.now() - t0));
  const dropped = /packets (\d+)/.exec(proxy.run('nft list chain ip hold out'))?.[1];
  proxy.run('nft delete table ip hold');
  t.comment(`proxy data held back from ${held} to ${Date.now() - t0} ms after the connection, the splice at ${spliceAfter} ms`);
  t.ok(Number(dropped) > 0, `the proxy's data segments were held back (${dropped} dropped)`);
  for (let i = 0; i < 100 && lines.length === 0; i++) await sleep(100);
  const r = JSON.parse(lines[0] ?? '{}') as { outcome?: { result: string; reason?: string; durationMs: number }; error?: string };
  t.equal(r.outcome?.result, 'completed', `the proxy spliced itself out in ${r.outcome?.durationMs?.toFixed(1)} ms ${r.error ?? r.outcome?.reason ?? ''}`);
  t.ok((r.outcome?.durationMs ?? 0) > 300, 'not before the held-back bytes were delivered');
  const done = await Promise.race([Promise.all([tr.client, tr.server]), sleep(30_000).then(() => undefined)]);
  t.ok(done, 'both transfers finished');
  if (!done) return;
  const [c, s] = done;
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, 'no reset');
});

t.test('20% of control messages lost on every host: splices complete (the few whose lock is lost abort cleanly) and every byte arrives once', skip ? { skip } : {}, async (t) => {
  // the splice's exchanges (the proxy's request, the lock, the new path's handshake, whose ack carries
  // where the client's old-path data ends, and the two teardowns, the server's first) each cross lossy hops
  const { client, proxy, server, lines } = await proxyBed(t, { spliceAfter: 700, config: { rto: 50, maxRto: 400 } });
  for (const h of [client, proxy, server]) {
    h.run(`nft add table inet lossy && nft add chain inet lossy out '{ type filter hook output priority 0; }' && nft add rule inet lossy out udp dport 7707 numgen random mod 5 == 0 counter drop`);
  }
  // six sessions in turn, each spliced 700 ms after it starts: some sixty control messages in all.
  // The lock crosses four lossy sends per attempt, so now and then all of its attempts are lost
  // (about one splice in forty): the splice is then aborted for a timeout, which is the protocol's
  // answer, and the session goes on through the proxy. Most must complete.
  const bytes = 1_500_000;
  let completed = 0;
  for (let n = 0; n < 6; n++) {
    const tr = await transfer(client, server, { bytes, rate: 1_000_000 });
    await tr.connected;
    for (let i = 0; i < 200 && lines.length <= n; i++) await sleep(100);
    const r = JSON.parse(lines[n] ?? '{}') as { outcome?: { result: string; reason?: string; durationMs: number }; error?: string };
    const how = `${r.outcome?.result} in ${r.outcome?.durationMs?.toFixed(1)} ms ${r.error ?? r.outcome?.reason ?? ''}`;
    if (r.outcome?.result === 'completed') completed++;
    t.ok(r.outcome?.result === 'completed' || (r.outcome?.result === 'aborted' && r.outcome.reason === 'timeout'), `session ${n + 1}: the splice ${how}`);
    const done = await Promise.race([Promise.all([tr.client, tr.server]), sleep(30_000).then(() => undefined)]);
    t.ok(done, `session ${n + 1}: both transfers finished`);
    if (!done) return;
    const [c, s] = done;
    t.ok(s.received === bytes && c.received === bytes, `session ${n + 1}: every byte both ways (${s.received}, ${c.received})`);
    t.ok(s.receivedSha256 === streamSha256(1, bytes) && c.receivedSha256 === streamSha256(2, bytes), `session ${n + 1}: content intact`);
    t.notOk(c.reset || s.reset, `session ${n + 1}: no reset`);
    if (s.received !== bytes || c.received !== bytes || c.reset || s.reset) tellAgents(t, [client, proxy, server]);
  }
  t.ok(completed >= 4, `${completed} of 6 splices completed`);
  const dropped = [client, proxy, server].map((h) => Number(/packets (\d+)/.exec(h.run('nft list chain inet lossy out'))?.[1] ?? 0));
  t.comment(`control datagrams dropped: client ${dropped[0]}, proxy ${dropped[1]}, server ${dropped[2]}`);
  t.ok(dropped[0]! + dropped[1]! + dropped[2]! > 0, 'control messages were lost');
});

t.test('a classifier proxy picks the chain of the connection it opens, then splices itself out of it', skip ? { skip } : {}, async (t) => {
  const { client, proxy, server, box: b, lines } = await proxyBed(t, { spliceAfter: 1200, classifier: true });
  const box = b!;
  const bytes = 8_000_000;
  const tr = await transfer(client, server, { bytes, rate: 2_000_000 });
  await tr.connected;
  await sleep(600);
  const at = (h: Host) => JSON.parse(h.agent!.cli('sessions', '--json').stdout) as { session: string; left?: { agent: string }; right?: { agent: string } }[];
  const viaBox = at(box);
  t.equal(viaBox.length, 1, 'the upstream connection goes through the box the classifier chose');
  t.equal(viaBox[0]?.left?.agent, proxy.address);
  t.equal(viaBox[0]?.right?.agent, server.address);
  const pol = JSON.parse(proxy.agent!.cli('policy', 'list', '--json').stdout) as { id: number }[];
  t.same(pol.map((p) => p.id), [1], 'the per-connection policy is gone once the connection is up');
  for (let i = 0; i < 60 && lines.length === 0; i++) await sleep(100);
  const r = JSON.parse(lines[0] ?? '{}') as { outcome?: { result: string; durationMs: number }; error?: string };
  t.equal(r.outcome?.result, 'completed', `then the proxy spliced itself out in ${r.outcome?.durationMs?.toFixed(1)} ms ${r.error ?? ''}`);
  t.equal(at(client)[0]?.right?.agent, box.address, 'the client now talks to the box');
  t.equal(at(box)[0]?.left?.agent, client.address, 'which hears from the client');
  const [c, s] = await Promise.all([tr.client, tr.server]);
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, 'no reset');
});
