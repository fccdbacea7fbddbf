import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, createWriteStream, type WriteStream } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Test beds in network namespaces: hosts on one Ethernet segment (a bridge
 * in a namespace of its own), each with its own agent, so that plain IP
 * routing delivers subsessions directly between any two of them and a
 * reconfiguration really changes which hosts a session crosses. Used by
 * the integration tests, the demo and the benchmarks. Everything created
 * is removed by `destroy()`, which also runs on process exit and when a
 * test runner's timeout (SIGALRM) ends the process.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** The `dysco` executable of this package. */
export const DYSCO_BIN = join(here, '..', 'bin', 'dysco.js');
/** The paced transfer tool (tools/stream.ts). */
export const STREAM_TOOL = join(here, 'tools', 'stream.js');

/**
 * Calls `on` with each line a process prints on stdout, without its
 * newline, as the lines come (the last one only once it is complete).
 */
export function eachLine(p: ChildProcess, on: (line: string) => void): void {
  let buf = '';
  p.stdout!.setEncoding('utf8');
  p.stdout!.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      on(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

export function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface HostSpec {
  readonly name: string;
  /** Forwards IP packets (a router middlebox); default false. */
  readonly router?: boolean;
}

export interface TopologyOptions {
  readonly hosts: readonly (HostSpec | string)[];
  /** Unique tag of this bed (namespace names, pin and state directories). */
  readonly tag?: string;
  /** First three octets of the segment's /24; default 10.77.0. */
  readonly subnet?: string;
  /** Turn off segmentation offloads on the veths (packets as large as the MTU). Default false. */
  readonly noOffload?: boolean;
}

export interface AgentOptions {
  /** Extra configuration fields (policies, keys, timeouts...). */
  readonly config?: Record<string, unknown>;
  readonly args?: readonly string[];
}

/** An agent running in a host's namespace. */
export class AgentProcess {
  readonly logs: string[] = [];
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exit: Promise<void>;

  constructor(
    readonly host: Host,
    readonly proc: ChildProcess,
    readonly socket: string,
    logFile: WriteStream,
  ) {
    const take = (d: Buffer) => {
      logFile.write(d);
      for (const l of d.toString('utf8').split('\n')) if (l) this.logs.push(l);
    };
    proc.stdout!.on('data', take);
    proc.stderr!.on('data', take);
    this.exit = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve();
      }),
    );
  }

  /** Parsed structured log records. */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.logs) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not a log record (a warning on stderr)
      }
    }
    return out;
  }

  /** Runs the CLI against this agent; returns its output. */
  cli(...args: string[]): { status: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [DYSCO_BIN, ...args, '--socket', this.socket], { encoding: 'utf8' });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs the CLI against this agent without blocking the event loop. */
  cliAsync(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [DYSCO_BIN, ...args, '--socket', this.socket], { encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolve({ status: code, stdout, stderr });
      });
    });
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`agent on ${this.host.name} exited (${JSON.stringify(this.exited)}):\n${this.logs.slice(-20).join('\n')}`);
      const ok = await new Promise<boolean>((resolve) => {
        const c = createConnection(this.socket);
        c.once('connect', () => (c.destroy(), resolve(true)));
        c.once('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`agent on ${this.host.name} not ready after ${timeoutMs} ms:\n${this.logs.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.exited) this.proc.kill(signal);
    await this.exit;
  }
}

export class Host {
  agent: AgentProcess | undefined;
  constructor(
    readonly bed: Topology,
    readonly name: string,
    readonly ns: string,
    readonly address: string,
    readonly ifname: string,
  ) {}

  /** argv prefix that runs a command in this host's network namespace (and the root mount namespace, where bpffs is). */
  nsenter(): string[] {
    return ['nsenter', `--net=/run/netns/${this.ns}`];
  }

  run(cmd: string): string {
    return sh(`${this.nsenter().join(' ')} sh -c '${cmd.replace(/'/g, `'\\''`)}'`);
  }

  spawn(argv: readonly string[]): ChildProcess {
    const p = spawn(this.nsenter()[0]!, [...this.nsenter().slice(1), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.bed.processes.add(p);
    p.once('exit', () => this.bed.processes.delete(p));
    return p;
  }

  /** Runs a Node script in this namespace. */
  node(script: string, args: readonly string[]): ChildProcess {
    return this.spawn([process.execPath, script, ...args]);
  }

  get pinRoot(): string {
    return `/sys/fs/bpf/dysco-${this.bed.tag}-${this.name}`;
  }
  get stateDir(): string {
    return join(this.bed.dir, this.name, 'state');
  }
  get socket(): string {
    return join(this.bed.dir, this.name, 'agent.sock');
  }

  /** Starts (or restarts) this host's agent. */
  async startAgent(o: AgentOptions = {}): Promise<AgentProcess> {
    const dir = join(this.bed.dir, this.name);
    mkdirSync(dir, { recursive: true });
    const cfg = {
      address: this.address,
      interfaces: [this.ifname],
      controlPort: 7707,
      socket: this.socket,
      pinRoot: this.pinRoot,
      stateDir: this.stateDir,
      maxSessions: 4096,
      logLevel: 'debug',
      ...o.config,
    };
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    const proc = this.spawn([process.execPath, DYSCO_BIN, 'agent', '--config', file, ...(o.args ?? [])]);
    const a = new AgentProcess(this, proc, this.socket, createWriteStream(join(dir, 'agent.log'), { flags: 'a' }));
    this.agent = a;
    await a.waitReady();
    return a;
  }
}

let counter = 0;
const live = new Set<Topology>();
process.once('exit', () => {
  for (const t of live) t.destroySync();
});
/*
 * A test runner's timeout ends a test process with SIGALRM, without 'exit'
 * (the runner reports through its own listener, then kills): the beds go
 * first. With no other listener, the process then ends as SIGALRM would
 * have ended it. Other signals are left to the program and to 'exit'.
 */
process.on('SIGALRM', () => {
  for (const t of live) t.destroySync();
  if (process.listenerCount('SIGALRM') === 1) {
    process.removeAllListeners('SIGALRM');
    process.kill(process.pid, 'SIGALRM');
  }
});

export class Topology {
  readonly tag: string;
  readonly dir: string;
  readonly hosts = new Map<string, Host>();
  readonly processes = new Set<ChildProcess>();
  private readonly sw: string;
  private destroyed = false;

  private constructor(tag: string) {
    this.tag = tag;
    this.dir = join('/tmp', `dysco-bed-${tag}`);
    this.sw = `dysco-sw-${tag}`;
  }

  /**
   * Why a bed cannot be built here, or undefined when it can: it needs
   * root, nsenter, the compiled data plane, and the `commands` its
   * programs run, each named with the package that has it
   * (`[['nft', 'nftables']]`). For a test's `skip`.
   */
  static async unavailable(commands: readonly (readonly [string, string])[] = []): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return 'needs root (network namespaces, BPF)';
    for (const [bin, pkg] of [['nsenter', 'util-linux'] as const, ...commands]) {
      if (spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0) return `needs ${bin} (${pkg})`;
    }
    let objectPath: () => string;
    try {
      // loaded only here: it loads libbpf
      ({ objectPath } = await import('@dysco/xdp'));
    } catch (e) {
      return `the data plane does not load: ${(e as Error).message}`;
    }
    if (!existsSync(objectPath())) return `the data plane is not built (${objectPath()} missing: node packages/xdp/build.mjs)`;
    return undefined;
  }

  /** Builds the bed: a switch namespace with a bridge, and one namespace per host with a veth on it. */
  static create(o: TopologyOptions): Topology {
    const t = new Topology(o.tag ?? `${process.pid}-${counter++}`);
    live.add(t);
    try {
      t.build(o);
    } catch (e) {
      t.destroySync();
      throw e;
    }
    return t;
  }

  private build(o: TopologyOptions): void {
    const subnet = o.subnet ?? '10.77.0';
    mkdirSync(this.dir, { recursive: true });
    sh(`ip netns add ${this.sw} && ip -n ${this.sw} link add br0 type bridge && ip -n ${this.sw} link set br0 up`);
    o.hosts.forEach((h, i) => {
      const spec = typeof h === 'string' ? { name: h } : h;
      if (!/^[a-z][a-z0-9]{0,7}$/.test(spec.name)) throw new Error(`host name ${spec.name}: lowercase letters and digits, at most 8`);
      const ns = `dysco-${spec.name}-${this.tag}`;
      const address = `${subnet}.${i + 1}`;
      const peer = `p${i}`;
      sh(`ip netns add ${ns}`);
      sh(`ip link add eth0 netns ${ns} type veth peer name ${peer} netns ${this.sw}`);
      sh(`ip -n ${this.sw} link set ${peer} master br0 up`);
      sh(`ip -n ${ns} link set lo up && ip -n ${ns} addr add ${address}/24 dev eth0 && ip -n ${ns} link set eth0 up`);
      const sysctl = [
        `net.ipv4.ip_forward=${spec.router ? 1 : 0}`,
        'net.ipv4.conf.all.send_redirects=0',
        'net.ipv4.conf.eth0.send_redirects=0',
        'net.ipv4.conf.all.accept_redirects=0',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.eth0.rp_filter=0',
      ];
      sh(`ip netns exec ${ns} sysctl -qw ${sysctl.join(' ')}`);
      if (o.noOffload) sh(`ip netns exec ${ns} ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true`);
      this.hosts.set(spec.name, new Host(this, spec.name, ns, address, 'eth0'));
    });
    // neighbours resolved up front: the first packets of a test are not held by ARP
    for (const a of this.hosts.values()) for (const b of this.hosts.values()) if (a !== b) spawnSync('ip', ['netns', 'exec', a.ns, 'ping', '-c1', '-W1', b.address], { stdio: 'ignore' });
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} (hosts: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  /**
   * Stops every agent (cleanly: detached, pins removed), kills every process,
   * removes namespaces, pins and files. With DYSCO_KEEP_BED set the files
   * stay, and each running agent's `dysco stats` is written next to its log
   * first (stats.json): the drop counters of a failed run.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const h of this.hosts.values()) {
      const a = h.agent;
      if (a && !a.exited && process.env.DYSCO_KEEP_BED) {
        const r = spawnSync(process.execPath, [DYSCO_BIN, 'stats', '--json', '--socket', h.socket], { encoding: 'utf8', timeout: 5000 });
        writeFileSync(join(this.dir, h.name, 'stats.json'), r.status === 0 ? r.stdout : JSON.stringify({ error: r.stderr || r.error?.message }));
      }
    }
    for (const h of this.hosts.values()) {
      const a = h.agent;
      if (a && !a.exited) {
        const timer = setTimeout(() => a.proc.kill('SIGKILL'), 5000);
        await a.stop('SIGTERM');
        clearTimeout(timer);
      }
    }
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const p of this.processes) p.kill('SIGKILL');
    for (const h of this.hosts.values()) {
      spawnSync('ip', ['netns', 'del', h.ns]);
      rmSync(h.pinRoot, { recursive: true, force: true });
    }
    spawnSync('ip', ['netns', 'del', this.sw]);
    if (!process.env.DYSCO_KEEP_BED) rmSync(this.dir, { recursive: true, force: true });
  }
}
