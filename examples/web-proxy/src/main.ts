/**
 * node examples/web-proxy/dist/main.js --socket PATH --listen PORT --config FILE
 *
 * Runs the proxy on the host where the sessions are redirected to it. It
 * writes one JSON line per request (and a few about itself) on stdout.
 */
import type { Socket } from 'node:net';
import { AgentError, type DyscoClient, connect } from '@dysco/agent/client';
import { fail, readArgs, readConfigOrFail, usageError } from '@dysco/agent/command-line';
import { DEFAULTS, type ProxyConfig, parseConfig } from './config.js';
import { type DyscoApi, WebProxy } from './proxy.js';

const USAGE = `usage: node dist/main.js [--socket PATH] [--listen PORT] [--config FILE] [--no-agent]
  --socket PATH   the Dysco agent's socket (default $DYSCO_SOCKET, else /run/dysco/agent.sock)
  --listen PORT   port the redirected connections arrive on (default: the file's "listen", else 8080)
  --config FILE   configuration file (JSON; see the README)
  --no-agent      run without an agent: no splicing, no classifier`;

const args = readArgs('web-proxy', USAGE, {
  socket: { type: 'string' },
  listen: { type: 'string' },
  config: { type: 'string' },
  'no-agent': { type: 'boolean' },
});
const config: ProxyConfig = args.config ? readConfigOrFail(args.config, parseConfig) : DEFAULTS;
const port = args.listen !== undefined ? Number(args.listen) : (config.listen ?? 8080);
if (!Number.isInteger(port) || port < 1 || port > 65535) usageError(`--listen: not a port: ${args.listen}`);

/**
 * The agent, reconnected on the next call after it went away (an agent
 * restart keeps the sessions; the proxy should keep splicing).
 */
class AgentLink implements DyscoApi {
  private client: Promise<DyscoClient> | undefined;
  constructor(private readonly socket: string | undefined) {}

  connect(): Promise<DyscoClient> {
    this.client ??= connect(this.socket ? { socket: this.socket } : {}).catch((e: unknown) => {
      this.client = undefined;
      throw e;
    });
    return this.client;
  }

  private async call<T>(f: (c: DyscoClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    try {
      return await f(c);
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ECLOSED') this.client = undefined;
      throw e;
    }
  }

  splice(a: Socket, b: Socket) {
    return this.call((c) => c.splice(a, b));
  }
  connectVia(chain: readonly string[], o: { host: string; port: number }) {
    return this.call((c) => c.connectVia(chain, o));
  }
  sessionOf(s: Socket) {
    return this.call((c) => c.sessionOf(s));
  }
  close(): void {
    void this.client?.then((c) => c.close(), () => undefined);
  }
}

let dysco: AgentLink | undefined;
if (!args['no-agent']) {
  dysco = new AgentLink(args.socket);
  try {
    await dysco.connect();
  } catch (e) {
    fail(`${(e as Error).message} (or run with --no-agent)`);
  }
}

const proxy = new WebProxy(config, dysco ? { dysco } : {});
try {
  const addr = await proxy.listen(port, config.listenAddress);
  proxy.info('listening', {
    port: addr.port,
    address: addr.address,
    agent: dysco ? (args.socket ?? process.env.DYSCO_SOCKET ?? '/run/dysco/agent.sock') : null,
    splice: dysco && config.splice.enabled ? { threshold: config.splice.threshold, keepAlive: config.splice.keepAlive } : false,
    inspectVia: dysco ? config.inspect.via : [],
  });
} catch (e) {
  fail(`cannot listen on port ${port}: ${(e as Error).message}`);
}

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  proxy.info('stopping', { signal, requests: proxy.requests, spliced: proxy.spliced, cache: proxy.cache.stats });
  void proxy.close().then(() => {
    dysco?.close();
    process.exit(0);
  });
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
