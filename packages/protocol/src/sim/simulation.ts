import { type Address, addressEquals, formatAddress, parseAddress } from '../address.js';
import { type FiveTuple, formatTuple, tuple } from '../tuple.js';
import type { ControlMessage } from '../messages.js';
import { SessionProtocol } from '../reconfig/session-protocol.js';
import { DEFAULT_RETRY, type Hop, type ProtocolAction, type RetryPolicy, type Side, type TimerName } from '../reconfig/types.js';
import { type LinkModel, Network, PERFECT_LINK } from './network.js';
import { Rng } from './rng.js';

/**
 * A deterministic simulation of one session through a chain of agents while
 * reconfigurations are requested on it, with lossy, duplicating and
 * reordering links. Every run is a function of its options (the seed
 * included), so a failing schedule replays exactly.
 *
 * This file holds the control plane; the data plane (reference rewriter and
 * end-host transports) is added by `DataSimulation` in data-simulation.ts.
 */

export type ReconfigOp =
  | { readonly kind: 'remove'; readonly box: string; readonly style: 'self' | 'left' }
  | { readonly kind: 'insert'; readonly after: string; readonly box: string }
  | { readonly kind: 'replace'; readonly box: string; readonly with: string; readonly style: 'self' | 'left' };

export interface PlannedOp {
  readonly at: number;
  readonly op: ReconfigOp;
}

export interface SimOptions {
  readonly seed: number;
  /** Middleboxes on the initial chain, 0..5. */
  readonly boxes: number;
  /** Boxes off the chain that operations may insert. */
  readonly spares: number;
  /** Spare boxes that are down: a new path through them fails. */
  readonly downSpares?: number;
  readonly family?: 4 | 6;
  readonly link?: LinkModel;
  readonly retry?: RetryPolicy;
  /** Operations, or a number of random ones drawn from the seed. */
  readonly ops?: readonly PlannedOp[] | number;
  /** Random operations are requested within this window (ms) from `opsStart`. */
  readonly opsStart?: number;
  readonly opsSpread?: number;
  /** Record a timeline of what happened (for the demo and for failing seeds). */
  readonly trace?: boolean;
  /**
   * Agent restarts: this many times, at random moments within the operations'
   * window, a random agent that has session state loses it as a killed process
   * would (its timers die with it) and takes it up again from its persisted
   * snapshot (a JSON round trip), re-arming its timers with resume().
   */
  readonly restarts?: number;
}

export interface OutcomeRecord {
  readonly op: ReconfigOp;
  readonly reconfigId: number;
  readonly requestedAt: number;
  readonly result: 'completed' | 'aborted';
  readonly reason?: string;
  readonly at: number;
}

export interface TimelineEntry {
  readonly t: number;
  readonly text: string;
}

/** One agent: an address, and its part in the session when it has one. */
export class SimAgent {
  proto: SessionProtocol | undefined;
  readonly timerGen = new Map<TimerName, number>();
  private nextPort = 10000;
  readonly usedPorts = new Set<number>();
  constructor(
    readonly name: string,
    readonly address: Address,
  ) {}

  allocatePort(rng: Rng): number {
    for (;;) {
      const p = 10000 + rng.int(0, 50000);
      if (!this.usedPorts.has(p)) {
        this.usedPorts.add(p);
        return p;
      }
      this.nextPort++;
    }
  }
}

/** What the simulated network carries: control messages between agents, and (in the data simulation) IP packets. */
export type NetMessage =
  | { readonly kind: 'control'; readonly from: Address; readonly message: ControlMessage; readonly bytes?: Uint8Array }
  | { readonly kind: 'packet'; readonly bytes: Uint8Array };
type Wire = Extract<NetMessage, { kind: 'control' }>;

