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
    const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
    try {
      return await this.session(`${ep(strip(remoteAddress), remotePort)}>${ep(strip(localAddress), localPort)}`);
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ENOSESSION') return undefined;
      throw e;
    }
  }

  /**
   * Calls `listener` for every session event at this agent (created, ended,
   * reconfigured) until the returned function is called.
   */
  async subscribe(listener: (e: AgentEvent) => void): Promise<() => void> {
    this.listeners.add(listener);
    if (!this.subscribed) {
      this.subscribed = true;
      await this.call('subscribe');
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
