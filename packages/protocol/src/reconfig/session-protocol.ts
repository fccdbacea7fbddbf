import { initialTransition, transition, type AnyStateMachine, type SnapshotFrom } from 'xstate';
import { type Address, addressEquals, formatAddress, parseAddress } from '../address.js';
import { type FiveTuple, tupleEquals } from '../tuple.js';
import {
  ZERO_DELTAS,
  composeDeltas,
  type ControlMessage,
  type Deltas,
  type NackReason,
  type RequestLock,
} from '../messages.js';
import {
  leftAnchorMachine,
  lockMachine,
  rightAnchorMachine,
  type HeldRequest,
  type LeftAnchorContext,
  type LockContext,
  type RightAnchorContext,
  type Wire,
} from './machines.js';
import { DEFAULT_RETRY, type Hop, type ProtocolAction, type ProtocolEvent, type RetryPolicy, type Side, type TimerName } from './types.js';

export type LockState = 'unlocked' | 'lockPending' | 'locked';
export type LeftAnchorState = 'OnePath' | 'Requesting' | 'SettingUp' | 'TwoPaths' | 'Canceling';
export type RightAnchorState = 'OnePath' | 'Requested' | 'Waiting' | 'TwoPaths';

export interface SessionProtocolOptions {
  readonly self: Address;
  /** The session tuple as this agent's stack or middlebox sees it. */
  readonly session: FiveTuple;
  /** Neighbour and subsession to the left (absent at the originating host). */
  readonly left?: Hop | undefined;
  /** Neighbour and subsession to the right (absent at the destination host). */
  readonly right?: Hop | undefined;
  /** This box's own sequence-space deltas (a spliced proxy, a stream-changing box). */
  readonly ownDeltas?: Deltas;
  readonly retry?: RetryPolicy;
}

/** A box's own request to be taken out (rightRequest), until the left neighbour acts on it. */
interface SelfRequest {
  readonly reconfigId: number;
  readonly message: ControlMessage;
  readonly to: Address;
  readonly tries: number;
  readonly rto: number;
  /** The left neighbour started locking: stop repeating. */
  readonly started: boolean;
}

/** A box of a new path being set up, between the hops it joins. */
interface NewPathRelay {
  readonly requester: string;
  readonly reconfigId: number;
  /** The right anchor answered (synAck passed): nothing is pending here any more, but an abort may still come. */
  readonly confirmed: boolean;
}

/** A finished reconfiguration remembered for a while, to answer late duplicates. */
interface Tombstone {
  readonly requester: string;
  readonly reconfigId: number;
  /** What to repeat: our teardown (anchors) or nothing (relays forward). */
  readonly reply: ProtocolAction | undefined;
  /** This agent refused the request (nackLock with this reason): a later copy of it is refused again. */
  readonly refused?: NackReason;
}

const key = (a: Address) => formatAddress(a);

/** msgSeq of a teardown repeated by an anchor that has already finished; see onTeardown. */
export const REPEATED_TEARDOWN = 0;

/**
 * Everything a SessionProtocol holds, as plain JSON (addresses and tuples
 * included): what an agent writes to disk so that, killed and restarted, it
 * takes a session up again in the middle of a reconfiguration. Produced by
 * SessionProtocol.snapshot(), taken back by SessionProtocol.restore().
 */
export interface ProtocolSnapshot {
  readonly version: 1;
  readonly state: unknown;
}

/** Uint8Arrays (addresses) and non-finite numbers as JSON-safe values, and back. */
function toPlain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('hex') };
  if (typeof v === 'number' && !Number.isFinite(v)) return { $number: String(v) };
  if (Array.isArray(v)) return v.map(toPlain);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = toPlain(x);
    return o;
  }
  return v;
}

function fromPlain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromPlain);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.$bytes === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o.$bytes, 'hex'));
    if (typeof o.$number === 'string' && Object.keys(o).length === 1) return Number(o.$number);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = fromPlain(x);
    return out;
  }
  return v;
}

/**
 * The machines of one retry policy and their initial snapshots, built once
 * and shared by every session that uses the policy: a machine definition is
 * tens of kilobytes, and an agent holds a protocol for each of up to millions
 * of sessions. Sharing is safe because transitions never change a snapshot,
 * they return a new one.
 */
const MACHINES = new WeakMap<RetryPolicy, ReturnType<typeof buildMachines>>();

function buildMachines(retry: RetryPolicy) {
  const leftM = leftAnchorMachine(retry);
  const rightM = rightAnchorMachine(retry);
  return { leftM, rightM, lockS: initialTransition(lockMachine)[0], leftS: initialTransition(leftM)[0], rightS: initialTransition(rightM)[0] };
}

function machinesFor(retry: RetryPolicy): ReturnType<typeof buildMachines> {
  let m = MACHINES.get(retry);
  if (!m) {
    m = buildMachines(retry);
    MACHINES.set(retry, m);
  }
  return m;
}

/** A machine's snapshot as value and context; the retry policy comes from the restoring agent. */
function machineState(s: { value: unknown; context: unknown }): unknown {
  const { retry: _retry, ...context } = s.context as Record<string, unknown>;
  return { value: s.value, context };
}

/**
 * The reconfiguration protocol for one session at one agent: routes events
 * to the lock, leftAnchor and rightAnchor machines, relays what is not for
 * this agent, and returns the actions to execute. No I/O, no clock: timers
 * are actions and their expiry is an event.
 */
