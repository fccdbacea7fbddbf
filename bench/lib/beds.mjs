// The chains the network benchmarks compare, each in a test bed of its own
// (network namespaces on one Ethernet segment: client, box1, box2, server),
// all built up front so that runs can alternate between them:
//
//   plain      no agents; the boxes are IP routers and the hosts' routes send
//              the traffic through them (client -> box1 [-> box2] -> server,
//              and back the same way)
//   tc-pass    plain routing with the data plane's do-nothing TC program
//              attached where the agents attach theirs (every host's eth0,
//              ingress and egress): what a TC hook costs by itself
//   dysco      an agent on every host (TC mode); a policy at the client
//              steers the sessions through the boxes
//   dysco-xdp  the same with the agents in XDP mode (native XDP ingress)
//   nft        no agents; the client connects to box1, which DNATs (and
//              masquerades) to the server, or to box2, which does the same
//
// Destination ports pick the chain: 9100-9199 cross one box (box1), 9200-9299
// two (box1 then box2). In the plain bed the one-box path is the hosts' main
// routing tables and the two-box path policy-routing rules on those ports.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@dysco/agent/client';
import { Topology } from '@dysco/agent/topology';
import { BENCH_DIR, atCleanup, say, waitLine } from './common.mjs';

export const KINDS = ['plain', 'dysco', 'dysco-xdp', 'nft'];
/** KINDS with the TC do-nothing floor after the baseline. */
export const KINDS_WITH_FLOOR = ['plain', 'tc-pass', 'dysco', 'dysco-xdp', 'nft'];
export const KIND_LABEL = {
  plain: 'plain routing',
  'tc-pass': 'TC do-nothing',
  dysco: 'Dysco (TC)',
  'dysco-xdp': 'Dysco (XDP)',
  nft: 'nftables DNAT',
};
/** First port of each chain length's range. */
export const PORT_BASE = { 1: 9100, 2: 9200 };

/** Ports of the hosts' own connections and of subsessions, kept apart. */
const EPHEMERAL = '10000 39999';
/**
 * Agent settings of the benchmark beds. The subsession port range is wider
 * than the default (61000-65535) and closed sessions linger 2 s instead of
 * 30: a port stays taken while its session lingers, so the default range
 * and linger allow only about 150 new sessions per second toward one
 * neighbour, far below what the setup benchmark opens. The agents log
 * warnings only, unless DYSCO_BENCH_LOG_LEVEL says otherwise (with
 * DYSCO_KEEP_BED=1 the logs stay in /tmp/dysco-bed-TAG/HOST/agent.log).
 */
export const AGENT_CONFIG = { logLevel: process.env.DYSCO_BENCH_LOG_LEVEL ?? 'warn', maxSessions: 65536, closedLinger: 2, ports: { low: 40000, high: 65535 } };

let counter = 0;

/**
 * Builds a bed of the given kind. Returns { kind, bed, h: {client, box1, box2, server}, target(boxes) }
 * where target gives the address the client connects to for a chain of 1 or 2 boxes.
 */