export class Simulation {
  readonly net: Network<NetMessage>;
  readonly rng: Rng;
  readonly agents = new Map<string, SimAgent>();
  readonly byName = new Map<string, SimAgent>();
  readonly client: SimAgent;
  readonly server: SimAgent;
  readonly session: FiveTuple;
  readonly retry: RetryPolicy;
  readonly outcomes: OutcomeRecord[] = [];
  readonly violations: string[] = [];
  readonly timeline: TimelineEntry[] = [];
  readonly requested: { op: ReconfigOp; reconfigId: number; at: number }[] = [];
  /** Segments granted (ackLock received) and not yet finished: reconfigId -> subsession keys. */
  private readonly granted = new Map<number, Set<string>>();
  private nextReconfigId = 1;
  private readonly departedLogged = new WeakSet<SessionProtocol>();
  private readonly everGranted = new Set<number>();
  protected readonly options: SimOptions;

  constructor(o: SimOptions) {
    this.options = o;
    this.rng = new Rng(o.seed ^ 0x5eed);
    this.retry = o.retry ?? DEFAULT_RETRY;
    this.net = new Network<NetMessage>(o.seed, o.link ?? PERFECT_LINK, (to, m) => (m.kind === 'control' ? this.deliverControl(to, m) : this.deliverPacket(to, m.bytes)));
    const fam = o.family ?? 4;
    const addr = (i: number) => parseAddress(fam === 4 ? `10.0.0.${i}` : `fd00::${i.toString(16)}`);
    const mk = (name: string, i: number) => {
      const a = new SimAgent(name, addr(i));
      this.agents.set(formatAddress(a.address), a);
      this.byName.set(name, a);
      return a;
    };
    this.client = mk('client', 1);
    const boxes = Array.from({ length: o.boxes }, (_, i) => mk(`m${i + 1}`, 10 + i));
    for (let i = 0; i < o.spares; i++) {
      const s = mk(`s${i + 1}`, 30 + i);
      if (i < (o.downSpares ?? 0)) this.net.down.add(formatAddress(s.address));
    }
    this.server = mk('server', 2);
    this.session = tuple(this.client.address, 40000 + this.rng.int(0, 9999), this.server.address, 80);
    this.initialChain = [this.client, ...boxes, this.server];
  }

  protected readonly initialChain: SimAgent[];
  private started = false;

  /** Sets the session up along the initial chain (the data simulation does it with a real SYN). */
  protected start(): void {
    this.buildInitialPath(this.initialChain);
  }

  protected log(text: string): void {
    if (this.options.trace) this.timeline.push({ t: this.net.now, text });
  }

  /** Subsession between two agents, ports chosen by the left one. */
  protected allocateHop(left: SimAgent, right: Address): Hop {
    const sport = left.allocatePort(this.rng);
    const dport = left.allocatePort(this.rng);
    return { agent: right, subsession: tuple(left.address, sport, right, dport) };
  }

  /** The chain as the session's SYN set it up (the data simulation sets it up with real SYNs instead). */
  protected buildInitialPath(path: SimAgent[]): void {
    const hops: Hop[] = [];
    for (let i = 0; i + 1 < path.length; i++) hops.push(this.allocateHop(path[i]!, path[i + 1]!.address));
    path.forEach((a, i) => {
      const left = i > 0 ? { agent: path[i - 1]!.address, subsession: hops[i - 1]!.subsession } : undefined;
      a.proto = new SessionProtocol({ self: a.address, session: this.session, left, right: hops[i], retry: this.retry });
    });
  }

  agentAt(a: Address): SimAgent {
    const x = this.agents.get(formatAddress(a));
    if (!x) throw new Error(`no agent at ${formatAddress(a)}`);
    return x;
  }

  /** The current path, walked from the client through each agent's right hop. */
  path(): SimAgent[] {
    const out: SimAgent[] = [this.client];
    let cur = this.client;
    const seen = new Set<string>([cur.name]);
    while (cur.proto?.right) {
      const next = this.agentAt(cur.proto.right.agent);
      if (seen.has(next.name)) {
        this.violations.push(`path loops at ${next.name}`);
        break;
      }
      seen.add(next.name);
      out.push(next);
      cur = next;
    }
    return out;
  }

  // ---- control messages ------------------------------------------------------

  /** The data simulation carries packets; the control simulation has none. */
  protected deliverPacket(to: Address, bytes: Uint8Array): void {
    void to;
    void bytes;
  }