export class SessionProtocol {
  readonly self: Address;
  readonly session: FiveTuple;
  left: Hop | undefined;
  right: Hop | undefined;
  ownDeltas: Deltas;
  /**
   * The deltas this agent's own rewrite applies towards its right hop: zero
   * until it completes a reconfiguration as left anchor, then the deltas of
   * the segment it replaced (the boxes it took out no longer apply them).
   * A later segment starting here, or passing through here, includes them.
   */
  rightDeltas: Deltas = ZERO_DELTAS;
  /**
   * True once this agent is no longer on the session's path. It keeps
   * forwarding late teardowns of the reconfiguration that removed it until
   * its tombstone timer fires; then `gone` is set and its state can go.
   */
  departed = false;
  gone = false;
  private forwarding: { requester: string; reconfigId: number; left: Hop | undefined; right: Hop | undefined } | undefined;
  private readonly retry: RetryPolicy;
  private readonly lockM = lockMachine;
  private readonly leftM: ReturnType<typeof leftAnchorMachine>;
  private readonly rightM: ReturnType<typeof rightAnchorMachine>;
  private lockS: SnapshotFrom<typeof lockMachine>;
  private leftS: SnapshotFrom<ReturnType<typeof leftAnchorMachine>>;
  private rightS: SnapshotFrom<ReturnType<typeof rightAnchorMachine>>;
  private msgSeq = 0;
  private selfRequest: SelfRequest | undefined;
  private newPathRelay: NewPathRelay | undefined;
  /** Old-path relay: teardowns seen from each side. */
  private teardownSeen = { fromLeft: false, fromRight: false };
  /**
   * Finished or cancelled reconfigurations, remembered between one and two
   * tombstone periods (two generations swapped by one timer), so late
   * duplicates are answered or ignored instead of starting anything.
   */
  private tombstones: Tombstone[] = [];
  private olderTombstones: Tombstone[] = [];
  private tombstoneTimerArmed = false;

  constructor(o: SessionProtocolOptions) {
    this.self = o.self;
    this.session = o.session;
    this.left = o.left;
    this.right = o.right;
    this.ownDeltas = o.ownDeltas ?? ZERO_DELTAS;
    this.retry = o.retry ?? DEFAULT_RETRY;
    const m = machinesFor(this.retry);
    this.leftM = m.leftM;
    this.rightM = m.rightM;
    this.lockS = m.lockS;
    this.leftS = m.leftS;
    this.rightS = m.rightS;
  }

  // ---- observation -------------------------------------------------------

  get lockState(): LockState {
    return this.lockS.value as LockState;
  }
  get leftAnchorState(): LeftAnchorState {
    return this.leftS.value as LeftAnchorState;
  }
  get rightAnchorState(): RightAnchorState {
    return this.rightS.value as RightAnchorState;
  }
  get lockContext(): LockContext {
    return this.lockS.context;
  }
  get leftAnchorContext(): LeftAnchorContext {
    return this.leftS.context;
  }
  get rightAnchorContext(): RightAnchorContext {
    return this.rightS.context;
  }
  /** No reconfiguration in progress here and nothing held: what a quiescent agent must look like. */
  get idle(): boolean {
    return (
      this.lockState === 'unlocked' &&
      this.lockContext.held === undefined &&
      this.leftAnchorState === 'OnePath' &&
      this.rightAnchorState === 'OnePath' &&
      (this.newPathRelay === undefined || this.newPathRelay.confirmed) &&
      (this.selfRequest === undefined || this.selfRequest.started)
    );
  }
  /** Nothing to keep but its hops: no reconfiguration, tombstone, relay state or deltas (an agent need not persist a snapshot). */
  get atRest(): boolean {
    const zero = (d: Deltas) => (Object.keys(ZERO_DELTAS) as (keyof Deltas)[]).every((k) => d[k] === 0);
    return (
      this.idle &&
      !this.departed &&
      this.selfRequest === undefined &&
      this.newPathRelay === undefined &&
      this.lingering === undefined &&
      this.pendingTombstones === 0 &&
      zero(this.ownDeltas) &&
      zero(this.rightDeltas)
    );
  }
  get pendingTombstones(): number {
    return this.tombstones.length + this.olderTombstones.length;
  }

  // ---- persistence ---------------------------------------------------------

  /** The whole protocol state of this session, JSON-safe (see ProtocolSnapshot). */
  snapshot(): ProtocolSnapshot {
    const state = {
      left: this.left,
      right: this.right,
      ownDeltas: this.ownDeltas,
      rightDeltas: this.rightDeltas,
      departed: this.departed,
      gone: this.gone,
      forwarding: this.forwarding,
      msgSeq: this.msgSeq,
      selfRequest: this.selfRequest,
      newPathRelay: this.newPathRelay,
      teardownSeen: this.teardownSeen,
      tombstones: this.tombstones,
      olderTombstones: this.olderTombstones,
      tombstoneTimerArmed: this.tombstoneTimerArmed,
      lingering: this.lingering,
      lock: machineState(this.lockS),
      leftAnchor: machineState(this.leftS),
      rightAnchor: machineState(this.rightS),
    };
    return { version: 1, state: toPlain(state) };
  }

