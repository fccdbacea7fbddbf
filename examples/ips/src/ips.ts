/**
 * The IPS: it follows the sessions through its host as the agent reports
 * them, maps each captured packet to its session and direction by the
 * subsession tuple it arrived on, reconstructs both byte streams, scans
 * them for the configured terms, and for each session decides:
 *
 * - block: a blacklisted end, a term in either direction, or a stream it
 *   cannot reconstruct (when so configured): the session's packets are
 *   dropped at this host from then on;
 * - release: once it has scanned `releaseAfterBytes` in both directions
 *   without a match, it asks its agent to take this box out of the session
 *   (`dysco.remove(session, self)`);
 * - allow: the session ended, or left this box, before either.
 *
 * Each decision is logged as one JSON record with the session's protocol,
 * addresses, ports, times, the bytes scanned each way and the verdict.
 *
 * The engine does no I/O itself: packets come in through `onSegment`, the
 * agent's events through `onEvent`, and it acts through an `AgentApi` (the
 * library's client) and an `Enforcer` (nftables).
 */
import type { AgentEvent, ReconfigOutcome, SessionInfo } from '@dysco/agent';
import { type FiveTuple, addressEquals, formatAddress, formatTuple, parseAddress, parseTuple, reverseTuple } from '@dysco/protocol';
import { AhoCorasick, StreamScanner } from './aho-corasick.js';
import type { BlacklistHit } from './blacklist.js';
import type { IpsConfig } from './config.js';
import type { Log } from './log.js';
import type { Enforcer } from './nft.js';
import type { TcpSegment } from './packet.js';
import { Reassembler } from './reassembly.js';

/** What the IPS needs from its agent: the library's `DyscoClient` has all of it. */
export interface AgentApi {
  sessions(): Promise<SessionInfo[]>;
  remove(session: number, box: string): Promise<ReconfigOutcome>;
  cancel(session: number): Promise<void>;
}

export type Direction = 'clientToServer' | 'serverToClient';
export type Verdict = 'block' | 'release' | 'allow';

export interface IpsOptions {
  readonly config: IpsConfig;
  /** This box's address (its agent's). */
  readonly self: string;
  readonly agent: AgentApi;
  readonly enforcer: Enforcer;
  readonly log: Log;
}

/** One direction of a watched session. */
interface Flow {
  reasm: Reassembler | undefined;
  /** Undefined when there are no terms (blacklist only): the bytes are counted, not scanned. */
  readonly scanner: StreamScanner | undefined;
  /** Stream bytes scanned. */
  scanned: number;
  packets: number;
  gaps: number;
  gapBytes: number;
  /** The sender closed this direction and every byte before its FIN was scanned. */
  closed: boolean;
}

interface Watch {
  info: SessionInfo;
  readonly tuple: FiveTuple;
  status: 'watching' | 'releasing' | 'blocked' | 'done';
  /** When the IPS started watching (ms since the epoch). */
  readonly since: number;
  readonly flows: Record<Direction, Flow>;
  /** Arrival tuples (subsession, as it arrives here) mapped to this watch. */
  readonly keys: Set<string>;
  releaseAttempts: number;
  retry: NodeJS.Timeout | undefined;
  /** A block decided while the release was under way. */
  blockedWhileReleasing: boolean;
  /** The agent reported the session's end: the verdict waits for the packets still in the capture buffer. */
  ending: NodeJS.Timeout | undefined;
}

interface Route {
  readonly watch: Watch;
  readonly dir: Direction;
}

/** A captured segment kept until its session is known (payload copied). */
interface Stashed {
  readonly seg: TcpSegment;
  readonly at: number;
}

export interface IpsStats {
  sessionsWatched: number;
  blocked: number;
  released: number;
  allowed: number;
  /** Segments that arrived before their session was known, kept and replayed. */
  stashedSegments: number;
  /** Kept segments whose session never became known. */
  expiredSegments: number;
  /** Segments of sessions already decided (blocked, released). */
  ignoredSegments: number;
}

