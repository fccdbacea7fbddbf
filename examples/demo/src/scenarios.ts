import type { ReconfigOutcome } from '@dysco/agent';
import { connect } from '@dysco/agent/client';
import type { Host } from '@dysco/agent/topology';
import { type Scenario, type ScenarioContext, noteReconfiguration } from './context.js';
import { ips } from './ips-scenario.js';
import { liveTransfer, sleep, verify, within } from './lib.js';
import { splice } from './splice-scenario.js';
import type { Mark } from './svg.js';

export type { Reconfiguration, Scenario, ScenarioContext } from './context.js';

/** Runs a reconfiguration through the client library and puts its outcome on the timeline and the plot. */
async function reconfig(ctx: ScenarioContext, run: () => Promise<ReconfigOutcome>, label: string, marks: Mark[], origin: number): Promise<void> {
  let o: ReconfigOutcome;
  try {
    o = await run();
  } catch (e) {
    // refused before it started (the session ended, a wrong neighbour…)
    ctx.fail(`replace: ${label}: ${(e as Error).message}`);
    return;
  }
  noteReconfiguration(ctx, 'replace', marks, origin, label, o.result, o.durationMs, o.reason ? `(${o.reason})` : '');
}

const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));

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
    // the client's agent, through the library: a reconfiguration starts within a millisecond of the call
    const dysco = await connect({ socket: client.socket });
    let tr;
    try {
      tr = await liveTransfer(client, server, { port: PORT_BULK, bytes, rate: ctx.rate, report: (m) => ctx.say(`    ${m.toFixed(1)} Mbit/s both ways`) });
      const { session, started } = tr;
      ctx.say(`  transfer of ${(bytes / 1e6).toFixed(1)} MB each way started: session ${session} through box1`);
      await sleepUntil(started + (ctx.duration * 1000) / 3);
      await reconfig(ctx, () => dysco.replace(session, box1.address, box2.address), 'box1 replaced by box2', marks, started);
      await sleepUntil(started + (ctx.duration * 2000) / 3);
      await reconfig(ctx, () => dysco.remove(session, box2.address), 'box2 removed', marks, started);
    } finally {
      dysco.close();
    }
    const [c, s] = await within(ctx.duration * 5000 + 30_000, 'the end of the transfer', Promise.all([tr.client, tr.server]));
    const problems = verify(c, s, bytes, tr.local);
    for (const p of problems) ctx.fail(`replace: ${p}`);
    if (problems.length === 0) ctx.say(`  every byte arrived once and intact both ways (SHA-256 checked); the server's application saw ${s.remote}; longest stall ${Math.max(c.maxGapMs, s.maxGapMs)} ms`);
    return { title: 'replace: box1 → box2 → direct, during a transfer both ways', series: [{ label: 'both ways', points: tr.samples }], marks };
  },
};

/** Every scenario, in the default order. */
export const SCENARIOS: readonly Scenario[] = [splice, ips, replace];
