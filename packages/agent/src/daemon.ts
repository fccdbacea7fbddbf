import { parseArgs } from 'node:util';
import type { Agent } from './agent.js';
import { CONFIG_FIELDS, ConfigError, loadConfig, type AgentConfig, type LogLevel } from './config.js';
import { Logger } from './log.js';
import type { ControlServer } from './server.js';

type Out = (s: string) => void;

/**
 * `dysco agent`: runs until SIGINT or SIGTERM (or `dysco shutdown`), which
 * detach the programs and remove the pinned maps. With --keep-on-exit, or
 * after `kill -9`, the data plane keeps running from the pinned maps and
 * the next agent started on the same pin directory adopts its sessions.
 */
export async function runAgent(argv: string[], out: Out, err: Out): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        mode: { type: 'string' },
        socket: { type: 'string' },
        'log-level': { type: 'string' },
        'keep-on-exit': { type: 'boolean' },
        'help-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    err(`dysco agent: ${(e as Error).message}\n`);
    return 2;
  }
  if (v.help) {
    out('usage: dysco agent --config FILE [--mode auto|tc|xdp] [--socket PATH] [--log-level debug|info|warn|error] [--keep-on-exit]\n       dysco agent --help-config\n');
    return 0;
  }
  if (v['help-config']) {
    out('The configuration file is a JSON object with these fields:\n\n');
    for (const [k, d] of CONFIG_FIELDS) out(`  ${k.padEnd(15)} ${d}\n`);
    return 0;
  }
  if (!v.config) {
    err('dysco agent: --config FILE is required (dysco agent --help-config describes it)\n');
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadConfig(v.config);
    if (v.mode !== undefined) {
      if (!['auto', 'tc', 'xdp'].includes(v.mode)) throw new ConfigError([`--mode must be auto, tc or xdp, got ${JSON.stringify(v.mode)}`]);
      config = { ...config, mode: v.mode as AgentConfig['mode'] };
    }
    if (v.socket) config = { ...config, socket: v.socket };
    if (v['log-level'] !== undefined) {
      if (!['debug', 'info', 'warn', 'error'].includes(v['log-level'])) throw new ConfigError([`--log-level must be debug, info, warn or error`]);
      config = { ...config, logLevel: v['log-level'] as LogLevel };
    }
  } catch (e) {
    err(`dysco agent: ${(e as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) err('dysco agent: warning: not root; loading programs needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN\n');
  const log = new Logger(config.logLevel);
  let agent: Agent;
  try {
    // loaded only now: help and configuration errors need no libbpf
    const { Agent } = await import('./agent.js');
    agent = await Agent.start(config, { log });
  } catch (e) {
    log.error('agent failed to start', { error: (e as Error).message });
    err(`dysco agent: ${(e as Error).message}\n`);
    return 1;
  }
  let stopping = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const stop = async (keepDataPlane: boolean, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { why, keepDataPlane });
    await server?.close().catch(() => undefined);
    await agent.close({ detach: !keepDataPlane, removePins: !keepDataPlane });
    finish(0);
  };
  let server: ControlServer | undefined;
  try {
    const { ControlServer } = await import('./server.js');
    server = await ControlServer.listen(agent, config.socket, (r) => void stop(r.keepDataPlane, 'shutdown command'));
  } catch (e) {
    log.error('control socket failed', { socket: config.socket, error: (e as Error).message });
    await agent.close({ detach: true, removePins: false });
    err(`dysco agent: ${(e as Error).message}\n`);
    return 1;
  }
  log.info('listening', { socket: config.socket });
  const keep = v['keep-on-exit'] === true;
  process.once('SIGINT', () => void stop(keep, 'SIGINT'));
  process.once('SIGTERM', () => void stop(keep, 'SIGTERM'));
  return done;
}
