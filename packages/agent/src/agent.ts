import { spawnSync } from 'node:child_process';
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import {
  type Address,
  type ControlMessage,
  type DataPlaneEvent,
  type EgressEntry,
  type Deltas,
  DEFAULT_RETRY,
  type FiveTuple,
  type Hop,
  KeyRing,
  type NackReason,
  type Policy,
  PortAllocator,
  type ProtocolAction,
  type ProtocolEvent,
  type ProtocolSnapshot,
  ReplayCounter,
  ReplayWindow,
  type RetryPolicy,
  SessionProtocol,
  type TimerName,
  addressEquals,
  anchorEgressKey,
  applyPathAction,
  decodeControl,
  decodeSynMetadata,
  encodeControl,
  formatAddress,
  formatTuple,
  isPathAction,
  parseAddress,
  parseTuple,
  policyMatches,
  oldPathDone,
  reverseTuple,
  takePeerEndOf,
  tupleEquals,
  tupleKey,
  withOldPathEnd,
} from '@dysco/protocol';
import { type AttachMode, COUNTER_NAMES, type Counters, DataPlane } from '@dysco/xdp';
import { detachPinnedLink, type Attachment } from 'ebpf-ts-loader';
import type { AgentConfig } from './config.js';
import { CONNECTION_POLICY_BASE, KernelTable } from './kernel-table.js';
import { Logger } from './log.js';
import { Metrics } from './metrics.js';

/** What an agent knows about one session it takes part in. */
export interface SessionRecord {
  /** Agent-local identifier (what `dysco sessions` shows and commands take). */
  readonly id: number;
  proto: SessionProtocol;
  /** Since when an anchor of this session has been sending on two paths (see checkDrains). */
  twoPathsSince?: number | undefined;
  drainWarned?: boolean | undefined;
  /** An anchor of this session stopped waiting for the rest of its peer's old-path data (see checkDrains). */
  receiveGivenUp?: boolean | undefined;
  /** How this agent joined: by the session's SYN (originator, middlebox, last hop) or a reconfiguration's new path (relay). */
  role: 'originator' | 'middlebox' | 'lastHop' | 'relay';
  readonly createdAt: number;
  /**
   * The agents to the right, in order, ending with the destination, as far
   * as this agent knows (the chain the SYN carried, updated by the
   * reconfigurations it anchors). A hint: boxes to the right may have
   * changed it since.
   */
  downstream: Address[];
  /** Subsession keys that route control messages to this session. */
  readonly hops: Set<string>;
  readonly timers: Map<TimerName, NodeJS.Timeout>;
  ended: 'fin' | 'rst' | undefined;
  linger: NodeJS.Timeout | undefined;
  /**
   * The session tuple on this agent's right side when a middlebox changed it
   * (a NAT): the left side keeps `proto.session`, the right side's entries
   * are keyed by this one.
   */
  rightSession: FiveTuple | undefined;
  /** Called when this box has left the session's path (its relay entries are gone). */
  onDepart: (() => void) | undefined;
  /** Reconfigurations this agent anchors as left anchor: what it will become on completion. */
  plan: { reconfigId: number; rightAnchor: Address; newChain: readonly Address[] } | undefined;
}

export type ReconfigRequest =
  | { readonly kind: 'remove'; readonly box: Address }
  | { readonly kind: 'insert'; readonly box: Address; readonly after: Address }
  | { readonly kind: 'replace'; readonly box: Address; readonly with: Address };

export interface ReconfigOutcome {
  readonly reconfigId: number;
  readonly session: number;
  readonly result: 'completed' | 'aborted';
  readonly reason?: NackReason | undefined;
  /** Milliseconds from the request to the outcome at this agent. */
  readonly durationMs: number;
}

/** A session as `dysco sessions` and the library list it. */
export interface SessionInfo {
  readonly id: number;
  readonly session: string;
  /** The tuple on the right side when this box changed it (a NAT). */
  readonly rightSession?: string;
  readonly role: SessionRecord['role'];
  readonly left: { readonly agent: string; readonly subsession: string } | undefined;
  readonly right: { readonly agent: string; readonly subsession: string } | undefined;
  readonly downstream: readonly string[];
  readonly state: { readonly lock: string; readonly leftAnchor: string; readonly rightAnchor: string; readonly departed: boolean };
  readonly packets: number;
  readonly bytes: number;
  readonly ended: 'fin' | 'rst' | undefined;
  readonly createdAt: string;
}

export type AgentEvent =
  | { readonly type: 'sessionCreated'; readonly session: SessionInfo }
  | { readonly type: 'sessionEnded'; readonly id: number; readonly session: string; readonly reason: 'fin' | 'rst' | 'idle' }
  | { readonly type: 'reconfigured'; readonly outcome: ReconfigOutcome; readonly sessionTuple: string }
  /** This box left a session whose sides had different tuples (a spliced proxy): its sockets for it can go. */
  | { readonly type: 'departed'; readonly id: number; readonly session: string; readonly rightSession: string };

/** Errors an operator command can get back: bad arguments or a state the command does not apply to. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly code: 'ENOSESSION' | 'EINVAL' | 'ENOTNEIGHBOUR' | 'EBUSY' | 'ENOPORT' = 'EINVAL',
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const STATE_FILE = 'sessions.json';
/**
 * Sessions whose protocol state changed since the last write of STATE_FILE
 * while a reconfiguration involved them: rewritten synchronously on every
 * such change (it holds only those few), so a killed agent's successor takes
 * a reconfiguration up from its very last step. It overrides STATE_FILE, and
 * is emptied by each write of STATE_FILE.
 */
const JOURNAL_FILE = 'reconfiguring.jsonl';
/**
 * The anti-replay windows of the control port, rewritten after every accepted
 * message, so that a restarted agent refuses what it accepted before (a
 * message recorded on the wire cannot be replayed into it). Kept by every
 * kind of stop.
 */
const REPLAY_FILE = 'replay.json';
const LINKS_DIR = 'links';

interface PersistedSession {
  id: number;
  session: string;
  role: SessionRecord['role'];
  left?: { agent: string; subsession: string } | undefined;
  right?: { agent: string; subsession: string } | undefined;
  downstream: string[];
  createdAt: number;
  rightSession?: string | undefined;
  /** The session's whole protocol state (a reconfiguration in progress included). */
  protocol?: ProtocolSnapshot | undefined;
  /** Every subsession its control messages may name (a new path being set up included). */
  hops?: string[] | undefined;
  /** In the journal: the agent left the session (the state file may still list it). */
  departed?: boolean;
}

const hopOut = (h: Hop | undefined) => (h ? { agent: formatAddress(h.agent), subsession: formatTuple(h.subsession) } : undefined);
const hopIn = (h: { agent: string; subsession: string } | undefined): Hop | undefined => (h ? { agent: parseAddress(h.agent), subsession: parseTuple(h.subsession) } : undefined);
const monoNs = () => Number(process.hrtime.bigint());
/** Whether one of the session's anchors here sends on two paths. */
const onTwoPaths = (rec: SessionRecord): boolean => rec.proto.leftAnchorState === 'TwoPaths' || rec.proto.rightAnchorState === 'TwoPaths';

/**
 * Whether an interface is a virtual device (veth, bridge, tunnel...), where
 * native XDP costs more than it saves. Asked of the kernel over netlink
 * (`ip -details`), because /sys shows the devices of the namespace it was
 * mounted in, not necessarily this process's.
 */
