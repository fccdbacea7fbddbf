import { createHash } from 'node:crypto';
import { type Address, addressEquals, formatAddress } from '../address.js';
import type { ControlMessage } from '../messages.js';
import { TCP_ACK, TCP_FIN, TCP_SYN, buildTcpPacket, parsePacket, type TcpOption, type TcpPacket } from '../packet.js';
import { SessionProtocol } from '../reconfig/session-protocol.js';
import { anchorEgressKey, applyPathAction, isPathAction, takePeerEndOf, withOldPathEnd } from '../reconfig/dataplane.js';
import type { ProtocolAction, Side } from '../reconfig/types.js';
import { type DataPlaneEvent, PortAllocator, Rewriter } from '../rewriter.js';
import { type FiveTuple, formatTuple, reverseTuple, tupleEquals } from '../tuple.js';
import { seqAdd, seqGt } from '../seq.js';
import { KeyRing, ReplayCounter, ReplayWindow } from '../wire/auth.js';
import { decodeControl, encodeControl } from '../wire/control.js';
import { Rng } from './rng.js';
import { type NetMessage, type SimAgent, type SimOptions, type SimResult, Simulation } from './simulation.js';
import { type Segment, StreamEndpoint } from './transport.js';

/**
 * The simulation with its data plane: every agent has a reference rewriter
 * and a session table; the client and the server run a small reliable
 * transport that sends real TCP packets; middleboxes forward what their
 * agent hands them. The session is set up by the client's SYN carrying the
 * chain, exactly as the data plane does it, and control messages travel
 * encoded and signed. At the end both byte streams must have arrived intact.
 */

export interface DataSimOptions extends SimOptions {
  /** Bytes the client sends and the server sends. */
  readonly bytes?: readonly [number, number];
  readonly mss?: number;
  readonly window?: number;
  /** Transport retransmission timeout, ms. */
  readonly rto?: number;
  /** Sign control messages and SYN metadata with this secret. */
  readonly secret?: Uint8Array;
  /** How long an unused entry lives before idle reclamation, ms. */
  readonly idleTimeout?: number;
}

export interface DataSimResult extends SimResult {
  readonly delivered: { readonly clientToServer: boolean; readonly serverToClient: boolean };
  readonly bytes: readonly [number, number];
  readonly retransmissions: number;
  readonly counters: Readonly<Record<string, number>>;
  /** Per-second-ish throughput samples: [time ms, bytes delivered in both directions so far]. */
  readonly progress: readonly (readonly [number, number])[];
}