/** How long a segment of a not-yet-known subsession is kept, and how much of them at most. */
const STASH_MS = 5000;
const STASH_MAX_BYTES = 16 << 20;
/** A finished session's tuples are ignored this long (late packets on the old path). */
const RETIRE_MS = 30_000;
const RELEASE_ATTEMPTS = 5;
/** How long after the agent reports a session's end its verdict waits for the last captured packets. */
const ENDING_MS = 500;

export class Ips {
  readonly stats: IpsStats = { sessionsWatched: 0, blocked: 0, released: 0, allowed: 0, stashedSegments: 0, expiredSegments: 0, ignoredSegments: 0 };
  readonly automaton: AhoCorasick | undefined;
  private readonly config: IpsConfig;
  private readonly self: string;
  private readonly agent: AgentApi;
  private readonly enforcer: Enforcer;
  private readonly log: Log;
  /** Watched sessions by the agent's session id. */
  private readonly watches = new Map<number, Watch>();
  private readonly routes = new Map<string, Route>();
  /** Tuples and session ids of decided sessions, until when they are ignored. */
  private readonly retired = new Map<string, number>();
  private readonly finished = new Map<number, number>();
  private readonly stash = new Map<string, Stashed[]>();
  private stashBytes = 0;
  private refreshing: Promise<void> | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private closed = false;

  constructor(o: IpsOptions) {
    this.config = o.config;
    this.self = o.self;
    this.agent = o.agent;
    this.enforcer = o.enforcer;
    this.log = o.log;
    this.automaton = o.config.terms.length > 0 ? new AhoCorasick(o.config.terms.map((t) => t.bytes), { caseInsensitive: o.config.caseInsensitive }) : undefined;
  }

  // ---- input -------------------------------------------------------------------

  /** A captured TCP segment that arrived at this host. */
  onSegment(seg: TcpSegment): void {
    if (this.closed) return;
    const key = formatTuple(seg.tuple);
    const route = this.routes.get(key);
    if (route) return this.process(route.watch, route.dir, seg);
    const until = this.retired.get(key);
    if (until !== undefined && until > Date.now()) {
      this.stats.ignoredSegments++;
      return;
    }
    // a subsession the IPS does not know yet: an inserted box hears of its sessions only by asking
    this.keep(key, seg);
    this.requestRefresh();
  }

  /** An event from the agent. */
  onEvent(e: AgentEvent): void {
    if (this.closed) return;
    switch (e.type) {
      case 'sessionCreated':
        this.upsert(e.session);
        break;
      case 'sessionEnded': {
        const w = this.watches.get(e.id);
        if (w) this.forget(w, e.reason === 'idle' ? 'the session was idle and reclaimed' : `the session ended (${e.reason})`);
        break;
      }
      default:
        break;
    }
  }

