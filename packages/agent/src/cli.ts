import { parseArgs } from 'node:util';
import type { ReconfigOutcome, SessionInfo } from './agent.js';
import { AgentError, type DyscoClient, connect } from './client.js';
import type { PolicyView } from './server.js';

const USAGE = `usage: dysco <command> [options]

  agent --config FILE [--mode auto|tc|xdp] [--socket PATH] [--log-level L] [--keep-on-exit]
                                    run the agent in this network namespace
  agent --help-config               describe the configuration file
  policy add --match PRED --chain ADDR[,ADDR...] [--id N]   (--chain '': direct)
                                    steer new TCP connections matching PRED
                                    (PRED: "src PREFIX dst PREFIX sport N[-M] dport N[-M]")
  policy list | policy del ID
  sessions                          sessions through this host
  reconfig SESSION --remove ADDR | --insert ADDR --after ADDR | --replace ADDR --with ADDR
                                    change a live session's chain; waits for the outcome
  cancel SESSION                    cancel this agent's reconfiguration of SESSION
  stats                             data-plane counters, agent metrics, table sizes
  watch                             print session events as they happen
  shutdown [--keep]                 stop the agent (--keep: leave the data plane running)

common options: --socket PATH (default $DYSCO_SOCKET or /run/dysco/agent.sock), --json
SESSION is an id from "dysco sessions" or a tuple src:port>dst:port.
`;

