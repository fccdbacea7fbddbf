import type { SessionTable } from '../rewriter.js';
import type { ControlMessage, Deltas } from '../messages.js';
import type { PathRewrite } from '../table.js';
import { type FiveTuple, reverseTuple } from '../tuple.js';
import { seqGeq } from '../seq.js';
import type { ProtocolAction, Side } from './types.js';

/**
 * What the reconfiguration protocol's path actions mean for one agent's
 * session table. `session` is the session tuple as this agent's stack or
 * middlebox sees it (client to server). Subsession tuples of hops are
 * left-to-right; the table's keys are the tuples as packets carry them.
 *
 * All of a segment's deltas are applied at the left anchor, so the right
 * anchor and the boxes of the new path rewrite addresses and ports only.
 */

const neg = (x: number) => -x | 0;

/** Left anchor, towards the right: from the left side's sequence space into the right side's. */
function rightward(tuple: FiveTuple, d: Deltas): PathRewrite {
  return { tuple, seqDelta: d.seqLR >>> 0, ackDelta: neg(d.seqRL) >>> 0, tsvalDelta: d.tsLR >>> 0, tsecrDelta: neg(d.tsRL) >>> 0, wsFrom: d.wsFromLR, wsTo: d.wsToLR };
}

/** Left anchor, what arrives from the right: back into the left side's space. */
function leftward(tuple: FiveTuple, d: Deltas): PathRewrite {
  return { tuple, seqDelta: d.seqRL >>> 0, ackDelta: neg(d.seqLR) >>> 0, tsvalDelta: d.tsRL >>> 0, tsecrDelta: neg(d.tsLR) >>> 0, wsFrom: d.wsFromRL, wsTo: d.wsToRL };
}

function plain(tuple: FiveTuple): PathRewrite {
  return { tuple, seqDelta: 0, ackDelta: 0, tsvalDelta: 0, tsecrDelta: 0, wsFrom: 0, wsTo: 0 };
}

/** How an anchor's egress is rewritten onto its new path. */
function newPathRewrite(side: Side, subsession: FiveTuple, deltas: Deltas): PathRewrite {
  return side === 'right' ? rightward(subsession, deltas) : plain(reverseTuple(subsession));
}

export type PathAction = Extract<ProtocolAction, { type: 'prepareNewPath' | 'enterTwoPaths' | 'completeTwoPaths' | 'abortNewPath' | 'installRelay' | 'removeRelay' }>;

export function isPathAction(a: ProtocolAction): a is PathAction {
  return (
    a.type === 'prepareNewPath' ||
    a.type === 'enterTwoPaths' ||
    a.type === 'completeTwoPaths' ||
    a.type === 'abortNewPath' ||
    a.type === 'installRelay' ||
    a.type === 'removeRelay'
  );
}

/** The egress key an anchor's new path on `side` hangs off. */
export function anchorEgressKey(session: FiveTuple, side: Side): FiveTuple {
  return side === 'right' ? session : reverseTuple(session);
}

/**
 * Applies one path action to the table. Returns true when an anchor that
 * just entered two paths is done with its old path (the caller then reports
 * `oldPathDrained` right away); it never is before its peer has said where
 * its old-path data ends (see `takePeerEnd`).
 */
export function applyPathAction(table: SessionTable, session: FiveTuple, a: PathAction, now: number): boolean {
  const back = reverseTuple(session);
  switch (a.type) {
    case 'prepareNewPath': {
      // receive on the new path, and split acks by what arrives there, before any data moves
      if (a.side === 'right') {
        table.installIngress({ key: reverseTuple(a.hop.subsession), rewrite: leftward(back, a.deltas), path: 'new', egressKey: session, packets: 0, bytes: 0, lastSeen: now });
      } else {
        table.installIngress({ key: a.hop.subsession, rewrite: plain(session), path: 'new', egressKey: back, packets: 0, bytes: 0, lastSeen: now });
      }
      table.prepareTwoPath(anchorEgressKey(session, a.side), newPathRewrite(a.side, a.hop.subsession, a.deltas));
      return false;
    }
    case 'enterTwoPaths': {
      const tp = table.enterTwoPath(anchorEgressKey(session, a.side), newPathRewrite(a.side, a.hop.subsession, a.deltas), undefined, a.awaitPeerData);
      return tp.drained && tp.received;
    }
    case 'completeTwoPaths': {
      const key = anchorEgressKey(session, a.side);
      if (table.getEgress(key)?.twoPath) table.leaveTwoPath(key, 'new');
      table.removeIngress(a.side === 'right' ? reverseTuple(a.oldHop.subsession) : a.oldHop.subsession);
      return false;
    }
    case 'abortNewPath': {
      const key = anchorEgressKey(session, a.side);
      if (table.getEgress(key)?.twoPath) table.leaveTwoPath(key, 'old');
      table.removeIngress(a.side === 'right' ? reverseTuple(a.hop.subsession) : a.hop.subsession);
      return false;
    }
    case 'installRelay': {
      const s = a.session;
      const sb = reverseTuple(s);
      const fresh = { twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: now };
      table.installIngress({ key: a.left.subsession, rewrite: plain(s), path: 'old', egressKey: sb, packets: 0, bytes: 0, lastSeen: now });
      table.installEgress({ key: s, old: plain(a.right.subsession), ...fresh });
      table.installIngress({ key: reverseTuple(a.right.subsession), rewrite: plain(sb), path: 'old', egressKey: s, packets: 0, bytes: 0, lastSeen: now });
      table.installEgress({ key: sb, old: plain(reverseTuple(a.left.subsession)), ...fresh });
      return false;
    }
    case 'removeRelay': {
      table.removeIngress(a.left.subsession);
      table.removeIngress(reverseTuple(a.right.subsession));
      table.removeEgress(session);
      table.removeEgress(back);
      return false;
    }
  }
}

