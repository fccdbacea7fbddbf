import { privateModelsDir } from './models-dir.js';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_RETRY,
  REPEATED_TEARDOWN,
  SessionProtocol,
  ZERO_DELTAS,
  ip,
  tuple,
  tupleEquals,
  type Address,
  type ControlMessage,
  type Deltas,
  type FiveTuple,
  type Hop,
  type ProtocolAction,
  type RetryPolicy,
  type TimerName,
} from '@dysco/protocol';
import { spinAvailable } from '../dist/runner.js';

// reconfig.pml and the implementation in step: Spin's random simulations of
// the model, annotated (-DTRACE) with every step of both anchors, every
// control message they send and their state afterwards, are replayed
// against two TypeScript SessionProtocol instances (A: the left anchor,
// B: the right anchor; so events reach the leftAnchor and rightAnchor
// machines exactly as SessionProtocol routes them, tombstones included).
// At every step the anchors' states, drained flags, retry counts, lock,
// deltas and current path, the control messages sent, the path actions
// (prepare, enter two paths, complete, abort) and the armed timers must
// agree. A model that diverges is caught (the last test).

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const models = privateModelsDir(root);

const LA = ['OnePath', 'Requesting', 'SettingUp', 'TwoPaths', 'Canceling'];
const RA: Record<number, string> = { 0: 'OnePath', 3: 'TwoPaths', 5: 'Requested', 6: 'Waiting' };

interface Sent {
  agent: number;
  type: string;
  path: number;
  x: number;
  y: number;
}
interface State {
  la: number;
  ra: number;
  lockA: number;
  drainedA: number;
  peerDrainedA: number;
  triesA: number;
  curA: number;
  /** The deltas A applies on path 0 and path 1, both directions packed (seqLR + 16 seqRL). */
  d0: number;
  d1: number;
  drainedB: number;
  peerDrainedB: number;
  triesB: number;
  curB: number;
  reconfigs: number;
}
interface Step {
  agent: number;
  kind: number;
  type: string;
  path: number;
  s: number;
  a: number;
  drain: number;
  state: State;
  sent: Sent[];
}

export interface Config {
  readonly name: string;
  readonly defines: readonly string[];
  readonly xBox: boolean;
  readonly yBox: boolean;
  /** The model's RETRIES: the machines' retry limits follow it. */
  readonly retries?: number;
}

function trace(seed: number, cfg: Config, extra: readonly string[] = []): Step[] {
  const out = spawnSync('spin', ['-DTRACE', '-DK=1', ...cfg.defines, ...extra, `-n${seed}`, '-u100000', 'reconfig.pml'], {
    cwd: models,
    encoding: 'utf8',
  });
  if (out.error || (out.status !== 0 && !out.stdout.includes('@@@'))) throw new Error(`spin simulation failed: ${out.stderr}${out.error?.message ?? ''}`);
  // the model's own assertions hold in the simulations replayed (the divergent model may break them)
  if (!extra.includes('-DDIVERGE_RIGHT') && /assertion violated|invalid end state/.test(out.stdout)) throw new Error(`seed ${seed} (${cfg.name}): the simulation violates the model's own assertions`);
  const steps: Step[] = [];
  let sent: Sent[] = [];
  for (const line of out.stdout.split('\n')) {
    const s = /@@@S (\d+) (\w+) (\d+) (\d+) (\d+)/.exec(line);
    if (s) {
      sent.push({ agent: Number(s[1]), type: s[2]!, path: Number(s[3]), x: Number(s[4]), y: Number(s[5]) });
      continue;
    }
    const m = /@@@ (\d+) (\d+) (\w+) (\d+) (\d+) (\d+) (\d+) \| ([\d ]+)/.exec(line);
    if (!m) continue;
    const v = m[8]!.trim().split(/\s+/).map(Number);
    const [la, ra, lockA, drainedA, peerDrainedA, triesA, curA, d0, d1, drainedB, peerDrainedB, triesB, curB, reconfigs] = v as [
      number, number, number, number, number, number, number, number, number, number, number, number, number, number,
    ];
    steps.push({
      agent: Number(m[1]),
      kind: Number(m[2]),
      type: m[3]!,
      path: Number(m[4]),
      s: Number(m[5]),
      a: Number(m[6]),
      drain: Number(m[7]),
      state: { la, ra, lockA, drainedA, peerDrainedA, triesA, curA, d0, d1, drainedB, peerDrainedB, triesB, curB, reconfigs },
      sent,
    });
    sent = [];
  }
  return steps;
}