  /** Puts a control message on the wire (the data simulation encodes and signs it). */
  /** `anchorSide`: an anchor's ack or teardown (see the send action); the data simulation adds its old-path end. */
  protected sendControl(from: SimAgent, to: Address, message: ControlMessage, _anchorSide?: Side): void {
    this.net.send(to, { kind: 'control', from: from.address, message });
  }

  /** What the receiver makes of a control message (the data simulation decodes and verifies it); undefined drops it. */
  protected receiveControl(agent: SimAgent, w: Wire): ControlMessage | undefined {
    void agent;
    return w.message;
  }

  private deliverControl(to: Address, w: Wire): void {
    const agent = this.agentAt(to);
    const m = this.receiveControl(agent, w);
    if (!m) return;
    let proto = agent.proto;
    if (!proto || (proto.departed && m.type === 'syn')) {
      // only the syn of a new path brings a box into a session it is not part of
      if (m.type !== 'syn') return;
      proto = agent.proto = this.newProtocol(agent, m.session);
    }
    let nextHop: Hop | undefined;
    if (m.type === 'syn' && !addressEquals(m.rightAnchor, agent.address) && !proto.right) {
      nextHop = this.allocateHop(agent, m.chain[0] ?? m.rightAnchor);
    } else if (m.type === 'rightRequest') {
      nextHop = this.allocateHop(agent, m.newChain[0] ?? m.rightAnchor);
    }
    this.log(`${agent.name} <- ${this.describe(w.from)}: ${m.type} #${m.reconfigId}`);
    this.execute(agent, proto.handle({ type: 'message', message: m, from: w.from, ...(nextHop ? { nextHop } : {}) }));
    this.afterMessage(agent, proto, m);
  }

  /** What the data plane does with a message the protocol has handled (nothing without one). */
  protected afterMessage(_agent: SimAgent, _proto: SessionProtocol, _m: ControlMessage): void {}

  protected newProtocol(agent: SimAgent, session: FiveTuple): SessionProtocol {
    return new SessionProtocol({ self: agent.address, session, retry: this.retry });
  }

  describe(a: Address): string {
    return this.agents.get(formatAddress(a))?.name ?? formatAddress(a);
  }

  // ---- actions -----------------------------------------------------------------

  protected execute(agent: SimAgent, actions: ProtocolAction[]): void {
    const proto = agent.proto;
    for (const a of actions) {
      switch (a.type) {
        case 'send':
          this.sendControl(agent, a.to, a.message, a.anchorSide);
          break;
        case 'armTimer': {
          const gen = (agent.timerGen.get(a.timer) ?? 0) + 1;
          agent.timerGen.set(a.timer, gen);
          const p = proto;
          this.net.at(a.delay, () => {
            if (agent.timerGen.get(a.timer) !== gen || agent.proto !== p || !p) return;
            this.execute(agent, p.handle({ type: 'timeout', timer: a.timer }));
          });
          break;
        }
        case 'cancelTimer':
          agent.timerGen.set(a.timer, (agent.timerGen.get(a.timer) ?? 0) + 1);
          break;
        case 'outcome':
          this.onOutcome(agent, a);
          break;
        default:
          this.dataPlaneAction(agent, a);
      }
    }
    this.checkGrants(agent);
    if (proto && proto.departed && agent.proto === proto && !this.departedLogged.has(proto)) {
      this.departedLogged.add(proto);
      this.log(`${agent.name} leaves the session`);
    }
    if (proto && proto.gone && agent.proto === proto) {
      agent.proto = undefined;
      agent.timerGen.clear();
    }
  }

  /** Control-only simulation: an anchor's old path drains a little after it starts using the new one. */
  protected dataPlaneAction(agent: SimAgent, a: ProtocolAction): void {
    this.log(`${agent.name}: ${a.type}${'side' in a ? ` (${a.side})` : ''}`);
    if (a.type === 'enterTwoPaths') {
      const p = agent.proto;
      this.net.at(this.rng.int(1, 40), () => {
        if (p && agent.proto === p) this.execute(agent, p.handle({ type: 'oldPathDrained' }));
      });
    }
  }