  /**
   * A protocol taken up from a snapshot (of an agent that was killed), with
   * `o.retry` (the restoring agent's policy) in force. The timers that were
   * running are lost with the process: `resume()` gives the actions that arm
   * them again (each with its current timeout), so retransmissions and
   * deadlines go on where they stopped.
   */
  static restore(o: Omit<SessionProtocolOptions, 'left' | 'right' | 'ownDeltas'>, snap: ProtocolSnapshot): SessionProtocol {
    if (!snap || snap.version !== 1 || typeof snap.state !== 'object' || snap.state === null) throw new Error('not a protocol snapshot of a known version');
    const st = fromPlain(snap.state) as Record<string, any>;
    const p = new SessionProtocol({ ...o, left: st.left, right: st.right, ownDeltas: st.ownDeltas ?? ZERO_DELTAS });
    const resolve = <M extends AnyStateMachine>(m: M, saved: { value: unknown; context: Record<string, unknown> }) =>
      m.resolveState({ value: saved.value as never, context: { ...saved.context, retry: p.retry } as never }) as SnapshotFrom<M>;
    p.lockS = resolve(p.lockM, st.lock);
    p.leftS = resolve(p.leftM, st.leftAnchor);
    p.rightS = resolve(p.rightM, st.rightAnchor);
    p.rightDeltas = st.rightDeltas ?? ZERO_DELTAS;
    p.departed = st.departed === true;
    p.gone = st.gone === true;
    p.forwarding = st.forwarding;
    p.msgSeq = Number(st.msgSeq) >>> 0;
    p.selfRequest = st.selfRequest;
    p.newPathRelay = st.newPathRelay;
    p.teardownSeen = st.teardownSeen ?? { fromLeft: false, fromRight: false };
    p.tombstones = st.tombstones ?? [];
    p.olderTombstones = st.olderTombstones ?? [];
    p.tombstoneTimerArmed = st.tombstoneTimerArmed === true;
    p.lingering = st.lingering;
    return p;
  }

  /** The timers a restored protocol must arm again (see restore). */
  resume(): ProtocolAction[] {
    const out: ProtocolAction[] = [];
    for (const c of [this.leftAnchorContext, this.rightAnchorContext]) {
      for (const [timer, o] of Object.entries(c.outstanding)) if (o) out.push({ type: 'armTimer', timer: timer as TimerName, delay: o.rto });
    }
    if (this.selfRequest && !this.selfRequest.started) out.push({ type: 'armTimer', timer: 'rightRequest', delay: this.selfRequest.rto });
    if (this.lingering || (this.newPathRelay && !this.newPathRelay.confirmed)) out.push({ type: 'armTimer', timer: 'linger', delay: this.retry.tombstoneMs });
    if (this.departed || this.tombstoneTimerArmed) out.push({ type: 'armTimer', timer: 'tombstone', delay: this.retry.tombstoneMs });
    return out;
  }

  // ---- driving -------------------------------------------------------------

  handle(ev: ProtocolEvent): ProtocolAction[] {
    const out: ProtocolAction[] = [];
    if (this.departed) {
      if (ev.type === 'message' && ev.message.type === 'teardown') this.onTeardown(ev.message, out);
      else if (ev.type === 'timeout' && ev.timer === 'tombstone') this.onTimeout('tombstone', out);
      return out;
    }
    switch (ev.type) {
      case 'reconfigure':
        this.startReconfig(ev.reconfigId, ev.rightAnchor, ev.newChain, ev.newHop, out);
        break;
      case 'requestSelfReconfig':
        this.startSelfRequest(ev.reconfigId, ev.newChain, out);
        break;
      case 'cancel':
        this.runLeft({ type: 'cancel' }, out);
        break;
      case 'timeout':
        this.onTimeout(ev.timer, out);
        break;
      case 'oldPathDrained':
        if (ev.side !== 'left' && this.leftAnchorState === 'TwoPaths') this.runLeft({ type: 'oldPathDrained' }, out);
        if (ev.side !== 'right' && this.rightAnchorState === 'TwoPaths') this.runRight({ type: 'oldPathDrained' }, out);
        break;
      case 'message':
        this.onMessage(ev.message, ev.from, ev.nextHop, out);
        break;
    }
    // A request refused here stays refused. The requester gives up on the
    // first nackLock it gets, so a copy of the same request arriving later
    // (a retransmission or a duplicate still on its way, once the lock,
    // the contention or the busy right anchor that caused the refusal is
    // gone) must not be relayed or answered with ackLock: the locks and the
    // Requested right anchor it would leave behind would have nobody to
    // cancel them. Refusals we merely forward are already remembered.
    const refusals = out.filter((a) => a.type === 'send' && a.message.type === 'nackLock' && !this.isSelf(a.message.requester));
    for (const a of refusals) {
      if (a.type === 'send' && a.message.type === 'nackLock') this.remember(a.message.requester, a.message.reconfigId, undefined, out, a.message.reason);
    }
    // we refused the very request we had asked for (our subsession was locked, or our own request won)
    const r = this.selfRequest;
    if (r) {
      const refusal = out.find((a) => a.type === 'send' && a.message.type === 'nackLock' && a.message.reconfigId === r.reconfigId);
      if (refusal && refusal.type === 'send' && refusal.message.type === 'nackLock') this.endSelfRequest('aborted', refusal.message.reason, out);
    }
    return out;
  }

  private nextSeq(): number {
    this.msgSeq = (this.msgSeq + 1) >>> 0 || 1;
    return this.msgSeq;
  }