const A = ip('10.0.1.1');
const X = ip('10.0.1.2');
const Y = ip('10.0.1.3');
const B = ip('10.0.1.4');
const session = tuple(A, 5000, B, 80);
/** The model carries both directions' sequence deltas in one field (DPACK). */
const pack = (d: Deltas) => d.seqLR + 16 * d.seqRL;
const unpack = (y: number): Deltas => ({ ...ZERO_DELTAS, seqLR: y % 16, seqRL: Math.floor(y / 16) });
/** reconfig.pml's tag of the contending box's own request. */
const XID = 9;
const RETRANSMIT_TIMERS: readonly TimerName[] = ['requestLock', 'syn', 'cancelLock', 'synAck', 'teardown', 'rightTeardown'];

/** Replays one trace; returns the first divergence, or undefined. */
export function replay(steps: readonly Step[], cfg: Config): string | undefined {
  const relay = (p: number): Address | undefined => (p === 0 ? (cfg.xBox ? X : undefined) : cfg.yBox ? Y : undefined);
  const hopA = (p: number): Hop => {
    const r = relay(p);
    return r ? { agent: r, subsession: tuple(A, 1000 + p, r, 2000 + p) } : { agent: B, subsession: tuple(A, 1000 + p, B, 4000 + p) };
  };
  const hopB = (p: number): Hop => {
    const r = relay(p);
    return r ? { agent: r, subsession: tuple(r, 3000 + p, B, 4000 + p) } : { agent: A, subsession: tuple(A, 1000 + p, B, 4000 + p) };
  };
  const pathOf = (agent: number, s: FiveTuple | undefined): number => {
    if (!s) return -1;
    for (const p of [0, 1]) if (tupleEquals(s, agent === 0 ? hopA(p).subsession : hopB(p).subsession)) return p;
    return -1;
  };
  const RETRIES = cfg.retries ?? 1; // reconfig.pml's default
  // the model's teardowns are repeated without limit: the machine's patience (20) is never reached at these loss budgets
  const retry: RetryPolicy = { ...DEFAULT_RETRY, limits: { ...DEFAULT_RETRY.limits, requestLock: RETRIES, syn: RETRIES, synAck: RETRIES } };
  const agents = [
    new SessionProtocol({ self: A, session, right: hopA(0), retry }),
    new SessionProtocol({ self: B, session, left: hopB(0), retry }),
  ] as const;
  const armed = [new Set<TimerName>(), new Set<TimerName>()];

  /** A control message of the model, as it reaches agent `to` over path p. */
  const message = (to: number, type: string, p: number, s: number, a: number): ControlMessage => {
    const subsession = to === 0 ? hopA(p).subsession : hopB(p).subsession;
    const c = { subsession, reconfigId: s, msgSeq: 1, requester: A };
    const deltas = unpack(a);
    switch (type) {
      case 'requestLock':
        return { type, ...c, rightAnchor: B, deltas };
      case 'ackLock':
        return { type, ...c, rightAnchor: B, deltas };
      case 'cancelLock':
        return { type, ...c, reason: 'timeout' };
      case 'nackLock':
        return { type, ...c, reason: 'contention' };
      case 'ackCancel':
      case 'synAck':
      case 'ack':
        return { type, ...c };
      case 'syn':
        return { type, ...c, leftAnchor: A, rightAnchor: B, session, chain: [], deltas: ZERO_DELTAS };
      case 'teardown':
        return { type, ...c, msgSeq: a === 1 ? REPEATED_TEARDOWN : 1, fromLeft: to === 1 };
      default:
        throw new Error(`no such message in the model: ${type}`);
    }
  };

  let prev: State = { la: 0, ra: 0, lockA: 0, drainedA: 0, peerDrainedA: 0, triesA: 0, curA: 0, d0: 0, d1: 0, drainedB: 0, peerDrainedB: 0, triesB: 0, curB: 0, reconfigs: 0 };
  for (const [k, st] of steps.entries()) {
    const i = st.agent;
    // (CONTEND) the contending box's request at B: B's part in that reconfiguration is abstracted in the model
    if (i === 1 && st.kind === 2 && st.type === 'requestLock' && st.s === XID) continue;
    const ag = agents[i]!;
    const out: ProtocolAction[] = [];
    const run = (ev: Parameters<SessionProtocol['handle']>[0]) => out.push(...ag.handle(ev));
    const problems: string[] = [];
    switch (st.kind) {
      case 1: {
        const np = 1 - prev.curA;
        const r = relay(np);
        run({ type: 'reconfigure', reconfigId: st.s, rightAnchor: B, newChain: r ? [r] : [], newHop: hopA(np) });
        break;
      }
      case 2:
        if (st.type !== 'seg') {
          const from = i === 0 ? hopA(st.path).agent : hopB(st.path).agent;
          run({ type: 'message', message: message(i, st.type, st.path, st.s, st.a), from });
        }
        if (st.drain) run({ type: 'oldPathDrained', side: i === 0 ? 'right' : 'left' });
        break;
      case 3: {
        const timer: TimerName = i === 0 ? (st.type as TimerName) : st.type === 'teardown' ? 'rightTeardown' : 'synAck';
        if (!armed[i]!.has(timer)) problems.push(`the model repeats ${st.type} but the ${timer} timer is not armed`);
        armed[i]!.delete(timer);
        run({ type: 'timeout', timer });
        break;
      }
    }
    for (const a of out) {
      if (a.type === 'armTimer') armed[i]!.add(a.timer);
      if (a.type === 'cancelTimer') armed[i]!.delete(a.timer);
    }
    // control messages: the model's (lost ones included) against the implementation's
    const preCur = i === 0 ? prev.curA : prev.curB;
    const implSent = out
      .filter((a): a is Extract<ProtocolAction, { type: 'send' }> => a.type === 'send')
      .map((a) => {
        const m = a.message;
        const path = pathOf(i, m.subsession);
        let y = 0;
        if (m.type === 'teardown') y = m.msgSeq === REPEATED_TEARDOWN ? 1 : path !== preCur ? 2 : 0;
        if (m.type === 'ackLock' || m.type === 'requestLock') y = pack(m.deltas);
        return `${m.type}/${path}/${m.reconfigId}/${y}`;
      })
      .sort();
    const modelSent = st.sent.map((m) => `${m.type}/${m.path}/${m.x}/${m.y}`).sort();
    if (st.sent.some((m) => m.agent !== i)) problems.push('a message printed for the wrong agent');
    if (implSent.join(' ') !== modelSent.join(' ')) problems.push(`sent [${implSent.join(' ')}] vs model [${modelSent.join(' ')}]`);
    // path actions, from the model's state change
    const now = st.state;
    const want: string[] = [];
    if (i === 0) {
      if (prev.la === 1 && now.la === 2) want.push('prepareNewPath');
      if (prev.la === 2 && now.la === 3) want.push('enterTwoPaths');
      if (prev.la === 3 && now.la === 0) want.push('completeTwoPaths');
      if (prev.la === 2 && now.la === 4) want.push('abortNewPath');
    } else {
      if (prev.ra === 5 && now.ra === 6) want.push('prepareNewPath');
      if (prev.ra === 6 && (now.ra === 3 || (now.ra === 0 && now.curB !== prev.curB))) want.push('enterTwoPaths');
      if ((prev.ra === 3 || prev.ra === 6) && now.ra === 0 && now.curB !== prev.curB) want.push('completeTwoPaths');
      if (prev.ra === 6 && now.ra === 0 && now.curB === prev.curB) want.push('abortNewPath');
    }
    const got = out.filter((a) => ['prepareNewPath', 'enterTwoPaths', 'completeTwoPaths', 'abortNewPath'].includes(a.type)).map((a) => a.type);
    if (got.sort().join(' ') !== want.sort().join(' ')) problems.push(`path actions [${got.join(' ')}] vs model [${want.join(' ')}]`);
    const dOf = (p: number) => (p === 0 ? now.d0 : p === 1 ? now.d1 : -1);
    for (const a of out) {
      if (i === 0 && (a.type === 'prepareNewPath' || a.type === 'enterTwoPaths') && pack(a.deltas) !== dOf(pathOf(0, a.hop.subsession))) {
        problems.push(`${a.type} with deltas ${pack(a.deltas)}, the model applies ${dOf(pathOf(0, a.hop.subsession))} there`);
      }
    }
    // both anchors' state after the step
    const a0 = agents[0];
    const a1 = agents[1];
    if (a0.leftAnchorState !== LA[now.la]) problems.push(`A: leftAnchor ${a0.leftAnchorState} vs ${LA[now.la]}`);
    if ((a0.lockState !== 'unlocked') !== (now.lockA === 1)) problems.push(`A: lock ${a0.lockState} vs model ${now.lockA ? 'held' : 'free'}`);
    const lc = a0.leftAnchorContext;
    if (now.la === 3 && (lc.drained !== (now.drainedA === 1) || lc.peerDrained !== (now.peerDrainedA === 1))) {
      problems.push(`A: drained ${lc.drained}/${lc.peerDrained} vs ${now.drainedA}/${now.peerDrainedA}`);
    }
    const oA = now.la === 1 ? lc.outstanding.requestLock : now.la === 2 ? lc.outstanding.syn : undefined;
    if ((now.la === 1 || now.la === 2) && oA?.tries !== now.triesA) problems.push(`A: tries ${oA?.tries} vs ${now.triesA}`);
    if ((now.la === 2 || now.la === 3) && pack(lc.deltas) !== dOf(1 - now.curA)) problems.push(`A: deltas ${pack(lc.deltas)} vs ${dOf(1 - now.curA)}`);
    if (now.la !== 0 && lc.reconfigId !== now.reconfigs) problems.push(`A: reconfiguration ${lc.reconfigId} vs ${now.reconfigs}`);
    if (pathOf(0, a0.right?.subsession) !== now.curA) problems.push(`A: on path ${pathOf(0, a0.right?.subsession)} vs ${now.curA}`);
    if (a1.rightAnchorState !== RA[now.ra]) problems.push(`B: rightAnchor ${a1.rightAnchorState} vs ${RA[now.ra]}`);
    const rc = a1.rightAnchorContext;
    if (now.ra === 3 && (rc.drained !== (now.drainedB === 1) || rc.peerDrained !== (now.peerDrainedB === 1))) {
      problems.push(`B: drained ${rc.drained}/${rc.peerDrained} vs ${now.drainedB}/${now.peerDrainedB}`);
    }
    if (now.ra === 6 && (rc.outstanding.synAck?.tries ?? RETRIES) !== now.triesB) problems.push(`B: tries ${rc.outstanding.synAck?.tries} vs ${now.triesB}`);
    if (pathOf(1, a1.left?.subsession) !== now.curB) problems.push(`B: on path ${pathOf(1, a1.left?.subsession)} vs ${now.curB}`);
    if (problems.length > 0) return `step ${k} (${i === 0 ? 'A' : 'B'}, ${['', 'start', 'message', 'timer'][st.kind]} ${st.type} path ${st.path} (${st.s}, ${st.a})): ${problems.join('; ')}`;
    prev = now;
  }
  // the model ran to its end: nothing may be left to retransmit
  for (const i of [0, 1]) {
    const left = [...armed[i]!].filter((x) => RETRANSMIT_TIMERS.includes(x));
    if (steps.length > 0 && left.length > 0) return `at the end, ${i === 0 ? 'A' : 'B'} still has ${left.join(', ')} armed`;
  }
  return undefined;
}