type Out = (s: string) => void;

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[], out: Out = (s) => process.stdout.write(s), err: Out = (s) => process.stderr.write(s)): Promise<number> {
  const cmd = argv[0];
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'agent') {
    const { runAgent } = await import('./daemon.js');
    return runAgent(argv.slice(1), out, err);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv.slice(1),
      allowPositionals: true,
      options: {
        socket: { type: 'string' },
        json: { type: 'boolean' },
        match: { type: 'string' },
        chain: { type: 'string' },
        id: { type: 'string' },
        remove: { type: 'string' },
        insert: { type: 'string' },
        after: { type: 'string' },
        replace: { type: 'string' },
        with: { type: 'string' },
        keep: { type: 'boolean' },
      },
    });
  } catch (e) {
    err(`dysco ${cmd}: ${(e as Error).message}\n`);
    return 2;
  }
  const { values: v, positionals: pos } = parsed;
  const json = v.json === true;
  try {
    checkArgs(cmd, v, pos);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`dysco ${cmd}: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  let client: DyscoClient;
  try {
    client = await connect(v.socket ? { socket: v.socket } : {});
  } catch (e) {
    err(`dysco: ${(e as Error).message}\n`);
    return 1;
  }
  const print = (data: unknown, text: () => string) => out(json ? `${JSON.stringify(data, null, 2)}\n` : text());
  try {
    switch (cmd) {
      case 'sessions': {
        const s = await client.sessions();
        print(s, () => formatSessions(s));
        return 0;
      }
      case 'policy': {
        const sub = pos[0];
        if (sub === 'list' || sub === undefined) {
          const ps = await client.policies();
          print(ps, () => formatPolicies(ps));
          return 0;
        }
        if (sub === 'add') {
          const id = v.id !== undefined ? intArg(v.id, '--id') : undefined;
          const r = await client.addPolicy(v.match!, v.chain!.split(',').map((x) => x.trim()).filter(Boolean), id);
          print(r, () => `policy ${r.id} added\n`);
          return 0;
        }
        if (sub === 'del' || sub === 'delete' || sub === 'rm') {
          const r = await client.removePolicy(intArg(pos[1], 'policy id'));
          print(r, () => `policy ${r.id} deleted\n`);
          return 0;
        }
        throw new UsageError(`unknown policy subcommand ${JSON.stringify(sub)} (add, list, del)`);
      }
      case 'reconfig': {
        const session = sessionArg(pos[0]);
        let o: ReconfigOutcome;
        if (v.remove !== undefined) o = await client.remove(session, v.remove);
        else if (v.insert !== undefined) o = await client.insert(session, v.insert, v.after!);
        else o = await client.replace(session, v.replace!, v.with!);
        print(o, () => (o.result === 'completed' ? `completed in ${o.durationMs.toFixed(2)} ms (reconfiguration ${o.reconfigId})\n` : `aborted: ${o.reason ?? 'unknown reason'} after ${o.durationMs.toFixed(2)} ms\n`));
        return o.result === 'completed' ? 0 : 3;
      }
      case 'cancel':
        await client.cancel(sessionArg(pos[0]));
        print({ cancelled: true }, () => 'cancel requested\n');
        return 0;
      case 'stats': {
        const s = await client.stats();
        print(s, () => {
          const lines = [`table: ${s.table.egress} egress, ${s.table.ingress} ingress, ${s.table.pending} pending entries, ${s.table.policies} policies`, 'data plane:'];
          for (const [k, n] of Object.entries(s.dataplane)) if (Number(n) !== 0) lines.push(`  ${k} ${n}`);
          lines.push('agent:');
          for (const [k, n] of Object.entries(s.agent)) if (!k.startsWith('dysco_dataplane_')) lines.push(`  ${k} ${n}`);
          return `${lines.join('\n')}\n`;
        });
        return 0;
      }
      case 'watch': {
        // the handlers first: a Ctrl-C while the first events print still ends cleanly
        const stopped = new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await client.subscribe((e) => out(json ? `${JSON.stringify(e)}\n` : `${new Date().toISOString()} ${describeEvent(e)}\n`));
        await stopped;
        return 0;
      }
      case 'shutdown': {
        const r = await client.shutdown(v.keep === true);
        print(r, () => `agent stopping${v.keep ? ' (data plane left running)' : ''}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`dysco ${cmd}: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    err(`dysco ${cmd}: ${(e as Error).message}${e instanceof AgentError ? ` [${e.code}]` : ''}\n`);
    return 1;
  } finally {
    client.close();
  }
}

class UsageError extends Error {}

const COMMANDS = new Set(['sessions', 'policy', 'reconfig', 'cancel', 'stats', 'watch', 'shutdown']);

/** The argument checks that need no agent, made before connecting to one. */
function checkArgs(cmd: string, v: Record<string, string | boolean | undefined>, pos: string[]): void {
  if (!COMMANDS.has(cmd)) throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  if (cmd === 'policy') {
    const sub = pos[0];
    if (sub === 'add') {
      if (!v.match || v.chain === undefined) throw new UsageError("policy add needs --match and --chain (--chain '' for a direct session)");
      if (v.id !== undefined) intArg(String(v.id), '--id');
    } else if (sub === 'del' || sub === 'delete' || sub === 'rm') intArg(pos[1], 'policy id');
    else if (sub !== 'list' && sub !== undefined) throw new UsageError(`unknown policy subcommand ${JSON.stringify(sub)} (add, list, del)`);
  } else if (cmd === 'reconfig') {
    sessionArg(pos[0]);
    const given = [v.remove, v.insert, v.replace].filter((x) => x !== undefined).length;
    if (given !== 1) throw new UsageError('reconfig needs exactly one of --remove, --insert, --replace');
    if (v.insert !== undefined && !v.after) throw new UsageError('--insert needs --after ADDR');
    if (v.replace !== undefined && !v.with) throw new UsageError('--replace needs --with ADDR');
  } else if (cmd === 'cancel') sessionArg(pos[0]);
}

function intArg(s: string | undefined, what: string): number {
  if (s === undefined || !/^\d+$/.test(s)) throw new UsageError(`${what} must be a number, got ${JSON.stringify(s ?? '')}`);
  return Number(s);
}

function sessionArg(s: string | undefined): number | string {
  if (s === undefined) throw new UsageError('which session? (an id from "dysco sessions", or src:port>dst:port)');
  return /^\d+$/.test(s) ? Number(s) : s;
}

function describeEvent(e: import('./agent.js').AgentEvent): string {
  switch (e.type) {
    case 'sessionCreated':
      return `session ${e.session.id} ${e.session.session} joined as ${e.session.role}`;
    case 'sessionEnded':
      return `session ${e.id} ${e.session} ended (${e.reason})`;
    case 'reconfigured':
      return `session ${e.outcome.session} ${e.sessionTuple}: reconfiguration ${e.outcome.reconfigId} ${e.outcome.result}${e.outcome.reason ? ` (${e.outcome.reason})` : ''} in ${e.outcome.durationMs.toFixed(2)} ms`;
    case 'departed':
      return `session ${e.id} ${e.session}: this box left it (its other side was ${e.rightSession})`;
  }
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n')}\n`;
}

function formatSessions(s: SessionInfo[]): string {
  if (s.length === 0) return 'no sessions\n';
  return table([
    ['ID', 'SESSION', 'ROLE', 'LEFT', 'RIGHT', 'STATE', 'PACKETS', 'BYTES'],
    ...s.map((x) => [
      String(x.id),
      x.rightSession ? `${x.session} (right: ${x.rightSession})` : x.session,
      x.role,
      x.left?.agent ?? '-',
      x.right?.agent ?? '-',
      x.state.departed ? 'departed' : x.ended ? `ended (${x.ended})` : x.state.leftAnchor !== 'OnePath' ? `left anchor: ${x.state.leftAnchor}` : x.state.rightAnchor !== 'OnePath' ? `right anchor: ${x.state.rightAnchor}` : x.state.lock !== 'unlocked' ? x.state.lock : 'established',
      String(x.packets),
      String(x.bytes),
    ]),
  ]);
}

function formatPolicies(ps: PolicyView[]): string {
  if (ps.length === 0) return 'no policies\n';
  return table([['ID', 'MATCH', 'CHAIN'], ...ps.map((p) => [String(p.id), p.match, p.chain.join(',')])]);
}