  private collect(actions: readonly { type: string; params?: unknown }[], out: ProtocolAction[]): void {
    for (const a of actions) {
      if (a.type === 'emit' && a.params !== undefined) out.push(a.params as ProtocolAction);
    }
  }

  private runLock(ev: Parameters<typeof transition<typeof lockMachine>>[2], out: ProtocolAction[]): void {
    const [s, acts] = transition(this.lockM, this.lockS, ev);
    this.lockS = s;
    this.collect(acts, out);
  }

  /**
   * For an ack or teardown this protocol has just handled: the side of this
   * agent's anchor (on two paths, in the message's reconfiguration) whose
   * peer it comes from, so that the caller can record where the peer's
   * old-path data ends (the message's `upTo`, see `takePeerEnd`); undefined
   * when the message is not for such an anchor.
   */
  peerEndSide(m: ControlMessage): Side | undefined {
    if (m.type !== 'ack' && m.type !== 'teardown') return undefined;
    const toRight = m.type === 'ack' || m.fromLeft;
    const state = toRight ? this.rightAnchorState : this.leftAnchorState;
    const c = toRight ? this.rightAnchorContext : this.leftAnchorContext;
    if (state !== 'TwoPaths' || c.reconfigId !== m.reconfigId || !c.requester || !addressEquals(c.requester, m.requester)) return undefined;
    return toRight ? 'left' : 'right';
  }

  private runLeft(ev: Parameters<typeof transition<ReturnType<typeof leftAnchorMachine>>>[2], out: ProtocolAction[]): void {
    const before = this.leftAnchorState;
    const [s, acts] = transition(this.leftM, this.leftS, ev);
    this.leftS = s;
    const from = out.length;
    this.collect(acts, out);
    markAnchorSends(out, from, 'right');
    this.afterLeft(before, out);
  }

  private runRight(ev: Parameters<typeof transition<ReturnType<typeof rightAnchorMachine>>>[2], out: ProtocolAction[]): void {
    const before = this.rightAnchorState;
    const [s, acts] = transition(this.rightM, this.rightS, ev);
    this.rightS = s;
    const from = out.length;
    this.collect(acts, out);
    markAnchorSends(out, from, 'left');
    this.afterRight(before, out);
  }

  /** Consequences of left-anchor transitions on the path and the lock. */
  private afterLeft(before: LeftAnchorState, out: ProtocolAction[]): void {
    const now = this.leftAnchorState;
    const c = this.leftAnchorContext;
    if (before === 'SettingUp' && now === 'Canceling' && c.newHop) {
      // boxes of the new path leave it (best effort: it may be down, which is why we abort)
      out.push({ type: 'send', to: c.newHop.agent, message: { ...this.abandon(c.requester!, c.reconfigId!, c.newHop.subsession), fromLeft: true } });
    }
    if (before === now || now !== 'OnePath') return;
    if (before === 'TwoPaths') {
      // completed: the new subsession replaces the old one, and starts unlocked
      this.right = c.newHop;
      this.rightDeltas = c.deltas;
      this.runLock({ type: 'release' }, out);
      this.remember(c.requester!, c.reconfigId!, c.wire && c.oldHop ? { type: 'send', to: c.oldHop.agent, message: c.wire.teardown } : undefined, out);
    } else if (before === 'Requesting' && this.lockState === 'lockPending') {
      // refused: release our pending lock (a held request goes on)
      this.runLock({ type: 'nackLock', requester: key(c.requester!), reconfigId: c.reconfigId! }, out);
    } else if (before === 'Canceling') {
      this.runLock({ type: 'cancelLock', requester: key(c.requester!), reconfigId: c.reconfigId! }, out);
    }
  }

  private afterRight(before: RightAnchorState, out: ProtocolAction[]): void {
    const now = this.rightAnchorState;
    if (before === now || now !== 'OnePath') return;
    const c = this.rightAnchorContext;
    if (before === 'Waiting' && c.newHop) {
      out.push({ type: 'send', to: c.newHop.agent, message: { ...this.abandon(c.requester!, c.reconfigId!, c.newHop.subsession), fromLeft: false } });
    }
    if (before === 'TwoPaths') {
      this.left = c.newHop;
      this.remember(c.requester!, c.reconfigId!, c.teardown && c.oldHop ? { type: 'send', to: c.oldHop.agent, message: c.teardown } : undefined, out);
    }
  }

  private abandon(requester: Address, reconfigId: number, subsession: FiveTuple) {
    return { type: 'teardown' as const, subsession, reconfigId, msgSeq: this.nextSeq(), requester };
  }

  private remember(requester: Address, reconfigId: number, reply: ProtocolAction | undefined, out: ProtocolAction[], refused?: NackReason): void {
    if (this.tombstone(requester, reconfigId)) return;
    this.tombstones.push({ requester: key(requester), reconfigId, reply, ...(refused ? { refused } : {}) });
    if (!this.tombstoneTimerArmed) {
      this.tombstoneTimerArmed = true;
      out.push({ type: 'armTimer', timer: 'tombstone', delay: this.retry.tombstoneMs });
    }
  }

  private tombstone(requester: Address, reconfigId: number): Tombstone | undefined {
    const r = key(requester);
    const match = (t: Tombstone) => t.requester === r && t.reconfigId === reconfigId;
    return this.tombstones.find(match) ?? this.olderTombstones.find(match);
  }

