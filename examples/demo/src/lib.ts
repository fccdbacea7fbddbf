import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { type Host, STREAM_TOOL, eachLine } from '@dysco/agent/topology';
import { type StreamReport, streamSha256 } from '@dysco/agent/tools/stream';

const t0 = Date.now();

/** One line of the timeline: seconds since the demo started, then the text. */
export function say(text: string): void {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${text}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a failure after `ms`: a step that goes wrong fails the demo soon instead of hanging it. */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s waiting for ${what}`)), ms)));
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export type Rec = Record<string, unknown> & { msg?: string };

/**
 * A long-running program of the demo (web proxy, origin server, IPS,
 * classifier) in a host's namespace, with the JSON records it prints on
 * stdout, its other lines and its stderr (for the error message when it
 * fails).
 */
export class Program {
  readonly records: Rec[] = [];
  readonly text: string[] = [];
  stderr = '';
  private readonly waiters = new Set<() => void>();
  private readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    onRecord?: (r: Rec) => void,
  ) {
    eachLine(proc, (l) => {
      let r: Rec | undefined;
      if (l.startsWith('{')) {
        try {
          r = JSON.parse(l) as Rec;
        } catch {
          // not a record after all
        }
      }
      if (r) {
        this.records.push(r);
        onRecord?.(r);
      } else this.text.push(l);
      for (const w of this.waiters) w();
    });
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((r) => proc.once('exit', () => r()));
    void this.exit.then(() => {
      for (const w of this.waiters) w();
    });
  }

  get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** Resolves with the first value `probe` returns that is not undefined; fails after `ms` or when the program exits first. */
  waitFor<T>(what: string, probe: () => T | undefined, ms = 15_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.exited) {
          done();
          reject(new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}${this.stderr ? `: ${this.stderr.trim().split('\n').slice(-5).join(' | ')}` : ''}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s waiting for ${what}${this.stderr ? ` (${this.name}: ${this.stderr.trim().split('\n').slice(-5).join(' | ')})` : ''}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  record(what: string, pred: (r: Rec) => boolean, ms?: number): Promise<Rec> {
    return this.waitFor(what, () => this.records.find(pred), ms);
  }

  /** SIGTERM, and the exit (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.proc.kill('SIGTERM');
    const killer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exit;
    clearTimeout(killer);
  }
}

/**
 * Throughput of a byte count that grows: a sample every 250 ms for the
 * plot, and the mean of the last second for the timeline.
 */
export class Meter {
  readonly samples: [number, number][] = [];
  bytes = 0;
  private last: [number, number];
  private readonly timer: NodeJS.Timeout;

  /** `origin`: the panel's time zero (ms since the epoch). */
  constructor(
    private readonly origin: number,
    private readonly report?: (mbps: number) => void,
  ) {
    this.last = [Date.now(), 0];
    this.timer = setInterval(() => this.sample(), 250);
  }

  add(n: number): void {
    this.bytes += n;
  }

  private sample(final = false): void {
    const now = Date.now();
    // a last interval much shorter than the others says little (and its few bytes look like a burst)
    if (final && now - this.last[0] < 200) return;
    const mbps = ((this.bytes - this.last[1]) * 8) / ((now - this.last[0]) / 1000) / 1e6;
    this.last = [now, this.bytes];
    this.samples.push([(now - this.origin) / 1000, mbps]);
    if (this.samples.length % 4 === 0) this.report?.(this.samples.slice(-4).reduce((a, [, m]) => a + m, 0) / 4);
  }

  private stopped = false;

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.sample(true);
  }
}

/** A paced transfer between two hosts with progress sampled for the timeline and the plot. */
export interface LiveTransfer {
  readonly session: string;
  readonly local: string;
  readonly client: Promise<StreamReport>;
  readonly server: Promise<StreamReport>;
  /** [seconds since the panel's time zero, Mbit/s both ways] */
  readonly samples: [number, number][];
  /** When the client was started (ms since the epoch). */
  readonly started: number;
  readonly procs: ChildProcess[];
}

export interface TransferOptions {
  readonly port: number;
  readonly bytes: number;
  /** Bytes per second, each way. */
  readonly rate: number;
  /** TERM@OFFSET put into the client's stream. */
  readonly inject?: string;
  /** TERM@OFFSET put into the server's stream. */
  readonly serverInject?: string;
  /** Called every second with the mean Mbit/s (both ways) of that second. */
  readonly report?: (mbps: number) => void;
  /** The time zero of the samples (ms since the epoch); default: when the client starts. */
  readonly origin?: number;
}

export async function liveTransfer(client: Host, server: Host, o: TransferOptions): Promise<LiveTransfer> {
  const srv = server.node(STREAM_TOOL, ['server', '--port', String(o.port), '--bytes', String(o.bytes), '--rate', String(o.rate), ...(o.serverInject ? ['--inject', o.serverInject] : [])]);
  const report = (p: ChildProcess, what: string) =>
    new Promise<StreamReport>((resolve, reject) => {
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      eachLine(p, (l) => l.startsWith('{') && resolve(JSON.parse(l) as StreamReport));
      p.once('exit', (code) => setTimeout(() => reject(new Error(`${what} ended (${code}) without a report${err ? `: ${err.trim()}` : ''}`)), 100));
    });
  const ready = new Promise<void>((r) => eachLine(srv, (l) => l === 'listening' && r()));
  const serverReport = report(srv, 'the transfer server');
  // a transfer that is cut, or that a failed step leaves behind, must not end the demo with an unhandled rejection
  serverReport.catch(() => undefined);
  await within(15_000, 'the transfer server to listen', Promise.race([ready, serverReport.then(() => undefined)]));
  const started = Date.now();
  const origin = o.origin ?? started;
  const cli = client.node(STREAM_TOOL, ['client', '--host', server.address, '--port', String(o.port), '--bytes', String(o.bytes), '--rate', String(o.rate), '--progress', '250', ...(o.inject ? ['--inject', o.inject] : [])]);
  const samples: [number, number][] = [];
  let last: [number, number] = [0, 0];
  let local = '';
  const connected = new Promise<void>((r) =>
    eachLine(cli, (l) => {
      if (l.startsWith('connected ')) {
        local = l.slice(10);
        r();
      } else if (l.startsWith('progress ')) {
        const [, ms, rx, tx] = l.split(' ').map(Number) as [number, number, number, number];
        const bytes = rx + tx;
        const mbps = ((bytes - last[1]) * 8) / ((ms - last[0]) / 1000) / 1e6;
        last = [ms, bytes];
        // plotted when it arrives, on the same clock as the reconfigurations' marks
        samples.push([(Date.now() - origin) / 1000, mbps]);
        if (samples.length % 4 === 0) o.report?.(samples.slice(-4).reduce((a, [, m]) => a + m, 0) / 4);
      }
    }),
  );
  const clientReport = report(cli, 'the transfer client');
  clientReport.catch(() => undefined);
  await within(15_000, 'the transfer client to connect', Promise.race([connected, clientReport.then((r) => Promise.reject(new Error(`the transfer client did not connect: ${r.error ?? 'no error given'}`)))]));
  return { session: `${local}>${server.address}:${o.port}`, local, client: clientReport, server: serverReport, samples, started, procs: [srv, cli] };
}

/**
 * Checks a finished transfer: every byte arrived once and intact each way
 * (what one end received hashes as what the other sent, and that is the
 * stream it was to send); returns problems.
 */
export function verify(c: StreamReport, s: StreamReport, bytes: number, local: string, o: { injected?: boolean } = {}): string[] {
  const p: string[] = [];
  if (s.remote !== local) p.push(`the server saw ${s.remote}, not the client's ${local}`);
  // a stream with a term put into it hashes as sent, not as the plain stream
  const intact = (r: StreamReport, from: StreamReport, seed: number) => r.received === bytes && from.sent === bytes && r.receivedSha256 === from.sentSha256 && (o.injected || r.receivedSha256 === streamSha256(seed, bytes));
  if (!intact(s, c, 1)) p.push(`client-to-server stream: ${s.received} of ${bytes} bytes${s.received === bytes ? ', content differs' : ''}`);
  if (!intact(c, s, 2)) p.push(`server-to-client stream: ${c.received} of ${bytes} bytes${c.received === bytes ? ', content differs' : ''}`);
  if (c.reset || s.reset) p.push('the connection was reset');
  return p;
}

/** Runs a short command (curl) in a host's namespace without blocking the event loop. */
export function runIn(h: Host, argv: string[], ms = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = h.spawn(argv);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return within(ms, argv.join(' '), new Promise((resolve) => p.once('exit', (code) => resolve({ code, stdout, stderr }))));
}

/** SHA-256 of a stream that arrives in pieces, with its length and its longest silence. */
export class StreamHash {
  private readonly h = createHash('sha256');
  bytes = 0;
  maxGapMs = 0;
  private last = Date.now();

  update(d: Buffer): void {
    const now = Date.now();
    if (this.bytes > 0) this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
    this.last = now;
    this.bytes += d.length;
    this.h.update(d);
  }

  digest(): string {
    return this.h.digest('hex');
  }
}

export const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
export const mbit = (bytesPerSecond: number) => `${((bytesPerSecond * 8) / 1e6).toFixed(0)} Mbit/s`;