  private onOutcome(agent: SimAgent, a: Extract<ProtocolAction, { type: 'outcome' }>): void {
    const req = this.requested.find((r) => r.reconfigId === a.reconfigId);
    // the segment is free again once its left anchor is done with it
    if (agent.proto?.leftAnchorContext.reconfigId === a.reconfigId) this.granted.delete(a.reconfigId);
    // both anchors report; the requester's report (or the self-requesting box's) is the one that counts
    const requester = req && this.isRequesterOf(agent, req);
    this.log(`${agent.name}: reconfiguration #${a.reconfigId} ${a.result}${a.reason ? ` (${a.reason})` : ''}`);
    if (!req || !requester) return;
    if (this.outcomes.some((o) => o.reconfigId === a.reconfigId)) {
      this.violations.push(`reconfiguration #${a.reconfigId} reported twice at ${agent.name}`);
      return;
    }
    this.outcomes.push({ op: req.op, reconfigId: a.reconfigId, requestedAt: req.at, result: a.result, ...(a.reason ? { reason: a.reason } : {}), at: this.net.now });
  }

  private requesterAgents = new Map<number, string>();

  private isRequesterOf(agent: SimAgent, req: { reconfigId: number }): boolean {
    return this.requesterAgents.get(req.reconfigId) === agent.name;
  }

  /**
   * Safety: when a left anchor's segment is granted, every subsession of it
   * is locked for that reconfiguration, and no other granted segment that is
   * still in progress shares a subsession with it.
   */
  private checkGrants(agent: SimAgent): void {
    const p = agent.proto;
    if (!p) return;
    const st = p.leftAnchorState;
    const id = p.leftAnchorContext.reconfigId;
    if ((st === 'SettingUp' || st === 'TwoPaths') && id !== undefined && !this.everGranted.has(id)) {
      this.everGranted.add(id);
      const segment = new Set<string>();
      let cur: SimAgent = agent;
      const right = p.leftAnchorContext.oldHop;
      let hop = right;
      for (let guard = 0; hop && guard < 32; guard++) {
        const lock = cur.proto?.lockContext;
        if (!cur.proto || cur.proto.lockState !== 'locked' || lock?.reconfigId !== id) {
          this.violations.push(`#${id} granted but ${cur.name}'s subsession is ${cur.proto?.lockState ?? 'gone'}`);
        }
        segment.add(formatTuple(hop.subsession));
        const next = this.agentAt(hop.agent);
        if (next.proto?.rightAnchorContext.reconfigId === id && next.proto.rightAnchorState !== 'OnePath') break;
        cur = next;
        hop = next.proto?.right;
      }
      for (const [other, seg] of this.granted) {
        for (const s of segment) {
          if (seg.has(s)) this.violations.push(`overlapping segments both locked: #${id} and #${other} share ${s}`);
        }
      }
      this.granted.set(id, segment);
    }
  }

  // ---- operations --------------------------------------------------------------

  /** Requests one operation now, on the path as it is; returns false if it does not apply. */
  request(op: ReconfigOp): boolean {
    const path = this.path();
    const idx = (name: string) => path.findIndex((a) => a.name === name);
    const reconfigId = this.nextReconfigId++;
    const note = (requester: SimAgent) => {
      this.requested.push({ op, reconfigId, at: this.net.now });
      this.requesterAgents.set(reconfigId, requester.name);
      this.log(`request #${reconfigId}: ${describeOp(op)} (at ${requester.name})`);
    };
    switch (op.kind) {
      case 'remove':
      case 'replace': {
        const i = idx(op.box);
        if (i <= 0 || i >= path.length - 1) return false;
        const newChain = op.kind === 'replace' ? [this.byName.get(op.with)!.address] : [];
        if (op.kind === 'replace' && idx(op.with) >= 0) return false;
        const box = path[i]!;
        if (op.style === 'self') {
          note(box);
          this.execute(box, box.proto!.handle({ type: 'requestSelfReconfig', reconfigId, newChain }));
        } else {
          const left = path[i - 1]!;
          const right = path[i + 1]!;
          note(left);
          const newHop = this.allocateHop(left, newChain[0] ?? right.address);
          this.execute(left, left.proto!.handle({ type: 'reconfigure', reconfigId, rightAnchor: right.address, newChain, newHop }));
        }
        return true;
      }
      case 'insert': {
        const i = idx(op.after);
        if (i < 0 || i >= path.length - 1 || idx(op.box) >= 0) return false;
        const left = path[i]!;
        const right = path[i + 1]!;
        const box = this.byName.get(op.box)!;
        note(left);
        const newHop = this.allocateHop(left, box.address);
        this.execute(left, left.proto!.handle({ type: 'reconfigure', reconfigId, rightAnchor: right.address, newChain: [box.address], newHop }));
        return true;
      }
    }
  }