  // ---- starting ------------------------------------------------------------

  private startReconfig(reconfigId: number, rightAnchor: Address, newChain: readonly Address[], newHop: Hop, out: ProtocolAction[]): void {
    const oldHop = this.right;
    if (!oldHop || this.leftAnchorState !== 'OnePath' || this.lockState !== 'unlocked') {
      out.push({ type: 'outcome', reconfigId, requester: this.self, result: 'aborted', reason: 'busy' });
      return;
    }
    const seq = () => this.nextSeq();
    const common = (subsession: FiveTuple) => ({ subsession, reconfigId, msgSeq: seq() });
    const requester = this.self;
    const wire: Wire = {
      // the segment's deltas start with those this agent already applies on it
      requestLock: { type: 'requestLock', ...common(oldHop.subsession), requester, rightAnchor, deltas: this.rightDeltas },
      cancelLock: { type: 'cancelLock', ...common(oldHop.subsession), requester, reason: 'timeout' },
      syn: {
        type: 'syn',
        ...common(newHop.subsession),
        requester,
        leftAnchor: this.self,
        rightAnchor,
        session: this.session,
        chain: newChain.slice(1),
        deltas: ZERO_DELTAS,
      },
      ack: { type: 'ack', ...common(newHop.subsession), requester },
      teardown: { type: 'teardown', ...common(oldHop.subsession), requester, fromLeft: true },
    };
    this.runLock({ type: 'acquire', requester: key(requester), reconfigId }, out);
    this.runLeft({ type: 'start', reconfigId, requester, oldHop, newHop, wire }, out);
  }

  private startSelfRequest(reconfigId: number, newChain: readonly Address[], out: ProtocolAction[]): void {
    if (!this.left || !this.right) {
      out.push({ type: 'outcome', reconfigId, requester: this.self, result: 'aborted', reason: 'anchorNotFound' });
      return;
    }
    if (this.selfRequest) {
      out.push({ type: 'outcome', reconfigId, requester: this.self, result: 'aborted', reason: 'busy' });
      return;
    }
    const message: ControlMessage = {
      type: 'rightRequest',
      subsession: this.left.subsession,
      reconfigId,
      msgSeq: this.nextSeq(),
      requester: this.self,
      rightAnchor: this.right.agent,
      newChain,
    };
    this.selfRequest = { reconfigId, message, to: this.left.agent, tries: 0, rto: this.retry.rto, started: false };
    out.push({ type: 'send', to: this.left.agent, message }, { type: 'armTimer', timer: 'rightRequest', delay: this.retry.rto });
  }

  private onTimeout(timer: TimerName, out: ProtocolAction[]): void {
    switch (timer) {
      case 'requestLock':
      case 'syn':
      case 'cancelLock':
        this.runLeft({ type: 'timeout', timer }, out);
        return;
      case 'synAck':
        this.runRight({ type: 'timeout', timer }, out);
        return;
      case 'teardown':
        this.runLeft({ type: 'timeout', timer }, out);
        return;
      case 'rightTeardown':
        this.runRight({ type: 'timeout', timer }, out);
        return;
      case 'rightRequest': {
        const r = this.selfRequest;
        if (!r || r.started) return;
        if (r.tries >= this.retry.limits.rightRequest) {
          this.selfRequest = undefined;
          out.push({ type: 'outcome', reconfigId: r.reconfigId, requester: this.self, result: 'aborted', reason: 'timeout' });
          return;
        }
        const rto = Math.min(r.rto * 2, this.retry.maxRto);
        this.selfRequest = { ...r, tries: r.tries + 1, rto };
        out.push({ type: 'send', to: r.to, message: r.message }, { type: 'armTimer', timer: 'rightRequest', delay: rto });
        return;
      }
      case 'linger':
        if (this.lingering) this.depart(this.lingering.requester, this.lingering.reconfigId, out);
        // a new path that never came up through us (see onSyn)
        else if (this.newPathRelay && !this.newPathRelay.confirmed) this.depart(parseAddress(this.newPathRelay.requester), this.newPathRelay.reconfigId, out);
        return;
      case 'tombstone':
        if (this.departed) {
          this.forwarding = undefined;
          this.gone = true;
          return;
        }
        this.olderTombstones = this.tombstones;
        this.tombstones = [];
        this.tombstoneTimerArmed = this.olderTombstones.length > 0;
        if (this.tombstoneTimerArmed) out.push({ type: 'armTimer', timer: 'tombstone', delay: this.retry.tombstoneMs });
        return;
    }
  }

  // ---- messages ------------------------------------------------------------

  private isSelf(a: Address): boolean {
    return addressEquals(a, this.self);
  }

