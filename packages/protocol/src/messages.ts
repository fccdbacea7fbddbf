import type { Address } from './address.js';
import type { FiveTuple } from './tuple.js';

/**
 * The control messages of the reconfiguration protocol, as values. The wire
 * encoding (with the common header and authentication) is in
 * wire/control.ts and docs/wire-format.md.
 *
 * Every message travels one hop, between two neighbouring agents; relaying
 * agents re-address it for the next hop. `subsession` names the hop it
 * travels on (left-to-right orientation): both ends of a hop know that
 * tuple, whatever NAT boxes did to the session tuple elsewhere.
 */

export const CONTROL_TYPES = [
  'requestLock',
  'ackLock',
  'nackLock',
  'cancelLock',
  'ackCancel',
  'rightRequest',
  'syn',
  'synAck',
  'ack',
  'teardown',
] as const;
export type ControlType = (typeof CONTROL_TYPES)[number];

/**
 * Sequence-space differences accumulated along a segment (proxies spliced
 * out, boxes that change the size of the byte stream). LR applies to data
 * flowing left to right, RL to data flowing right to left. All zero for a
 * chain of plain forwarding boxes.
 */
export interface Deltas {
  readonly seqLR: number;
  readonly seqRL: number;
  readonly tsLR: number;
  readonly tsRL: number;
  /** Window scale shift of the sender's side and of the receiver's side, per direction. */
  readonly wsFromLR: number;
  readonly wsToLR: number;
  readonly wsFromRL: number;
  readonly wsToRL: number;
}

export const ZERO_DELTAS: Deltas = Object.freeze({
  seqLR: 0,
  seqRL: 0,
  tsLR: 0,
  tsRL: 0,
  wsFromLR: 0,
  wsToLR: 0,
  wsFromRL: 0,
  wsToRL: 0,
});

/** Why a lock was refused or a reconfiguration aborted. */
export const NACK_REASONS = [
  'locked', // a left end on the way is already locked
  'anchorNotFound', // the far end host was reached without meeting the right anchor
  'contention', // a held request lost against the holder's own request
  'busy', // the left anchor is already reconfiguring this session
  'newPathFailed', // syn/synAck of the new path did not get through
  'operator', // cancelled on request
  'timeout', // retries exhausted
] as const;
export type NackReason = (typeof NACK_REASONS)[number];

interface Common {
  /** Hop the message travels on. */
  readonly subsession: FiveTuple;
  /** Reconfiguration identifier, unique per requester. */
  readonly reconfigId: number;
  /** Per-message sequence number: a retransmission repeats it, receivers de-duplicate on it. */
  readonly msgSeq: number;
}

export interface RequestLock extends Common {
  readonly type: 'requestLock';
  readonly requester: Address;
  readonly rightAnchor: Address;
  readonly deltas: Deltas;
}
export interface AckLock extends Common {
  readonly type: 'ackLock';
  readonly requester: Address;
  readonly rightAnchor: Address;
  readonly deltas: Deltas;
}
export interface NackLock extends Common {
  readonly type: 'nackLock';
  readonly requester: Address;
  readonly reason: NackReason;
}
export interface CancelLock extends Common {
  readonly type: 'cancelLock';
  readonly requester: Address;
  readonly reason: NackReason;
}
export interface AckCancel extends Common {
  readonly type: 'ackCancel';
  readonly requester: Address;
}
/** A box that is not the left anchor asks its left neighbour to reconfigure. */
export interface RightRequest extends Common {
  readonly type: 'rightRequest';
  /** The box asking (its own removal when it lies strictly inside the segment). */
  readonly requester: Address;
  readonly rightAnchor: Address;
  /** The middleboxes of the new path, left to right (empty: direct). */
  readonly newChain: readonly Address[];
}
/** New-path setup, sent along the new path from the left anchor. */
export interface Syn extends Common {
  readonly type: 'syn';
  readonly requester: Address;
  readonly leftAnchor: Address;
  readonly rightAnchor: Address;
  /** Session tuple as the left anchor knows it. */
  readonly session: FiveTuple;
  /** New-path boxes still to traverse after the receiver, left to right. */
  readonly chain: readonly Address[];
  readonly deltas: Deltas;
}
export interface SynAck extends Common {
  readonly type: 'synAck';
  readonly requester: Address;
}
export interface Ack extends Common {
  readonly type: 'ack';
  readonly requester: Address;
  /**
   * Where the left anchor's old-path data ends, in the right anchor's
   * sequence space (its cutoff moved by the segment's delta). The right
   * anchor keeps the old path until its stack has acknowledged up to here.
   * null: the sender sent nothing on the old path. Absent: the sender does
   * not say (a repetition after it finished), and the receiver waits on.
   */
  readonly upTo?: number | null;
}
/**
 * Old-path teardown: the sender's old-path data is all acknowledged, and
 * everything its peer sent there is received and acknowledged.
 */
export interface Teardown extends Common {
  readonly type: 'teardown';
  readonly requester: Address;
  /** true when sent by the left anchor (travels rightwards). */
  readonly fromLeft: boolean;
  /**
   * Where the sender's old-path data ends: the right anchor's cutoff in its
   * own sequence space (the left anchor moves it by the segment's delta),
   * the left anchor's in the right anchor's space. null and absent as for
   * `Ack`.
   */
  readonly upTo?: number | null;
}

export type ControlMessage =
  | RequestLock
  | AckLock
  | NackLock
  | CancelLock
  | AckCancel
  | RightRequest
  | Syn
  | SynAck
  | Ack
  | Teardown;

/**
 * Adds the deltas of one more box to those accumulated so far along a
 * segment. A window-scale pair with equal sides rescales nothing, whatever
 * its value; when neither part rescales in a direction, neither does the
 * sum (0/0), so that two identities with different numbers never combine
 * into a rescaling.
 */
export function composeDeltas(a: Deltas, b: Deltas): Deltas {
  const idLRa = a.wsFromLR === a.wsToLR;
  const idLRb = b.wsFromLR === b.wsToLR;
  const idRLa = a.wsFromRL === a.wsToRL;
  const idRLb = b.wsFromRL === b.wsToRL;
  return {
    seqLR: (a.seqLR + b.seqLR) | 0,
    seqRL: (a.seqRL + b.seqRL) | 0,
    tsLR: (a.tsLR + b.tsLR) | 0,
    tsRL: (a.tsRL + b.tsRL) | 0,
    wsFromLR: idLRa && idLRb ? 0 : idLRa ? b.wsFromLR : a.wsFromLR,
    wsToLR: idLRa && idLRb ? 0 : idLRb ? a.wsToLR : b.wsToLR,
    wsFromRL: idRLa && idRLb ? 0 : idRLb ? a.wsFromRL : b.wsFromRL,
    wsToRL: idRLa && idRLb ? 0 : idRLa ? b.wsToRL : a.wsToRL,
  };
}
