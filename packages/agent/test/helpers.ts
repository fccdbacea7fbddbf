import { existsSync } from 'node:fs';
import { objectPath } from '@dysco/xdp';
import { type Host, STREAM_TOOL, eachLine } from '@dysco/agent/topology';
import type { StreamReport } from '@dysco/agent/tools/stream';

/** Why a test needing root, namespaces and the compiled programs cannot run here, or undefined when it can. */
export function privilegedSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, BPF)';
  if (!existsSync(objectPath())) return `the data plane is not built (${objectPath()} missing: node packages/xdp/build.mjs)`;
  if (!existsSync('/usr/bin/nsenter') && !existsSync('/bin/nsenter')) return 'needs nsenter (util-linux)';
  return undefined;
}

export interface Transfer {
  readonly client: Promise<StreamReport>;
  readonly server: Promise<StreamReport>;
  /** Resolves with the client's local address:port once connected. */
  readonly connected: Promise<string>;
}

function report(p: import('node:child_process').ChildProcess, what: string): { report: Promise<StreamReport>; first: Promise<string> } {
  let firstResolve!: (l: string) => void;
  const first = new Promise<string>((r) => (firstResolve = r));
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const rep = new Promise<StreamReport>((resolve, reject) => {
    eachLine(p, (l) => {
      if (l.startsWith('{')) resolve(JSON.parse(l) as StreamReport);
      else firstResolve(l);
    });
    p.once('exit', (code) => reject(new Error(`${what} exited (${code}) without a report: ${err}`)));
  });
  return { report: rep, first };
}

/** A paced transfer both ways between two hosts' applications (unmodified sockets). */
export async function transfer(client: Host, server: Host, o: { port?: number; bytes: number; rate: number; serverBytes?: number }): Promise<Transfer> {
  const port = String(o.port ?? 9000);
  const srv = server.node(STREAM_TOOL, ['server', '--port', port, '--bytes', String(o.serverBytes ?? o.bytes), '--rate', String(o.rate)]);
  const s = report(srv, `stream server on ${server.name}`);
  const ready = await s.first;
  if (ready !== 'listening') throw new Error(`stream server said ${ready}`);
  const cli = client.node(STREAM_TOOL, ['client', '--host', server.address, '--port', port, '--bytes', String(o.bytes), '--rate', String(o.rate)]);
  const c = report(cli, `stream client on ${client.name}`);
  return { client: c.report, server: s.report, connected: c.first.then((l) => l.replace(/^connected /, '')) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