  /** Draws a random operation that applies to the path as it is now. */
  randomOp(): ReconfigOp | undefined {
    const path = this.path();
    const boxes = path.slice(1, -1);
    const onPath = new Set(path.map((a) => a.name));
    const spares = [...this.byName.values()].filter((a) => a !== this.client && a !== this.server && !onPath.has(a.name));
    const kinds: ReconfigOp['kind'][] = [];
    if (boxes.length > 0) kinds.push('remove');
    if (spares.length > 0) kinds.push('insert');
    if (boxes.length > 0 && spares.length > 0) kinds.push('replace');
    if (kinds.length === 0) return undefined;
    const kind = this.rng.pick(kinds);
    const style = this.rng.chance(0.5) ? 'self' : 'left';
    if (kind === 'remove') return { kind, box: this.rng.pick(boxes).name, style };
    if (kind === 'insert') return { kind, after: this.rng.pick(path.slice(0, -1)).name, box: this.rng.pick(spares).name };
    return { kind, box: this.rng.pick(boxes).name, with: this.rng.pick(spares).name, style };
  }

  scheduleOps(): void {
    const o = this.options.ops ?? 0;
    if (typeof o === 'number') {
      const start = this.options.opsStart ?? 5;
      const spread = this.options.opsSpread ?? 50;
      // an operator reconfigures established sessions: wait until the path reaches the server
      const attempt = () => {
        const path = this.path();
        if (path[path.length - 1] !== this.server) {
          this.net.at(10, attempt);
          return;
        }
        const op = this.randomOp();
        if (op) this.request(op);
      };
      for (let i = 0; i < o; i++) this.net.at(start + this.rng.next() * spread, attempt);
    } else {
      for (const p of o) this.net.at(p.at, () => void this.request(p.op));
    }
  }

  /** Runs to quiescence and checks the end state. */
  run(maxEvents = 2_000_000): SimResult {
    this.begin();
    this.scheduleOps();
    this.scheduleRestarts();
    return this.finish(maxEvents);
  }

  /** Restarts drawn from the seed (see SimOptions.restarts). */
  scheduleRestarts(): void {
    const start = this.options.opsStart ?? 5;
    const spread = this.options.opsSpread ?? 200;
    for (let i = 0; i < (this.options.restarts ?? 0); i++) this.net.at(start + this.rng.int(0, spread), () => this.restart());
  }

  /** Restarts so far, and how many of them hit an agent in the middle of a reconfiguration. */
  readonly restarted = { total: 0, midReconfiguration: 0 };

  /** One agent with session state is killed and restarted from its snapshot. */
  restart(agent?: SimAgent): void {
    const candidates = [...this.agents.values()].filter((a) => a.proto);
    const a = agent ?? candidates[this.rng.int(0, candidates.length - 1)];
    if (!a?.proto) return;
    const saved = JSON.parse(JSON.stringify(a.proto.snapshot())) as ReturnType<SessionProtocol['snapshot']>;
    const p = SessionProtocol.restore({ self: a.address, session: a.proto.session, retry: this.retry }, saved);
    a.timerGen.clear();
    a.proto = p;
    this.restarted.total++;
    if (!p.idle) this.restarted.midReconfiguration++;
    this.log(`${a.name} restarted (lock ${p.lockState}, leftAnchor ${p.leftAnchorState}, rightAnchor ${p.rightAnchorState})`);
    this.execute(a, p.resume());
    // the data plane survives the restart: an old path it had drained (or drains later) is read from the kernel
    if (p.leftAnchorState === 'TwoPaths' || p.rightAnchorState === 'TwoPaths') {
      this.net.at(this.rng.int(1, 40), () => {
        if (a.proto === p) this.execute(a, p.handle({ type: 'oldPathDrained' }));
      });
    }
  }

