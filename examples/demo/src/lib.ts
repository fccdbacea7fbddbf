import type { ChildProcess } from 'node:child_process';
import { type Host, STREAM_TOOL } from '@dysco/agent/topology';
import { type StreamReport, streamSha256 } from '@dysco/agent/tools/stream';

const t0 = Date.now();

/** One line of the timeline: seconds since the demo started, then the text. */
export function say(text: string): void {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${text}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A paced transfer between two hosts with progress sampled for the timeline and the plot. */
export interface LiveTransfer {
  readonly session: string;
  readonly local: string;
  readonly client: Promise<StreamReport>;
  readonly server: Promise<StreamReport>;
  /** [seconds since the demo's scenario start, Mbit/s both ways] */
  readonly samples: [number, number][];
  readonly started: number;
  readonly procs: ChildProcess[];
}

export async function liveTransfer(client: Host, server: Host, o: { port: number; bytes: number; rate: number; inject?: string; serverInject?: string; report?: (mbps: number) => void }): Promise<LiveTransfer> {
  const srv = server.node(STREAM_TOOL, ['server', '--port', String(o.port), '--bytes', String(o.bytes), '--rate', String(o.rate), ...(o.serverInject ? ['--inject', o.serverInject] : [])]);
  const lines = (p: ChildProcess, on: (l: string) => void) => {
    let buf = '';
    p.stdout!.setEncoding('utf8');
    p.stdout!.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        on(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  };
  const report = (p: ChildProcess, what: string) =>
    new Promise<StreamReport>((resolve, reject) => {
      lines(p, (l) => l.startsWith('{') && resolve(JSON.parse(l) as StreamReport));
      p.once('exit', () => setTimeout(() => reject(new Error(`${what} ended without a report`)), 100));
    });
  const ready = new Promise<void>((r) => lines(srv, (l) => l === 'listening' && r()));
  const serverReport = report(srv, 'the transfer server');
  await ready;
  const started = Date.now();
  const cli = client.node(STREAM_TOOL, ['client', '--host', server.address, '--port', String(o.port), '--bytes', String(o.bytes), '--rate', String(o.rate), '--progress', '250', ...(o.inject ? ['--inject', o.inject] : [])]);
  const samples: [number, number][] = [];
  let last: [number, number] = [0, 0];
  let local = '';
  const connected = new Promise<void>((r) =>
    lines(cli, (l) => {
      if (l.startsWith('connected ')) {
        local = l.slice(10);
        r();
      } else if (l.startsWith('progress ')) {
        const [, ms, rx, tx] = l.split(' ').map(Number) as [number, number, number, number];
        const bytes = rx + tx;
        const mbps = ((bytes - last[1]) * 8) / ((ms - last[0]) / 1000) / 1e6;
        last = [ms, bytes];
        samples.push([ms / 1000, mbps]);
        if (samples.length % 4 === 0) o.report?.(samples.slice(-4).reduce((a, [, m]) => a + m, 0) / 4);
      }
    }),
  );
  const clientReport = report(cli, 'the transfer client');
  await connected;
  return { session: `${local}>${server.address}:${o.port}`, local, client: clientReport, server: serverReport, samples, started, procs: [srv, cli] };
}

/** Checks a finished transfer; returns problems. */
export function verify(c: StreamReport, s: StreamReport, bytes: number, local: string): string[] {
  const p: string[] = [];
  if (s.remote !== local) p.push(`the server saw ${s.remote}, not the client's ${local}`);
  if (s.received !== bytes || s.receivedSha256 !== streamSha256(1, bytes)) p.push(`client-to-server stream: ${s.received} of ${bytes} bytes${s.received === bytes ? ', content differs' : ''}`);
  if (c.received !== bytes || c.receivedSha256 !== streamSha256(2, bytes)) p.push(`server-to-client stream: ${c.received} of ${bytes} bytes${c.received === bytes ? ', content differs' : ''}`);
  if (c.reset || s.reset) p.push('the connection was reset');
  return p;
}

