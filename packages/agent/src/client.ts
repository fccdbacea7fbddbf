import { type Socket, createConnection } from 'node:net';
import type { AgentEvent, ReconfigOutcome, SessionInfo } from './agent.js';
import type { PolicyView } from './server.js';

/**
 * The typed client of a running agent, over its local socket: what the
 * `dysco` CLI uses, and what a middlebox written in TypeScript imports.
 *
 * ```ts
 * import { connect } from '@dysco/agent';
 * const dysco = await connect({ socket: '/run/dysco/agent.sock' });
 * for (const s of await dysco.sessions()) console.log(s.id, s.session, s.right?.agent);
 * const outcome = await dysco.remove(7, '10.0.0.2');
 * console.log(outcome.result, outcome.durationMs);
 * dysco.close();
 * ```
 */

export interface ConnectOptions {
  /** The agent's socket (default /run/dysco/agent.sock, or $DYSCO_SOCKET). */
  readonly socket?: string;
}

export class AgentError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** The four endpoints of a TCP socket, as `net.Socket` has them. */
export interface SocketEnds {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

export type SessionRef = number | string;

export interface DataPlaneStats {
  readonly dataplane: Record<string, number>;
  readonly agent: Record<string, number>;
  readonly table: { readonly egress: number; readonly ingress: number; readonly pending: number; readonly policies: number; readonly total: number };
}

export class DyscoClient {
  private nextId = 1;
  private buf = '';
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  private subscribed = false;
  private closedError: Error | undefined;

