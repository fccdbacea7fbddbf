import t from 'tap';
import { leftAnchorMachine, rightAnchorMachine, lockMachine } from '../dist/reconfig/machines.js';
import { DEFAULT_RETRY, type ProtocolAction } from '../dist/reconfig/types.js';
import { ZERO_DELTAS, type ControlMessage } from '../dist/messages.js';
import { tuple } from '../dist/tuple.js';
import { ip } from '../dist/address.js';

// Tests derived from the machines' graphs: every simple path through each
// machine (small retry limits keep the graph finite) is replayed, and the
// actions along it must keep the machine's bookkeeping invariants.

const RETRY = { ...DEFAULT_RETRY, limits: { requestLock: 1, syn: 1, synAck: 1, teardown: 1, rightRequest: 1, cancelLock: 2 } };
const L = ip('10.0.0.1');
const R = ip('10.0.0.3');
const oldHop = { agent: ip('10.0.0.2'), subsession: tuple(L, 1000, ip('10.0.0.2'), 1001) };
const newHop = { agent: R, subsession: tuple(L, 2000, R, 2001) };
const common = { subsession: oldHop.subsession, reconfigId: 7, msgSeq: 1 };
const wire = {
  requestLock: { type: 'requestLock', ...common, requester: L, rightAnchor: R, deltas: ZERO_DELTAS },
  cancelLock: (reason: string) => ({ type: 'cancelLock', ...common, requester: L, reason }),
  syn: { type: 'syn', ...common, subsession: newHop.subsession, requester: L, leftAnchor: L, rightAnchor: R, session: oldHop.subsession, chain: [], deltas: ZERO_DELTAS },
  ack: { type: 'ack', ...common, subsession: newHop.subsession, requester: L },
  teardown: { type: 'teardown', ...common, requester: L, fromLeft: true },
} as const;

type Step = { event: { type: string; timer?: string }; actions: ProtocolAction[]; value?: unknown };

/** Replays a path's events and checks what its actions did to timers and paths. */
function checkPath(t: { fail(m: string): void }, steps: Step[], end: { value: unknown; context: { outstanding: Record<string, unknown> } }, label: string): void {
  const armed = new Set<string>();
  let prepared = false;
  let entered = false;
  let outcomes = 0;
  let finished = 0;
  let value: unknown = 'OnePath';
  const problems: string[] = [];
  for (const s of steps) {
    if (s.value === 'OnePath' && value !== 'OnePath') finished++;
    value = s.value;
    if (s.event.type === 'timeout' && s.event.timer) armed.delete(s.event.timer); // it fired
    for (const a of s.actions) {
      switch (a.type) {
        case 'armTimer':
          armed.add(a.timer);
          break;
        case 'cancelTimer':
          if (!armed.has(a.timer)) problems.push(`cancels ${a.timer}, which is not armed`);
          armed.delete(a.timer);
          break;
        case 'prepareNewPath':
          prepared = true;
          break;
        case 'enterTwoPaths':
          if (!prepared) problems.push('enterTwoPaths before prepareNewPath');
          entered = true;
          break;
        case 'completeTwoPaths':
          if (!entered) problems.push('completeTwoPaths without enterTwoPaths');
          break;
        case 'abortNewPath':
          if (!prepared || entered) problems.push('abortNewPath of a path that was not prepared or is in use');
          break;
        case 'outcome':
          outcomes++;
          break;
      }
    }
  }
  const outstanding = Object.keys(end.context.outstanding).sort();
  if ([...armed].sort().join() !== outstanding.join()) {
    problems.push(`armed timers [${[...armed]}] differ from outstanding messages [${outstanding}]`);
  }
  if (outcomes !== finished) problems.push(`${finished} reconfigurations finished with ${outcomes} outcomes`);
  if (problems.length) t.fail(`${label}: ${problems.join('; ')}`);
}

function collect(machine: any, events: any[], label: string, t: { fail(m: string): void }): number {
  const paths = transitionPaths(machine, events);
  let n = 0;
  for (const p of paths) {
    const steps: Step[] = p.steps.map((s: any) => ({ event: s.event, actions: [] }));
    // replay to collect the actions each step returned
    const replay = replayActions(machine, p.steps.map((s: any) => s.event));
    replay.forEach((acts, i) => (steps[i]!.actions = acts));
    replayValues(machine, p.steps.map((s: any) => s.event)).forEach((v, i) => (steps[i]!.value = v));
    checkPath(t, steps.slice(1), p.state as any, `${label} path ${p.steps.map((s: any) => s.event.type + (s.event.timer ? `(${s.event.timer})` : '')).join(' > ')}`);
    n++;
  }
  return n;
}

import { initialTransition, transition } from 'xstate';

/**
 * The graph's nodes: the state plus the parts of the context that decide
 * transitions (which messages are outstanding and how often they were sent,
 * the drain flags); message contents do not matter to the shape.
 */
function serializeState(s: any): string {
  const c = s.context ?? {};
  const out = Object.entries(c.outstanding ?? {})
    .map(([k, v]: [string, any]) => `${k}:${Math.min(v.tries, 3)}`) // cancelLock repeats forever: its count stops mattering
    .sort()
    .join(',');
  return JSON.stringify([s.value, out, c.drained, c.peerDrained, c.own, c.held ? 1 : 0, c.requester ?? '']);
}

/**
 * One path per transition of the machine's graph: breadth-first over the
 * serialized states, then every event from every reachable state. (The
 * simple paths are too many to enumerate; transition coverage is the
 * criterion.)
 */