interface DataAgent {
  readonly rewriter: Rewriter;
  readonly counter: ReplayCounter;
  readonly replay: ReplayWindow;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export class DataSimulation extends Simulation {
  private readonly data = new Map<SimAgent, DataAgent>();
  private readonly keys: KeyRing | undefined;
  readonly clientStream: StreamEndpoint;
  readonly serverStream: StreamEndpoint;
  private readonly sent: [Uint8Array, Uint8Array];
  private readonly counters = new Map<string, number>();
  private readonly transportTimer = new Map<StreamEndpoint, number>();
  private readonly progress: [number, number][] = [];
  private readonly o: DataSimOptions;

  constructor(o: DataSimOptions) {
    super(o);
    this.o = o;
    this.keys = o.secret ? new KeyRing([{ keyId: 1, secret: o.secret }]) : undefined;
    const rng = new Rng(o.seed ^ 0xda7a);
    const [up, down] = o.bytes ?? [4000, 4000];
    const fill = (n: number) => Uint8Array.from({ length: n }, () => rng.int(0, 255));
    this.sent = [fill(up), fill(down)];
    const t = { mss: o.mss ?? 500, window: o.window ?? 8, rto: o.rto ?? 100 };
    this.clientStream = new StreamEndpoint({ ...t, isn: rng.u32(), data: this.sent[0], active: true });
    this.serverStream = new StreamEndpoint({ ...t, isn: rng.u32(), data: this.sent[1], active: false });
    let i = 0;
    for (const a of this.agents.values()) {
      const rewriter = new Rewriter({
        localAddresses: [a.address],
        ...(this.keys ? { keys: this.keys } : {}),
        ports: new PortAllocator({ seed: o.seed * 31 + i++ }),
        now: () => this.net.now,
        seed: o.seed + i,
      });
      this.data.set(a, { rewriter, counter: new ReplayCounter(1n), replay: new ReplayWindow() });
    }
    const chain = this.initialChain.slice(1).map((a) => a.address);
    this.dp(this.client).rewriter.table.addPolicy({ id: 1, dport: [this.session.dport, this.session.dport], chain: chain.slice(0, -1) });
  }

  override run(maxEvents?: number): DataSimResult {
    return super.run(maxEvents) as DataSimResult;
  }

  override finish(maxEvents?: number): DataSimResult {
    return super.finish(maxEvents) as DataSimResult;
  }

  private dp(a: SimAgent): DataAgent {
    return this.data.get(a)!;
  }

  private bump(name: string): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + 1);
  }

  /** The session starts with the client's SYN; agents join it as the SYN passes. */
  protected override start(): void {
    this.transmit(this.client, this.clientStream, this.clientStream.open(this.net.now));
  }

  /** Subsession ports come from the agent's data-plane allocator, collision-checked against its table. */
  protected override allocateHop(left: SimAgent, right: Address) {
    const r = this.dp(left).rewriter;
    const port = r.ports.allocate((p) => r.table.getIngress({ src: right, dst: left.address, sport: p, dport: p }) !== undefined);
    if (port === undefined) throw new Error(`${left.name} has no port left`);
    const sub = { src: left.address, dst: right, sport: port, dport: port };
    return { agent: right, subsession: sub };
  }

  // ---- packets -------------------------------------------------------------

  private toPacket(tuple: FiveTuple, s: Segment): Uint8Array {
    const options: TcpOption[] = [];
    if (s.syn) options.push({ kind: 'mss', mss: 1460 }, { kind: 'sackPermitted' });
    if (s.sack.length > 0) options.push({ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: s.sack.map(([left, right]) => ({ left, right })) });
    const flags = (s.syn ? TCP_SYN : 0) | (s.fin ? TCP_FIN : 0) | (s.hasAck ? TCP_ACK : 0);
    return buildTcpPacket({ tuple, seq: s.seq, ack: s.hasAck ? s.ack : 0, flags, window: s.window, options, payload: s.payload });
  }

  private toSegment(bytes: Uint8Array): Segment | undefined {
    const p = parsePacket(bytes);
    if (p.kind !== 'tcp') return undefined;
    const sack = p.options.find((o) => o.kind === 'sack');
    return {
      seq: p.seq,
      ack: p.ack,
      syn: (p.flags & TCP_SYN) !== 0,
      fin: (p.flags & TCP_FIN) !== 0,
      hasAck: (p.flags & TCP_ACK) !== 0,
      window: p.window,
      sack: sack && sack.kind === 'sack' ? sack.blocks.map((b) => [b.left, b.right] as const) : [],
      payload: p.payload.slice(),
    };
  }

  /** An end host's transport emits segments: through its agent's egress onto the wire. */
  private transmit(host: SimAgent, stream: StreamEndpoint, segs: Segment[]): void {
    const tuple = host === this.client ? this.session : reverseTuple(this.session);
    for (const s of segs) this.egress(host, this.toPacket(tuple, s));
    this.armTransport(host, stream);
  }

  private armTransport(host: SimAgent, stream: StreamEndpoint): void {
    const d = stream.nextDeadline();
    if (d === undefined) return;
    const cur = this.transportTimer.get(stream);
    if (cur !== undefined && cur <= d && cur > this.net.now) return;
    this.transportTimer.set(stream, d);
    this.net.at(Math.max(0, d - this.net.now), () => {
      if (this.transportTimer.get(stream) === d) this.transportTimer.delete(stream);
      this.transmit(host, stream, stream.onTimer(this.net.now));
    });
  }

  /** An agent's data plane handles a packet: its events go to the agent, drops are counted, TCP outputs come back. */
  private rewrite(agent: SimAgent, dir: 'egress' | 'ingress', pkt: Uint8Array): { verdict: 'pass' | 'rewrite'; outputs: [Uint8Array, TcpPacket][] } | undefined {
    const r = this.dp(agent).rewriter[dir](pkt);
    this.onEvents(agent, r.events);
    if (r.verdict === 'drop') {
      this.bump(`drop:${r.reason}`);
      return undefined;
    }
    const outputs: [Uint8Array, TcpPacket][] = [];
    for (const out of r.packets) {
      const p = parsePacket(out);
      if (p.kind === 'tcp') outputs.push([out, p]);
    }
    return { verdict: r.verdict, outputs };
  }

  private egress(agent: SimAgent, pkt: Uint8Array): void {
    const r = this.rewrite(agent, 'egress', pkt);
    if (!r) return;
    for (const [out, p] of r.outputs) {
      if (r.verdict === 'pass' && agent !== this.client && agent !== this.server) this.bump('strayAtBox');
      if (r.verdict === 'pass' && (agent === this.client || agent === this.server)) {
        this.violations.push(`${agent.name} sent a session packet unsteered (${formatTuple(p.tuple)})`);
      }
      this.net.send(p.tuple.dst, { kind: 'packet', bytes: out });
    }
  }

  protected override deliverPacket(to: Address, bytes: Uint8Array): void {
    const agent = this.agentAt(to);
    const r = this.rewrite(agent, 'ingress', bytes);
    if (!r) return;
    for (const [out, p] of r.outputs) {
      const host = agent === this.client || agent === this.server;
      if (r.verdict === 'pass') {
        // nothing maps this subsession here (any more): a straggler of a path that is gone
        this.bump(host ? 'strayAtHost' : 'strayAtBox');
        continue;
      }
      if (host) {
        const stream = agent === this.client ? this.clientStream : this.serverStream;
        const want = agent === this.client ? reverseTuple(this.session) : this.session;
        if (!tupleEquals(p.tuple, want)) {
          this.violations.push(`${agent.name}'s stack got ${formatTuple(p.tuple)}, not its session`);
          continue;
        }
        const seg = this.toSegment(out);
        if (seg) this.transmit(agent, stream, stream.onSegment(seg, this.net.now));
        this.sample();
      } else {
        // the middlebox application: forward what it receives
        this.watchBox(agent, out);
        this.egress(agent, out);
      }
    }
  }

  /**
   * A box that has carried the session since its SYN must never see an ack
   * for data it did not carry (a TCP-terminating box would reset the
   * connection): acks in one direction stay at or below the end of the data
   * it forwarded in the other. Boxes that joined later start mid-stream and
   * are not held to it.
   */
  private readonly boxHigh = new Map<SimAgent, [number | undefined, number | undefined]>();
  private readonly ackReported = new Set<SimAgent>();

  private watchBox(agent: SimAgent, pkt: Uint8Array): void {
    const p = parsePacket(pkt);
    if (p.kind !== 'tcp') return;
    const dir = tupleEquals(p.tuple, this.session) ? 0 : 1;
    const syn = (p.flags & TCP_SYN) !== 0;
    if (syn && !(p.flags & TCP_ACK) && !this.boxHigh.has(agent) && this.initialChain.includes(agent)) this.boxHigh.set(agent, [undefined, undefined]);
    const high = this.boxHigh.get(agent);
    if (!high) return;
    const len = p.payload.length + (syn ? 1 : 0) + (p.flags & TCP_FIN ? 1 : 0);
    if (len > 0) {
      const end = seqAdd(p.seq, len);
      const h = high[dir];
      high[dir] = h === undefined || seqGt(end, h) ? end : h;
    }
    const other = high[1 - dir];
    if (p.flags & TCP_ACK && other !== undefined && seqGt(p.ack, other) && !this.ackReported.has(agent)) {
      this.ackReported.add(agent);
      this.violations.push(`${agent.name} forwarded ack ${p.ack} beyond the data it carried (${other})`);
    }
  }

  /** A box that leaves the path stops carrying the session; if it comes back it joins mid-stream. */
  protected override execute(agent: SimAgent, actions: ProtocolAction[]): void {
    if (actions.some((a) => a.type === 'removeRelay')) this.boxHigh.delete(agent);
    super.execute(agent, actions);
  }

  private sample(): void {
    const total = this.clientStream.deliveredLength + this.serverStream.deliveredLength;
    const last = this.progress[this.progress.length - 1];
    if (!last || this.net.now - last[0] >= 5 || total === this.sent[0].length + this.sent[1].length) this.progress.push([this.net.now, total]);
  }

  private onEvents(agent: SimAgent, events: readonly DataPlaneEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'sessionCreated': {
          const hop = e.side === 'right' ? { agent: e.subsession.dst, subsession: e.subsession } : { agent: e.subsession.src, subsession: e.subsession };
          if (!agent.proto || agent.proto.departed) {
            agent.proto = this.newProtocol(agent, e.session);
            agent.timerGen.clear();
          }
          if (e.side === 'right') agent.proto.right = hop;
          else agent.proto.left = hop;
          const sub = formatTuple(e.subsession);
          this.log(
            e.role === 'originator'
              ? `${agent.name}: SYN matched a policy, steered onto subsession ${sub} with the rest of the chain in its payload`
              : e.side === 'left'
                ? `${agent.name}: SYN arrived on ${sub}, chain metadata stripped${e.role === 'lastHop' ? ': last hop' : ''}`
                : `${agent.name}: SYN forwarded onto subsession ${sub} with the shortened chain`,
          );
          break;
        }
        case 'oldPathDrained': {
          const p = agent.proto;
          if (!p) break;
          const side = tupleEquals(e.egressKey, this.session) ? 'right' : 'left';
          this.net.at(0, () => {
            if (agent.proto === p) this.execute(agent, p.handle({ type: 'oldPathDrained', side }));
          });
          break;
        }
        case 'sessionEnded':
          this.log(`${agent.name}: session ${e.reason === 'fin' ? 'closed' : 'reset'}`);
          break;
      }
    }
  }

  protected override newProtocol(agent: SimAgent, session: FiveTuple): SessionProtocol {
    return new SessionProtocol({ self: agent.address, session, retry: this.retry });
  }

  protected override dataPlaneAction(agent: SimAgent, a: ProtocolAction): void {
    if (!isPathAction(a)) return;
    this.log(`${agent.name}: ${a.type}${'side' in a ? ` (${a.side})` : ''}`);
    const drained = applyPathAction(this.dp(agent).rewriter.table, this.session, a, this.net.now);
    if (drained && a.type === 'enterTwoPaths') {
      const p = agent.proto;
      this.net.at(0, () => {
        if (p && agent.proto === p) this.execute(agent, p.handle({ type: 'oldPathDrained', side: a.side }));
      });
    }
  }

  /** The peer anchor said where its old-path data ends: the anchor keeps the old path until its stack acknowledged that far. */
  protected override afterMessage(agent: SimAgent, proto: SessionProtocol, m: ControlMessage): void {
    if (agent.proto !== proto) return;
    const side = takePeerEndOf(this.dp(agent).rewriter.table, () => this.session, proto, m);
    if (side) this.execute(agent, proto.handle({ type: 'oldPathDrained', side }));
  }

  // ---- control messages on the wire -------------------------------------------

  protected override sendControl(from: SimAgent, to: Address, m: ControlMessage, anchorSide?: Side): void {
    const d = this.dp(from);
    // an anchor's ack and teardowns say where its old-path data ends
    const message = withOldPathEnd(d.rewriter.table, () => this.session, m, anchorSide);
    const bytes = encodeControl(message, this.keys, this.keys ? d.counter.next() : undefined);
    this.net.send(to, { kind: 'control', from: from.address, message, bytes });
  }

  protected override receiveControl(agent: SimAgent, w: Extract<NetMessage, { kind: 'control' }>): ControlMessage | undefined {
    if (!w.bytes) return w.message;
    try {
      return decodeControl(w.bytes, this.keys, { window: this.dp(agent).replay, sender: formatAddress(w.from) }).message;
    } catch (e) {
      // a duplicated datagram is a replay to the receiver: dropped, as on a real network
      this.bump(`controlRejected:${(e as { reason?: string }).reason ?? 'format'}`);
      return undefined;
    }
  }

  // ---- the end -------------------------------------------------------------

  protected override offPathLeftover(a: SimAgent): void {
    // a box of an abandoned new path whose teardown was lost: idle reclamation takes it
    const t = this.dp(a).rewriter.table;
    t.reclaimIdle(this.net.now + (this.o.idleTimeout ?? 60_000) + 1, this.o.idleTimeout ?? 60_000);
    if (t.size().total === 0 && a.proto?.rightAnchorState === 'OnePath' && a.proto.leftAnchorState === 'OnePath') {
      this.bump('reclaimedIdle');
      a.proto = undefined;
      return;
    }
    super.offPathLeftover(a);
  }

  protected override checkEnd(): void {
    super.checkEnd();
    const c2s = sha(this.serverStream.delivered) === sha(this.sent[0]);
    const s2c = sha(this.clientStream.delivered) === sha(this.sent[1]);
    if (!c2s) this.violations.push(`client-to-server stream: ${this.serverStream.deliveredLength} of ${this.sent[0].length} bytes arrived intact: ${this.serverStream.deliveredLength === this.sent[0].length ? 'content differs' : 'short'}`);
    if (!s2c) this.violations.push(`server-to-client stream: ${this.clientStream.deliveredLength} of ${this.sent[1].length} bytes arrived intact`);
    for (const v of [...this.clientStream.violations, ...this.serverStream.violations]) this.violations.push(`transport: ${v}`);
    if (!this.clientStream.done || !this.serverStream.done) this.violations.push('the connection did not close in both directions');
    // the tables hold the current path and nothing else
    const path = this.path();
    const on = new Set(path);
    for (const a of this.agents.values()) {
      const t = this.dp(a).rewriter.table;
      const size = t.size();
      if (!on.has(a)) {
        if (size.total !== 0) this.violations.push(`${a.name} is off the path but holds ${size.total} table entries`);
        continue;
      }
      const p = a.proto;
      if (!p) continue;
      const expectEgress: FiveTuple[] = [];
      const expectIngress: FiveTuple[] = [];
      if (p.right) {
        expectEgress.push(anchorEgressKey(this.session, 'right'));
        expectIngress.push(reverseTuple(p.right.subsession));
      }
      if (p.left) {
        expectEgress.push(anchorEgressKey(this.session, 'left'));
        expectIngress.push(p.left.subsession);
      }
      for (const k of expectEgress) {
        const e = t.getEgress(k);
        if (!e) this.violations.push(`${a.name} lacks its egress entry ${formatTuple(k)}`);
        else if (e.twoPath) this.violations.push(`${a.name} is still in two-path mode for ${formatTuple(k)}`);
        else {
          const hop = tupleEquals(k, this.session) ? p.right!.subsession : reverseTuple(p.left!.subsession);
          if (!tupleEquals(e.old.tuple, hop)) this.violations.push(`${a.name} rewrites ${formatTuple(k)} to ${formatTuple(e.old.tuple)}, not its hop ${formatTuple(hop)}`);
        }
      }
      for (const k of expectIngress) if (!t.getIngress(k)) this.violations.push(`${a.name} lacks its ingress entry ${formatTuple(k)}`);
      if (size.egress !== expectEgress.length || size.ingress !== expectIngress.length || size.pending !== 0) {
        this.violations.push(`${a.name} holds ${size.egress}/${size.ingress}/${size.pending} egress/ingress/pending entries, expected ${expectEgress.length}/${expectIngress.length}/0`);
      }
    }
    void addressEquals;
  }

  protected override result(events: number): DataSimResult {
    const counters: Record<string, number> = Object.fromEntries(this.counters);
    for (const [a, d] of this.data) for (const [k, v] of d.rewriter.counters) counters[`${a.name}:${k}`] = v;
    return {
      ...super.result(events),
      delivered: { clientToServer: sha(this.serverStream.delivered) === sha(this.sent[0]), serverToClient: sha(this.clientStream.delivered) === sha(this.sent[1]) },
      bytes: [this.sent[0].length, this.sent[1].length],
      retransmissions: this.clientStream.retransmissions + this.serverStream.retransmissions,
      counters,
      progress: this.progress,
    };
  }
}
