import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { dirname } from 'node:path';
import { type Deltas, formatAddress, parseAddress } from '@dysco/protocol';
import { type Agent, type AgentEvent, CommandError, type ReconfigRequest } from './agent.js';
import { formatMatch, parseMatch } from './config.js';

/**
 * The agent's local socket: newline-delimited JSON requests
 * `{ id, method, params }`, answered by `{ id, result }` or
 * `{ id, error: { code, message } }`; after `subscribe`, events arrive as
 * `{ event }` lines on the same connection. Only root (or whoever can open
 * the socket file, mode 0600) can talk to it.
 */

export interface RpcRequest {
  readonly id: number;
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

/** Longest request line accepted (bytes). */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface PolicyView {
  readonly id: number;
  readonly match: string;
  readonly chain: readonly string[];
}

const str = (p: Record<string, unknown>, k: string): string => {
  const v = p[k];
  if (typeof v !== 'string' || v === '') throw new CommandError(`parameter ${k} must be a non-empty string`);
  return v;
};
const addr = (p: Record<string, unknown>, k: string) => {
  const s = str(p, k);
  try {
    return parseAddress(s);
  } catch (e) {
    throw new CommandError(`parameter ${k}: ${(e as Error).message}`);
  }
};

function deltasParam(v: unknown): Deltas {
  if (typeof v !== 'object' || v === null) throw new CommandError('parameter deltas must be an object');
  const d = v as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const k of ['seqLR', 'seqRL', 'tsLR', 'tsRL'] as const) {
    const x = d[k] ?? 0;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < -0x80000000 || x > 0xffffffff) throw new CommandError(`deltas.${k} must be a 32-bit integer`);
    out[k] = x | 0;
  }
  for (const k of ['wsFromLR', 'wsToLR', 'wsFromRL', 'wsToRL'] as const) {
    const x = d[k] ?? 0;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 14) throw new CommandError(`deltas.${k} must be a window scale 0..14`);
    out[k] = x;
  }
  return out as unknown as Deltas;
}

export type ShutdownRequest = { readonly keepDataPlane: boolean };

export class ControlServer {
  private readonly server: Server;
  private readonly clients = new Set<Socket>();

  private constructor(
    private readonly agent: Agent,
    readonly path: string,
    private readonly onShutdown: (r: ShutdownRequest) => void,
  ) {
    this.server = createServer((s) => this.onConnection(s));
  }