export const CONFIGS: readonly Config[] = [
  { name: 'replace', defines: [], xBox: true, yBox: true },
  { name: 'delete', defines: ['-DY_BOX=0'], xBox: true, yBox: false },
  { name: 'insert', defines: ['-DX_BOX=0'], xBox: false, yBox: true },
  { name: 'successive', defines: ['-DRECONFIGS=2'], xBox: true, yBox: true },
  { name: 'new path down', defines: ['-DY_DOWN'], xBox: true, yBox: true },
  { name: 'delta', defines: ['-DDELTA=1'], xBox: true, yBox: true },
  { name: 'deltas both ways', defines: ['-DDELTA=1', '-DDELTA_BA=1'], xBox: true, yBox: true },
  { name: 'deltas, successive', defines: ['-DDELTA=1', '-DDELTA_BA=2', '-DRECONFIGS=2'], xBox: true, yBox: true },
  { name: 'two losses', defines: ['-DLOSSES=2'], xBox: true, yBox: true },
  { name: 'three losses', defines: ['-DLOSSES=3'], xBox: true, yBox: true },
  { name: 'early teardown timer', defines: ['-DSPURIOUS=1'], xBox: true, yBox: true },
  { name: 'contention', defines: ['-DCONTEND=1'], xBox: true, yBox: true },
  { name: 'two bytes one way, one back', defines: ['-DKA=2', '-DKB=1', '-DDELTA=1', '-DDELTA_BA=1'], xBox: true, yBox: true },
  { name: 'three losses, two retries', defines: ['-DLOSSES=3', '-DRETRIES=2'], xBox: true, yBox: true, retries: 2 },
];

