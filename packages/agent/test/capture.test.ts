/**
 * What a steered session looks like on the wire, hop by hop: libpcap
 * captures (capture-child.ts) on the client, the box and the server while
 * a paced transfer runs through the box and the box is removed live. On
 * each hop the packets carry that hop's subsession tuple (equal ports in
 * the agents' range, as `dysco sessions` reports them), never the
 * session's own tuple; after the removal they go from the client to the
 * server directly and the box sees none; the applications see only the
 * session's tuple throughout.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import { type AgentProcess, type Host, Topology } from '@dysco/agent/topology';
import { streamSha256 } from '@dysco/agent/tools/stream';
import { privilegedSkipReason, sleep, transfer } from './helpers.js';

const skip = privilegedSkipReason();
const opts = skip ? { skip } : {};

const CAPTURE = join(dirname(fileURLToPath(import.meta.url)), 'capture-child.js');
const PORT_LOW = 61000;
const PORT_HIGH = 65535;

interface SessionView {
  session: string;
  left?: { agent: string; subsession: string };
  right?: { agent: string; subsession: string };
}
const sessionsAt = async (a: AgentProcess): Promise<SessionView[]> => {
  const r = await a.cliAsync('sessions', '--json');
  if (r.status !== 0) throw new Error(`dysco sessions: ${r.stderr}`);
  return JSON.parse(r.stdout) as SessionView[];
};

/** A captured packet, as capture-child.ts prints it. */
interface Pkt {
  t: number;
  out: boolean;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  flags: number;
  seq: number;
  ack: number;
  len: number;
  head?: string;
}

const SYN = 0x02;
const ACK = 0x10;
const RST = 0x04;
/** First bytes of SYN metadata (docs/wire-format.md 2.1). */
const METADATA_MAGIC = 'c4595343';

const dir = (p: Pkt) => `${p.src}:${p.sport}>${p.dst}:${p.dport}`;
/** The connection a packet belongs to, whichever way it goes. */
const conn = (p: Pkt) => [`${p.src}:${p.sport}`, `${p.dst}:${p.dport}`].sort().join('<>');
const connOf = (tuple: string) => tuple.split('>').sort().join('<>');

interface Capture {
  stop(): Promise<Pkt[]>;
}

/** Starts a capture on `host`'s eth0; resolves once it is open. */
async function capture(t: Test, host: Host): Promise<Capture> {
  const p = host.node(CAPTURE, ['eth0']);
  const pkts: Pkt[] = [];
  let err = '';
  let buf = '';
  let done = false;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const exited = new Promise<number | null>((resolve) => p.once('exit', resolve));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  p.stdout!.setEncoding('utf8');
  p.stdout!.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (l === 'ready') ready();
      else if (l.startsWith('done ')) done = true;
      else if (l.startsWith('{')) pkts.push(JSON.parse(l) as Pkt);
    }
  });
  await Promise.race([isReady, exited.then((code) => Promise.reject(new Error(`capture on ${host.name} exited (${code}): ${err}`)))]);
  t.teardown(() => void p.kill('SIGKILL'));
  return {
    async stop() {
      p.kill('SIGTERM');
      const code = await exited;
      if (code !== 0 || !done) throw new Error(`capture on ${host.name} ended badly (exit ${code}): ${err}`);
      return pkts;
    },
  };
}

/** Packets of connections other than `allowed`, summarized for a message. */
function strays(pkts: readonly Pkt[], allowed: readonly string[]): string {
  const by = new Map<string, number>();
  for (const p of pkts) if (!allowed.includes(conn(p))) by.set(conn(p), (by.get(conn(p)) ?? 0) + 1);
  return [...by].map(([c, n]) => `${c} x${n}`).join(', ');
}

/** Checks that a subsession tuple has equal ports in the agents' range; returns the port. */
function subsessionPort(t: Test, tuple: string, what: string): number {
  const m = /^([\d.]+):(\d+)>([\d.]+):(\d+)$/.exec(tuple);
  t.ok(m, `${what} is a tuple: ${tuple}`);
  const sp = Number(m?.[2]);
  const dp = Number(m?.[4]);
  t.equal(sp, dp, `${what} ${tuple} has equal ports`);
  t.ok(sp >= PORT_LOW && sp <= PORT_HIGH, `${what} port ${sp} is in ${PORT_LOW}..${PORT_HIGH}`);
  return sp;
}

const bytesOf = (pkts: readonly Pkt[], direction: string) => pkts.filter((p) => dir(p) === direction).reduce((n, p) => n + p.len, 0);

