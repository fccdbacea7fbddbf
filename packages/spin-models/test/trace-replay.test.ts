import { privateModelsDir } from './models-dir.js';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initialTransition, transition } from 'xstate';
import { DEFAULT_RETRY, ZERO_DELTAS, ip, leftAnchorMachine, lockMachine, tuple, type ProtocolAction, type Wire } from '@dysco/protocol';
import { spinAvailable } from '../dist/runner.js';

// The model and the implementation in step: Spin's random simulations of
// locking.pml, annotated (-DTRACE) with every agent step and its state
// afterwards, are replayed against the TypeScript lock machine, and the
// states must agree at every step. A model that diverges is caught (the
// last test replays a deliberately different model).

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const models = privateModelsDir(root);
const N = 4;
const NONE = 255;
const Lof = (r: number) => r; // locking.pml's init: request r spans agents r .. r+2
const Rof = (r: number) => r + 2;
const STATES = ['unlocked', 'lockPending', 'locked'];

interface Step {
  agent: number;
  ev: number;
  r: number;
  lock: number;
  lockReq: number;
  own: number;
  held: number;
  la: number;
}

function trace(seed: number, defines: string[] = []): Step[] {
  const out = spawnSync('spin', ['-DTRACE', ...defines, `-n${seed}`, '-u20000', 'locking.pml'], { cwd: models, encoding: 'utf8' });
  // a model's own assertion may end a simulation early (the mutant): its steps up to there still count
  if (out.error || (out.status !== 0 && !out.stdout.includes('@@@'))) throw new Error(`spin simulation failed: ${out.stderr}${out.error?.message ?? ''}`);
  return out.stdout
    .split('\n')
    .map((l) => /@@@ (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => {
      const [agent, ev, r, lock, lockReq, own, held, la] = m.slice(1).map(Number) as [number, number, number, number, number, number, number, number];
      return { agent, ev, r, lock, lockReq, own, held, la };
    });
}

const marker: ProtocolAction = { type: 'cancelTimer', timer: 'tombstone' };
// what the lock machine emits when it refuses a request (its nackLock)
const refusal: ProtocolAction = { type: 'cancelTimer', timer: 'linger' };

// the TypeScript leftAnchor machine with the model's retry budget (RETRIES=1)
const anchorMachine = leftAnchorMachine({ ...DEFAULT_RETRY, limits: { ...DEFAULT_RETRY.limits, requestLock: 1, syn: 1 } });
const LA_STATES: Record<number, string> = { 0: 'OnePath', 1: 'Requesting', 2: 'SettingUp', 4: 'Canceling' };
const hop = (i: number) => ({ agent: ip(`10.0.0.${i + 2}`), subsession: tuple(`10.0.0.${i + 1}`, 1000 + i, `10.0.0.${i + 2}`, 1000 + i) });
const wire = (i: number, r: number): Wire => {
  const c = { subsession: hop(i).subsession, reconfigId: r, msgSeq: 1, requester: ip(`10.0.0.${i + 1}`) };
  return {
    requestLock: { type: 'requestLock', ...c, rightAnchor: ip(`10.0.0.${Rof(r) + 1}`), deltas: ZERO_DELTAS },
    cancelLock: { type: 'cancelLock', ...c, reason: 'timeout' },
    syn: { type: 'syn', ...c, leftAnchor: c.requester, rightAnchor: ip(`10.0.0.${Rof(r) + 1}`), session: c.subsession, chain: [], deltas: ZERO_DELTAS },
    ack: { type: 'ack', ...c },
    teardown: { type: 'teardown', ...c, fromLeft: true },
  };
};

/** Replays one trace; returns the first divergence, or undefined. */
function replay(steps: Step[]): string | undefined {
  let snaps = Array.from({ length: N }, () => initialTransition(lockMachine)[0]);
  const anchors = Array.from({ length: N }, () => initialTransition(anchorMachine)[0]);
  const runAnchor = (i: number, ev: Parameters<typeof transition<typeof anchorMachine>>[2]) => {
    anchors[i] = transition(anchorMachine, anchors[i]!, ev)[0];
  };
  const la = Array.from({ length: N }, () => 0); // leftAnchor state before the step (0 OnePath, 1 Requesting, 2 SettingUp, 4 Canceling)
  const laReq = Array.from({ length: N }, () => NONE);
  const raReq = Array.from({ length: N }, () => NONE); // right anchor Requested for this request
  // requests an agent ignores (cancelled, refused further on, completed) or refuses again (refused here): SessionProtocol's tombstones
  const tomb = Array.from({ length: N }, () => new Set<number>());
  /** Runs the lock machine; true when it refused a request (emitted a nackLock of its own). */
  const feed = (i: number, ev: Parameters<typeof transition<typeof lockMachine>>[2]): boolean => {
    const [next, acts] = transition(lockMachine, snaps[i]!, ev);
    snaps[i] = next;
    return acts.some((a) => (a as { params?: unknown }).params === refusal);
  };
  const req = (r: number) => ({ requester: String(Lof(r)), reconfigId: r });
  for (const [k, s] of steps.entries()) {
    const i = s.agent;
    const r = s.r;
    switch (s.ev) {
      case 1: // start: the own lock is taken when free
        if (snaps[i]!.value === 'unlocked') {
          feed(i, { type: 'acquire', ...req(r) });
          runAnchor(i, { type: 'start', reconfigId: r, requester: ip(`10.0.0.${i + 1}`), oldHop: hop(i), newHop: hop(i), wire: wire(i, r) });
        }
        break;
      case 2: // requestLock from the left
        if (tomb[i]!.has(r)) break;
        if (i === Rof(r)) {
          if (raReq[i] === NONE) raReq[i] = r;
          else if (raReq[i] !== r) tomb[i]!.add(r); // busy: refused, and remembered
          break;
        }
        if (feed(i, { type: 'relayRequest', request: { ...req(r), forward: marker, nack: refusal } })) tomb[i]!.add(r);
        break;
      case 3: // cancelLock from the left
        tomb[i]!.add(r);
        if (i === Rof(r) && raReq[i] === r) {
          raReq[i] = NONE;
          break;
        }
        if (i === N - 1) break;
        feed(i, { type: 'cancelLock', ...req(r), forwardRight: marker });
        break;
      case 4: // ackLock: the own one only while requesting it (as SessionProtocol routes it)
        if (i === Lof(r) && !(la[i] === 1 && laReq[i] === r)) break;
        {
          // our own request won: the request held behind it is refused, and remembered
          const held = snaps[i]!.context.held?.reconfigId;
          if (feed(i, { type: 'ackLock', ...req(r), forwardLeft: marker }) && held !== undefined) tomb[i]!.add(held);
        }
        if (i === Lof(r)) runAnchor(i, { type: 'ackLock', deltas: ZERO_DELTAS, syn: wire(i, r).syn });
        break;
      case 5: // nackLock
        if (i === Lof(r) && !(la[i] === 1 && laReq[i] === r)) break;
        // a relay that passes a refusal on remembers the request as dead
        if (i !== Lof(r) && snaps[i]!.value === 'lockPending' && snaps[i]!.context.reconfigId === r) tomb[i]!.add(r);
        feed(i, { type: 'nackLock', ...req(r), forwardLeft: marker });
        if (i === Lof(r)) runAnchor(i, { type: 'nackLock', reason: 'locked' });
        break;
      case 6: // ackCancel at the requester: its own lock goes (a held request goes on)
        if (i === Lof(r) && la[i] === 4 && laReq[i] === r) {
          feed(i, { type: 'cancelLock', ...req(r) });
          runAnchor(i, { type: 'ackCancel' });
        }
        break;
      case 7: // nothing else could happen: retransmit, or give up and cancel
        runAnchor(i, { type: 'timeout', timer: 'requestLock' });
        break;
      case 9: // completion (the new path, two paths and teardown are reconfig.pml's): the machine goes through them
        for (const ev of [{ type: 'synAck' }, { type: 'oldPathDrained' }, { type: 'teardown' }] as const) runAnchor(i, ev);
        feed(i, { type: 'release' });
        for (let j = i + 1; j < Rof(r); j++) snaps[j] = initialTransition(lockMachine)[0];
        // the left and right anchors remember the reconfiguration, the boxes between them have left
        for (let j = i; j <= Rof(r); j++) tomb[j]!.add(r);
        if (raReq[Rof(r)] === r) raReq[Rof(r)] = NONE;
        break;
    }
    la[i] = s.la;
    if (s.ev === 1 && s.la === 1) laReq[i] = r;
    // compare the agent's lock after the step
    const snap = snaps[i]!;
    const c = snap.context;
    const want = STATES[s.lock];
    const problems: string[] = [];
    if (snap.value !== want) problems.push(`lock ${String(snap.value)} vs ${want}`);
    if (s.lock !== 0 && c.reconfigId !== s.lockReq) problems.push(`request ${c.reconfigId} vs ${s.lockReq}`);
    if (s.lock !== 0 && c.own !== (s.own === 1)) problems.push(`own ${c.own} vs ${s.own === 1}`);
    const held = c.held?.reconfigId ?? NONE;
    if (held !== s.held) problems.push(`held ${held} vs ${s.held}`);
    if (anchors[i]!.value !== LA_STATES[s.la]) problems.push(`leftAnchor ${String(anchors[i]!.value)} vs ${LA_STATES[s.la]}`);
    if (problems.length > 0) return `step ${k} (agent ${i}, event ${s.ev}, request ${r}): ${problems.join(', ')}`;
  }
  return undefined;
}

const skip = spinAvailable() ? false : 'spin is not installed (the bootstrap installs it: npm test as root)';
const SEEDS = Number(process.env.DYSCO_TRACE_SEEDS ?? 300);

t.test(`${SEEDS} random Spin simulations of locking.pml agree with the TypeScript lock and leftAnchor machines at every step`, { skip }, async (t) => {
  let steps = 0;
  let held = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    // every other seed with the box asking for its own removal (rightRequest), and every other pair with an early retransmission
    const tr = trace(seed, [...(seed % 2 === 0 ? ['-DSELF_REMOVAL=1'] : []), ...(seed % 4 >= 2 ? ['-DEARLY=1'] : [])]);
    steps += tr.length;
    held += tr.filter((s) => s.held !== NONE).length;
    const d = replay(tr);
    if (d) {
      t.fail(`seed ${seed}: ${d}`);
      return;
    }
  }
  t.ok(steps > SEEDS * 5, `${steps} steps replayed`);
  t.ok(held > 0, `contention (a held request) occurred in the traces: ${held} steps`);
});

t.test('a model that diverges from the machine is caught', { skip }, async (t) => {
  // MUTANT_NO_HOLD forwards a request that the TypeScript machine would hold
  let caught: string | undefined;
  for (let seed = 1; seed <= SEEDS && !caught; seed++) caught = replay(trace(seed, ['-DMUTANT_NO_HOLD']));
  t.ok(caught, `divergence found: ${caught}`);
});

t.test('a model that forgets the requests it refused is caught', { skip }, async (t) => {
  // MUTANT_REFUSAL_FORGOTTEN relays a copy of a request it refused before, where SessionProtocol refuses it again
  let caught: string | undefined;
  for (let seed = 1; seed <= SEEDS * 10 && !caught; seed++) caught = replay(trace(seed, ['-DEARLY=1', '-DMUTANT_REFUSAL_FORGOTTEN']));
  t.ok(caught, `divergence found: ${caught}`);
});