  private onMessage(m: ControlMessage, from: Address, nextHop: Hop | undefined, out: ProtocolAction[]): void {
    switch (m.type) {
      case 'requestLock':
        return this.onRequestLock(m, from, out);
      case 'ackLock': {
        if (this.isSelf(m.requester)) {
          const la = this.leftAnchorContext;
          if (this.leftAnchorState !== 'Requesting' || la.reconfigId !== m.reconfigId || !la.wire) return;
          this.runLock({ type: 'ackLock', requester: key(m.requester), reconfigId: m.reconfigId }, out);
          const syn = { ...la.wire.syn, deltas: m.deltas };
          this.runLeft({ type: 'ackLock', deltas: m.deltas, syn }, out);
          return;
        }
        const forwardLeft = this.left && { type: 'send' as const, to: this.left.agent, message: { ...m, subsession: this.left.subsession } };
        this.runLock({ type: 'ackLock', requester: key(m.requester), reconfigId: m.reconfigId, ...(forwardLeft ? { forwardLeft } : {}) }, out);
        return;
      }
      case 'nackLock': {
        if (this.selfRequest && this.selfRequest.reconfigId === m.reconfigId) this.endSelfRequest('aborted', m.reason, out);
        if (this.isSelf(m.requester)) {
          const la = this.leftAnchorContext;
          if (this.leftAnchorState === 'Requesting' && la.reconfigId === m.reconfigId) this.runLeft({ type: 'nackLock', reason: m.reason }, out);
          return;
        }
        const forwardLeft = this.left && { type: 'send' as const, to: this.left.agent, message: { ...m, subsession: this.left.subsession } };
        // a duplicate refusal of a request no longer pending here is dropped: the requester's retransmission recovers a lost one
        if (this.lockState !== 'lockPending' || this.lockContext.requester !== key(m.requester)) return;
        this.runLock({ type: 'nackLock', requester: key(m.requester), reconfigId: m.reconfigId, ...(forwardLeft ? { forwardLeft } : {}) }, out);
        // the request is dead: a retransmission of it still on its way from the left must not lock this relay again,
        // for nobody would release it (the requester has given up, and a lost forward is never repeated)
        this.remember(m.requester, m.reconfigId, undefined, out);
        return;
      }
      case 'cancelLock': {
        if (this.selfRequest && this.selfRequest.reconfigId === m.reconfigId) this.endSelfRequest('aborted', m.reason, out);
        // a requestLock or syn overtaken by this cancel must not start anything when it arrives
        if (!this.isSelf(m.requester)) this.remember(m.requester, m.reconfigId, undefined, out);
        const rc = this.rightAnchorContext;
        const ackCancel: ProtocolAction = {
          type: 'send',
          to: from,
          message: { type: 'ackCancel', subsession: m.subsession, reconfigId: m.reconfigId, msgSeq: m.msgSeq, requester: m.requester },
        };
        if (this.rightAnchorState !== 'OnePath' && rc.reconfigId === m.reconfigId && rc.requester && addressEquals(rc.requester, m.requester)) {
          if (this.rightAnchorState === 'TwoPaths') return; // too late to cancel; cannot happen with a correct left anchor
          this.runRight({ type: 'cancelLock', ackCancel, reason: m.reason }, out);
          return;
        }
        if (!this.right) {
          // end of the path: nobody further to clear
          out.push(ackCancel);
          return;
        }
        const forwardRight: ProtocolAction = { type: 'send', to: this.right.agent, message: { ...m, subsession: this.right.subsession } };
        this.runLock({ type: 'cancelLock', requester: key(m.requester), reconfigId: m.reconfigId, forwardRight }, out);
        return;
      }
      case 'ackCancel': {
        if (this.isSelf(m.requester)) {
          if (this.leftAnchorState === 'Canceling' && this.leftAnchorContext.reconfigId === m.reconfigId) this.runLeft({ type: 'ackCancel' }, out);
          return;
        }
        if (this.left) out.push({ type: 'send', to: this.left.agent, message: { ...m, subsession: this.left.subsession } });
        return;
      }
      case 'rightRequest': {
        if (!this.right || !addressEquals(this.right.agent, from)) return;
        const la = this.leftAnchorContext;
        if (this.leftAnchorState !== 'OnePath' && la.reconfigId === m.reconfigId) return; // duplicate: already on it
        if (!nextHop || this.leftAnchorState !== 'OnePath' || this.lockState !== 'unlocked') {
          out.push({
            type: 'send',
            to: from,
            message: { type: 'nackLock', subsession: m.subsession, reconfigId: m.reconfigId, msgSeq: m.msgSeq, requester: this.self, reason: 'busy' },
          });
          return;
        }
        // the requester's identifier is kept, so it can follow its request
        this.startReconfig(m.reconfigId, m.rightAnchor, m.newChain, nextHop, out);
        return;
      }
      case 'syn':
        return this.onSyn(m, from, nextHop, out);
      case 'synAck': {
        const la = this.leftAnchorContext;
        if (this.isSelf(m.requester)) {
          if ((this.leftAnchorState === 'SettingUp' || this.leftAnchorState === 'TwoPaths') && la.reconfigId === m.reconfigId) {
            this.runLeft({ type: 'synAck' }, out);
          }
          return;
        }
        if (this.newPathRelay && this.isRelayOf(m) && this.left) {
          this.newPathRelay = { ...this.newPathRelay, confirmed: true };
          out.push({ type: 'send', to: this.left.agent, message: { ...m, subsession: this.left.subsession } });
        }
        return;
      }
      case 'ack': {
        const rc = this.rightAnchorContext;
        if (rc.reconfigId === m.reconfigId && rc.requester && addressEquals(rc.requester, m.requester)) {
          if (this.rightAnchorState === 'Waiting') this.runRight({ type: 'ack' }, out);
          return;
        }
        if (this.newPathRelay && this.isRelayOf(m) && this.right) {
          // established; the record stays so that repeated synAcks and acks still get through
          this.newPathRelay = { ...this.newPathRelay, confirmed: true };
          out.push({ type: 'send', to: this.right.agent, message: { ...m, subsession: this.right.subsession } });
        }
        return;
      }
      case 'teardown':
        return this.onTeardown(m, out);
    }
  }

