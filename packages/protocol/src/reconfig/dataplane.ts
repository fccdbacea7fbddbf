import type { SessionTable } from '../rewriter.js';
import type { Deltas } from '../messages.js';
import type { PathRewrite } from '../table.js';
import { type FiveTuple, reverseTuple } from '../tuple.js';
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
 * just entered two paths has nothing unacknowledged on its old path (the
 * caller then reports `oldPathDrained` right away).
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
    case 'enterTwoPaths':
      return table.enterTwoPath(anchorEgressKey(session, a.side), newPathRewrite(a.side, a.hop.subsession, a.deltas)).drained;
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