t.test('on the wire: one subsession per hop, never the session tuple; after the live removal, client to server directly', opts, async (t) => {
  const bed = Topology.create({ hosts: ['client', { name: 'box', router: true }, 'server'] });
  t.teardown(() => bed.destroy());
  const client = bed.host('client');
  const box = bed.host('box');
  const server = bed.host('server');
  const C = client.address;
  const B = box.address;
  const S = server.address;
  await client.startAgent({ config: { policies: [{ id: 1, match: `dst ${S}/32 dport 9000`, chain: [B] }] } });
  await box.startAgent();
  await server.startAgent();

  const [capClient, capBox, capServer] = await Promise.all([capture(t, client), capture(t, box), capture(t, server)]);
  const bytes = 8_000_000;
  const tr = await transfer(client, server, { bytes, rate: 2_000_000 });
  const local = await tr.connected;
  const session = `${local}>${S}:9000`;
  await sleep(1000);

  // the hops as the agents know them
  const [atClient, atBox, atServer] = await Promise.all([sessionsAt(client.agent!), sessionsAt(box.agent!), sessionsAt(server.agent!)]);
  t.equal(atClient[0]?.session, session, 'the client agent has the session under its own tuple');
  t.equal(atBox[0]?.session, session, 'so has the box');
  t.equal(atServer[0]?.session, session, 'and the server');
  const hop1 = atClient[0]?.right?.subsession ?? '';
  const hop2 = atBox[0]?.right?.subsession ?? '';
  const P = subsessionPort(t, hop1, 'the client-box subsession');
  const Q = subsessionPort(t, hop2, 'the box-server subsession');
  t.equal(hop1, `${C}:${P}>${B}:${P}`, 'from the client to the box');
  t.equal(hop2, `${B}:${Q}>${S}:${Q}`, 'from the box to the server');
  t.equal(atBox[0]?.left?.subsession, hop1, 'the box hears the client on the first');
  t.equal(atServer[0]?.left?.subsession, hop2, 'the server hears the box on the second');

  const removeStart = Date.now();
  const r = await client.agent!.cliAsync('reconfig', session, '--remove', B, '--json');
  const removed = Date.now();
  t.match(r.stdout, /"result": "completed"/, `the box removed live: ${r.stdout}${r.stderr}`);
  const hop3 = (await sessionsAt(client.agent!))[0]?.right?.subsession ?? '';
  const R = subsessionPort(t, hop3, 'the new client-server subsession');
  t.equal(hop3, `${C}:${R}>${S}:${R}`, 'from the client to the server');
  t.equal((await sessionsAt(server.agent!))[0]?.left?.subsession, hop3, 'which the server hears the client on');

  const [c, s] = await Promise.all([tr.client, tr.server]);
  await sleep(300);
  const [onClient, onBox, onServer] = await Promise.all([capClient.stop(), capBox.stop(), capServer.stop()]);
  t.comment(`captured ${onClient.length} packets on the client, ${onBox.length} on the box, ${onServer.length} on the server`);

  // the applications saw the session's tuple, and every byte
  t.equal(c.local, local, "the client application's own end");
  t.equal(c.remote, `${S}:9000`, 'it talked to the server');
  t.equal(s.remote, local, "the server application saw the client's own address and port");
  t.equal(s.local, `${S}:9000`, 'on its own port');
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, 'no reset');

  const sessionConn = connOf(session);
  const [c1, c2, c3] = [connOf(hop1), connOf(hop2), connOf(hop3)];
  const settled = removed + 500;
  for (const [name, pkts] of [['client', onClient], ['box', onBox], ['server', onServer]] as const) {
    t.equal(pkts.filter((p) => conn(p) === sessionConn).length, 0, `the session tuple never on the wire at the ${name}`);
    t.equal(pkts.filter((p) => p.flags & RST).length, 0, `no reset on the wire at the ${name}`);
  }

  // client: the first hop, then the direct subsession
  t.equal(strays(onClient, [c1, c3]), '', 'the client sends and receives only on its subsessions to the box and to the server');
  const firstSyn = onClient.find((p) => p.flags & SYN);
  t.equal(firstSyn && dir(firstSyn), hop1, "the session's SYN leaves the client on the subsession to the box");
  t.equal(firstSyn?.head, METADATA_MAGIC, 'carrying the SYN metadata');
  t.ok(bytesOf(onClient, hop1) > 0 && bytesOf(onClient, `${B}:${P}>${C}:${P}`) > 0, 'data both ways between the client and the box');
  t.ok(bytesOf(onClient, hop3) > 0 && bytesOf(onClient, `${S}:${R}>${C}:${R}`) > 0, 'then both ways between the client and the server');
  t.equal(onClient.filter((p) => conn(p) === c3 && p.t < removeStart).length, 0, 'nothing directly to the server before the removal');
  const lateClient = onClient.filter((p) => p.t > settled);
  t.ok(lateClient.length > 0, `the transfer went on after the removal (${lateClient.length} packets at the client)`);
  t.equal(strays(lateClient, [c3]), '', 'all of it on the direct subsession: nothing to or from the box');

  // box: the two hops through it, nothing of the direct path, nothing once removed
  t.equal(strays(onBox, [c1, c2]), '', 'the box sees only its two subsessions');
  const boxSyns = onBox.filter((p) => p.flags & SYN && !(p.flags & ACK));
  t.same(boxSyns.map(dir), [hop1, hop2], 'a SYN comes in on the first and leaves on the second');
  t.same(boxSyns.map((p) => p.head), [METADATA_MAGIC, METADATA_MAGIC], 'each with its metadata');
  t.ok(bytesOf(onBox, hop1) > 0 && bytesOf(onBox, hop2) > 0, 'data from the client goes in on one hop and out on the other');
  t.ok(bytesOf(onBox, `${S}:${Q}>${B}:${Q}`) > 0 && bytesOf(onBox, `${B}:${P}>${C}:${P}`) > 0, 'and data from the server the other way');
  t.same(onBox.filter((p) => p.t > settled).map(dir), [], 'nothing reaches the box after its removal');

  // server: the second hop, then the direct subsession
  t.equal(strays(onServer, [c2, c3]), '', 'the server sends and receives only on its subsessions from the box and from the client');
  const serverSyn = onServer.find((p) => p.flags & SYN && !(p.flags & ACK));
  t.equal(serverSyn && dir(serverSyn), hop2, "the session's SYN reaches the server on the subsession from the box");
  t.ok(bytesOf(onServer, hop3) > 0 && bytesOf(onServer, `${S}:${R}>${C}:${R}`) > 0, 'after the removal, data both ways with the client directly');
  t.equal(strays(onServer.filter((p) => p.t > settled), [c3]), '', 'and nothing else');
});