  private isRelayOf(m: { requester: Address; reconfigId: number }): boolean {
    return this.newPathRelay !== undefined && this.newPathRelay.requester === key(m.requester) && this.newPathRelay.reconfigId === m.reconfigId;
  }

  private endSelfRequest(result: 'completed' | 'aborted', reason: NackReason | undefined, out: ProtocolAction[]): void {
    const r = this.selfRequest;
    if (!r) return;
    this.selfRequest = undefined;
    if (!r.started) out.push({ type: 'cancelTimer', timer: 'rightRequest' });
    out.push({ type: 'outcome', reconfigId: r.reconfigId, requester: this.self, result, ...(reason ? { reason } : {}) });
  }

  private onRequestLock(m: RequestLock, from: Address, out: ProtocolAction[]): void {
    if (this.selfRequest && this.selfRequest.reconfigId === m.reconfigId && !this.selfRequest.started) {
      // our left neighbour acted on our rightRequest
      this.selfRequest = { ...this.selfRequest, started: true };
      out.push({ type: 'cancelTimer', timer: 'rightRequest' });
    }
    const nackMessage = (reason: NackReason): ProtocolAction => ({
      type: 'send',
      to: from,
      message: { type: 'nackLock', subsession: m.subsession, reconfigId: m.reconfigId, msgSeq: m.msgSeq, requester: m.requester, reason },
    });
    const t = this.tombstone(m.requester, m.reconfigId);
    if (t) {
      // a late duplicate of a finished or cancelled reconfiguration starts nothing; one we refused is refused again
      if (t.refused) out.push(nackMessage(t.refused));
      return;
    }
    if (this.isSelf(m.rightAnchor)) {
      const rc = this.rightAnchorContext;
      const same = rc.reconfigId === m.reconfigId && rc.requester !== undefined && addressEquals(rc.requester, m.requester);
      if (this.rightAnchorState === 'OnePath') {
        const oldHop: Hop = { agent: from, subsession: m.subsession };
        this.runRight(
          {
            type: 'requestLock',
            reconfigId: m.reconfigId,
            requester: m.requester,
            oldHop,
            deltas: m.deltas,
            ackLock: {
              type: 'ackLock',
              subsession: m.subsession,
              reconfigId: m.reconfigId,
              msgSeq: m.msgSeq,
              requester: m.requester,
              rightAnchor: m.rightAnchor,
              deltas: m.deltas,
            },
            teardown: { type: 'teardown', subsession: m.subsession, reconfigId: m.reconfigId, msgSeq: this.nextSeq(), requester: m.requester, fromLeft: false },
          },
          out,
        );
      } else if (same) {
        this.runRight({ type: 'requestLock' } as never, out);
      } else {
        out.push(nackMessage('busy'));
      }
      return;
    }
    if (this.isSelf(m.requester)) return; // our own request came back: ignore
    if (!this.right) {
      out.push(nackMessage('anchorNotFound'));
      return;
    }
    const request: HeldRequest = {
      requester: key(m.requester),
      reconfigId: m.reconfigId,
      forward: {
        type: 'send',
        to: this.right.agent,
        // the box's own deltas, then those its rewrite applies towards the right
        message: { ...m, subsession: this.right.subsession, deltas: composeDeltas(composeDeltas(m.deltas, this.ownDeltas), this.rightDeltas) },
      },
      nack: nackMessage('locked'),
    };
    this.runLock({ type: 'relayRequest', request }, out);
  }

  private onSyn(m: Extract<ControlMessage, { type: 'syn' }>, from: Address, nextHop: Hop | undefined, out: ProtocolAction[]): void {
    const newHop: Hop = { agent: from, subsession: m.subsession };
    if (this.tombstone(m.requester, m.reconfigId)) return;
    if (this.isSelf(m.rightAnchor)) {
      const rc = this.rightAnchorContext;
      if (rc.reconfigId !== m.reconfigId || !rc.requester || !addressEquals(rc.requester, m.requester)) return;
      if (this.rightAnchorState === 'Requested') {
        this.runRight(
          {
            type: 'syn',
            newHop,
            synAck: { type: 'synAck', subsession: m.subsession, reconfigId: m.reconfigId, msgSeq: m.msgSeq, requester: m.requester },
          },
          out,
        );
      } else if (this.rightAnchorState === 'Waiting') {
        this.runRight({ type: 'syn' } as never, out);
      }
      return;
    }
    // a box of the new path
    if (this.newPathRelay) {
      if (this.isRelayOf(m) && this.right) out.push({ type: 'send', to: this.right.agent, message: { ...m, subsession: this.right.subsession, chain: m.chain.slice(1) } });
      return;
    }
    if (this.left || this.right || !nextHop) return; // already on this session's path: a box cannot appear twice
    this.newPathRelay = { requester: key(m.requester), reconfigId: m.reconfigId, confirmed: false };
    this.left = newHop;
    this.right = nextHop;
    // The teardown an anchor sends when it abandons this path is sent once and may be lost. If no synAck
    // has passed by the time the linger timer fires, the left anchor (whose syn retries end long before
    // tombstoneMs) has abandoned the path: leave it then (see onTimeout, 'linger').
    out.push({ type: 'armTimer', timer: 'linger', delay: this.retry.tombstoneMs });
    out.push({ type: 'installRelay', left: newHop, right: nextHop, session: m.session, deltas: this.ownDeltas });
    out.push({ type: 'send', to: nextHop.agent, message: { ...m, subsession: nextHop.subsession, chain: m.chain.slice(1) } });
  }

