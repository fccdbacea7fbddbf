import type { Host, Topology } from '@dysco/agent/topology';
import { liveTransfer, sleep, verify } from './lib.js';
import type { Panel } from './svg.js';

export interface ScenarioContext {
  readonly bed: Topology;
  readonly h: (name: string) => Host;
  readonly say: (text: string) => void;
  /** Seconds of traffic. */
  readonly duration: number;
  /** Bytes per second of each transfer direction. */
  readonly rate: number;
  readonly fail: (problem: string) => void;
}

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Configuration fields this scenario needs in a host's agent (policies, mostly). */
  readonly agentConfig?: (ctx: ScenarioContext, host: string) => Record<string, unknown>;
  readonly run: (ctx: ScenarioContext) => Promise<Panel>;
}

interface Outcome {
  result: string;
  reason?: string;
  durationMs: number;
}

/** Runs `dysco reconfig` at an agent and puts its outcome on the timeline and the plot. */
async function reconfig(ctx: ScenarioContext, at: Host, args: string[], label: string, marks: Panel['marks'][number][], t0: number): Promise<Outcome | undefined> {
  const r = await at.agent!.cliAsync('reconfig', ...args, '--json');
  let o: Outcome;
  try {
    o = JSON.parse(r.stdout) as Outcome;
  } catch {
    ctx.fail(`${label}: ${r.stderr.trim() || r.stdout.trim()}`);
    return undefined;
  }
  const ok = o.result === 'completed';
  ctx.say(`  ${label}: ${o.result}${o.reason ? ` (${o.reason})` : ''} in ${o.durationMs.toFixed(1)} ms`);
  (marks as { at: number; label: string; ok: boolean }[]).push({ at: (Date.now() - t0) / 1000, label: `${label} (${o.durationMs.toFixed(0)} ms)`, ok });
  if (!ok) ctx.fail(`${label}: ${o.result} (${o.reason})`);
  return o;
}

const PORT_BULK = 9000;

/** A bulk transfer both ways through box1; box1 is replaced by box2, then box2 removed. */
const replace: Scenario = {
  name: 'replace',
  summary: 'a bulk transfer both ways through box1; box1 replaced by box2 mid-transfer, then box2 removed',
  agentConfig: (ctx, host) => (host === 'client' ? { policies: [{ id: 10, match: `dst ${ctx.h('server').address}/32 dport ${PORT_BULK}`, chain: [ctx.h('box1').address] }] } : {}),
  async run(ctx) {
    const [client, server, box1, box2] = ['client', 'server', 'box1', 'box2'].map(ctx.h) as [Host, Host, Host, Host];
    const bytes = Math.round(ctx.rate * ctx.duration);
    const marks: Panel['marks'][number][] = [];
    const tr = await liveTransfer(client, server, { port: PORT_BULK, bytes, rate: ctx.rate, report: (m) => ctx.say(`    ${m.toFixed(1)} Mbit/s both ways`) });
    ctx.say(`  transfer of ${(bytes / 1e6).toFixed(1)} MB each way started: session ${tr.session} through box1`);
    await sleep((ctx.duration * 1000) / 3);
    await reconfig(ctx, client, [tr.session, '--replace', box1.address, '--with', box2.address], 'box1 replaced by box2', marks, tr.started);
    await sleep((ctx.duration * 1000) / 3);
    await reconfig(ctx, client, [tr.session, '--remove', box2.address], 'box2 removed', marks, tr.started);
    const [c, s] = await Promise.all([tr.client, tr.server]);
    const problems = verify(c, s, bytes, tr.local);
    for (const p of problems) ctx.fail(`replace: ${p}`);
    if (problems.length === 0) ctx.say(`  every byte arrived once and intact both ways (SHA-256 checked); the server's application saw ${s.remote}; longest stall ${Math.max(c.maxGapMs, s.maxGapMs)} ms`);
    return { title: 'replace: box1 → box2 → direct, during a transfer both ways', series: tr.samples, marks };
  },
};

export const SCENARIOS: readonly Scenario[] = [replace];
