import type { Host } from '@dysco/agent/topology';
import { type Scenario, type ScenarioContext, noteReconfiguration } from './context.js';
import { ips } from './ips-scenario.js';
import { liveTransfer, sleep, verify } from './lib.js';
import { splice } from './splice-scenario.js';
import type { Mark } from './svg.js';

export type { Reconfiguration, Scenario, ScenarioContext } from './context.js';

interface Outcome {
  result: string;
  reason?: string;
  durationMs: number;
}

/** Runs `dysco reconfig` at an agent and puts its outcome on the timeline and the plot. */
async function reconfig(ctx: ScenarioContext, at: Host, args: string[], label: string, marks: Mark[], origin: number): Promise<Outcome | undefined> {
  const r = await at.agent!.cliAsync('reconfig', ...args, '--json');
  let o: Outcome;
  try {
    o = JSON.parse(r.stdout) as Outcome;
  } catch {
    ctx.fail(`replace: ${label}: ${r.stderr.trim() || r.stdout.trim()}`);
    return undefined;
  }
  noteReconfiguration(ctx, 'replace', marks, origin, label, o.result, o.durationMs, o.reason ? `(${o.reason})` : '');
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
    const marks: Mark[] = [];
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
    return { title: 'replace: box1 → box2 → direct, during a transfer both ways', series: [{ label: 'both ways', points: tr.samples }], marks };
  },
};

/** Every scenario, in the default order. */
export const SCENARIOS: readonly Scenario[] = [splice, ips, replace];