function transitionPaths(machine: any, events: any[]): { steps: { event: any }[]; state: any }[] {
  const [init] = initialTransition(machine);
  const seen = new Map<string, { state: any; path: any[] }>([[serializeState(init), { state: init, path: [] }]]);
  const queue = [serializeState(init)];
  const out: { steps: { event: any }[]; state: any }[] = [];
  while (queue.length > 0) {
    const k = queue.shift()!;
    const { state, path } = seen.get(k)!;
    for (const e of events) {
      const [next] = transition(machine, state, e);
      const nk = serializeState(next);
      if (nk === k) continue; // ignored by this state (or a pure self-loop)
      const p = [...path, e];
      out.push({ steps: [{ event: { type: 'xstate.init' } }, ...p.map((event) => ({ event }))], state: next });
      if (!seen.has(nk)) {
        seen.set(nk, { state: next, path: p });
        queue.push(nk);
      }
    }
  }
  return out;
}
function replayActions(machine: any, events: any[]): ProtocolAction[][] {
  let [s] = initialTransition(machine);
  const out: ProtocolAction[][] = [];
  for (const e of events) {
    if (e.type === 'xstate.init') {
      out.push([]);
      continue;
    }
    const [next, acts] = transition(machine, s, e);
    s = next;
    out.push(acts.filter((a: any) => a.type === 'emit' && a.params !== undefined).map((a: any) => a.params));
  }
  return out;
}

function replayValues(machine: any, events: any[]): unknown[] {
  let [s] = initialTransition(machine);
  return events.map((e) => {
    if (e.type !== 'xstate.init') [s] = transition(machine, s, e);
    return s.value;
  });
}

t.test('leftAnchor: every transition keeps timers, paths and outcomes consistent', async (t) => {
  const events = [
    { type: 'start', reconfigId: 7, requester: L, oldHop, newHop, wire },
    { type: 'ackLock', deltas: ZERO_DELTAS, syn: wire.syn },
    { type: 'nackLock', reason: 'locked' },
    { type: 'synAck' },
    { type: 'ackCancel' },
    { type: 'teardown' },
    { type: 'oldPathDrained' },
    { type: 'cancel' },
    ...['requestLock', 'syn', 'cancelLock', 'teardown'].map((timer) => ({ type: 'timeout', timer })),
  ];
  const n = collect(leftAnchorMachine(RETRY), events, 'leftAnchor', t);
  t.ok(n >= 30, `${n} transitions`);
  // every state is reached by some path
  const reached = new Set(transitionPaths(leftAnchorMachine(RETRY), events).map((p: any) => p.state.value));
  t.same([...reached].sort(), ['Canceling', 'OnePath', 'Requesting', 'SettingUp', 'TwoPaths']);
});

t.test('rightAnchor: every transition keeps timers, paths and outcomes consistent', async (t) => {
  const ackLock = { type: 'ackLock', ...common, requester: L, rightAnchor: R, deltas: ZERO_DELTAS };
  const events = [
    { type: 'requestLock', reconfigId: 7, requester: L, oldHop, deltas: ZERO_DELTAS, ackLock, teardown: { ...wire.teardown, fromLeft: false } },
    { type: 'syn', newHop, synAck: { type: 'synAck', ...common, requester: L } },
    { type: 'ack' },
    { type: 'teardown' },
    { type: 'cancelLock', ackCancel: { type: 'send', to: oldHop.agent, message: { type: 'ackCancel', ...common, requester: L } as ControlMessage }, reason: 'timeout' },
    { type: 'oldPathDrained' },
    ...['synAck', 'rightTeardown'].map((timer) => ({ type: 'timeout', timer })),
  ];
  const n = collect(rightAnchorMachine(RETRY), events, 'rightAnchor', t);
  t.ok(n >= 15, `${n} transitions`);
  const reached = new Set(transitionPaths(rightAnchorMachine(RETRY), events).map((p: any) => p.state.value));
  t.same([...reached].sort(), ['OnePath', 'Requested', 'TwoPaths', 'Waiting']);
});

t.test('lock: held requests are forwarded on failure and refused on success', async (t) => {
  const sends = (label: string) => ({ type: 'send', to: L, message: { label } }) as unknown as ProtocolAction;
  const nackHeld = { type: 'send', to: L, message: { type: 'nackLock', label: 'nack-held', reason: 'locked' } } as unknown as ProtocolAction;
  const held = { requester: '10.0.0.9', reconfigId: 9, forward: sends('forward-held'), nack: nackHeld };
  const own = { type: 'acquire', requester: '10.0.0.1', reconfigId: 7 };
  const events = [
    own,
    { type: 'relayRequest', request: held },
    { type: 'ackLock', requester: '10.0.0.1', reconfigId: 7 },
    { type: 'nackLock', requester: '10.0.0.1', reconfigId: 7 },
    { type: 'cancelLock', requester: '10.0.0.1', reconfigId: 7, forwardRight: sends('cancel-right') },
    { type: 'release' },
  ];
  const paths = transitionPaths(lockMachine, events);
  const labels = (p: any) =>
    replayActions(lockMachine, p.steps.map((s: any) => s.event))
      .flat()
      .map((a: any) => (a.message?.type === 'nackLock' ? `${a.message.label}-${a.message.reason}` : a.message?.label));
  let won = 0;
  let lost = 0;
  for (const p of paths) {
    const evs = p.steps.map((s: any) => s.event.type).join(',');
    const ls = labels(p);
    if (/acquire,relayRequest,ackLock/.test(evs)) {
      won++;
      t.ok(ls.includes('nack-held-contention'), `${evs}: the held request is refused`);
    }
    if (/acquire,relayRequest,nackLock/.test(evs)) {
      lost++;
      t.ok(ls.includes('forward-held'), `${evs}: the held request goes on`);
      t.equal((p.state as any).value, 'lockPending', 'now pending for the held request');
    }
  }
  t.ok(won > 0 && lost > 0, 'both contention outcomes are on some path');
});