export async function createBed(kind, o = {}) {
  if (!KINDS_WITH_FLOOR.includes(kind)) throw new Error(`unknown bed kind ${kind}`);
  const tag = `${o.tag ?? 'b'}${process.pid % 100000}${counter++}`;
  const bed = Topology.create({
    hosts: ['client', { name: 'box1', router: true }, { name: 'box2', router: true }, 'server'],
    tag,
    subnet: '10.77.0',
  });
  atCleanup(() => bed.destroy());
  const h = { client: bed.host('client'), box1: bed.host('box1'), box2: bed.host('box2'), server: bed.host('server') };
  for (const x of Object.values(h)) x.run(`sysctl -qw net.ipv4.ip_local_port_range="${EPHEMERAL}"`);
  const A = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.address]));
  const [one, two] = [`${PORT_BASE[1]}-${PORT_BASE[1] + 99}`, `${PORT_BASE[2]}-${PORT_BASE[2] + 99}`];
  let target = () => A.server;
  if (kind === 'plain' || kind === 'tc-pass') {
    h.client.run(`ip route add ${A.server}/32 via ${A.box1}`);
    h.server.run(`ip route add ${A.client}/32 via ${A.box1}`);
    h.box1.run(`ip rule add ipproto tcp dport ${two} lookup 200 && ip route add ${A.server}/32 via ${A.box2} table 200`);
    h.box2.run(`ip rule add ipproto tcp sport ${two} lookup 200 && ip route add ${A.client}/32 via ${A.box1} table 200`);
    h.server.run(`ip rule add ipproto tcp sport ${two} lookup 200 && ip route add ${A.client}/32 via ${A.box2} table 200`);
    if (kind === 'tc-pass') {
      for (const host of Object.values(h)) {
        const p = host.node(join(BENCH_DIR, 'tools', 'tc-pass.mjs'), ['eth0', host.pinRoot]);
        await waitLine(p, (l) => l === 'ready', `tc-pass on ${host.name}`);
      }
    }
  } else if (kind === 'nft') {
    const rules = (self, entries) => `table ip steer {
  chain pre {
    type nat hook prerouting priority -100;
${entries.map(([ports, to]) => `    ip daddr ${self} tcp dport ${ports} dnat to ${to}`).join('\n')}
  }
  chain post {
    type nat hook postrouting priority 100;
    ct status dnat masquerade
  }
}
`;
    const write = (host, text) => {
      const f = join(bed.dir, `${host.name}.nft`);
      writeFileSync(f, text);
      host.run(`nft -f ${f}`);
    };
    write(h.box1, rules(A.box1, [[one, A.server], [two, A.box2]]));
    write(h.box2, rules(A.box2, [[two, A.server]]));
    target = () => A.box1;
  } else {
    const mode = kind === 'dysco-xdp' ? 'xdp' : 'tc';
    const policies = [
      { id: 1, match: `dst ${A.server}/32 dport ${one}`, chain: [A.box1] },
      { id: 2, match: `dst ${A.server}/32 dport ${two}`, chain: [A.box1, A.box2] },
    ];
    await Promise.all(
      Object.entries(h).map(([name, host]) =>
        host.startAgent({ config: { ...AGENT_CONFIG, mode, ...(name === 'client' ? { policies } : {}), ...o.agentConfig } }),
      ),
    );
  }
  say(`bed ${kind} ready (${Object.values(h).map((x) => x.ns).join(' ')})`);
  return { kind, bed, h, A, target: (boxes) => target(boxes) };
}

/** Builds one bed of each kind (sequentially: agents start faster without competition). */
export async function createBeds(kinds = KINDS, o = {}) {
  const out = {};
  for (const k of kinds) out[k] = await createBed(k, o);
  return out;
}

/** Library clients of a Dysco bed's agents, by host name (opened once, closed at cleanup). */
export async function agentClients(b) {
  if (!b.clients) {
    b.clients = {};
    for (const [name, host] of Object.entries(b.h)) {
      if (!host.agent) continue;
      const c = await connect({ socket: host.socket });
      b.clients[name] = c;
      atCleanup(() => c.close());
    }
  }
  return b.clients;
}

/** `stats()` of every agent of a Dysco bed, by host name. */
export async function agentStats(b) {
  const cs = await agentClients(b);
  const out = {};
  for (const [name, c] of Object.entries(cs)) out[name] = await c.stats();
  return out;
}

/** The data-plane counters of a Dysco bed's hosts (a check that sessions really were steered). */
export function steeredPackets(b) {
  const out = {};
  for (const [name, host] of Object.entries(b.h)) {
    const r = host.agent?.cli('stats', '--json');
    if (!r || r.status !== 0) continue;
    try {
      out[name] = JSON.parse(r.stdout).dataplane.rewritten ?? 0;
    } catch {
      // not JSON
    }
  }
  return out;
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) the agents of a bed have used so far. */
export function agentCpuSeconds(b) {
  let ticks = 0;
  for (const host of Object.values(b.h)) {
    const pid = host.agent?.proc.pid;
    if (!pid || host.agent.exited) continue;
    try {
      // the fields after the command name (which may hold spaces): utime and stime are the 12th and 13th
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // the process is gone
    }
  }
  return ticks / CLK_TCK;
}