// ---------------------------------------------------------------------------
// the receiving half of an anchor's completion

/**
 * Where an anchor's old-path data ends, for the `upTo` of the ack and
 * teardown messages it sends its peer: its cutoff moved by the sequence
 * delta its new path applies (the left anchor applies the segment's deltas,
 * the right anchor none). null: it sent nothing on the old path;
 * undefined: the anchor on `side` is not on two paths (a repeated teardown
 * after completion), so nothing is said.
 */
export function oldPathEnd(table: SessionTable, session: FiveTuple, side: Side): number | null | undefined {
  const tp = table.getEgress(anchorEgressKey(session, side))?.twoPath;
  if (!tp || tp.awaitingCutover) return undefined;
  if (tp.cutoffPending) return null;
  return (tp.seqCutoff + tp.newPath.seqDelta) >>> 0;
}

/**
 * Takes the peer's `upTo` (null: it sent nothing on the old path) into the
 * anchor's entry, moved into the local ack
 * space by the rewrite of what arrives on the new path (the left anchor's
 * undoes the segment's deltas). Until then the anchor's old path is never
 * done: a box that terminates TCP (a splicing proxy) acknowledged the
 * peer's last bytes before delivering them, and cutting the old path would
 * lose them. Returns true when the old path is now done with (drained and
 * received), false otherwise or when the anchor is not on two paths.
 */
export function takePeerEnd(table: SessionTable, session: FiveTuple, side: Side, upTo: number | null): boolean {
  const key = anchorEgressKey(session, side);
  const tp0 = table.getEgress(key)?.twoPath;
  if (!tp0) return false;
  const back = table.getIngress(reverseTuple(tp0.newPath.tuple));
  const local = upTo === null ? undefined : (upTo + (back?.rewrite.seqDelta ?? 0)) >>> 0;
  const tp = table.setPeerEnd(key, local);
  return tp !== undefined && tp.drained && tp.received;
}

/**
 * Whether an anchor's old path is done with by the entry's fields, for a
 * caller that polls the table (a flag the data plane set can be lost to a
 * concurrent rewrite of the entry by the agent).
 */
export function oldPathDone(table: SessionTable, session: FiveTuple, side: Side): boolean {
  const e = table.getEgress(anchorEgressKey(session, side));
  const tp = e?.twoPath;
  if (!e || !tp || tp.awaitingCutover) return false;
  const drained = tp.drained || (!tp.cutoffPending && tp.peerAckHigh !== undefined && seqGeq(tp.peerAckHigh, tp.seqCutoff));
  const received = tp.received || (tp.peerEnd !== undefined && e.ackSentHigh !== undefined && seqGeq(e.ackSentHigh, tp.peerEnd));
  return drained && received;
}

/** The session tuple an anchor's entries on each side are keyed by (a NAT box's or spliced proxy's right side has its own). */
export type SessionOfSide = (side: Side) => FiveTuple;

/** An anchor's ack or teardown (a send action's `anchorSide`) with where its old-path data ends; any other message as it is. */
export function withOldPathEnd(table: SessionTable, sessionOf: SessionOfSide, m: ControlMessage, anchorSide: Side | undefined): ControlMessage {
  if (!anchorSide || (m.type !== 'ack' && m.type !== 'teardown')) return m;
  const upTo = oldPathEnd(table, sessionOf(anchorSide), anchorSide);
  return upTo === undefined ? m : { ...m, upTo };
}

/**
 * After the protocol handled `m`: takes the `upTo` of an ack or teardown
 * for one of its anchors (see takePeerEnd). Returns the side whose old path
 * is now done with (the caller reports `oldPathDrained`), or undefined.
 */
export function takePeerEndOf(table: SessionTable, sessionOf: SessionOfSide, proto: { peerEndSide(m: ControlMessage): Side | undefined }, m: ControlMessage): Side | undefined {
  if ((m.type !== 'ack' && m.type !== 'teardown') || m.upTo === undefined) return undefined;
  const side = proto.peerEndSide(m);
  return side && takePeerEnd(table, sessionOf(side), side, m.upTo) ? side : undefined;
}