function isVirtual(ifname: string): boolean {
  const r = spawnSync('ip', ['-details', '-json', 'link', 'show', 'dev', ifname], { encoding: 'utf8' });
  if (r.status !== 0) return true;
  try {
    const [link] = JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string }; link_type?: string }[];
    return link?.linkinfo?.info_kind !== undefined || link?.link_type !== 'ether';
  } catch {
    return true;
  }
}

/**
 * The agent of one host: loads and attaches the data plane, learns about
 * sessions from its events, runs the reconfiguration protocol of every
 * session it anchors or relays, talks to neighbouring agents over UDP, and
 * serves operator commands (through `server.ts`).
 */
export class Agent extends EventEmitter {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly dp: DataPlane;
  readonly table: KernelTable;
  private readonly keys: KeyRing | undefined;
  private readonly counter = new ReplayCounter();
  /** Counters accepted from each neighbour; kept in REPLAY_FILE across restarts. */
  private replay = new ReplayWindow();
  private readonly retry: RetryPolicy;
  private readonly ports: PortAllocator;
  private udp: UdpSocket | undefined;
  private metricsServer: Server | undefined;
  private stopEvents: (() => void) | undefined;
  private reclaimTimer: NodeJS.Timeout | undefined;
  private saveTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  /** Sessions changed by a reconfiguration since the last write of the state file (see JOURNAL_FILE). */
  private readonly journal = new Set<SessionRecord>();
  /** Sessions with an anchor on two paths: what checkDrains looks at. */
  private readonly onTwoPaths = new Set<SessionRecord>();
  private attachments: Attachment[] = [];
  private nextSessionId = 1;
  private nextReconfigId: number;
  readonly sessions = new Map<number, SessionRecord>();
  private readonly bySession = new Map<string, SessionRecord>();
  private readonly byHop = new Map<string, SessionRecord>();
  private readonly waiting = new Map<number, { session: number; started: number; resolve: (o: ReconfigOutcome) => void }>();
  private readonly rateLimited = new Map<string, { window: number; count: number }>();
  private closed = false;

  // metrics
  private readonly mControlSent = this.metrics.counter('dysco_control_messages_sent_total', 'Control messages sent, by type');
  private readonly mControlReceived = this.metrics.counter('dysco_control_messages_received_total', 'Control messages accepted, by type');
  private readonly mControlRejected = this.metrics.counter('dysco_control_messages_rejected_total', 'Control messages dropped, by reason');
  private readonly mReconfigs = this.metrics.counter('dysco_reconfigurations_total', 'Reconfigurations this agent requested, by outcome');
  private readonly mSessions = this.metrics.counter('dysco_sessions_total', 'Sessions this agent joined, by role');
  private readonly mSessionsEnded = this.metrics.counter('dysco_sessions_ended_total', 'Sessions this agent left, by reason');
  private readonly mErrors = this.metrics.counter('dysco_agent_errors_total', 'Internal errors handled, by where they happened');

  private constructor(config: AgentConfig, dp: DataPlane, log: Logger) {
    super();
    this.config = config;
    this.dp = dp;
    this.log = log;
    this.table = new KernelTable(dp);
    this.keys = config.keys.length > 0 ? new KeyRing(config.keys, { ...(config.sendKeyId !== undefined ? { sendKeyId: config.sendKeyId } : {}), requireAuth: config.requireAuth }) : undefined;
    this.retry = { ...DEFAULT_RETRY, rto: config.rto, maxRto: config.maxRto };
    const seed = (Math.random() * 0x7fffffff) | 0;
    this.ports = new PortAllocator({ low: config.ports.low, high: config.ports.high, seed });
    // identifiers stay unique across restarts: seconds since the epoch, 16 per second
    this.nextReconfigId = ((Math.floor(Date.now() / 1000) * 16) >>> 0) || 1;
    this.metrics.gauge('dysco_sessions', 'Sessions this agent takes part in now', () => [{ labels: {}, value: this.sessions.size }]);
    this.metrics.collected('dysco_dataplane_packets_total', 'Data-plane counters summed over CPUs, by counter', 'counter', () => {
      const c = this.dp.counters();
      return COUNTER_NAMES.map((n) => ({ labels: { counter: n }, value: Number(c[n] ?? 0) }));
    });
  }

  /**
   * Starts an agent in the current network namespace: loads the programs
   * (reusing maps pinned by a previous run, and the sessions in them),
   * attaches them, opens the control socket and starts consuming events.
   */
  static async start(config: AgentConfig, opts: { log?: Logger } = {}): Promise<Agent> {
    const log = opts.log ?? new Logger(config.logLevel);
    const reused = existsSync(join(config.pinRoot, 'dysco_egress'));
    const dp = DataPlane.open({ pinRoot: config.pinRoot, maxSessions: config.maxSessions });
    const agent = new Agent(config, dp, log);
    try {
      await agent.init(reused);
    } catch (e) {
      await agent.close({ detach: !reused, removePins: !reused });
      throw e;
    }
    return agent;
  }

  private async init(reused: boolean): Promise<void> {
    const c = this.config;
    this.dp.configure({
      localAddresses: c.localAddresses,
      ports: { low: c.ports.low, high: c.ports.high, seed: (Math.random() * 0xffffffff) >>> 0 },
      seed: (Math.random() * 0xffffffff) >>> 0,
      route: true,
      ...(this.keys ? { auth: { keys: c.keys, ...(c.sendKeyId !== undefined ? { sendKeyId: c.sendKeyId } : {}), requireAuth: c.requireAuth } } : {}),
    });
    // the configured policies, and those added at run time that the kernel kept
    const merged = new Map(this.table.policies.map((p) => [p.id, p]));
    for (const p of c.policies) merged.set(p.id, p);
    this.table.setPolicies([...merged.values()]);
    this.loadReplayWindow();
    if (reused) this.adopt();
    this.stopEvents = this.dp.watchEvents(
      (e) => this.guard('event', () => this.onDataPlaneEvent(e)),
      (err) => this.fail('event', err),
    );
    await this.openControl();
    for (const ifname of c.interfaces) this.attach(ifname);
    if (c.metrics) {
      this.metricsServer = await this.metrics.serve(c.metrics.host, c.metrics.port);
      const a = this.metricsServer.address();
      this.log.info('metrics served', { url: `http://${c.metrics.host.includes(':') ? `[${c.metrics.host}]` : c.metrics.host}:${typeof a === 'object' && a ? a.port : c.metrics.port}/metrics` });
    }
    const every = Math.max(1000, Math.min(30_000, (c.idleTimeout * 1000) / 4));
    this.reclaimTimer = setInterval(() => this.guard('reclaim', () => this.reclaimIdle()), every);
    this.reclaimTimer.unref();
    this.drainTimer = setInterval(() => this.guard('drain', () => this.checkDrains()), 1000);
    this.drainTimer.unref();
    this.log.info('agent started', {
      address: formatAddress(c.address),
      interfaces: c.interfaces,
      mode: c.mode,
      controlPort: c.controlPort,
      pinRoot: c.pinRoot,
      adoptedSessions: this.sessions.size,
      policies: this.table.policies.length,
      authenticated: this.keys !== undefined,
    });
  }

  // ---- attachment ----------------------------------------------------------------

