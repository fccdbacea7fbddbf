/** A pair of network namespaces joined by a veth pair, for attach tests. */
import { spawnSync } from 'node:child_process';
import { sh, shQuiet } from './env.js';

/** Two namespaces `a` and `b`, with veth `devA` (10.99.0.1/24) in a and `devB` (10.99.0.2/24) in b. */
export interface VethPair {
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  ipA: string;
  ipB: string;
  /** Deletes both namespaces (and with them the veth pair). Safe to call twice. */
  destroy(): void;
}

/** Creates the namespaces and veth pair; names carry `tag` so that parallel runs do not collide. */
export function createVethPair(tag: string): VethPair {
  const nsA = `ebpfts-a-${tag}`;
  const nsB = `ebpfts-b-${tag}`;
  const devA = `eva${tag}`.slice(0, 15);
  const devB = `evb${tag}`.slice(0, 15);
  const pair: VethPair = {
    nsA, nsB, devA, devB, ipA: '10.99.0.1', ipB: '10.99.0.2',
    destroy() {
      shQuiet('ip', 'netns', 'del', nsA);
      shQuiet('ip', 'netns', 'del', nsB);
    },
  };
  try {
    sh('ip', 'netns', 'add', nsA);
    sh('ip', 'netns', 'add', nsB);
    sh('ip', 'link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB);
    for (const [ns, dev, ip] of [[nsA, devA, pair.ipA], [nsB, devB, pair.ipB]] as const) {
      sh('ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev);
      sh('ip', '-n', ns, 'link', 'set', dev, 'up');
      sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    }
  } catch (e) {
    pair.destroy();
    throw e;
  }
  return pair;
}

/**
 * Runs `node script args...` inside namespace `ns` with nsenter (network namespace only: unlike
 * `ip netns exec`, it keeps the mount namespace, so a bpffs at /sys/fs/bpf stays visible).
 */
export function nodeInNetns(ns: string, script: string, args: string[], opts: { input?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, script, ...args], { encoding: 'utf8', timeout: 60_000, input: opts.input ?? '' });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Sends `count` UDP datagrams to `ip:port` from inside namespace `ns` (a child node process). */
export function sendUdpFrom(ns: string, ip: string, port: number, count: number): void {
  const code = `const s=require('node:dgram').createSocket('udp4');let n=${count};const go=()=>{if(n--===0){s.close();return;}s.send('probe',${port},'${ip}',()=>setTimeout(go,20));};go();`;
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', code], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`sending UDP from ${ns} failed: ${r.stderr}`);
}