const skip = spinAvailable() ? false : 'spin is not installed (the bootstrap installs it: npm test as root)';
const SEEDS = Number(process.env.DYSCO_TRACE_SEEDS ?? 300);

t.test(`${SEEDS} random Spin simulations of reconfig.pml agree with SessionProtocol's leftAnchor and rightAnchor machines at every step`, { skip }, async (t) => {
  let steps = 0;
  const seen = new Set<string>();
  for (let seed = 1; seed <= SEEDS; seed++) {
    const cfg = CONFIGS[seed % CONFIGS.length]!;
    const tr = trace(seed, cfg);
    steps += tr.length;
    let prevLa = 0;
    let prevRa = 0;
    for (const s of tr) {
      if (s.state.la !== prevLa) seen.add(`A ${LA[prevLa]}->${LA[s.state.la]}`);
      if (s.state.ra !== prevRa) seen.add(`B ${RA[prevRa]}->${RA[s.state.ra]}`);
      if (s.kind === 3) seen.add(`${s.agent === 0 ? 'A' : 'B'} repeats ${s.type}`);
      if (s.kind === 2 && s.type === 'teardown' && s.a === 1) seen.add('a repeated teardown');
      if (s.kind === 2 && s.type === 'teardown' && s.agent === 1 && prevRa === 6 && s.state.ra !== 6) seen.add('B leaves Waiting on a teardown');
      prevLa = s.state.la;
      prevRa = s.state.ra;
    }
    const d = replay(tr, cfg);
    if (d) {
      t.fail(`seed ${seed} (${cfg.name}): ${d}`);
      return;
    }
  }
  t.ok(steps > SEEDS * 8, `${steps} steps replayed`);
  t.comment(`transitions and retransmissions seen: ${[...seen].sort().join(', ')}`);
  // every transition of both anchors, every retransmission, a repeated teardown, a teardown that moves a Waiting right anchor on
  const every = [
    'A OnePath->Requesting', 'A Requesting->SettingUp', 'A Requesting->OnePath', 'A Requesting->Canceling', 'A SettingUp->TwoPaths',
    'A SettingUp->Canceling', 'A TwoPaths->OnePath', 'A Canceling->OnePath',
    'B OnePath->Requested', 'B Requested->Waiting', 'B Requested->OnePath', 'B Waiting->TwoPaths', 'B Waiting->OnePath', 'B TwoPaths->OnePath',
    'A repeats requestLock', 'A repeats syn', 'A repeats cancelLock', 'A repeats teardown', 'B repeats synAck', 'B repeats teardown',
    'a repeated teardown', 'B leaves Waiting on a teardown',
  ];
  for (const must of every) {
    t.ok(seen.has(must), `the traces cover ${must}`);
  }
});

t.test('a model whose right anchor diverges from the machine is caught', { skip }, async (t) => {
  let caught: string | undefined;
  for (let seed = 1; seed <= SEEDS && !caught; seed++) {
    const cfg = CONFIGS[seed % CONFIGS.length]!;
    caught = replay(trace(seed, cfg, ['-DDIVERGE_RIGHT']), cfg);
  }
  t.ok(caught, `divergence found: ${caught}`);
});