  private attach(ifname: string): void {
    // the FIB helper answers only for interfaces that forward
    const sysctl = `/proc/sys/net/ipv4/conf/${ifname}/forwarding`;
    try {
      if (readFileSync(sysctl, 'utf8').trim() !== '1') {
        writeFileSync(sysctl, '1');
        this.log.info('enabled forwarding on the interface (routing by rewritten destination needs it)', { ifname });
      }
    } catch (e) {
      throw new Error(`interface ${ifname}: cannot enable forwarding (${(e as Error).message}); does the interface exist in this namespace?`);
    }
    let mode: AttachMode = this.config.mode;
    if (mode === 'auto') mode = isVirtual(ifname) ? 'tc' : 'xdp';
    let made: Attachment[];
    try {
      made = this.dp.attach(ifname, mode);
    } catch (e) {
      if (this.config.mode !== 'auto' || mode !== 'xdp') throw e;
      this.log.warn('native XDP refused, using TC', { ifname, error: (e as Error).message });
      mode = 'tc';
      made = this.dp.attach(ifname, mode);
    }
    // the new programs are in place (behind the old ones, which pass everything on): now the old ones can go
    const linkDir = join(this.config.pinRoot, LINKS_DIR);
    mkdirSync(linkDir, { recursive: true });
    for (const a of made) {
      const path = join(linkDir, `${ifname}-${a.program}`);
      if (existsSync(path)) detachPinnedLink(path);
      if (a.pin) a.pin(path);
    }
    this.attachments.push(...made);
    this.log.info('attached', { ifname, mode, kinds: made.map((a) => a.kind) });
  }

  // ---- control channel -------------------------------------------------------------

