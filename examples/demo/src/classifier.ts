#!/usr/bin/env node
/**
 * The trigger of the demo's `ips` scenario: a light classifier on a router
 * box that has the IPS inserted into the sessions that look suspicious.
 *
 *   node classifier.js --socket PATH --ips ADDR --term TEXT [--term TEXT...] [--address ADDR]
 *
 * It follows the sessions through its box as the IPS example does, with
 * that example's own engine and capture: packets arriving at the box are
 * mapped to their session by the subsession they arrive on, both streams
 * are reassembled and scanned for the terms. What differs is what a match
 * does: instead of blocking the session, the classifier asks its agent to
 * insert the IPS right after this box, `dysco.insert(session, ips, self)`,
 * and stops looking at that session. The IPS then scans the rest of it, and
 * blocks it or takes itself out. The classifier never leaves a session
 * itself: it is the router.
 *
 * One JSON line per event on stdout: `started`, `watching` (a session
 * through the box), `flagged` (a term found: the term, the direction, its
 * offset, and the insertion's outcome), `verdict` `allow` (a session that
 * ended unflagged), `stopped`.
 */
import type { ReconfigOutcome } from '@dysco/agent';
import { type DyscoClient, connect } from '@dysco/agent/client';
import { fail, readArgs, usageError } from '@dysco/agent/command-line';
import { type FiveTuple, formatTuple } from '@dysco/protocol';
import { Capture, type Enforcer, Ips, type IpsConfig, Log, parseConfig } from '@dysco-example/ips';

const USAGE = 'usage: node classifier.js --socket PATH --ips ADDR --term TEXT [--term TEXT...] [--address ADDR]';

const values = readArgs('classifier', USAGE, { socket: { type: 'string' }, ips: { type: 'string' }, term: { type: 'string', multiple: true }, address: { type: 'string' } });
if (!values.ips || !values.term?.length) usageError('--ips and at least one --term are required');
const ipsBox = values.ips;

const write = (rec: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), ...rec })}\n`);

let dysco: DyscoClient;
try {
  dysco = await connect(values.socket ? { socket: values.socket } : {});
} catch (e) {
  fail((e as Error).message);
}
const agent = dysco;
const self = values.address ?? (await agent.call<{ address: string }>('ping')).address;

/** The insertions, by the session's tuple, for the `flagged` record. */
const insertions = new Map<string, { outcome?: ReconfigOutcome; error?: string }>();

/** A match does not block here: it has the IPS inserted after this box. */
const inserter: Enforcer = {
  async block(t: FiveTuple): Promise<void> {
    const key = formatTuple(t);
    try {
      const outcome = await agent.insert(key, ipsBox, self);
      insertions.set(key, { outcome });
    } catch (e) {
      insertions.set(key, { error: (e as Error).message });
    }
  },
  // nothing was blocked
  unblock: async () => undefined,
};

// the engine's records, told as what they mean here: its "block" verdict is this box flagging the session
const log = new Log((line) => {
  const rec = JSON.parse(line) as Record<string, unknown>;
  if (rec.msg === 'verdict' && rec.verdict === 'block') {
    const { verdict: _v, enforcedInMs: _e, enforced: _f, msg: _m, ...rest } = rec;
    const ins = insertions.get(`${String(rec.src)}:${String(rec.sport)}>${String(rec.dst)}:${String(rec.dport)}`);
    write({ ...rest, msg: 'flagged', insert: ipsBox, after: self, ...(ins?.outcome ? { insertion: { result: ins.outcome.result, reason: ins.outcome.reason, durationMs: ins.outcome.durationMs } } : { insertion: { result: 'refused', reason: ins?.error ?? 'unknown' } }) });
  } else if (rec.msg === 'block lifted: the agent forgot the session') {
    write({ ...rec, msg: 'forgotten' });
  } else process.stdout.write(line);
});

let config: IpsConfig;
try {
  // no release: the classifier is the router, it stays on its sessions; a gap is not a reason to call the IPS
  config = parseConfig({ terms: values.term, releaseAfterBytes: 0, reassembly: { onGap: 'continue' }, pollMs: 500 }, 'classifier');
} catch (e) {
  fail((e as Error).message, 2);
}
const engine = new Ips({ config, self, agent, enforcer: inserter, log });
await agent.subscribe((e) => engine.onEvent(e));
const device = Capture.deviceOf(self);
if (!device) fail(`no interface holds ${self}`);
let capture: Capture;
try {
  capture = Capture.forEngine({ device, address: self, bufferBytes: config.captureBufferBytes, engine, log });
} catch (e) {
  fail((e as Error).message);
}
await engine.refresh();
const poll = setInterval(() => void engine.refresh(), config.pollMs);
write({ level: 'info', msg: 'started', address: self, interface: device, terms: values.term, ips: ipsBox });

const stop = (signal: string) => {
  clearInterval(poll);
  capture.close();
  engine.close();
  agent.close();
  write({ level: 'info', msg: 'stopped', signal, capture: capture.stats, flagged: engine.stats.blocked });
  process.exit(0);
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
