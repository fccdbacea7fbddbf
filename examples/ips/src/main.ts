/**
 * node examples/ips/dist/main.js --socket PATH --address ADDR --config FILE
 *
 * Runs the IPS on a middlebox host (one that forwards IP, with a Dysco
 * agent). It captures the TCP packets arriving at ADDR, follows the
 * sessions the agent reports, blocks with nftables, takes itself out of the
 * sessions it has seen enough of, and writes one JSON line per event on
 * stdout (a `verdict` record per session).
 */
import type { AgentEvent, ReconfigOutcome, SessionInfo } from '@dysco/agent';
import { AgentError, type DyscoClient, connect } from '@dysco/agent/client';
import { fail, readArgs, readConfigOrFail, usageError } from '@dysco/agent/command-line';
import { parseAddress } from '@dysco/protocol';
import { Capture } from './capture.js';
import { type IpsConfig, parseConfig } from './config.js';
import { type AgentApi, Ips } from './ips.js';
import { type Level, Log } from './log.js';
import { NftEnforcer } from './nft.js';

const USAGE = `usage: node dist/main.js --config FILE [--socket PATH] [--address ADDR] [--interface IF] [--log-level LEVEL]
  --config FILE      configuration file (JSON; see the README)
  --socket PATH      the Dysco agent's socket (default $DYSCO_SOCKET, else /run/dysco/agent.sock)
  --address ADDR     this box's address, as its agent knows it (default: the agent's address)
  --interface IF     capture interface (default: the file's "interface", else the one holding ADDR)
  --log-level LEVEL  debug, info (default), warn or error`;

const args = readArgs('ips', USAGE, {
  socket: { type: 'string' },
  address: { type: 'string' },
  config: { type: 'string' },
  interface: { type: 'string' },
  'log-level': { type: 'string' },
});
if (!args.config) usageError('--config is required');
const level = (args['log-level'] ?? 'info') as Level;
if (!['debug', 'info', 'warn', 'error'].includes(level)) fail(`--log-level: debug, info, warn or error, not ${level}`, 2);
if (args.address !== undefined) {
  try {
    parseAddress(args.address);
  } catch {
    fail(`--address: not an IPv4 or IPv6 address: ${args.address}`, 2);
  }
}
const config: IpsConfig = readConfigOrFail(args.config, parseConfig);

const log = new Log(undefined, level);

/**
 * The agent, reconnected (and subscribed again) when it goes away: an
 * agent restarted with the data plane kept keeps its sessions, and the IPS
 * keeps following them.
 */
class AgentLink implements AgentApi {
  private client: DyscoClient | undefined;
  private reconnecting: Promise<DyscoClient> | undefined;
  private stopped = false;

  constructor(
    private readonly socket: string | undefined,
    private readonly onEvent: (e: AgentEvent) => void,
  ) {}

  async start(): Promise<{ address: string }> {
    const c = await this.open();
    return c.call<{ address: string }>('ping');
  }

  private async open(): Promise<DyscoClient> {
    const c = await connect(this.socket ? { socket: this.socket } : {});
    await c.subscribe((e) => this.onEvent(e));
    this.client = c;
    return c;
  }

  /** The current client, or a new one once the agent answers again. */
  private current(): Promise<DyscoClient> {
    if (this.client) return Promise.resolve(this.client);
    this.reconnecting ??= (async () => {
      for (let attempt = 1; ; attempt++) {
        if (this.stopped) throw new AgentError('the IPS is stopping', 'ECLOSED');
        try {
          const c = await this.open();
          log.info('reconnected to the agent', { attempt });
          return c;
        } catch {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })().finally(() => (this.reconnecting = undefined));
    return this.reconnecting;
  }

  private async call<T>(f: (c: DyscoClient) => Promise<T>): Promise<T> {
    const c = await this.current();
    try {
      return await f(c);
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ECLOSED' && this.client === c) {
        this.client = undefined;
        log.warn('lost the agent; reconnecting', {});
        void this.current().catch(() => undefined);
      }
      throw e;
    }
  }

  sessions(): Promise<SessionInfo[]> {
    return this.call((c) => c.sessions());
  }
  remove(session: number, box: string): Promise<ReconfigOutcome> {
    return this.call((c) => c.remove(session, box));
  }
  cancel(session: number): Promise<void> {
    return this.call((c) => c.cancel(session));
  }
  close(): void {
    this.stopped = true;
    this.client?.close();
  }
}

let ips: Ips | undefined;
const link = new AgentLink(args.socket, (e) => ips?.onEvent(e));
let agentAddress: string;
try {
  agentAddress = (await link.start()).address;
} catch (e) {
  fail((e as Error).message);
}
const self = args.address ?? agentAddress;
if (self !== agentAddress) log.warn('--address differs from the agent\'s address; self-removal names this address', { address: self, agentAddress });

const device = args.interface ?? config.interface ?? Capture.deviceOf(self);
if (!device) fail(`no interface holds ${self}; name one with --interface`);

let enforcer: NftEnforcer;
try {
  enforcer = await NftEnforcer.create({ table: config.nftTable, action: config.block.action, holdSeconds: config.block.holdSeconds, blacklist: config.blacklist });
} catch (e) {
  fail(`cannot set up nftables: ${(e as Error).message}`);
}

const engine = new Ips({ config, self, agent: link, enforcer, log });
ips = engine;
let capture: Capture;
try {
  capture = Capture.forEngine({ device, address: self, bufferBytes: config.captureBufferBytes, engine, log });
} catch (e) {
  await enforcer.close();
  fail((e as Error).message);
}
await engine.refresh();
const poll = setInterval(() => void engine.refresh(), config.pollMs);

log.info('started', {
  address: self,
  interface: device,
  linkType: capture.linkType,
  terms: config.terms.length,
  automaton: engine.automaton ? { states: engine.automaton.states, classes: engine.automaton.classes, tableBytes: engine.automaton.tableBytes } : undefined,
  blacklist: { addresses: config.blacklist.prefixes.map((p) => p.text), ports: config.blacklist.ports.map((p) => p.text) },
  releaseAfterBytes: config.releaseAfterBytes,
  onGap: config.reassembly.onGap,
  block: config.block.action,
  nftTable: config.nftTable,
});

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(poll);
  capture.close();
  engine.close();
  await enforcer.close();
  link.close();
  log.info('stopped', { signal, capture: capture.stats, ...engine.stats, stillWatching: engine.watching() });
  process.exit(0);
}
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));
