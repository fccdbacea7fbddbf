import type { Address, Prefix } from './address.js';
import type { FiveTuple } from './tuple.js';

/**
 * The per-agent session table: the state the data plane needs to rewrite
 * packets, and nothing else. The reference rewriter (rewriter.ts) works on
 * it; the eBPF data plane holds the same entries in its maps, laid out as
 * `docs/session-table.md` documents and `table-layout.ts` encodes.
 *
 * Directions. *Egress* packets come from the local stack or middlebox
 * application and carry a session tuple (forward or reversed); *ingress*
 * packets come from the wire and carry a subsession tuple. Every session an
 * agent takes part in has one egress entry per direction it sends in and one
 * ingress entry per subsession direction it receives on.
 */

/** How a packet is rewritten onto one path (or back to the session). */
export interface PathRewrite {
  /** The tuple the rewritten packet carries. */
  readonly tuple: FiveTuple;
  /** Added (mod 2^32) to the sequence number. */
  readonly seqDelta: number;
  /** Added (mod 2^32) to the ack number and to both edges of every SACK block. */
  readonly ackDelta: number;
  /** Added (mod 2^32) to TSval and TSecr of the timestamp option. */
  readonly tsvalDelta: number;
  readonly tsecrDelta: number;
  /**
   * Window rescaling for spliced connections: the window field w becomes
   * min(0xffff, (w << wsFrom) >> wsTo). Equal values leave it untouched.
   */
  readonly wsFrom: number;
  readonly wsTo: number;
}

/** Two-path state of an anchor during a reconfiguration. */
export interface TwoPathState {
  /** Rewrite onto the new path. */
  readonly newPath: PathRewrite;
  /**
   * The anchor's own cutoff, in the local stack's sequence space: data at or
   * above it goes on the new path, retransmissions below it on the old path.
   * Fixed when the anchor starts using the new path (its sndHigh then).
   */
  seqCutoff: number;
  /**
   * Lowest sequence number received on the new path (local stack's ack
   * space), written by the ingress path; undefined until the first new-path
   * data arrives. The peer only sends data at or above its own cutoff on the
   * new path, so an ack A belongs to the old path iff this is unknown or
   * A <= it, whatever the reordering.
   */
  newPathMinSeq: number | undefined;
  /** Highest ack received from the peer on either path (local sequence space). */
  peerAckHigh: number | undefined;
  /** Set once peerAckHigh >= seqCutoff: everything sent on the old path is acked. */
  drained: boolean;
  /**
   * Where the peer anchor's old-path data ends, in the local stack's ack
   * space: told by the peer (the `upTo` of its ack or teardown message) and
   * undefined until then. A box that terminates TCP on the old path (a proxy
   * splicing itself out) acknowledges data it has not yet delivered, so the
   * peer's own acks say nothing about what arrived here.
   */
  peerEnd?: number | undefined;
  /**
   * Set once the peer's old-path end is known and the local stack has
   * acknowledged everything up to it (or the peer sent nothing on the old
   * path). The old path is done with when this and `drained` hold.
   */
  received: boolean;
  /**
   * The anchor had sent nothing when it entered two paths (a session still
   * in its handshake): the first packet it sends fixes seqCutoff at its own
   * sequence number, so all of its data goes on the new path.
   */
  cutoffPending?: boolean;
  /**
   * The new path is prepared but not yet used for data (the left anchor in
   * SettingUp, the right anchor in Waiting): new-path data may already
   * arrive, so acks are split by newPathMinSeq, while all data stays on the
   * old path until the cutover fixes seqCutoff.
   */
  awaitingCutover?: boolean;
}

export interface EgressEntry {
  /** Key: the tuple the local stack or application emits. */
  readonly key: FiveTuple;
  /** The path in use (in two-path mode, the old path). */
  old: PathRewrite;
  /** Present while the agent is an anchor with two paths. */
  twoPath: TwoPathState | undefined;
  /** Highest sequence number + length (+SYN/FIN) sent so far, local space. */
  sndHigh: number | undefined;
  /**
   * Highest ack the local stack has sent through this entry (local ack
   * space; like sndHigh, it never jumps more than a TCP window ahead).
   */
  ackSentHigh?: number | undefined;
  /** Packets and bytes rewritten by this entry (counters, not protocol state). */
  packets: number;
  bytes: number;
  /** Time of the last packet, in the simulator's or agent's clock units. */
  lastSeen: number;
  /**
   * The SYN metadata this entry inserted into the SYN it created (set by the
   * rewriter on the originator and on a middlebox's outgoing side), so that
   * a retransmitted SYN carries the same bytes. Undefined elsewhere.
   */
  synPayload?: Uint8Array | undefined;
  /** A FIN went out through this entry. */
  finSent?: boolean;
  /** A FIN came in on an ingress entry whose `egressKey` is this entry. */
  finReceived?: boolean;
  /** `sessionEnded` was reported for this entry (FIN both ways, or RST). */
  ended?: boolean;
}

export interface IngressEntry {
  /** Key: the subsession tuple as it arrives from the wire. */
  readonly key: FiveTuple;
  /** Rewrite back to the session tuple (with the inverse deltas). */
  readonly rewrite: PathRewrite;
  /** Which path of a two-path anchor this subsession is. */
  readonly path: 'old' | 'new';
  /**
   * The egress entry of the opposite direction (the one this agent uses to
   * answer), whose two-path tracking this ingress updates. */
  readonly egressKey: FiveTuple;
  /**
   * Highest ack received on this subsession (local sequence space), kept in
   * one-path mode too: an anchor entering two paths on an idle session
   * starts out drained when everything it sent is already acknowledged.
   */
  ackHigh?: number | undefined;
  /**
   * Packets arriving here feed the two-path state of the egress entry they
   * answer (its peer acks, the new path's lowest sequence number). The table
   * sets it when that entry enters two paths, before the entry does, and
   * clears it when the entry leaves them; the data plane looks the egress
   * entry up for this entry's packets only when it is set, or for a FIN or
   * RST, which saves a lookup on nearly every packet.
   */
  feedsTwoPath?: boolean;
  packets: number;
  bytes: number;
  lastSeen: number;
}

/**
 * A middlebox agent's record of a SYN that came in with a chain and has not
 * gone out yet: keyed by the session tuple the middlebox application sees.
 */
export interface PendingEntry {
  readonly sessionTuple: FiveTuple;
  /** The chain still to traverse after this middlebox. */
  readonly chain: readonly Address[];
  /** The subsession the SYN came in on (left neighbour's tuple). */
  readonly fromSubsession: FiveTuple;
  /** Identifier carried in the NAT tag, for middleboxes that change the tuple. */
  readonly natTag: number;
  readonly created: number;
}

/** A steering policy on an originating host: a TCP predicate and the chain. */
export interface Policy {
  readonly id: number;
  readonly src?: Prefix;
  readonly dst?: Prefix;
  readonly sport?: readonly [number, number];
  readonly dport?: readonly [number, number];
  /** Middleboxes to traverse, in order; the destination host is implicit. */
  readonly chain: readonly Address[];
}
