import type { Address } from '../address.js';
import type { FiveTuple } from '../tuple.js';
import type { ControlMessage, Deltas, NackReason } from '../messages.js';

/**
 * Events in, actions out: the reconfiguration protocol of one session at
 * one agent, driven through pure transitions. The agent (or the simulator)
 * turns actions into UDP datagrams, session-table updates and timers, and
 * feeds back what happens as events. Names match the Promela models.
 */

/** One hop of the current path seen from this agent: the neighbour and the subsession tuple between us (left-to-right orientation). */
export interface Hop {
  readonly agent: Address;
  readonly subsession: FiveTuple;
}

/**
 * Timers of one session at one agent. The two anchor roles have their own
 * teardown timers: an agent can be the right anchor of one reconfiguration
 * and the left anchor of another at once.
 */
export type TimerName = 'requestLock' | 'syn' | 'cancelLock' | 'synAck' | 'teardown' | 'rightTeardown' | 'rightRequest' | 'tombstone' | 'linger';

export interface RetryPolicy {
  /** First retransmission timeout, ms. */
  readonly rto: number;
  /** Upper bound of the doubled timeout, ms. */
  readonly maxRto: number;
  /** Retransmissions allowed per message before giving up. */
  readonly limits: Readonly<Record<Exclude<TimerName, 'tombstone' | 'rightTeardown' | 'linger'>, number>>;
  /**
   * How long a finished or cancelled reconfiguration is remembered to answer
   * late duplicates, ms; also how long an old-path relay that has seen one
   * anchor's teardown waits for the other's before it leaves anyway, and how
   * long a new-path relay waits for the path to come up (a synAck passing)
   * before it leaves. It must exceed the time a left anchor keeps repeating
   * its syn.
   */
  readonly tombstoneMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  rto: 200,
  maxRto: 3200,
  // cancelLock never gives up: a cancel is what releases locks. teardown
  // is patient (about a minute): an anchor that finishes without its
  // peer's teardown cuts the old path, which the peer may still need to
  // drain; and a finished anchor remembers its teardown (tombstone) longer
  // than its peer keeps asking for it. synAck is as patient: the right
  // anchor's ack (which says where the left anchor's old-path data ends)
  // is what lets it finish first, and the left anchor only tears down
  // after it has heard from the right one.
  limits: Object.freeze({ requestLock: 6, syn: 6, synAck: 20, teardown: 20, rightRequest: 6, cancelLock: Infinity }),
  tombstoneMs: 120_000,
});

/** Where a new path attaches at an anchor: on its left (right anchor) or its right (left anchor). */
export type Side = 'left' | 'right';

export type ProtocolEvent =
  /** Operator or library: this agent becomes the left anchor. */
  | {
      readonly type: 'reconfigure';
      readonly reconfigId: number;
      readonly rightAnchor: Address;
      readonly newChain: readonly Address[];
      /** First subsession of the new path, allocated by the agent. */
      readonly newHop: Hop;
    }
  /** A box asks its left neighbour to replace the segment up to its right neighbour (self-removal when newChain is empty). */
  | { readonly type: 'requestSelfReconfig'; readonly reconfigId: number; readonly newChain: readonly Address[] }
  /** Operator: abort this agent's reconfiguration if it can still be aborted. */
  | { readonly type: 'cancel' }
  /** A control message from a neighbour. `nextHop` is a subsession allocated by the agent in case this agent must extend a new path (syn) or start a reconfiguration (rightRequest). */
  | { readonly type: 'message'; readonly message: ControlMessage; readonly from: Address; readonly nextHop?: Hop }
  | { readonly type: 'timeout'; readonly timer: TimerName }
  /**
   * Data plane: everything this anchor sent on the old path is acknowledged.
   * `side` says which anchor role: 'right' for the left anchor (its old path
   * leaves on its right), 'left' for the right anchor; absent means both.
   */
  | { readonly type: 'oldPathDrained'; readonly side?: Side };


export type ProtocolAction =
  | {
      readonly type: 'send';
      readonly to: Address;
      readonly message: ControlMessage;
      /**
       * Set on the ack and teardowns an anchor of this agent sends: the side
       * of its new path. The caller adds where the anchor's old-path data
       * ends (`upTo`, see `oldPathEnd`), which only its data plane knows.
       */
      readonly anchorSide?: Side;
    }
  | { readonly type: 'armTimer'; readonly timer: TimerName; readonly delay: number }
  | { readonly type: 'cancelTimer'; readonly timer: TimerName }
  /** Install the receive side of a new path at an anchor (side: where the new path attaches). */
  | { readonly type: 'prepareNewPath'; readonly side: Side; readonly hop: Hop; readonly deltas: Deltas }
  /** Start sending on the new path (two-path mode with cutoffs). */
  | {
      readonly type: 'enterTwoPaths';
      readonly side: Side;
      readonly hop: Hop;
      readonly deltas: Deltas;
      /**
       * A box of the old segment changes the byte stream (a proxy splicing
       * itself out, or one that did before): it acknowledges data before
       * delivering it, so the anchor keeps the old path until its own stack
       * has acknowledged where the peer's old-path data ends (the `upTo` of
       * the peer's ack or teardown). Otherwise the peer's own acks say it all.
       */
      readonly awaitPeerData: boolean;
    }
  /** Make the new path the only path and remove the old one. */
  | { readonly type: 'completeTwoPaths'; readonly side: Side; readonly oldHop: Hop; readonly newHop: Hop }
  /** Remove a new path that did not come up. */
  | { readonly type: 'abortNewPath'; readonly side: Side; readonly hop: Hop }
  /** A new-path box installs the session between two hops. */
  | { readonly type: 'installRelay'; readonly left: Hop; readonly right: Hop; readonly session: FiveTuple; readonly deltas: Deltas }
  /** An old-path box (or an aborted new-path box) leaves the session. */
  | { readonly type: 'removeRelay'; readonly left: Hop; readonly right: Hop }
  | {
      readonly type: 'outcome';
      readonly reconfigId: number;
      readonly requester: Address;
      readonly result: 'completed' | 'aborted';
      readonly reason?: NackReason;
    };
