import type { Host, Topology } from '@dysco/agent/topology';
import type { Mark, Panel } from './svg.js';

export interface ScenarioContext {
  readonly bed: Topology;
  readonly h: (name: string) => Host;
  readonly say: (text: string) => void;
  /** Seconds of traffic. */
  readonly duration: number;
  /** Bytes per second of each transfer direction. */
  readonly rate: number;
  readonly fail: (problem: string) => void;
  /** Every reconfiguration of the run, for the summary at the end. */
  readonly reconfigurations: Reconfiguration[];
}

export interface Reconfiguration {
  readonly scenario: string;
  readonly what: string;
  readonly result: string;
  readonly durationMs: number | undefined;
}

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Configuration fields this scenario needs in a host's agent (policies, mostly; the policies of all scenarios are put together). */
  readonly agentConfig?: (ctx: ScenarioContext, host: string) => Record<string, unknown>;
  readonly run: (ctx: ScenarioContext) => Promise<Panel>;
}

/**
 * A reconfiguration on the timeline, the plot and the summary: `at` is
 * the panel's time zero; `durationMs` the reconfiguration's own measure.
 */
export function noteReconfiguration(ctx: ScenarioContext, scenario: string, marks: Mark[], origin: number, what: string, result: string, durationMs: number | undefined, detail = ''): void {
  const ok = result === 'completed';
  const took = durationMs !== undefined ? ` in ${durationMs.toFixed(1)} ms` : '';
  ctx.say(`  ⇄ ${what}: ${result}${took}${detail ? ` ${detail}` : ''}`);
  marks.push({ at: (Date.now() - origin) / 1000, label: `${what}${durationMs !== undefined ? ` (${durationMs.toFixed(0)} ms)` : ''}`, ok });
  ctx.reconfigurations.push({ scenario, what, result, durationMs });
  if (!ok) ctx.fail(`${scenario}: ${what}: ${result}`);
}

/** Something else the plot marks (a block, say): on the timeline by the caller, on the plot here. */
export function noteEvent(marks: Mark[], origin: number, label: string, ok = true): void {
  marks.push({ at: (Date.now() - origin) / 1000, label, ok });
}
