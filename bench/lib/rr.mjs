// The C request/response tool (bench/tools/rr.c) in the beds: servers on the
// bed's server host, client runs from the client host.
//
// Where the two ends run matters more than anything on the path: with the
// client and the server on one CPU, a round trip is handled start to end in
// that CPU's softirqs (microseconds); on two CPUs each direction also pays a
// cross-CPU wakeup, which in a virtual machine costs tens of microseconds and
// lands either way from run to run. So the ends are pinned (taskset):
//   same    client and server on CPU 1: the path's own cost
//   split   client on CPU 0, server on CPU 1: with the wakeups
//   free    not pinned (the setup benchmark's concurrent clients)
import { cpus } from 'node:os';
import { PORT_BASE } from './beds.mjs';
import { buildTool, execIn, lastJson, waitLine } from './common.mjs';

/** Port offsets (from the chain's base port) of the pinned and the unpinned server. */
const OFFSET = { pinned: 10, free: 11 };
const NCPU = cpus().length;
/** CPUs of the client for each placement; the pinned server is on SERVER_CPU. */
const SERVER_CPU = NCPU > 1 ? 1 : 0;
export const PLACEMENTS = NCPU > 1 ? ['same', 'split'] : ['same'];
const CLIENT_CPU = { same: SERVER_CPU, split: 0 };

/** Starts the rr servers (pinned and free, one each per chain length) in every bed; returns the tool's path. */
export async function startRrServers(beds, chains = [1, 2]) {
  const bin = buildTool('rr');
  for (const b of Object.values(beds)) {
    for (const boxes of chains) {
      const pinned = b.h.server.spawn(['taskset', '-c', String(SERVER_CPU), bin, 'server', String(PORT_BASE[boxes] + OFFSET.pinned), '4']);
      await waitLine(pinned, (l) => l === 'listening', `rr server in ${b.kind}`);
      const free = b.h.server.spawn([bin, 'server', String(PORT_BASE[boxes] + OFFSET.free), '8']);
      await waitLine(free, (l) => l === 'listening', `rr server in ${b.kind}`);
    }
  }
  return bin;
}

/**
 * Runs `rr MODE HOST PORT ...args` at the bed's client, placed as `placement`
 * says (same, split: the pinned server; free: the unpinned one); resolves
 * with its JSON report.
 */
export async function rr(bin, b, boxes, mode, args, placement = 'same') {
  const port = String(PORT_BASE[boxes] + (placement === 'free' ? OFFSET.free : OFFSET.pinned));
  const argv = [bin, mode, b.target(boxes), port, ...args.map(String)];
  if (placement !== 'free') argv.unshift('taskset', '-c', String(CLIENT_CPU[placement]));
  const r = await execIn(b.h.client, argv, 300000);
  const j = lastJson(r.stdout);
  if (r.code !== 0 || !j || j.error) throw new Error(`rr ${mode} in ${b.kind}, ${boxes} box(es): exit ${r.code}: ${j?.error ?? ''} ${r.stderr.trim()}`);
  return j;
}
