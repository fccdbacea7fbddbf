/**
 * Routing by the rewritten destination, on real interfaces: namespace A
 * (the agent) has a veth to B (10.1.0.0/24) and one to C (10.2.0.0/24). A
 * connection from A to B's address is rewritten onto a subsession to C: the
 * stack routed the SYN toward B, so only the data plane's FIB lookup and
 * neighbour redirect get it to C, whose server answers. With routing off,
 * the connection cannot complete.
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();
const tag = `${process.pid}`;
const ns = { a: `dysco-ra-${tag}`, b: `dysco-rb-${tag}`, c: `dysco-rc-${tag}` };

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

const server = (name: string) =>
  `require('net').createServer((s) => { s.end('hello from ${name}'); }).listen(8080, () => process.stdout.write('ready\\n'))`;

t.test('a rewritten destination is routed by the data plane', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-route-${tag}`;
  t.teardown(() => {
    for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'del', n]);
    rmSync(pinRoot, { recursive: true, force: true });
  });
  for (const n of Object.values(ns)) sh(`ip netns add ${n} && ip -n ${n} link set lo up`);
  sh(`ip link add ab netns ${ns.a} type veth peer name ba netns ${ns.b}`);
  sh(`ip link add ac netns ${ns.a} type veth peer name ca netns ${ns.c}`);
  sh(`ip -n ${ns.a} addr add 10.1.0.1/24 dev ab && ip -n ${ns.a} link set ab up`);
  sh(`ip -n ${ns.a} addr add 10.2.0.1/24 dev ac && ip -n ${ns.a} link set ac up`);
  sh(`ip -n ${ns.b} addr add 10.1.0.2/24 dev ba && ip -n ${ns.b} link set ba up`);
  sh(`ip -n ${ns.c} addr add 10.2.0.2/24 dev ca && ip -n ${ns.c} link set ca up`);
  // the kernel's FIB helper answers only for interfaces that forward (as an agent's do)
  sh(`ip netns exec ${ns.a} sysctl -qw net.ipv4.conf.ab.forwarding=1 net.ipv4.conf.ac.forwarding=1`);

  const servers = [spawn('nsenter', [`--net=/run/netns/${ns.b}`, process.execPath, '-e', server('B')]), spawn('nsenter', [`--net=/run/netns/${ns.c}`, process.execPath, '-e', server('C')])];
  t.teardown(() => servers.forEach((s) => s.kill()));
  for (const s of servers) await new Promise((resolve) => s.stdout!.once('data', resolve));

  const child = fileURLToPath(new URL('./route-child.js', import.meta.url));
  const run = (mode: string) => {
    const r = spawnSync('nsenter', [`--net=/run/netns/${ns.a}`, process.execPath, child, pinRoot, mode], { encoding: 'utf8' });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as { answer: string; rewritten: number; routeMiss: number };
    } catch {
      throw new Error(`the namespace child failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
    }
  };
  const routed = run('route');
  t.equal(routed.answer, 'hello from C', 'the connection to B\'s address reached C through the subsession');
  t.ok(routed.rewritten >= 4, `${routed.rewritten} packets rewritten`);
  t.equal(routed.routeMiss, 0, 'every rewritten destination had a route');
  const unrouted = run('noroute');
  t.not(unrouted.answer, 'hello from C', `without routing by the new destination it fails (${unrouted.answer})`);
});