  /** Sets the session up once; tests that drive the schedule themselves call it first. */
  begin(): void {
    if (this.started) return;
    this.started = true;
    this.start();
  }

  /** Delivers what is still in flight, runs to quiescence and checks the end state. */
  finish(maxEvents = 2_000_000): SimResult {
    this.begin();
    this.net.release();
    const events = this.net.run(Infinity, maxEvents);
    if (this.net.queue.size > 0) this.violations.push(`did not settle within ${maxEvents} events`);
    this.checkEnd();
    return this.result(events);
  }

  protected checkEnd(): void {
    const path = this.path();
    if (path[path.length - 1] !== this.server) this.violations.push(`path from the client does not reach the server: ${path.map((a) => a.name).join(' -> ')}`);
    for (let i = 0; i < path.length; i++) {
      const a = path[i]!;
      const p = a.proto;
      if (!p) {
        this.violations.push(`${a.name} is on the path without session state`);
        continue;
      }
      if (!p.idle) {
        this.violations.push(
          `${a.name} not idle at the end: lock ${p.lockState}${p.lockContext.held ? ' (holding a request)' : ''}, leftAnchor ${p.leftAnchorState}, rightAnchor ${p.rightAnchorState}`,
        );
      }
      const prev = path[i - 1];
      if (prev && (!p.left || !addressEquals(p.left.agent, prev.address) || formatTuple(p.left.subsession) !== formatTuple(prev.proto!.right!.subsession))) {
        this.violations.push(`${a.name}'s left hop does not match ${prev.name}'s right hop`);
      }
    }
    const onPath = new Set(path);
    for (const a of this.agents.values()) {
      if (!onPath.has(a) && a.proto && !a.proto.gone) this.offPathLeftover(a);
    }
    for (const r of this.requested) {
      const n = this.outcomes.filter((o) => o.reconfigId === r.reconfigId).length;
      if (n !== 1) this.violations.push(`reconfiguration #${r.reconfigId} (${describeOp(r.op)}) has ${n} outcomes`);
    }
  }

  /**
   * An agent off the path still holding the session. Without data traffic
   * there is nothing to reclaim it by idleness, so it is a leak unless it
   * is a relay whose teardown was lost (the data simulation reclaims those).
   */
  protected offPathLeftover(a: SimAgent): void {
    const p = a.proto!;
    this.violations.push(`${a.name} is off the path but still holds the session (lock ${p.lockState}, leftAnchor ${p.leftAnchorState}, rightAnchor ${p.rightAnchorState})`);
  }

  protected result(events: number): SimResult {
    return {
      seed: this.options.seed,
      events,
      time: this.net.now,
      violations: [...this.violations],
      outcomes: [...this.outcomes],
      path: this.path().map((a) => a.name),
      sent: this.net.sent,
      lost: this.net.lost,
      timeline: this.timeline,
    };
  }
}

export interface SimResult {
  readonly seed: number;
  readonly events: number;
  readonly time: number;
  readonly violations: readonly string[];
  readonly outcomes: readonly OutcomeRecord[];
  readonly path: readonly string[];
  readonly sent: number;
  readonly lost: number;
  readonly timeline: readonly TimelineEntry[];
}

export function describeOp(op: ReconfigOp): string {
  switch (op.kind) {
    case 'remove':
      return `remove ${op.box}${op.style === 'self' ? ' (by itself)' : ''}`;
    case 'insert':
      return `insert ${op.box} after ${op.after}`;
    case 'replace':
      return `replace ${op.box} with ${op.with}${op.style === 'self' ? ' (by itself)' : ''}`;
  }
}