  /** @internal use {@link connect} */
  constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    const fail = (e?: Error) => {
      this.closedError = e ?? new AgentError('the agent closed the connection', 'ECLOSED');
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
    };
    sock.on('error', fail);
    sock.on('close', () => fail());
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: { id?: number | null; result?: unknown; error?: { code: string; message: string }; event?: AgentEvent };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        continue;
      }
      if (msg.event) {
        for (const l of this.listeners) l(msg.event);
        continue;
      }
      const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!p) continue;
      this.pending.delete(msg.id as number);
      if (msg.error) p.reject(new AgentError(msg.error.message, msg.error.code));
      else p.resolve(msg.result);
    }
  }

  /** Sends one request and waits for its answer. */
  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  /** Sessions passing through this agent's host. */
  sessions(): Promise<SessionInfo[]> {
    return this.call('sessions');
  }

  session(ref: SessionRef): Promise<SessionInfo> {
    return this.call('session', { session: ref });
  }

  /**
   * The session one of this host's TCP sockets belongs to: an application
   * socket carries the session's own tuple (forward or reversed), which is
   * what the agent keys its sessions by. Undefined when the socket is not
   * on a steered session.
   */
  async sessionOf(sock: SocketEnds): Promise<SessionInfo | undefined> {
    const { localAddress, localPort, remoteAddress, remotePort } = sock;
    if (!localAddress || !remoteAddress || !localPort || !remotePort) throw new AgentError('the socket is not connected', 'EINVAL');
    const strip = (a: string) => a.replace(/^::ffff:/, '');
    const ep = (a: string, p: number) => (strip(a).includes(':') ? `[${strip(a)}]:${p}` : `${strip(a)}:${p}`);
    try {
      return await this.call<SessionInfo>('sessionOf', { local: ep(localAddress, localPort), remote: ep(remoteAddress, remotePort) });
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ENOSESSION') return undefined;
      throw e;
    }
  }

  /**
   * Splices a proxy out of a session. `clientSide` is the socket the proxy
   * accepted (the session from the client), `serverSide` the one it opened
   * for it toward the server; the application keeps piping between them
   * until the call resolves. The two connections' byte streams are related
   * by the sequence numbers the kernel holds for the sockets (read in TCP
   * repair mode, so the process needs CAP_NET_ADMIN); the agent joins the
   * two sessions and asks the left neighbour to take this box out. On
   * completion both sockets are closed without a FIN or a reset (the
   * client and the server now talk directly, and must not hear from this
   * box); on abort they are left as they were and the proxy carries on.
   *
   * Needs: TCP timestamps off on the proxy's host (net.ipv4.tcp_timestamps=0;
   * the two connections' timestamp clocks cannot be related), and a policy
   * on this host steering the upstream connection (an empty chain will do).
   */
  async splice(clientSide: Socket, serverSide: Socket, o: { drainTimeoutMs?: number } = {}): Promise<ReconfigOutcome> {
    const { readTcpState, socketFd, quiesce } = await import('./tcp-state.js');
    const ends = (s: Socket) => {
      const strip = (a: string) => a.replace(/^::ffff:/, '');
      const ep = (a: string | undefined, p: number | undefined) => (a && p ? (a.includes(':') ? `[${strip(a)}]:${p}` : `${strip(a)}:${p}`) : undefined);
      const local = ep(s.localAddress, s.localPort);
      const remote = ep(s.remoteAddress, s.remotePort);
      if (!local || !remote) throw new AgentError('a socket to splice is not connected', 'EINVAL');
      return { local, remote };
    };
    const left = await this.call<SessionInfo>('sessionOf', ends(clientSide));
    const right = await this.call<SessionInfo>('sessionOf', ends(serverSide));
    // everything the application read must be in the kernel of the other socket: no bytes in between,
    // neither waiting to be written nor read and held back by a paused pipe (checked in the same tick as the reads below)
    const deadline = Date.now() + (o.drainTimeoutMs ?? 5000);
    const held = (s: Socket) => s.writableLength + s.readableLength;
    while (held(clientSide) > 0 || held(serverSide) > 0) {
      if (Date.now() > deadline) throw new AgentError('the proxy still holds unsent data; splice refused', 'EBUSY');
      await new Promise((r) => setTimeout(r, 1));
    }
    const fa = socketFd(clientSide);
    const fb = socketFd(serverSide);
    const a = readTcpState(fa);
    const b = readTcpState(fb);
    if (a.timestamps || b.timestamps) throw new AgentError('TCP timestamps are on for these connections; splicing needs net.ipv4.tcp_timestamps=0 on the proxy host', 'EINVAL');
    const deltas = {
      seqLR: (b.writeSeq - a.readSeq) | 0,
      seqRL: (a.writeSeq - b.readSeq) | 0,
      tsLR: 0,
      tsRL: 0,
      wsFromLR: a.peerWscale,
      wsToLR: b.ownWscale,
      wsFromRL: b.peerWscale,
      wsToRL: a.ownWscale,
    };
    const outcome = await this.call<ReconfigOutcome>('splice', { left: left.id, right: right.id, deltas });
    if (outcome.result === 'completed') {
      for (const [s, fd] of [[clientSide, fa], [serverSide, fb]] as const) {
        s.unpipe();
        try {
          quiesce(fd);
        } catch {
          // already closed by the peer's side: nothing will be sent
        }
        s.destroy();
      }
    }
    return outcome;
  }

  /**
   * A classifier's connection: opens a TCP connection to `host:port` whose
   * session goes through `chain` (middlebox addresses, in order; empty for a
   * direct session), whatever the standing policies say. The agent holds a
   * policy for exactly this connection's tuple while it is set up.
   *
   * ```ts
   * const upstream = await dysco.connectVia(['10.0.0.7'], { host: '10.0.0.9', port: 80 });
   * ```
   */
  async connectVia(chain: readonly string[], o: { host: string; port: number; localAddress?: string }): Promise<Socket> {
    const { address } = await this.call<{ address: string }>('ping');
    const localAddress = o.localAddress ?? address;
    for (let attempt = 0; ; attempt++) {
      // a port outside the subsession range and rarely used by the kernel's own choices
      const localPort = 20000 + Math.floor(Math.random() * 12000);
      const { id } = await this.call<{ id: number }>('steer', { src: localAddress, sport: localPort, dst: o.host, dport: o.port, chain });
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const s = createConnection({ host: o.host, port: o.port, localAddress, localPort, allowHalfOpen: true });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 8) throw e;
      } finally {
        await this.call('policy.del', { id }).catch(() => undefined);
      }
    }
  }

  /**
   * Calls `listener` for every session event at this agent (created, ended,
   * reconfigured) until the returned function is called.
   */
  async subscribe(listener: (e: AgentEvent) => void): Promise<() => void> {
    this.listeners.add(listener);
    if (!this.subscribed) {
      try {
        await this.call('subscribe');
        this.subscribed = true;
      } catch (e) {
        this.listeners.delete(listener);
        throw e;
      }
    }
    return () => void this.listeners.delete(listener);
  }

  /** Removes `box` from a session's chain; run at the box itself or at its left neighbour. Resolves with the outcome. */
  remove(session: SessionRef, box: string): Promise<ReconfigOutcome> {
    return this.call('reconfig', { session, kind: 'remove', box });
  }

  /** Inserts `box` right after `after` (this agent's address) on a session's chain. */
  insert(session: SessionRef, box: string, after: string): Promise<ReconfigOutcome> {
    return this.call('reconfig', { session, kind: 'insert', box, after });
  }

  /** Replaces `box` by `replacement`; run at the box itself or at its left neighbour. */
  replace(session: SessionRef, box: string, replacement: string): Promise<ReconfigOutcome> {
    return this.call('reconfig', { session, kind: 'replace', box, with: replacement });
  }

  /** Cancels this agent's reconfiguration of a session if it can still be cancelled. */
  cancel(session: SessionRef): Promise<void> {
    return this.call('cancel', { session });
  }

  policies(): Promise<PolicyView[]> {
    return this.call('policies');
  }

  /** Adds a steering policy: connections matching `match` go through `chain`. */
  addPolicy(match: string, chain: readonly string[], id?: number): Promise<{ id: number }> {
    return this.call('policy.add', { match, chain, ...(id !== undefined ? { id } : {}) });
  }

  removePolicy(id: number): Promise<{ id: number }> {
    return this.call('policy.del', { id });
  }

  stats(): Promise<DataPlaneStats> {
    return this.call('stats');
  }

  /** Asks the agent to stop; `keepDataPlane` leaves the programs and sessions in the kernel for the next agent. */
  shutdown(keepDataPlane = false): Promise<{ stopping: boolean }> {
    return this.call('shutdown', { keepDataPlane });
  }

  close(): void {
    this.sock.end();
  }
}

/** Connects to the agent on this host. */
export function connect(opts: ConnectOptions = {}): Promise<DyscoClient> {
  const path = opts.socket ?? process.env.DYSCO_SOCKET ?? '/run/dysco/agent.sock';
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(new DyscoClient(sock));
    });
    const onError = (e: NodeJS.ErrnoException) =>
      reject(new AgentError(`cannot reach the agent at ${path}: ${e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no agent is running there (start one with: dysco agent --config FILE)' : e.message}`, e.code ?? 'ECONNECT'));
    sock.once('error', onError);
  });
}