  static async listen(agent: Agent, path: string, onShutdown: (r: ShutdownRequest) => void): Promise<ControlServer> {
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) {
      // a socket left by a killed agent: take it over unless another agent answers on it
      const alive = await new Promise<boolean>((resolve) => {
        const c = createConnection(path);
        c.once('connect', () => (c.destroy(), resolve(true)));
        c.once('error', () => resolve(false));
      });
      if (alive) throw new Error(`another agent is listening on ${path}`);
      rmSync(path, { force: true });
    }
    const s = new ControlServer(agent, path, onShutdown);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    return s;
  }

  private onConnection(sock: Socket): void {
    this.clients.add(sock);
    let buf = '';
    let listener: ((e: AgentEvent) => void) | undefined;
    const write = (o: unknown) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(o)}\n`);
    };
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES && !buf.includes('\n')) {
        write({ id: null, error: { code: 'EINVAL', message: `request longer than ${MAX_REQUEST_BYTES} bytes` } });
        sock.destroy();
        return;
      }
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        let req: RpcRequest;
        try {
          req = JSON.parse(line) as RpcRequest;
          if (typeof req !== 'object' || req === null || typeof req.method !== 'string') throw new Error('not { id, method, params }');
        } catch (e) {
          write({ id: null, error: { code: 'EINVAL', message: `bad request: ${(e as Error).message}` } });
          continue;
        }
        if (req.method === 'subscribe') {
          if (!listener) {
            listener = (e) => write({ event: e });
            this.agent.on('event', listener);
          }
          write({ id: req.id, result: { subscribed: true } });
          continue;
        }
        this.dispatch(req).then(
          (result) => {
            try {
              write({ id: req.id, result });
            } catch (e) {
              write({ id: req.id, error: { code: 'EFAIL', message: `the answer could not be encoded: ${(e as Error).message}` } });
            }
          },
          (e: unknown) => {
            const code = e instanceof CommandError ? e.code : 'EFAIL';
            if (!(e instanceof CommandError)) this.agent.log.warn('command failed', { method: req.method, error: (e as Error).message });
            write({ id: req.id, error: { code, message: (e as Error).message } });
          },
        );
      }
    });
    const done = () => {
      this.clients.delete(sock);
      if (listener) this.agent.off('event', listener);
    };
    sock.on('close', done);
    sock.on('error', done);
  }

  private async dispatch(req: RpcRequest): Promise<unknown> {
    const a = this.agent;
    const p = req.params ?? {};
    switch (req.method) {
      case 'ping':
        return { address: formatAddress(a.config.address), pid: process.pid };
      case 'sessions':
        return a.listSessions();
      case 'session': {
        const ref = p.session;
        if (typeof ref !== 'string' && typeof ref !== 'number') throw new CommandError('parameter session must be an id or a tuple');
        return a.info(a.findSession(ref));
      }
      case 'stats':
        return a.stats();
      case 'policies':
        return a.policies().map((x): PolicyView => ({ id: x.id, match: formatMatch(x), chain: x.chain.map(formatAddress) }));
      case 'policy.add': {
        let match;
        try {
          match = parseMatch(str(p, 'match'));
        } catch (e) {
          throw new CommandError(`match: ${(e as Error).message}`);
        }
        const chainRaw = p.chain;
        if (!Array.isArray(chainRaw) || chainRaw.length > 7) throw new CommandError('chain must list 0..7 middlebox addresses (none: a direct subsession to the destination)');
        const chain = chainRaw.map((c, i) => addr({ [`chain[${i}]`]: c }, `chain[${i}]`));
        let id = p.id;
        if (id === undefined) id = Math.max(0, ...a.policies().map((x) => x.id)) + 1;
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0xffffffff) throw new CommandError('id must be an integer in 1..4294967295');
        a.addPolicy({ id, ...match, chain });
        return { id };
      }
      case 'policy.del': {
        const id = p.id;
        if (typeof id !== 'number') throw new CommandError('id must be a number');
        a.removePolicy(id);
        return { id };
      }
      case 'reconfig': {
        const ref = p.session;
        if (typeof ref !== 'string' && typeof ref !== 'number') throw new CommandError('parameter session must be an id or a tuple');
        let r: ReconfigRequest;
        switch (p.kind) {
          case 'remove':
            r = { kind: 'remove', box: addr(p, 'box') };
            break;
          case 'insert':
            r = { kind: 'insert', box: addr(p, 'box'), after: addr(p, 'after') };
            break;
          case 'replace':
            r = { kind: 'replace', box: addr(p, 'box'), with: addr(p, 'with') };
            break;
          default:
            throw new CommandError('kind must be remove, insert or replace');
        }
        return a.reconfigure(ref, r);
      }
      case 'steer': {
        const port = (k: string) => {
          const v = p[k];
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw new CommandError(`parameter ${k} must be a port`);
          return v;
        };
        const chainRaw = p.chain;
        if (!Array.isArray(chainRaw) || chainRaw.length > 7) throw new CommandError('chain must list 0..7 middlebox addresses');
        const chain = chainRaw.map((c, i) => addr({ [`chain[${i}]`]: c }, `chain[${i}]`));
        return { id: a.steerConnection({ address: addr(p, 'src'), port: port('sport') }, { address: addr(p, 'dst'), port: port('dport') }, chain) };
      }
      case 'sessionOf':
        return a.info(a.findBySocket(str(p, 'local'), str(p, 'remote')));
      case 'splice': {
        const l = p.left;
        const r = p.right;
        if ((typeof l !== 'string' && typeof l !== 'number') || (typeof r !== 'string' && typeof r !== 'number')) throw new CommandError('parameters left and right must be session ids or tuples');
        return a.splice(l, r, deltasParam(p.deltas));
      }
      case 'cancel': {
        const ref = p.session;
        if (typeof ref !== 'string' && typeof ref !== 'number') throw new CommandError('parameter session must be an id or a tuple');
        a.cancel(ref);
        return {};
      }
      case 'shutdown': {
        const keep = p.keepDataPlane === true;
        setImmediate(() => this.onShutdown({ keepDataPlane: keep }));
        return { stopping: true, keepDataPlane: keep };
      }
      default:
        throw new CommandError(`unknown method ${JSON.stringify(req.method)}`);
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }
}