  private openControl(): Promise<void> {
    const family = this.config.address.family === 6 ? 'udp6' : 'udp4';
    const udp = createSocket({ type: family, reuseAddr: true });
    this.udp = udp;
    udp.on('message', (buf, rinfo) => this.guard('control', () => this.onDatagram(buf, rinfo.address)));
    udp.on('error', (e) => this.fail('udp', e));
    return new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.config.controlPort, () => {
        udp.off('error', reject);
        resolve();
      });
    });
  }

  private onDatagram(buf: Buffer, fromText: string): void {
    let from: Address;
    let m: ControlMessage;
    try {
      from = parseAddress(fromText.replace(/^::ffff:/, ''));
      const d = decodeControl(buf, this.keys, { window: this.replay, sender: formatAddress(from) });
      m = d.message;
      if (d.authenticated) this.guard('replay', () => this.writeAtomically(REPLAY_FILE, JSON.stringify(this.replay.save())));
    } catch (e) {
      const reason = (e as { reason?: string }).reason ?? 'format';
      this.mControlRejected({ reason });
      this.warnLimited(`control:${reason}`, 'control message rejected', { from: fromText, reason, error: (e as Error).message, bytes: buf.length });
      return;
    }
    this.mControlReceived({ type: m.type });
    let rec = this.byHop.get(tupleKey(m.subsession));
    if (rec?.proto.gone) rec = undefined;
    // a box that left the path only forwards late teardowns: a syn on one of its old subsessions (the left neighbour reused the port) joins anew
    if (rec?.proto.departed && m.type === 'syn') rec = undefined;
    if (!rec && m.type === 'syn') {
      if (this.isSelf(m.rightAnchor)) {
        rec = [...this.sessions.values()].find(
          (r) => r.proto.rightAnchorContext.reconfigId === m.reconfigId && r.proto.rightAnchorContext.requester !== undefined && addressEquals(r.proto.rightAnchorContext.requester, m.requester),
        );
        if (!rec) rec = this.bySession.get(tupleKey(m.session));
      } else {
        const existing = this.bySession.get(tupleKey(m.session));
        rec = existing && !existing.proto.departed ? existing : this.newRecord(m.session, 'relay', [...m.chain, m.rightAnchor]);
      }
      if (rec) this.indexHop(rec, m.subsession);
    }
    if (!rec) {
      this.mControlRejected({ reason: 'unknownSession' });
      this.warnLimited('control:unknownSession', 'control message for no session of this agent', { from: fromText, type: m.type, subsession: formatTuple(m.subsession) });
      return;
    }
    const proto = rec.proto;
    let nextHop: Hop | undefined;
    if (m.type === 'syn' && !this.isSelf(m.rightAnchor) && !proto.right) {
      nextHop = this.allocateHop(m.chain[0] ?? m.rightAnchor);
    } else if (m.type === 'rightRequest') {
      nextHop = this.allocateHop(m.newChain[0] ?? m.rightAnchor);
      rec.plan = { reconfigId: m.reconfigId, rightAnchor: m.rightAnchor, newChain: m.newChain };
    }
    if (nextHop) this.indexHop(rec, nextHop.subsession);
    this.log.debug('control message', { session: rec.id, from: formatAddress(from), type: m.type, reconfigId: m.reconfigId });
    this.handle(rec, { type: 'message', message: m, from, ...(nextHop ? { nextHop } : {}) });
    if (this.sessions.get(rec.id) === rec) this.recordPeerEnd(rec, m);
  }

  /**
   * The peer anchor said where its old-path data ends: this agent's anchor
   * keeps the old path until its own stack has acknowledged that far (a
   * splicing proxy on the old path acknowledged the peer's last bytes before
   * delivering them).
   */
  private recordPeerEnd(rec: SessionRecord, m: ControlMessage): void {
    const side = takePeerEndOf(this.table, (s) => this.anchorSession(rec, s), rec.proto, m);
    if (!side) return;
    this.log.debug('old path done once the peer said where its data ends', { session: rec.id, side });
    this.handle(rec, { type: 'oldPathDrained', side });
  }

  /** The session tuple an anchor's entries on `side` are keyed by (a NAT box's or spliced proxy's right side has its own). */
  private anchorSession(rec: SessionRecord, side: 'left' | 'right'): FiveTuple {
    return side === 'right' && rec.rightSession ? rec.rightSession : rec.proto.session;
  }

  private send(to: Address, message: ControlMessage): void {
    const bytes = encodeControl(message, this.keys, this.keys ? this.counter.next() : undefined);
    this.mControlSent({ type: message.type });
    this.udp?.send(bytes, this.config.controlPort, formatAddress(to), (err) => {
      if (err) this.warnLimited('udp-send', 'control message not sent', { to: formatAddress(to), type: message.type, error: err.message });
    });
  }

  // ---- sessions ----------------------------------------------------------------------

  isSelf(a: Address): boolean {
    return this.config.localAddresses.some((l) => addressEquals(l, a));
  }

  private newRecord(session: FiveTuple, role: SessionRecord['role'], downstream: Address[], id?: number, createdAt?: number): SessionRecord {
    const rec: SessionRecord = {
      id: id ?? this.nextSessionId++,
      proto: new SessionProtocol({ self: this.config.address, session, retry: this.retry }),
      role,
      createdAt: createdAt ?? Date.now(),
      downstream,
      hops: new Set(),
      timers: new Map(),
      ended: undefined,
      linger: undefined,
      plan: undefined,
      rightSession: undefined,
      onDepart: undefined,
    };
    if (rec.id >= this.nextSessionId) this.nextSessionId = rec.id + 1;
    this.sessions.set(rec.id, rec);
    this.bySession.set(tupleKey(session), rec);
    this.mSessions({ role });
    return rec;
  }

  private indexHop(rec: SessionRecord, sub: FiveTuple): void {
    const k = tupleKey(sub);
    rec.hops.add(k);
    this.byHop.set(k, rec);
  }

  private dropRecord(rec: SessionRecord, reason: 'fin' | 'rst' | 'idle' | 'departed', removeEntries: boolean): void {
    if (this.sessions.get(rec.id) !== rec) return;
    for (const t of rec.timers.values()) clearTimeout(t);
    rec.timers.clear();
    if (rec.linger) clearTimeout(rec.linger);
    for (const k of rec.hops) if (this.byHop.get(k) === rec) this.byHop.delete(k);
    for (const t of [rec.proto.session, rec.rightSession]) {
      if (!t) continue;
      const sk = tupleKey(t);
      if (this.bySession.get(sk) === rec) this.bySession.delete(sk);
    }
    this.sessions.delete(rec.id);
    this.onTwoPaths.delete(rec);
    if (removeEntries) {
      const s = rec.proto.session;
      this.table.removeSession(rec.rightSession ?? s);
      this.table.removeSession(reverseTuple(s));
      // a terminating proxy's sessions never consume the pending entry of their SYN
      this.table.removePending(s);
      for (const h of [rec.proto.left, rec.proto.right]) if (h) this.table.removeIngress(h.subsession), this.table.removeIngress(reverseTuple(h.subsession));
    }
    if (reason !== 'departed') {
      this.mSessionsEnded({ reason });
      this.emit('event', { type: 'sessionEnded', id: rec.id, session: formatTuple(rec.proto.session), reason } satisfies AgentEvent);
    }
    this.log.info('session removed', { session: rec.id, tuple: formatTuple(rec.proto.session), reason });
    this.scheduleSave();
  }

  private onDataPlaneEvent(e: DataPlaneEvent): void {
    switch (e.type) {
      case 'sessionCreated': {
        // a NAT box: the right side's SYN carries the tuple the box made of the session's
        let rec = this.bySession.get(tupleKey(e.natAdoptedFrom ?? e.session));
        if (rec && (rec.proto.departed || rec.ended)) {
          this.dropRecord(rec, 'departed', false);
          rec = undefined;
        }
        if (!rec) {
          let downstream: Address[] = [];
          if (e.role === 'originator') {
            const p = this.table.policies.find((pol) => policyMatches(pol, e.session));
            downstream = p ? [...p.chain, e.session.dst] : [e.subsession.dst, e.session.dst];
          } else if (e.role === 'middlebox') {
            const pend = this.table.getPending(e.session);
            downstream = pend ? [...pend.chain] : [];
            if (!downstream.some((a) => addressEquals(a, e.session.dst))) downstream.push(e.session.dst);
          }
          rec = this.newRecord(e.session, e.role, downstream);
        }
        const hop: Hop = e.side === 'right' ? { agent: e.subsession.dst, subsession: e.subsession } : { agent: e.subsession.src, subsession: e.subsession };
        if (e.side === 'right') {
          rec.proto.right = hop;
          if (e.natAdoptedFrom && !tupleEquals(e.session, rec.proto.session)) {
            rec.rightSession = e.session;
            this.bySession.set(tupleKey(e.session), rec);
          }
          // the chain beyond the next hop is what the kernel put into the SYN it sent there
          const chain = this.sentChain(e.session);
          if (chain) rec.downstream = [hop.agent, ...chain];
          else if (!rec.downstream[0] || !addressEquals(rec.downstream[0], hop.agent)) rec.downstream = [hop.agent, ...rec.downstream];
        } else rec.proto.left = hop;
        this.indexHop(rec, e.subsession);
        this.log.info('session joined', { session: rec.id, role: e.role, side: e.side, tuple: formatTuple(e.session), subsession: formatTuple(e.subsession), ...(e.natAdoptedFrom ? { natFrom: formatTuple(e.natAdoptedFrom) } : {}) });
        this.emit('event', { type: 'sessionCreated', session: this.info(rec) } satisfies AgentEvent);
        this.scheduleSave();
        break;
      }
      case 'sessionEnded': {
        const rec = this.bySession.get(tupleKey(e.key)) ?? this.bySession.get(tupleKey(reverseTuple(e.key)));
        if (!rec || rec.ended) break;
        rec.ended = e.reason;
        this.log.info('session ended', { session: rec.id, reason: e.reason });
        this.scheduleLinger(rec);
        break;
      }
      case 'oldPathDrained': {
        const rec = this.bySession.get(tupleKey(e.egressKey)) ?? this.bySession.get(tupleKey(reverseTuple(e.egressKey)));
        if (!rec) break;
        const side = tupleEquals(e.egressKey, rec.rightSession ?? rec.proto.session) ? 'right' : 'left';
        this.log.debug('old path drained', { session: rec.id, side });
        this.handle(rec, { type: 'oldPathDrained', side });
        break;
      }
    }
  }

  /** The chain (destination included) in the SYN metadata this agent's kernel inserted for a session, if it still has it. */
  private sentChain(session: FiveTuple): Address[] | undefined {
    const payload = this.table.getEgress(session)?.synPayload;
    if (!payload || payload.length === 0) return undefined;
    try {
      return [...decodeSynMetadata(payload, this.keys).chain];
    } catch (e) {
      this.log.warn('stored SYN metadata does not decode', { session: formatTuple(session), error: (e as Error).message });
      return undefined;
    }
  }

  private scheduleLinger(rec: SessionRecord): void {
    if (rec.linger) clearTimeout(rec.linger);
    rec.linger = setTimeout(() => {
      rec.linger = undefined;
      // a reconfiguration in progress finishes first
      if (!rec.proto.idle) return this.scheduleLinger(rec);
      this.dropRecord(rec, rec.ended ?? 'fin', true);
    }, this.config.closedLinger * 1000);
    rec.linger.unref();
  }

  /**
   * Anchors sending on two paths learn that their old path is done with
   * (their data acknowledged, their peer's received) from a data-plane
   * event; once a second they also evaluate the entry in the kernel, so
   * that a notification that never arrived cannot keep a reconfiguration
   * waiting. They say (once) when an old path has not drained for 10 s:
   * what was cut off, and what the peer has acknowledged. An anchor whose
   * own data is acknowledged but which has waited 60 s for the rest of its
   * peer's old-path data (the box holding it has gone) gives up on it.
   */
  private checkDrains(): void {
    for (const rec of [...this.onTwoPaths]) {
      if (this.sessions.get(rec.id) !== rec || !onTwoPaths(rec)) {
        this.onTwoPaths.delete(rec);
        continue;
      }
      for (const side of ['right', 'left'] as const) {
        const anchor = this.anchorTwoPath(rec, side);
        if (!anchor) continue;
        const tp = anchor.twoPath;
        if (oldPathDone(this.table, this.anchorSession(rec, side), side)) {
          this.log.info('old path drained (read from the kernel)', { session: rec.id, side });
          this.handle(rec, { type: 'oldPathDrained', side });
          continue;
        }
        rec.twoPathsSince ??= Date.now();
        const waited = Date.now() - rec.twoPathsSince;
        if (waited > 10_000 && !rec.drainWarned) {
          rec.drainWarned = true;
          this.log.warn('old path not drained after 10 s', { session: rec.id, side, cutoff: tp?.seqCutoff, peerAcked: tp?.peerAckHigh, drained: tp?.drained ?? false, peerEnd: tp?.peerEnd, received: tp?.received ?? false, awaitingCutover: tp?.awaitingCutover ?? false, cutoffPending: tp?.cutoffPending ?? false });
        }
        if (waited > 60_000 && tp?.drained && !tp.received && !rec.receiveGivenUp) {
          rec.receiveGivenUp = true;
          this.log.warn('the rest of the peer\'s old-path data never arrived in 60 s: leaving the old path without it', { session: rec.id, side, peerEnd: tp.peerEnd });
          this.handle(rec, { type: 'oldPathDrained', side });
        }
      }
    }
  }

  /**
   * The kernel's two-path state of this agent's anchor on `side` of a
   * session (the left anchor's new path is on its right), or undefined when
   * that anchor is not in TwoPaths.
   */
  private anchorTwoPath(rec: SessionRecord, side: 'left' | 'right'): { twoPath: EgressEntry['twoPath'] } | undefined {
    const state = side === 'right' ? rec.proto.leftAnchorState : rec.proto.rightAnchorState;
    if (state !== 'TwoPaths') return undefined;
    return { twoPath: this.table.getEgress(anchorEgressKey(this.anchorSession(rec, side), side))?.twoPath };
  }

  private reclaimIdle(): void {
    // the kernel's lastSeen follows jiffies between calibrations: keep it on the monotonic clock
    this.dp.calibrateClock();
    const now = monoNs();
    const idle = this.config.idleTimeout * 1e9;
    const live = new Set<string>();
    for (const e of this.table.egressEntries()) if (now - e.lastSeen <= idle) live.add(tupleKey(e.key));
    for (const rec of [...this.sessions.values()]) {
      const s = rec.proto.session;
      if (live.has(tupleKey(s)) || live.has(tupleKey(reverseTuple(s)))) continue;
      if (!rec.proto.idle || Date.now() - rec.createdAt < this.config.idleTimeout * 1000) continue;
      this.dropRecord(rec, 'idle', true);
    }
    // entries no record owns (a session whose agent was gone when it ended) go the same way
    const r = this.table.reclaimIdle(now, idle);
    if (r.egress.length + r.ingress.length + r.pending.length > 0) this.log.info('idle entries reclaimed', { egress: r.egress.length, ingress: r.ingress.length, pending: r.pending.length });
  }

  private allocateHop(right: Address): Hop {
    const self = this.config.address;
    const port = this.ports.allocate((p) => this.table.getIngress({ src: right, dst: self, sport: p, dport: p }) !== undefined || this.byHop.has(tupleKey({ src: self, dst: right, sport: p, dport: p })));
    if (port === undefined) throw new CommandError(`no subsession port left toward ${formatAddress(right)}`, 'ENOPORT');
    return { agent: right, subsession: { src: self, dst: right, sport: port, dport: port } };
  }

  // ---- the protocol ------------------------------------------------------------------

  private handle(rec: SessionRecord, ev: ProtocolEvent): void {
    this.execute(rec, rec.proto.handle(ev));
  }

  private execute(rec: SessionRecord, actions: ProtocolAction[]): void {
    const p = rec.proto;
    for (const a of actions) {
      switch (a.type) {
        case 'send': {
          // an anchor's ack and teardowns say where its old-path data ends
          this.send(a.to, withOldPathEnd(this.table, (s) => this.anchorSession(rec, s), a.message, a.anchorSide));
          break;
        }
        case 'armTimer': {
          const old = rec.timers.get(a.timer);
          if (old) clearTimeout(old);
          const t = setTimeout(() => {
            if (rec.timers.get(a.timer) !== t) return;
            rec.timers.delete(a.timer);
            if (this.sessions.get(rec.id) !== rec) return;
            this.guard('timer', () => this.handle(rec, { type: 'timeout', timer: a.timer }));
          }, a.delay);
          rec.timers.set(a.timer, t);
          break;
        }
        case 'cancelTimer': {
          const t = rec.timers.get(a.timer);
          if (t) clearTimeout(t);
          rec.timers.delete(a.timer);
          break;
        }
        case 'outcome':
          this.onOutcome(rec, a);
          break;
        default:
          if (a.type === 'removeRelay' && rec.rightSession) {
            // a box whose two sides have different tuples (NAT, spliced proxy) leaves
            this.table.removeIngress(a.left.subsession);
            this.table.removeIngress(reverseTuple(a.right.subsession));
            this.table.removeEgress(rec.rightSession);
            this.table.removeEgress(reverseTuple(p.session));
            this.table.removePending(p.session);
            this.emit('event', { type: 'departed', id: rec.id, session: formatTuple(p.session), rightSession: formatTuple(rec.rightSession) } satisfies AgentEvent);
            const cb = rec.onDepart;
            rec.onDepart = undefined;
            cb?.();
          } else if (isPathAction(a)) {
            this.log.debug('path action', { session: rec.id, action: a.type, ...('side' in a ? { side: a.side } : {}) });
            if (a.type === 'installRelay') {
              this.indexHop(rec, a.left.subsession);
              this.indexHop(rec, a.right.subsession);
            }
            // anchors' actions on their right side key the right side's tuple (a NAT box's differs)
            const s = 'side' in a && a.side === 'right' && rec.rightSession ? rec.rightSession : p.session;
            const drained = applyPathAction(this.table, s, a, monoNs());
            if (a.type === 'installRelay') {
              // a box on a new path joins the session here, not through a SYN: tell the applications
              this.emit('event', { type: 'sessionCreated', session: { ...this.info(rec), left: { agent: formatAddress(a.left.agent), subsession: formatTuple(a.left.subsession) }, right: { agent: formatAddress(a.right.agent), subsession: formatTuple(a.right.subsession) } } } satisfies AgentEvent);
            }
            if (drained && a.type === 'enterTwoPaths') {
              setImmediate(() => this.guard('drained', () => this.sessions.get(rec.id) === rec && this.handle(rec, { type: 'oldPathDrained', side: a.side })));
            }
          }
      }
    }
    if (p.left) this.indexHop(rec, p.left.subsession);
    if (p.right) this.indexHop(rec, p.right.subsession);
    if (p.right && rec.downstream[0] && !addressEquals(rec.downstream[0], p.right.agent)) rec.downstream = [p.right.agent, ...rec.downstream];
    if (actions.length > 0 && (!p.atRest || this.journal.has(rec) || p.departed)) {
      // a step of a reconfiguration: on disk before anything else happens
      this.journal.add(rec);
      this.guard('journal', () => this.writeJournal(rec));
    }
    if (onTwoPaths(rec)) this.onTwoPaths.add(rec);
    else if (this.onTwoPaths.delete(rec)) {
      rec.twoPathsSince = undefined;
      rec.drainWarned = undefined;
      rec.receiveGivenUp = undefined;
    }
    if (p.gone) this.dropRecord(rec, 'departed', false);
    else if (actions.length > 0) this.scheduleSave();
  }

  private onOutcome(rec: SessionRecord, a: Extract<ProtocolAction, { type: 'outcome' }>): void {
    const mine = addressEquals(a.requester, this.config.address);
    if (a.result === 'completed' && rec.plan && rec.plan.reconfigId === a.reconfigId && rec.proto.right) {
      // this agent was the left anchor: its downstream now starts with the new chain
      const { rightAnchor, newChain } = rec.plan;
      const i = rec.downstream.findIndex((x) => addressEquals(x, rightAnchor));
      rec.downstream = [...newChain, ...(i >= 0 ? rec.downstream.slice(i) : [rightAnchor])];
      rec.plan = undefined;
    }
    this.log.info(`reconfiguration ${a.result}`, { session: rec.id, reconfigId: a.reconfigId, requester: formatAddress(a.requester), ...(a.reason ? { reason: a.reason } : {}) });
    if (!mine) return;
    this.mReconfigs({ result: a.result, ...(a.reason ? { reason: a.reason } : {}) });
    const w = this.waiting.get(a.reconfigId);
    const outcome: ReconfigOutcome = { reconfigId: a.reconfigId, session: rec.id, result: a.result, reason: a.reason, durationMs: w ? Number(process.hrtime.bigint() / 1000n) / 1000 - w.started : 0 };
    if (w) {
      this.waiting.delete(a.reconfigId);
      w.resolve(outcome);
    }
    this.emit('event', { type: 'reconfigured', outcome, sessionTuple: formatTuple(rec.proto.session) } satisfies AgentEvent);
  }

  // ---- operator commands ---------------------------------------------------------------

  /** A session by its agent-local id or its tuple (either direction). */
  findSession(ref: string | number): SessionRecord {
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const r = this.sessions.get(Number(ref));
      if (r) return r;
      throw new CommandError(`no session ${ref} at this agent (see: dysco sessions)`, 'ENOSESSION');
    }
    let t: FiveTuple;
    try {
      t = parseTuple(ref);
    } catch (e) {
      throw new CommandError(`a session is its id or its tuple src:port>dst:port: ${(e as Error).message}`);
    }
    const r = this.bySession.get(tupleKey(t)) ?? this.bySession.get(tupleKey(reverseTuple(t)));
    if (!r) throw new CommandError(`no session ${ref} at this agent`, 'ENOSESSION');
    return r;
  }

  /**
   * Starts a reconfiguration of a session at this agent and resolves with its
   * outcome. This agent must be the box being removed or replaced (it asks
   * its left neighbour), that box's left neighbour, or the box an insertion
   * goes after.
   */
  reconfigure(ref: string | number, req: ReconfigRequest): Promise<ReconfigOutcome> {
    const rec = this.findSession(ref);
    const p = rec.proto;
    if (p.departed) throw new CommandError(`session ${rec.id}: this agent is no longer on its path`);
    if (rec.ended) throw new CommandError(`session ${rec.id} has ended (${rec.ended})`);
    if (!p.idle) throw new CommandError(`session ${rec.id} is being reconfigured already`, 'EBUSY');
    const reconfigId = this.nextReconfigId++ >>> 0 || (this.nextReconfigId = 2, 1);
    const box = req.box;
    const newChain = req.kind === 'remove' ? [] : req.kind === 'replace' ? [req.with] : [req.box];
    let ev: ProtocolEvent;
    if (req.kind === 'insert') {
      if (!this.isSelf(req.after)) throw new CommandError(`insert after ${formatAddress(req.after)} runs at that agent, not here (${formatAddress(this.config.address)})`, 'ENOTNEIGHBOUR');
      if (!p.right) throw new CommandError(`session ${rec.id}: nothing to the right of this agent to insert before`);
      if (this.isSelf(box) || addressEquals(box, p.right.agent)) throw new CommandError(`${formatAddress(box)} is on the path already`);
      const newHop = this.allocateHop(box);
      this.indexHop(rec, newHop.subsession);
      rec.plan = { reconfigId, rightAnchor: p.right.agent, newChain };
      ev = { type: 'reconfigure', reconfigId, rightAnchor: p.right.agent, newChain, newHop };
    } else if (this.isSelf(box)) {
      if (!p.left || !p.right) throw new CommandError(`session ${rec.id}: this agent is an end of the session, not a box that can be ${req.kind === 'remove' ? 'removed' : 'replaced'}`);
      ev = { type: 'requestSelfReconfig', reconfigId, newChain };
    } else if (p.right && addressEquals(p.right.agent, box)) {
      const rightAnchor = rec.downstream[1];
      if (!rightAnchor) throw new CommandError(`session ${rec.id}: this agent does not know the hop after ${formatAddress(box)}; run the command at ${formatAddress(box)}`, 'ENOTNEIGHBOUR');
      const newHop = this.allocateHop(newChain[0] ?? rightAnchor);
      this.indexHop(rec, newHop.subsession);
      rec.plan = { reconfigId, rightAnchor, newChain };
      ev = { type: 'reconfigure', reconfigId, rightAnchor, newChain, newHop };
    } else {
      throw new CommandError(
        `${formatAddress(box)} is neither this agent nor its right neighbour on session ${rec.id} (right: ${p.right ? formatAddress(p.right.agent) : 'none'}); run the command at ${formatAddress(box)} or at its left neighbour`,
        'ENOTNEIGHBOUR',
      );
    }
    const started = Number(process.hrtime.bigint() / 1000n) / 1000;
    const done = new Promise<ReconfigOutcome>((resolve) => this.waiting.set(reconfigId, { session: rec.id, started, resolve }));
    this.log.info('reconfiguration requested', { session: rec.id, reconfigId, kind: req.kind, box: formatAddress(box), ...(req.kind === 'insert' ? { after: formatAddress(req.after) } : {}), ...(req.kind === 'replace' ? { with: formatAddress(req.with) } : {}) });
    this.handle(rec, ev);
    return done;
  }

  /**
   * Splices a proxy out: `left` is the session a local proxy terminated (it
   * arrived from the left and goes no further), `right` the one the proxy
   * opened toward the server for it. They become one session through this
   * box, whose byte streams differ by `deltas` (the proxy measured them on
   * its sockets: see `tcp-state.ts`), and the box asks its left neighbour
   * to take it out. Resolves with the outcome; on completion the two ends
   * talk directly, each still under its own tuple and sequence space.
   */
  splice(leftRef: string | number, rightRef: string | number, deltas: Deltas): Promise<ReconfigOutcome> {
    const l = this.findSession(leftRef);
    const r = this.findSession(rightRef);
    if (l === r) throw new CommandError('splice needs two different sessions');
    if (!l.proto.left || l.proto.right) throw new CommandError(`session ${l.id} is not one a local proxy terminated (it must have a left hop and no right hop)`);
    if (!r.proto.right || r.proto.left) throw new CommandError(`session ${r.id} is not one this host opened (it must have a right hop and no left hop)`);
    for (const x of [l, r]) {
      if (!x.proto.idle) throw new CommandError(`session ${x.id} is being reconfigured`, 'EBUSY');
      if (x.ended) throw new CommandError(`session ${x.id} has ended (${x.ended})`);
    }
    // one session through this box: the left side keeps its tuple, the right side is the proxy's upstream connection
    l.proto.right = r.proto.right;
    l.proto.ownDeltas = deltas;
    l.rightSession = r.proto.session;
    l.downstream = r.downstream;
    for (const t of r.timers.values()) clearTimeout(t);
    for (const k of r.hops) this.byHop.set(k, l), l.hops.add(k);
    this.bySession.set(tupleKey(r.proto.session), l);
    this.sessions.delete(r.id);
    this.log.info('sessions joined for splicing', { left: l.id, right: r.id, deltas });
    const reconfigId = this.nextReconfigId++ >>> 0 || (this.nextReconfigId = 2, 1);
    const started = Number(process.hrtime.bigint() / 1000n) / 1000;
    // the request completes when the first anchor is done; the proxy must relay until the box is off the path in both directions
    let departed!: () => void;
    const off = new Promise<void>((resolve) => (departed = resolve));
    l.onDepart = departed;
    const done = new Promise<ReconfigOutcome>((resolve) => this.waiting.set(reconfigId, { session: l.id, started, resolve })).then(async (o) => {
      if (o.result !== 'completed') {
        l.onDepart = undefined;
        return o;
      }
      await off;
      return { ...o, durationMs: Number(process.hrtime.bigint() / 1000n) / 1000 - started };
    });
    this.handle(l, { type: 'requestSelfReconfig', reconfigId, newChain: [] });
    this.scheduleSave();
    return done;
  }

  /**
   * The session of a local socket: its tuple in either direction, or for a
   * proxy's accepted socket whose destination a local redirect changed,
   * the session that came from its remote end and ends here.
   */
  findBySocket(local: string, remote: string): SessionRecord {
    try {
      return this.findSession(`${remote}>${local}`);
    } catch {
      // not the accepted side of a redirect
    }
    try {
      return this.findSession(`${local}>${remote}`);
    } catch {
      // try the redirected form below
    }
    let from: FiveTuple;
    try {
      from = parseTuple(`${remote}>${local}`);
    } catch (e) {
      throw new CommandError(`bad socket ends: ${(e as Error).message}`);
    }
    const m = [...this.sessions.values()].filter((r) => !r.proto.right && r.proto.left && addressEquals(r.proto.session.src, from.src) && r.proto.session.sport === from.sport);
    if (m.length === 1) return m[0]!;
    throw new CommandError(`no session for the socket ${local} <-> ${remote}`, 'ENOSESSION');
  }

  /** Cancels this agent's reconfiguration of a session, if it can still be cancelled. */
  cancel(ref: string | number): void {
    const rec = this.findSession(ref);
    this.handle(rec, { type: 'cancel' });
  }

  addPolicy(p: Policy): void {
    if (this.table.policies.some((q) => q.id === p.id)) throw new CommandError(`policy ${p.id} exists (delete it first)`);
    this.table.addPolicy(p);
    this.log.info('policy added', { id: p.id });
  }

  private nextConnectionPolicy = CONNECTION_POLICY_BASE;

  /**
   * A classifier's choice: the connection from `src` to `dst` that a local
   * application is about to open goes through `chain`. Returns the id of
   * the per-connection policy, to be removed once the connection is up.
   */
  steerConnection(src: { address: Address; port: number }, dst: { address: Address; port: number }, chain: readonly Address[]): number {
    const id = this.nextConnectionPolicy;
    this.nextConnectionPolicy = this.nextConnectionPolicy >= 0xfffffff0 ? CONNECTION_POLICY_BASE : this.nextConnectionPolicy + 1;
    const host = (a: Address) => ({ address: a, length: a.family === 4 ? 32 : 128 });
    this.table.addPolicy({ id, src: host(src.address), dst: host(dst.address), sport: [src.port, src.port], dport: [dst.port, dst.port], chain });
    this.log.info('connection steered by a classifier', { id, src: formatAddress(src.address), sport: src.port, dst: formatAddress(dst.address), dport: dst.port, chain: chain.map(formatAddress) });
    return id;
  }

  removePolicy(id: number): void {
    if (!this.table.removePolicy(id)) throw new CommandError(`no policy ${id}`);
    this.log.info('policy removed', { id });
  }

  policies(): readonly Policy[] {
    return this.table.policies;
  }

  info(rec: SessionRecord): SessionInfo {
    const p = rec.proto;
    let packets = 0;
    let bytes = 0;
    for (const k of [rec.rightSession ?? p.session, reverseTuple(p.session)]) {
      const e = this.table.getEgress(k);
      if (e) {
        packets += e.packets;
        bytes += e.bytes;
      }
    }
    return {
      id: rec.id,
      session: formatTuple(p.session),
      ...(rec.rightSession ? { rightSession: formatTuple(rec.rightSession) } : {}),
      role: rec.role,
      left: hopOut(p.left),
      right: hopOut(p.right),
      downstream: rec.downstream.map(formatAddress),
      state: { lock: p.lockState, leftAnchor: p.leftAnchorState, rightAnchor: p.rightAnchorState, departed: p.departed },
      packets,
      bytes,
      ended: rec.ended,
      createdAt: new Date(rec.createdAt).toISOString(),
    };
  }

  listSessions(): SessionInfo[] {
    return [...this.sessions.values()].map((r) => this.info(r));
  }

  stats(): { dataplane: Record<keyof Counters, number>; agent: Record<string, number>; table: ReturnType<KernelTable['size']> } {
    const c = this.dp.counters();
    const dataplane = Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Number(v)])) as Record<keyof Counters, number>;
    return { dataplane, agent: this.metrics.snapshot(), table: this.table.size() };
  }

  // ---- restart -------------------------------------------------------------------------

  /**
   * The state file is rewritten whole, which takes time proportional to the
   * sessions held: it waits 50 ms after a change, or twenty times as long as
   * the last write took, so that writing it never takes more than a twentieth
   * of the agent's time however many sessions come and go. (Reconfigurations
   * do not wait: their steps go to the journal at once.)
   */
  private scheduleSave(): void {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      const t0 = performance.now();
      this.guard('save', () => this.save());
      this.lastSaveMs = performance.now() - t0;
    }, Math.max(50, 20 * this.lastSaveMs));
  }
  private lastSaveMs = 0;

  private persisted(r: SessionRecord): PersistedSession {
    const busy = !r.proto.atRest;
    return {
      id: r.id,
      session: formatTuple(r.proto.session),
      role: r.role,
      left: hopOut(r.proto.left),
      right: hopOut(r.proto.right),
      downstream: r.downstream.map(formatAddress),
      createdAt: r.createdAt,
      rightSession: r.rightSession ? formatTuple(r.rightSession) : undefined,
      // hops say it all for most sessions; the rest carry their whole protocol state
      protocol: busy ? r.proto.snapshot() : undefined,
      hops: busy ? [...r.hops] : undefined,
      ...(r.proto.departed || this.sessions.get(r.id) !== r ? { departed: true } : {}),
    };
  }

  private writeAtomically(name: string, content: string): void {
    mkdirSync(this.config.stateDir, { recursive: true });
    const file = join(this.config.stateDir, name);
    writeFileSync(`${file}.tmp`, content);
    renameSync(`${file}.tmp`, file);
  }

  /** Writes what the kernel does not hold (hops, roles, hints) so a restarted agent can adopt the sessions. */
  private save(): void {
    const out = [...this.sessions.values()].filter((r) => !r.proto.departed).map((r) => this.persisted(r));
    this.writeAtomically(STATE_FILE, JSON.stringify({ version: 1, nextSessionId: this.nextSessionId, sessions: out }));
    // everything the journal said is in the state file now
    this.journal.clear();
    rmSync(join(this.config.stateDir, JOURNAL_FILE), { force: true });
  }

  /**
   * Appends one session's state after a step of a reconfiguration (see
   * JOURNAL_FILE): one line per step, the last line of a session wins, so a
   * step costs the same however many sessions are being reconfigured at once.
   */
  private writeJournal(rec: SessionRecord): void {
    mkdirSync(this.config.stateDir, { recursive: true });
    appendFileSync(join(this.config.stateDir, JOURNAL_FILE), `${JSON.stringify({ nextSessionId: this.nextSessionId, session: this.persisted(rec) })}\n`);
  }

  /** The journal's lines in order (a line cut short by a kill is skipped). */
  private readJournal(): { nextSessionId?: number; sessions?: PersistedSession[] } | undefined {
    const file = join(this.config.stateDir, JOURNAL_FILE);
    if (!existsSync(file)) return undefined;
    const sessions: PersistedSession[] = [];
    let nextSessionId = 0;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const e = JSON.parse(line) as { nextSessionId?: number; session?: PersistedSession };
        if (e.session) sessions.push(e.session);
        if (typeof e.nextSessionId === 'number') nextSessionId = Math.max(nextSessionId, e.nextSessionId);
      } catch {
        this.log.warn('journal line unreadable, skipped', { file });
      }
    }
    return { nextSessionId, sessions };
  }

  private loadReplayWindow(): void {
    const file = join(this.config.stateDir, REPLAY_FILE);
    if (!existsSync(file)) return;
    try {
      this.replay = ReplayWindow.restore(JSON.parse(readFileSync(file, 'utf8')));
    } catch (e) {
      this.log.warn('replay windows unreadable: control messages accepted before the restart could be accepted again', { file, error: (e as Error).message });
    }
  }

  /** Takes over the sessions of a previous run whose entries are still in the kernel. */
  private adopt(): void {
    const read = (name: string): { nextSessionId?: number; sessions?: PersistedSession[] } | undefined => {
      const file = join(this.config.stateDir, name);
      if (!existsSync(file)) return undefined;
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as { nextSessionId?: number; sessions?: PersistedSession[] };
      } catch (e) {
        this.log.warn('state file unreadable, its sessions not adopted', { file, error: (e as Error).message });
        return undefined;
      }
    };
    const base = read(STATE_FILE);
    const journal = this.readJournal();
    if (!base && !journal) return;
    // the journal is newer than the state file for the sessions it names
    const byId = new Map<number, PersistedSession>();
    for (const s of [...(base?.sessions ?? []), ...(journal?.sessions ?? [])]) if (s && typeof s.id === 'number') byId.set(s.id, s);
    const saved = { nextSessionId: Math.max(base?.nextSessionId ?? 0, journal?.nextSessionId ?? 0), sessions: [...byId.values()].filter((s) => !s.departed) };
    const resumed: SessionRecord[] = [];
    for (const s of saved.sessions) {
      try {
        const session = parseTuple(s.session);
        if (!this.table.getEgress(session) && !this.table.getEgress(reverseTuple(session))) continue;
        const rec = this.newRecord(session, s.role, s.downstream.map(parseAddress), s.id, s.createdAt);
        if (s.rightSession) {
          rec.rightSession = parseTuple(s.rightSession);
          this.bySession.set(tupleKey(rec.rightSession), rec);
        }
        if (s.protocol) {
          // take the protocol up where it stopped, a reconfiguration in progress included
          rec.proto = SessionProtocol.restore({ self: this.config.address, session, retry: this.retry }, s.protocol);
        } else {
          rec.proto.left = hopIn(s.left);
          rec.proto.right = hopIn(s.right);
        }
        for (const h of [rec.proto.left, rec.proto.right]) if (h) this.indexHop(rec, h.subsession);
        for (const k of s.hops ?? []) {
          rec.hops.add(k);
          if (!this.byHop.has(k)) this.byHop.set(k, rec);
        }
        if (!rec.proto.idle) resumed.push(rec);
      } catch (e) {
        this.log.warn('saved session not adopted', { session: s.session, error: (e as Error).message });
      }
    }
    if (saved.nextSessionId && saved.nextSessionId > this.nextSessionId) this.nextSessionId = saved.nextSessionId;
    this.log.info('adopted sessions of the previous run', { sessions: this.sessions.size, reconfiguring: resumed.length });
    for (const rec of resumed) {
      this.log.info('resuming a reconfiguration', { session: rec.id, lock: rec.proto.lockState, leftAnchor: rec.proto.leftAnchorState, rightAnchor: rec.proto.rightAnchorState });
      this.guard('resume', () => {
        this.execute(rec, rec.proto.resume());
        // an old path the data plane drained while no agent listened is read from the kernel's entry
        for (const side of ['right', 'left'] as const) {
          if (this.anchorTwoPath(rec, side) && oldPathDone(this.table, this.anchorSession(rec, side), side)) this.handle(rec, { type: 'oldPathDrained', side });
        }
      });
    }
  }

  // ---- errors ---------------------------------------------------------------------------

  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fail(where, e);
    }
  }

  private fail(where: string, e: unknown): void {
    this.mErrors({ where });
    this.log.error('internal error handled', { where, error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
  }

  /** Logs a warning at most 10 times a minute per kind; the counters still count everything. */
  private warnLimited(kind: string, msg: string, fields: Record<string, unknown>): void {
    const minute = Math.floor(Date.now() / 60_000);
    let r = this.rateLimited.get(kind);
    if (!r || r.window !== minute) {
      r = { window: minute, count: 0 };
      this.rateLimited.set(kind, r);
    }
    if (++r.count <= 10) this.log.warn(msg, fields);
    else if (r.count === 11) this.log.warn('more of these this minute are counted, not logged', { kind });
  }

  // ---- shutdown -------------------------------------------------------------------------

  /**
   * Stops the agent. `detach` (a clean, explicit shutdown) takes the programs
   * off the interfaces and `removePins` removes the pinned maps with their
   * sessions; without them the data plane keeps running from the pinned
   * maps and a new agent adopts it.
   */
  async close(opts: { detach?: boolean; removePins?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (!opts.detach) this.guard('save', () => this.save());
    if (this.reclaimTimer) clearInterval(this.reclaimTimer);
    if (this.drainTimer) clearInterval(this.drainTimer);
    for (const r of this.sessions.values()) {
      for (const t of r.timers.values()) clearTimeout(t);
      if (r.linger) clearTimeout(r.linger);
    }
    for (const w of this.waiting.values()) w.resolve({ reconfigId: 0, session: w.session, result: 'aborted', reason: 'operator', durationMs: 0 });
    this.waiting.clear();
    this.stopEvents?.();
    this.udp?.close();
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
    if (opts.detach) {
      for (const a of this.attachments.splice(0).reverse()) {
        try {
          a.detach();
        } catch (e) {
          this.log.warn('detach failed', { ifname: a.ifname, error: (e as Error).message });
        }
      }
      rmSync(join(this.config.pinRoot, LINKS_DIR), { recursive: true, force: true });
    }
    this.dp.close();
    if (opts.removePins) {
      rmSync(this.config.pinRoot, { recursive: true, force: true });
      rmSync(join(this.config.stateDir, STATE_FILE), { force: true });
      rmSync(join(this.config.stateDir, JOURNAL_FILE), { force: true });
    }
    this.log.info('agent stopped', { detached: !!opts.detach, mapsRemoved: !!opts.removePins });
  }
}