  /** Reads the agent's sessions: new ones are watched, departed and forgotten ones dropped. */
  refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.lastRefresh = Date.now();
    this.refreshing = this.agent
      .sessions()
      .then((list) => {
        if (this.closed) return;
        const listed = new Set<number>();
        for (const s of list) {
          listed.add(s.id);
          this.upsert(s);
        }
        for (const w of [...this.watches.values()]) if (!listed.has(w.info.id)) this.forget(w, 'the agent no longer lists the session');
        this.sweep();
      })
      .catch((e: unknown) => this.log.warn('cannot read the sessions', { error: (e as Error).message }))
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Stops timers; the engine ignores input from then on. */
  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    for (const w of this.watches.values()) {
      if (w.retry) clearTimeout(w.retry);
      if (w.ending) clearTimeout(w.ending);
    }
  }

  /** The sessions watched now, for tests and the exit summary. */
  watching(): { id: number; session: string; status: Watch['status']; scanned: Record<Direction, number> }[] {
    return [...this.watches.values()].map((w) => ({ id: w.info.id, session: w.info.session, status: w.status, scanned: { clientToServer: w.flows.clientToServer.scanned, serverToClient: w.flows.serverToClient.scanned } }));
  }

  // ---- sessions ----------------------------------------------------------------

  private requestRefresh(): void {
    if (this.refreshTimer || this.refreshing) return;
    const wait = Math.max(0, this.lastRefresh + 50 - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    }, wait);
  }

  /** A session the agent reports: watched from now on if this host is one of its boxes. */
  private upsert(s: SessionInfo): void {
    let w = this.watches.get(s.id);
    if (s.state.departed) {
      if (w && w.status !== 'blocked') this.forget(w, 'this box left the session');
      return;
    }
    if (s.ended) {
      // both FINs, or a RST, went through here: the last segments may still be in the capture buffer
      if (w && w.status !== 'blocked' && !w.ending) {
        const ended = w;
        ended.ending = setTimeout(() => {
          // a block decided on those last packets stays until the agent forgets the session
          if (this.watches.get(s.id) === ended && ended.status !== 'blocked') this.forget(ended, `the session ended (${s.ended})`);
        }, ENDING_MS);
      }
      return;
    }
    // this host's own connections (originator, last hop) are not inspected: only boxes
    if (s.role !== 'middlebox' && s.role !== 'relay') return;
    const until = this.finished.get(s.id);
    if (until !== undefined && until > Date.now()) return;
    if (!w) {
      let tuple: FiveTuple;
      try {
        tuple = parseTuple(s.session);
      } catch (e) {
        this.log.warn('session with an unreadable tuple', { session: s.session, error: (e as Error).message });
        return;
      }
      const flow = (): Flow => ({ reasm: undefined, scanner: this.automaton ? new StreamScanner(this.automaton) : undefined, scanned: 0, packets: 0, gaps: 0, gapBytes: 0, closed: false });
      w = { info: s, tuple, status: 'watching', since: Date.now(), flows: { clientToServer: flow(), serverToClient: flow() }, keys: new Set(), releaseAttempts: 0, retry: undefined, blockedWhileReleasing: false, ending: undefined };
      this.watches.set(s.id, w);
      this.stats.sessionsWatched++;
      this.log.info('watching', { session: s.id, role: s.role, ...this.endpoints(w), left: s.left?.agent, right: s.right?.agent });
      const hit = this.config.blacklist.match(tuple);
      if (hit) this.block(w, { reason: 'blacklist', blacklist: hit });
    } else w.info = s;
    // the hops' tuples as packets arrive here: from the left is the client's direction
    if (s.left) this.route(w, s.left, 'clientToServer');
    if (s.right) this.route(w, s.right, 'serverToClient');
  }

  private route(w: Watch, hop: { agent: string; subsession: string }, dir: Direction): void {
    let t: FiveTuple;
    try {
      t = parseTuple(hop.subsession);
      if (!addressEquals(t.src, parseAddress(hop.agent))) t = reverseTuple(t);
    } catch (e) {
      this.log.warn('hop with an unreadable subsession', { session: w.info.id, hop, error: (e as Error).message });
      return;
    }
    const key = formatTuple(t);
    if (w.keys.has(key)) return;
    w.keys.add(key);
    this.routes.set(key, { watch: w, dir });
    this.retired.delete(key);
    const kept = this.stash.get(key);
    if (kept) {
      this.stash.delete(key);
      for (const k of kept) {
        this.stashBytes -= k.seg.payload.length;
        this.process(w, dir, k.seg);
      }
    }
  }

  /** The watch ends: its routes go, and late packets on its tuples are ignored for a while. */
  private retire(w: Watch): void {
    if (w.retry) clearTimeout(w.retry);
    if (w.ending) clearTimeout(w.ending);
    this.watches.delete(w.info.id);
    const until = Date.now() + RETIRE_MS;
    this.finished.set(w.info.id, until);
    for (const k of w.keys) {
      if (this.routes.get(k)?.watch === w) this.routes.delete(k);
      this.retired.set(k, until);
    }
  }

  /** The agent forgot the session, or this box left it. */
  private forget(w: Watch, why: string): void {
    if (w.status === 'blocked') {
      void this.enforcer.unblock(w.tuple).catch((e: unknown) => this.log.warn('cannot remove the block', { session: w.info.id, error: (e as Error).message }));
      this.log.info('block lifted: the agent forgot the session', { session: w.info.id, ...this.endpoints(w), why });
      this.retire(w);
      return;
    }
    if (w.status === 'watching' || w.status === 'releasing') this.verdict(w, 'allow', { reason: 'closed', detail: why });
    this.retire(w);
  }

  // ---- packets -----------------------------------------------------------------

  private keep(key: string, seg: TcpSegment): void {
    if (this.stashBytes + seg.payload.length > STASH_MAX_BYTES) {
      this.stats.expiredSegments++;
      return;
    }
    const copy: TcpSegment = { ...seg, tuple: { ...seg.tuple, src: { ...seg.tuple.src }, dst: { ...seg.tuple.dst } }, payload: seg.payload.slice() };
    let list = this.stash.get(key);
    if (!list) this.stash.set(key, (list = []));
    list.push({ seg: copy, at: Date.now() });
    this.stashBytes += copy.payload.length;
    this.stats.stashedSegments++;
  }

  /** Drops kept segments nobody claimed, and expired retirements. */
  private sweep(): void {
    const now = Date.now();
    for (const [key, list] of this.stash) {
      if (list[list.length - 1]!.at + STASH_MS > now) continue;
      this.stash.delete(key);
      for (const k of list) this.stashBytes -= k.seg.payload.length;
      this.stats.expiredSegments += list.length;
    }
    for (const [k, until] of this.retired) if (until <= now) this.retired.delete(k);
    for (const [k, until] of this.finished) if (until <= now) this.finished.delete(k);
  }

  private process(w: Watch, dir: Direction, seg: TcpSegment): void {
    if (w.status === 'blocked' || w.status === 'done') {
      this.stats.ignoredSegments++;
      return;
    }
    const flow = w.flows[dir];
    flow.packets++;
    if (seg.rst) {
      this.verdict(w, 'allow', { reason: 'closed', detail: `reset by the ${dir === 'clientToServer' ? 'client' : 'server'}` });
      this.retire(w);
      return;
    }
    if (!flow.reasm) {
      // the stream starts at the first sequence number seen: after the SYN, or mid-stream for an inserted box
      if (seg.syn) flow.reasm = new Reassembler(seg.seq + 1, this.config.reassembly);
      else if (seg.wireLength > 0 || seg.fin) flow.reasm = new Reassembler(seg.seq, this.config.reassembly);
      else return;
    }
    if (seg.syn) return; // a SYN's payload is the Dysco metadata, not stream data
    const pieces = flow.reasm.push(seg.seq, seg.payload, { fin: seg.fin, wireLength: seg.wireLength });
    for (const p of pieces) {
      if (p.kind === 'gap') {
        flow.gaps++;
        flow.gapBytes += p.length;
        flow.scanner?.reset(p.length);
        if (this.config.reassembly.onGap === 'block') {
          this.block(w, { reason: 'gap', direction: dir, offset: p.offset, missingBytes: p.length, cause: p.cause });
          return;
        }
        // the first gap of a direction is logged; the verdict record has the total
        if (flow.gaps === 1) this.log.warn('gap in a stream: matches cannot span it', { session: w.info.id, direction: dir, offset: p.offset, bytes: p.length, cause: p.cause });
        continue;
      }
      let hit: { pattern: number; end: number } | undefined;
      const n = flow.scanner
        ? flow.scanner.feed(p.data, (m) => {
            hit = m;
            return true;
          })
        : p.data.length;
      flow.scanned += n;
      if (hit) {
        const term = this.config.terms[hit.pattern]!;
        this.block(w, { reason: 'term', term: term.name, direction: dir, offset: hit.end - term.bytes.length });
        return;
      }
    }
    flow.closed = flow.reasm.finished;
    if (w.flows.clientToServer.closed && w.flows.serverToClient.closed) {
      this.verdict(w, 'allow', { reason: 'closed', detail: 'both ends closed the connection' });
      this.retire(w);
      return;
    }
    this.maybeRelease(w);
  }

  // ---- decisions ---------------------------------------------------------------

  private maybeRelease(w: Watch): void {
    const n = this.config.releaseAfterBytes;
    if (n <= 0 || w.status !== 'watching' || w.retry) return;
    const enough = (f: Flow) => f.scanned >= n || f.closed;
    if (!enough(w.flows.clientToServer) || !enough(w.flows.serverToClient)) return;
    this.release(w);
  }

  /** Asks the agent to take this box out of the session. */
  private release(w: Watch): void {
    w.status = 'releasing';
    w.releaseAttempts++;
    const id = w.info.id;
    const done = (o: ReconfigOutcome | undefined, error?: string) => {
      if (w.blockedWhileReleasing) {
        if (o?.result === 'completed') this.log.warn('the session left this box before its block took effect', { session: id, ...this.endpoints(w) });
        return;
      }
      if (w.status !== 'releasing') return;
      if (o?.result === 'completed') {
        this.verdict(w, 'release', { reason: 'seenEnough', removal: { result: o.result, durationMs: round(o.durationMs), attempts: w.releaseAttempts } });
        this.retire(w);
        return;
      }
      // refused or aborted (another reconfiguration held the lock, say): go on scanning, ask again later
      w.status = 'watching';
      const detail = error ?? `${o?.result}${o?.reason ? ` (${o.reason})` : ''}`;
      if (w.releaseAttempts >= RELEASE_ATTEMPTS) {
        this.log.warn('cannot leave the session; staying on its path and scanning', { session: id, attempts: w.releaseAttempts, last: detail });
        return;
      }
      const delay = 100 * 2 ** w.releaseAttempts;
      this.log.info('release not done; asking again', { session: id, attempt: w.releaseAttempts, outcome: detail, retryInMs: delay });
      w.retry = setTimeout(() => {
        w.retry = undefined;
        if (w.status === 'watching' && !this.closed) this.release(w);
      }, delay);
    };
    this.agent.remove(id, this.self).then(
      (o) => done(o),
      (e: unknown) => done(undefined, (e as Error).message),
    );
  }

  /** Drops the session's traffic at this host from now on, and logs the verdict. */
  private block(w: Watch, why: Record<string, unknown> & { reason: 'term' | 'blacklist' | 'gap'; blacklist?: BlacklistHit }): void {
    if (w.status === 'blocked' || w.status === 'done') return;
    if (w.status === 'releasing') {
      w.blockedWhileReleasing = true;
      void this.agent.cancel(w.info.id).catch(() => undefined);
    }
    if (w.retry) clearTimeout(w.retry);
    w.retry = undefined;
    w.status = 'blocked';
    const decided = Date.now();
    this.enforcer.block(w.tuple).then(
      () => this.verdict(w, 'block', { ...why, enforcedInMs: Date.now() - decided }),
      (e: unknown) => {
        this.log.error('cannot block the session', { session: w.info.id, ...this.endpoints(w), error: (e as Error).message });
        this.verdict(w, 'block', { ...why, enforced: false });
      },
    );
  }

  private endpoints(w: Watch): Record<string, unknown> {
    const t = w.tuple;
    return { protocol: 'tcp', src: formatAddress(t.src), sport: t.sport, dst: formatAddress(t.dst), dport: t.dport };
  }

  /** The session's record: one JSON line. */
  private verdict(w: Watch, verdict: Verdict, fields: Record<string, unknown>): void {
    if (verdict === 'block') this.stats.blocked++;
    else if (verdict === 'release') this.stats.released++;
    else this.stats.allowed++;
    if (verdict !== 'block') w.status = 'done';
    const f = w.flows;
    const gaps = f.clientToServer.gaps + f.serverToClient.gaps;
    this.log.info('verdict', {
      verdict,
      ...fields,
      session: w.info.id,
      role: w.info.role,
      ...this.endpoints(w),
      // a middlebox joined at the SYN: the connection's start; an inserted box (relay) knows only when it joined
      ...(w.info.role === 'middlebox' ? { connectedAt: w.info.createdAt } : {}),
      joinedAt: w.info.createdAt,
      watchedFrom: new Date(w.since).toISOString(),
      durationMs: Date.now() - w.since,
      bytes: { clientToServer: f.clientToServer.scanned, serverToClient: f.serverToClient.scanned },
      packets: { clientToServer: f.clientToServer.packets, serverToClient: f.serverToClient.packets },
      ...(gaps > 0 ? { gapBytes: { clientToServer: f.clientToServer.gapBytes, serverToClient: f.serverToClient.gapBytes } } : {}),
    });
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