  private onTeardown(m: Extract<ControlMessage, { type: 'teardown' }>, out: ProtocolAction[]): void {
    const f = this.forwarding;
    if (f) {
      // a late repetition between the anchors: pass it on even though we left the path
      if (f.requester === key(m.requester) && f.reconfigId === m.reconfigId) {
        const next = m.fromLeft ? f.right : f.left;
        if (next) out.push({ type: 'send', to: next.agent, message: { ...m, subsession: next.subsession } });
      }
      return;
    }
    if (this.departed) return;
    const t = this.tombstone(m.requester, m.reconfigId);
    if (t) {
      // The peer missed our teardown: repeat it, marked as a repetition
      // (msgSeq 0) that a finished anchor never answers, so two finished
      // anchors cannot keep answering each other.
      if (t.reply && t.reply.type === 'send' && m.msgSeq !== REPEATED_TEARDOWN) {
        out.push({ ...t.reply, message: { ...t.reply.message, msgSeq: REPEATED_TEARDOWN } });
      }
      return;
    }
    if (m.fromLeft) {
      const rc = this.rightAnchorContext;
      if (rc.reconfigId === m.reconfigId && rc.requester && addressEquals(rc.requester, m.requester)) {
        // only a teardown on the old path says the left anchor is in TwoPaths; one on the new path abandons it (cancelLock follows)
        const viaOldPath = rc.oldHop !== undefined && tupleEquals(rc.oldHop.subsession, m.subsession);
        if (viaOldPath && (this.rightAnchorState === 'Waiting' || this.rightAnchorState === 'TwoPaths')) this.runRight({ type: 'teardown' }, out);
        return;
      }
    } else {
      const lc = this.leftAnchorContext;
      if (this.isSelf(m.requester) && lc.reconfigId === m.reconfigId) {
        if (this.leftAnchorState === 'TwoPaths') this.runLeft({ type: 'teardown' }, out);
        return;
      }
    }
    // a relay of the old path, or of a new path that is being abandoned
    const lc = this.lockContext;
    // it must come over the hop it claims to come from: a new path's teardown reaching a box of the old path is not for it
    const arrivedOn = m.fromLeft ? this.left : this.right;
    if (!arrivedOn || !tupleEquals(arrivedOn.subsession, m.subsession)) return;
    const onOldPath = lc.requester === key(m.requester) && lc.reconfigId === m.reconfigId;
    const abandonedNewPath = this.isRelayOf(m);
    if (!onOldPath && !abandonedNewPath) return;
    const next = m.fromLeft ? this.right : this.left;
    if (next) out.push({ type: 'send', to: next.agent, message: { ...m, subsession: next.subsession } });
    // an anchor only tears down from TwoPaths, when nothing can abort the reconfiguration any more
    if (onOldPath && this.selfRequest?.reconfigId === m.reconfigId) this.endSelfRequest('completed', undefined, out);
    const first = !this.teardownSeen.fromLeft && !this.teardownSeen.fromRight;
    if (m.fromLeft) this.teardownSeen.fromLeft = true;
    else this.teardownSeen.fromRight = true;
    if (abandonedNewPath || (this.teardownSeen.fromLeft && this.teardownSeen.fromRight)) {
      this.depart(m.requester, m.reconfigId, out);
    } else if (first) {
      // if the other anchor's teardown is lost for good, leave anyway after a while
      this.lingering = { requester: m.requester, reconfigId: m.reconfigId };
      out.push({ type: 'armTimer', timer: 'linger', delay: this.retry.tombstoneMs });
    }
  }

  private lingering: { requester: Address; reconfigId: number } | undefined;

  /** Leave the session's path: remove our relay state, keep forwarding late teardowns for a while. */
  private depart(requester: Address, reconfigId: number, out: ProtocolAction[]): void {
    if (this.lingering) {
      out.push({ type: 'cancelTimer', timer: 'linger' });
      this.lingering = undefined;
    }
    if (this.left && this.right) out.push({ type: 'removeRelay', left: this.left, right: this.right });
    // leaving the path through someone else's reconfiguration: our own request cannot happen any more
    if (this.selfRequest) this.endSelfRequest('aborted', 'busy', out);
    this.newPathRelay = undefined;
    this.lockS = machinesFor(this.retry).lockS;
    this.departed = true;
    this.forwarding = { requester: key(requester), reconfigId, left: this.left, right: this.right };
    this.left = undefined;
    this.right = undefined;
    out.push({ type: 'armTimer', timer: 'tombstone', delay: this.retry.tombstoneMs });
  }
}

export type { AnyStateMachine };

/** Marks the ack and teardowns an anchor machine sent (out[from..]) with the side of its new path. */
function markAnchorSends(out: ProtocolAction[], from: number, side: Side): void {
  for (let i = from; i < out.length; i++) {
    const a = out[i]!;
    if (a.type === 'send' && (a.message.type === 'ack' || a.message.type === 'teardown')) out[i] = { ...a, anchorSide: side };
  }
}
