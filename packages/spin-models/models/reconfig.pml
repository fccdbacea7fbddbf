/*
 * reconfig.pml -- one reconfiguration of a session end to end, with data
 * flowing both ways: locking on the old path, new-path setup, two paths
 * split at the cutoffs, completion and teardown, or cancel.
 *
 * What it models. Two end hosts A and B, each with its TCP endpoint and its
 * agent (A is the left anchor, B the right anchor). Two paths between the
 * agents, each through a relay: path 0 through box X, path 1 through box Y.
 * The session starts on path 0; a reconfiguration moves it to path 1 (with
 * RECONFIGS=2 a second one moves it back: successive reconfigurations of one
 * session). A relay with no box (X_BOX=0 or Y_BOX=0) is a plain wire, so
 * replace (both boxes), delete (Y_BOX=0) and insert (X_BOX=0) are all
 * covered. Each endpoint sends K bytes (or A KA and B KB), one per
 * segment, and acks every segment it receives; with K=1 a direction's single
 * byte goes entirely on one path, so a stream split across both paths (a
 * byte on the old path, the next on the new one) needs KA=2 or KB=2
 * (witnesses `neverSplit`, `neverSplitB`); the agents rewrite as the TypeScript rewriter does:
 * in two-path mode data at or above the sender's cutoff goes on the new
 * path, an ack goes on the old path while it is at or below the lowest
 * sequence number received on the new path (m), the old path carries at
 * most min(ack, m), and a segment whose data and ack belong to different
 * paths is split. The first path's box may change the byte streams
 * (DELTA: A's sequence numbers arrive DELTA lower at B; DELTA_BA: B's
 * arrive DELTA_BA lower at A): requestLock collects the deltas of both
 * directions, ackLock returns them, and the left anchor applies them on the
 * new path, on its data and acks out and on what comes back (the new path's
 * boxes and the right anchor rewrite addresses only). requestLock starts
 * with the deltas the left anchor already applies on its current path: with
 * RECONFIGS=2 the second reconfiguration (back over path 0, whose box has
 * left the session and returns as a plain relay) carries the first one's
 * deltas on. Up to LOSSES control
 * messages may be lost; senders retransmit when nothing else can happen
 * (timeout); Y_DOWN makes the new path's box drop everything (new-path
 * failure: the reconfiguration aborts, the old path stays). An anchor that
 * abandons a new path it prepared (left anchor cancelling from SettingUp,
 * right anchor cancelled in Waiting) sends a teardown along it, marked so
 * that nobody answers it, as SessionProtocol does.
 *
 * Contention with data (CONTEND=1): while the data flows, the first path's
 * box X may ask for a reconfiguration of its own segment X..B, which
 * overlaps A's A..B (X is the left end of the subsession X-B). If X's own
 * request is pending when A's arrives, X holds A's, and refuses it
 * (nackLock) once its own is granted; A returns to OnePath with the old
 * path intact. If A's request has locked X's subsession first, X is busy
 * and does not start. The winner X's reconfiguration beyond its locking is
 * abstracted: on its ackLock it completes at once (its new path, two paths
 * and teardown are what the rest of the model checks for A..B), and B, its
 * right anchor, only answers its requestLock. X's own messages are not lost.
 *
 * What it abstracts away. Data segments are not lost (the public model's
 * assumption; retransmission below the cutoff is in the TypeScript
 * simulator); one reconfiguration of A..B at a time (contention of many
 * requests is in locking.pml, one contender with data is CONTEND);
 * sequence numbers do not wrap; no FIN or RST. Paths are
 * channels reused by the second reconfiguration, where the implementation
 * uses fresh subsessions: with deltas, the second reconfiguration starts
 * only once the old path carries nothing (REUSE_OK).
 *
 * Checks (see the manifest): assertions -- an endpoint never receives an
 * ack beyond what it sent; the box of the session's first path never
 * forwards an ack beyond the data it carried (either direction); new-path
 * data is at or above its sender's cutoff;
 * both byte streams are delivered exactly once and in order; at the end
 * nothing is locked, both anchors are back in OnePath and the session runs
 * on the expected path. Valid end states. LTL: `terminates` (every
 * reconfiguration completes or aborts and both streams are delivered).
 * Witnesses that must fail: `neverTwoPaths` (cutover), `neverAborted`;
 * with CONTEND, `neverHeld` (A's request held at X), `neverXWon` (X's own
 * granted), `neverXRefused` (X busy), `neverAborted` (A refused). With
 * CONTEND an assertion also checks that when X's request is granted, A's
 * holds no grant (B not Requested, A neither SettingUp nor TwoPaths).
 * Non-progress cycles (pan -l): the model has no progress label (Spin cannot
 * see one inside an atomic sequence, where delivery happens), so every cycle
 * counts; as the delivered byte counts are part of the state and only grow,
 * no cycle can deliver a byte, and any cycle is a livelock. With SPURIOUS=1
 * one teardown retransmission may fire early (a timer shorter than the round
 * trip), which is what lets two finished anchors meet a stray teardown; the
 * mutant MUTANT_TEARDOWN_PINGPONG (finished anchors answer repeated
 * teardowns too) then cycles forever, and the non-progress check rejects it.
 * Mutants: MUTANT_NO_ACK_SPLIT, MUTANT_EARLY_TEARDOWN, MUTANT_CANCEL_IGNORED,
 * MUTANT_NO_DELTA, MUTANT_OWN_DELTAS_FORGOTTEN (requestLock starts from zero:
 * the implementation's behaviour before the trace replay found it),
 * MUTANT_TEARDOWN_PINGPONG (non-progress), MUTANT_NO_HOLD (with CONTEND: X
 * forwards A's request while its own is pending).
 *
 * Which manifest checks cover which feature: reconfig/replace-*, non-progress,
 * delete-safety (Y_BOX=0), insert-safety (X_BOX=0); successive-* (RECONFIGS=2);
 * new-path-down-*, witness-abort (Y_DOWN); delta-*, mutant-no-delta (DELTA);
 * delta-both-* (DELTA, DELTA_BA); delta-successive-*, mutant-own-deltas-
 * forgotten (deltas with RECONFIGS=2); contention-*, witness-held, -refused,
 * -contender-wins, -contender-busy, mutant-no-hold (CONTEND);
 * early-teardown-*-large, mutant-teardown-pingpong (SPURIOUS);
 * split-a-*, witness-split-a (KA=2 KB=0), split-b-*, witness-split-b (KA=0
 * KB=2), split-*-deltas-successive-safety (with deltas and RECONFIGS=2),
 * large-two-bytes-one-back-safety (KA=2 KB=1, --large). K=2 each way is
 * not checked: it did not finish here (see docs/verification.md).
 *
 * Model and implementation in step: with -DTRACE (see below) random
 * simulations print both anchors' steps; test/reconfig-replay.test.ts
 * replays them against SessionProtocol and compares states, messages, path
 * actions and timers at every step. DIVERGE_RIGHT (a right anchor that skips
 * its own teardown when its peer's came first) exists only to show that the
 * replay catches a model that differs from the machine.
 */

#ifndef K
#define K 2
#endif
/* bytes A sends (towards B) and bytes B sends, K each unless given */
#ifndef KA
#define KA K
#endif
#ifndef KB
#define KB K
#endif
#ifndef LOSSES
#define LOSSES 1
#endif
#ifndef RECONFIGS
#define RECONFIGS 1
#endif
#ifndef X_BOX
#define X_BOX 1
#endif
#ifndef Y_BOX
#define Y_BOX 1
#endif
#ifndef RETRIES
#define RETRIES 1
#endif
/* the old path's box changes the byte streams: A's sequence numbers arrive DELTA lower at B,
   B's arrive DELTA_BA lower at A */
#ifndef DELTA
#define DELTA 0
#endif
#ifndef DELTA_BA
#define DELTA_BA 0
#endif
/* teardown retransmissions that fire early, while the peer's teardown is still on its way (in all;
   the other timers fire only when nothing else can happen) */
#ifndef SPURIOUS
#define SPURIOUS 0
#endif
#if SPURIOUS
byte spurious = 0;
#endif
/* a finished anchor answers a teardown of its reconfiguration with its own, marked as a repeat
   (1) that is never answered; MUTANT_TEARDOWN_PINGPONG answers repeats too */
#ifndef MUTANT_TEARDOWN_PINGPONG
#define ANSWERED(mark) (mark == 0)
#else
#define ANSWERED(mark) (mark != 2)
#endif
/* contention (CONTEND=1): the first path's box X asks for a reconfiguration of its own segment
   (X..B), which overlaps A's; XID tags its messages */
#ifndef CONTEND
#define CONTEND 0
#endif
#define XID 9
byte xOwn = 0;     /* X's own request: 0 none, 1 pending, 2 granted and done, 3 refused (busy) */
byte xHeld = 0;    /* the tag of A's request held at X while X's own is pending (0: none) */
/* both directions' deltas in one message field */
#define DPACK(lr, rl) ((lr) + 16 * (rl))
/* the box of the session's first path shifts the streams while it carries them since their SYN; a
   box that joins a new path later (RECONFIGS=2 moves the session back) is a plain relay, as
   installRelay installs it */
#define X_SHIFTS (p == 0 && X_BOX && reconfigs <= 1)
/* requestLock starts with the deltas the left anchor itself applies on its current path (a previous
   reconfiguration may have moved a box's deltas there); MUTANT_OWN_DELTAS_FORGOTTEN starts from zero */
/* The model reuses path 0's channels for the second reconfiguration's new path, where the
   implementation sets up fresh subsessions and drops what still arrives on a removed one. With
   deltas, a late segment of the first path would be taken for one of the new path (and rewritten
   with its deltas), so the second reconfiguration starts only once the old path carries nothing. */
#if DELTA || DELTA_BA
#define REUSE_OK (reconfigs == 0 || (len(net[2 * (1 - curA)]) == 0 && len(net[2 * (1 - curA) + 1]) == 0 && len(toA[1 - curA]) == 0 && len(toB[1 - curA]) == 0))
#else
#define REUSE_OK true
#endif
#ifndef MUTANT_OWN_DELTAS_FORGOTTEN
#define OWN_DELTAS DPACK(dLR[curA], dRL[curA])
#else
#define OWN_DELTAS 0
#endif

mtype = { seg, requestLock, ackLock, nackLock, cancelLock, ackCancel, syn, synAck, ack, teardown };

/* leftAnchor / rightAnchor states, as in the TypeScript machines */
#define OnePath 0
#define Requesting 1
#define SettingUp 2
#define TwoPaths 3
#define Canceling 4
#define Requested 5
#define Waiting 6
#define NONE 255

/* segments: (seg, seq, ack): seq 0 = no data; byte i of a stream has seq i (1..K); ack = next expected */
/* channels: net[2*p + d] is path p in direction d (0: towards B, 1: towards A), entering its relay */
chan net[4] = [6] of { mtype, byte, byte };
chan toB[2] = [6] of { mtype, byte, byte };   /* leaving relay p towards B */
chan toA[2] = [6] of { mtype, byte, byte };   /* leaving relay p towards A */
chan tcpOutA = [4] of { byte, byte };          /* endpoint A -> agent A: (seq, ack) */
chan tcpOutB = [4] of { byte, byte };
chan tcpInA = [6] of { byte, byte };           /* agent A -> endpoint A */
chan tcpInB = [6] of { byte, byte };

byte curA = 0, curB = 0;     /* the path each anchor sends on (in two-path mode: the old one) */
byte la = OnePath;           /* A as left anchor */
byte ra = OnePath;           /* B as right anchor */
bool lockA = false;          /* A's subsession on the old path is locked (pending or locked) */
bool lockX[2];               /* the relay box of path p has its subsession locked */
byte cutA, cutB;             /* cutoffs, in the sender's own sequence space */
byte mA, mB;                 /* lowest sequence number received on the new path (NONE: nothing yet) */
byte ackHighA, ackHighB;     /* highest ack received from the peer, own space */
bool drainedA, drainedB, peerDrainedA, peerDrainedB;
byte dLR[2], dRL[2];         /* the deltas A applies on path p, learned from the ackLock of the reconfiguration that set it up */
byte sndA, sndB;             /* highest sequence number each endpoint has sent (snd_max - 1) */
byte rcvA, rcvB;             /* bytes delivered in order */
byte fwdData[4];             /* per relay and direction: highest data sequence number forwarded */
byte reconfigs = 0;          /* started */
byte finished = 0;           /* completed or aborted */
bool aborted = false;
bool cutover = false;
byte losses = 0;
byte triesA = 0, triesB = 0;

#define streamsDone (rcvA == KB && rcvB == KA)
/* every reconfiguration finished at both anchors, both streams delivered */
#define allDone (finished == RECONFIGS && la == OnePath && ra == OnePath && streamsDone)

/*
 * With -DTRACE (random simulations only; the checks never define it) every
 * step of an anchor prints what it received and both anchors' state after it
 * ("@@@ agent kind mtype path s a drained | la ra lockA drainedA peerDrainedA
 * triesA curA deltaA drainedB peerDrainedB triesB curB reconfigs"), and every
 * control message it sends, lost or not ("@@@S agent mtype path x y").
 * Kinds: 1 start, 2 a message (a data segment only when it drained the old
 * path), 3 a retransmission timer (mtype: the message it repeats).
 * test/trace-replay.test.ts replays them against the TypeScript
 * SessionProtocol (its leftAnchor and rightAnchor machines).
 */
#ifdef TRACE
byte drainEv = 0;
#define STEP(ag, kind, mt, pp, ss, aa) \
  printf("@@@ %d %d %e %d %d %d %d | %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", ag, kind, mt, pp, ss, aa, drainEv, \
         la, ra, lockA, drainedA, peerDrainedA, triesA, curA, DPACK(dLR[0], dRL[0]), DPACK(dLR[1], dRL[1]), drainedB, peerDrainedB, triesB, curB, reconfigs); \
  drainEv = 0
#define STEP_MSG(ag, mt, pp, ss, aa) if :: mt != seg || drainEv -> STEP(ag, 2, mt, pp, ss, aa) :: else fi
#else
/* nothing at all, so that the checks' state spaces do not depend on the tracing */
#define STEP(ag, kind, mt, pp, ss, aa)
#define STEP_MSG(ag, mt, pp, ss, aa)
#endif

/* control message lt (lx, ly) from anchor d (0: A, towards B; 1: B, towards A) on path pp, or its loss */
inline lose_or(d, pp, lt, lx, ly) {
#ifdef TRACE
  printf("@@@S %d %e %d %d %d\n", d, lt, pp, lx, ly);
#endif
  if
  :: losses < LOSSES -> losses++
  :: net[2 * (pp) + (d)]!lt, lx, ly
  fi
}

/* ---- end hosts: send KA (A) or KB (B) bytes, ack every segment, deliver in order ---- */
proctype Tcp(chan out; chan in; bool isA; byte sbase) {
  byte s, a, next = 1, buf = 0;
  byte sent = 0;
  do
  :: sent < (isA -> KA : KB) -> sent++;
     /* sequence numbers start at sbase + 1 (shifted by DELTA or DELTA_BA, which the box removes) */
     atomic { if :: isA -> sndA = sbase + sent :: else -> sndB = sbase + sent fi; out!sbase + sent, next }
  :: in?s, a ->
     atomic {
       /* never an ack for bytes we did not send */
       assert(a <= (isA -> sndA : sndB) + 1);
       if
       :: s > 0 ->
          assert(s <= (isA -> KB : KA));
          if
          :: s == next ->
             next++;
             do
             :: (buf & (1 << next)) -> buf = buf & ~(1 << next); next++
             :: else -> break
             od
          :: s > next -> buf = buf | (1 << s)
          :: s < next -> skip     /* duplicate: delivered once only */
          fi;
          if :: isA -> rcvA = next - 1 :: else -> rcvB = next - 1 fi;
          out!0, next
       :: else
       fi
     }
  :: sent == (isA -> KA : KB) && (isA -> rcvA : rcvB) == (isA -> KB : KA) && len(in) == 0 -> break
  od
}

/* ---- relays: forward; a box keeps the lock of its subsession towards B ---- */
proctype Relay(byte p) {
  mtype t;
  byte a, b;
end:
  do
  :: net[2 * p]?t, a, b ->
     atomic {
#ifdef Y_DOWN
       if :: p == 1 && Y_BOX -> goto end :: else fi;
#endif
       if
       :: t == seg && a > 0 -> fwdData[2 * p] = (a > fwdData[2 * p] -> a : fwdData[2 * p])
       :: t == seg && a == 0 -> skip
#if CONTEND && !defined(MUTANT_NO_HOLD)
       /* X's own request is pending: A's is held (a repetition of it too) until X's is answered */
       :: t == requestLock && p == 0 && xOwn == 1 -> xHeld = a; goto end
#define HOLDS (xOwn != 1)
#else
#define HOLDS true
#endif
       :: t == requestLock && (p == 0 && X_BOX) && HOLDS -> lockX[p] = true; b = b + (X_SHIFTS -> DPACK(DELTA, DELTA_BA) : 0)   /* its deltas join the request */
       :: t == cancelLock && (p == 0 && X_BOX) ->
#if CONTEND
          /* a held request whose requester cancels is forgotten; X's own lock stays */
          if :: xHeld == a -> xHeld = 0 :: else fi;
          lockX[p] = (xOwn == 1)
#else
#ifndef MUTANT_CANCEL_IGNORED
          lockX[p] = false
#else
          skip
#endif
#endif
       :: t == teardown -> lockX[p] = false   /* leaving the session: its locked subsession is gone */
       :: else
       fi;
       /* the box of the session's first path never sees an ack beyond the data it carried (B's stream) */
       if
       :: t == seg && X_SHIFTS && b > 0 -> assert(b + DELTA_BA <= fwdData[2 * p + 1] + 1)
       :: else
       fi;
       if
       :: t == seg && X_SHIFTS -> toB[p]!t, (a > 0 -> a - DELTA : 0), b + DELTA_BA
       :: else -> toB[p]!t, a, b
       fi
     }
  :: net[2 * p + 1]?t, a, b ->
     atomic {
#ifdef Y_DOWN
       if :: p == 1 && Y_BOX -> goto end :: else fi;
#endif
#if CONTEND
       /* X's own request granted: X wins, the held request loses; X's reconfiguration of X..B (new
          path, two paths, teardown: what this model checks for A..B) completes at once, and its new
          subsession starts unlocked */
       if
       :: p == 0 && t == ackLock && a == XID ->
          /* two overlapping segments are never both granted: A's holds no grant beyond X */
          assert(ra == OnePath && la != SettingUp && la != TwoPaths);
          xOwn = 2; lockX[0] = false;
          if :: xHeld != 0 -> toA[0]!nackLock, xHeld, 0; xHeld = 0 :: else fi;
          goto end
       :: else
       fi;
#endif
       if
       :: t == seg && a > 0 -> fwdData[2 * p + 1] = (a > fwdData[2 * p + 1] -> a : fwdData[2 * p + 1])
       :: else
       fi;
       /* the box of the session's first path never sees an ack beyond the data it carried
          (checked during the first reconfiguration: a box that joins later starts mid-stream) */
       if
       :: t == seg && p == 0 && X_BOX && reconfigs <= 1 -> assert(b + DELTA <= fwdData[2 * p] + 1)
       :: else
       fi;
       if
       :: t == seg && p == 0 && X_BOX && b > 0 && reconfigs <= 1 -> toA[p]!t, (a > 0 -> a - DELTA_BA : 0), b + DELTA
       :: else -> toA[p]!t, a, b
       fi
     }
#if CONTEND
  /* X starts its own reconfiguration while it is on the session's path, if its subsession is free */
  :: atomic { p == 0 && X_BOX && xOwn == 0 && curA == 0 && curB == 0 && la != TwoPaths && ra != TwoPaths ->
       if
       :: !lockX[0] -> xOwn = 1; lockX[0] = true; toB[0]!requestLock, XID, 0
       :: else -> xOwn = 3   /* busy: locked for A's request */
       fi }
#endif
  od
}

/* ---- agent A: left anchor ---- */
inline sendA(sp, ss, sa) {
  /* the left anchor applies the deltas itself on a path it set up (all of a segment's deltas are
     the left anchor's: the new path's boxes and the right anchor rewrite addresses only) */
#ifndef MUTANT_NO_DELTA
  net[2 * sp]!seg, (ss > 0 -> ss - dLR[sp] : 0), sa + dRL[sp]
#else
  net[2 * sp]!seg, ss, sa
#endif
}

inline egressA(s, a) {
  if
  :: la != TwoPaths && la != SettingUp -> sendA(curA, s, a)
  :: else ->
     /* the new path is prepared (SettingUp) or in use (TwoPaths): acks are split by m from
        the moment new-path data can arrive; data moves only at the cutover, by the cutoff */
     dp = (s == 0 -> NONE : ((la == TwoPaths && s >= cutA) -> (1 - curA) : curA));
     ap = ((mA == NONE || a <= mA) -> curA : (1 - curA));
     /* the old path carries at most m */
     clip = ((mA != NONE && a > mA) -> mA : a);
#ifdef MUTANT_NO_ACK_SPLIT
     /* the ack rides with the data, unclipped */
     ap = (dp == NONE -> ap : dp);
     clip = a;
#endif
     if
     :: dp == NONE && ap == curA -> sendA(ap, 0, clip)
     :: dp == NONE && ap != curA -> sendA(ap, 0, a)
     :: dp != NONE && dp == ap && dp == curA -> sendA(dp, s, clip)
     :: dp != NONE && dp == ap && dp != curA -> sendA(dp, s, a)
     :: dp != NONE && dp != ap && dp == curA -> sendA(dp, s, clip); sendA(ap, 0, a)
     :: dp != NONE && dp != ap && dp != curA -> sendA(dp, s, a); sendA(ap, 0, clip)
     fi
  fi
}

inline egressB(s, a) {
  if
  :: ra != TwoPaths && ra != Waiting -> net[2 * curB + 1]!seg, s, a
  :: else ->
     dp = (s == 0 -> NONE : ((ra == TwoPaths && s >= cutB) -> (1 - curB) : curB));
     ap = ((mB == NONE || a <= mB) -> curB : (1 - curB));
     clip = ((mB != NONE && a > mB) -> mB : a);
#ifdef MUTANT_NO_ACK_SPLIT
     ap = (dp == NONE -> ap : dp);
     clip = a;
#endif
     if
     :: dp == NONE && ap == curB -> net[2 * ap + 1]!seg, 0, clip
     :: dp == NONE && ap != curB -> net[2 * ap + 1]!seg, 0, a
     :: dp != NONE && dp == ap && dp == curB -> net[2 * dp + 1]!seg, s, clip
     :: dp != NONE && dp == ap && dp != curB -> net[2 * dp + 1]!seg, s, a
     :: dp != NONE && dp != ap && dp == curB -> net[2 * dp + 1]!seg, s, clip; net[2 * ap + 1]!seg, 0, a
     :: dp != NONE && dp != ap && dp != curB -> net[2 * dp + 1]!seg, s, a; net[2 * ap + 1]!seg, 0, clip
     fi
  fi
}

inline completeA() {
  curA = 1 - curA;   /* the new path is the only path */
  la = OnePath;
  lockA = false;
  finished++;
  mA = NONE; drainedA = false; peerDrainedA = false; triesA = 0
}

/* A's retransmission timers: repeat, or give up and cancel */
inline retxRequestA() {
  if
  :: triesA < RETRIES -> triesA++; lose_or(0, curA, requestLock, reconfigs, OWN_DELTAS)
  :: else -> la = Canceling; lose_or(0, curA, cancelLock, reconfigs, 0)
  fi;
  STEP(0, 3, requestLock, curA, reconfigs, 0)
}
inline retxSynA() {
  if
  :: triesA < RETRIES -> triesA++; lose_or(0, 1 - curA, syn, reconfigs, 0)
  :: else -> la = Canceling; lose_or(0, curA, cancelLock, reconfigs, 0);
     /* the new path is abandoned: its boxes leave (marked 2: nobody answers it) */
     lose_or(0, 1 - curA, teardown, reconfigs, 2)
  fi;
  STEP(0, 3, syn, 1 - curA, reconfigs, 0)
}
inline retxCancelA() { lose_or(0, curA, cancelLock, reconfigs, 0); STEP(0, 3, cancelLock, curA, reconfigs, 0) }
inline retxTeardownA() { lose_or(0, curA, teardown, reconfigs, 0); STEP(0, 3, teardown, curA, reconfigs, 0) }

proctype AgentA() {
  mtype t;
  byte s, a, dp, ap, p, clip;
end:
  do
  /* start a reconfiguration: lock the old path */
  :: atomic { la == OnePath && ra == OnePath && curA == curB && reconfigs < RECONFIGS && reconfigs == finished && REUSE_OK ->
       reconfigs++; lockA = true; la = Requesting; triesA = 0;
       lose_or(0, curA, requestLock, reconfigs, OWN_DELTAS);
       STEP(0, 1, requestLock, curA, reconfigs, 0) }
  /* the endpoint's segments */
  :: atomic { tcpOutA?s, a -> egressA(s, a) }
  /* from the network, on either path */
  :: atomic { (toA[0]?[t, s, a] || toA[1]?[t, s, a]) ->
       if :: toA[0]?t, s, a -> p = 0 :: toA[1]?t, s, a -> p = 1 fi;
       if
       :: t == seg ->
          /* new-path data at or above B's cutoff (in B's numbering, as it arrives) */
          if :: p == (1 - curA) && s > 0 && ra == TwoPaths -> assert(s >= cutB) :: else fi;
          /* on a path A set up, segments are in B's numbering: back into A's */
#ifndef MUTANT_NO_DELTA
          a = (a > 0 -> a + dLR[p] : 0); s = (s > 0 -> s - dRL[p] : 0);
#endif
          /* m is tracked from the moment the new path can deliver, before two paths begin */
          if :: (la == SettingUp || la == TwoPaths) && p == (1 - curA) && s > 0 -> mA = (mA == NONE || s < mA -> s : mA) :: else fi;
          if :: s > 0 && la == TwoPaths && p == (1 - curA) -> skip :: else fi;
          if :: la == TwoPaths && a > ackHighA -> ackHighA = a :: else fi;
          if :: la != TwoPaths && a > ackHighA -> ackHighA = a :: else fi;
          tcpInA!s, a;
          if
          :: la == TwoPaths && !drainedA && ackHighA >= cutA ->
             drainedA = true;
#ifdef TRACE
             drainEv = 1;
#endif
             lose_or(0, curA, teardown, reconfigs, 0);
#ifndef MUTANT_EARLY_TEARDOWN
             if :: peerDrainedA -> completeA() :: else fi
#else
             completeA()
#endif
          :: else
          fi
       :: t == ackLock && la == Requesting -> dLR[1 - curA] = a % 16; dRL[1 - curA] = a / 16; la = SettingUp; triesA = 0;
          lose_or(0, 1 - curA, syn, reconfigs, 0)
       :: t == synAck && la == SettingUp ->
          la = TwoPaths; cutover = true;
          cutA = sndA + 1;
          lose_or(0, 1 - curA, ack, reconfigs, 0);
          /* an idle old path is drained at once */
          if
          :: ackHighA >= cutA -> drainedA = true;
#ifdef TRACE
             drainEv = 1;
#endif
             lose_or(0, curA, teardown, reconfigs, 0);
             if :: peerDrainedA -> completeA() :: else fi
          :: else
          fi
       :: t == synAck && la == TwoPaths -> lose_or(0, 1 - curA, ack, reconfigs, 0)
       :: t == teardown && la == TwoPaths && p == curA -> peerDrainedA = true;
          if :: drainedA -> completeA() :: else fi
       /* B missed our teardown and repeats its own: answer once more, marked so it is never answered */
       :: t == teardown && la == OnePath && ANSWERED(a) && s == reconfigs -> lose_or(0, 1 - curA, teardown, reconfigs, 1)
#if CONTEND
       /* refused (X's own request won the contention): the old path stays */
       :: t == nackLock && la == Requesting && s == reconfigs -> la = OnePath; lockA = false; aborted = true; finished++
#endif
       :: t == ackCancel && la == Canceling -> la = OnePath; lockA = false; aborted = true; finished++; mA = NONE
       :: else -> skip
       fi;
       STEP_MSG(0, t, p, s, a) }
  /* nothing else can happen: retransmit, or give up and cancel */
  :: atomic { timeout && la == Requesting -> retxRequestA() }
  :: atomic { timeout && la == SettingUp -> retxSynA() }
  :: atomic { timeout && la == Canceling -> retxCancelA() }
  :: atomic { timeout && la == TwoPaths && drainedA -> retxTeardownA() }
#if SPURIOUS
  /* a teardown timer that fires early, while the peer's teardown is still on its way (SPURIOUS times in all) */
  :: atomic { spurious < SPURIOUS && la == TwoPaths && drainedA -> spurious++; retxTeardownA() }
#endif
  od
}

/* ---- agent B: right anchor ---- */
inline completeB() {
  curB = 1 - curB;
  ra = OnePath;
  mB = NONE; drainedB = false; peerDrainedB = false; triesB = 0
}

inline retxSynAckB() { triesB++; lose_or(1, 1 - curB, synAck, reconfigs, 0); STEP(1, 3, synAck, 1 - curB, reconfigs, 0) }
inline retxTeardownB() { lose_or(1, curB, teardown, reconfigs, 0); STEP(1, 3, teardown, curB, reconfigs, 0) }

proctype AgentB() {
  mtype t;
  byte s, a, dp, ap, p, clip;
end:
  do
  :: atomic { tcpOutB?s, a -> egressB(s, a) }
  :: atomic { (toB[0]?[t, s, a] || toB[1]?[t, s, a]) ->
       if :: toB[0]?t, s, a -> p = 0 :: toB[1]?t, s, a -> p = 1 fi;
       if
       :: t == seg ->
          if :: (ra == Waiting || ra == TwoPaths) && p != curB && s > 0 -> mB = (mB == NONE || s < mB -> s : mB) :: else fi;
          if :: p != curB && s > 0 && la == TwoPaths -> assert(s + dLR[p] >= cutA) :: else fi;
          if :: a > ackHighB -> ackHighB = a :: else fi;
          tcpInB!s, a;
          if
          :: ra == TwoPaths && !drainedB && ackHighB >= cutB ->
             drainedB = true;
#ifdef TRACE
             drainEv = 1;
#endif
#ifndef DIVERGE_RIGHT
             lose_or(1, curB, teardown, reconfigs, 0);
             if :: peerDrainedB -> completeB() :: else fi
#else
             /* (replay test only) a right anchor that completes without its own teardown when its peer's came first */
             if :: peerDrainedB -> completeB() :: else -> lose_or(1, curB, teardown, reconfigs, 0) fi
#endif
          :: else
          fi
#if CONTEND
       /* X's request: B is its right anchor; the rest of X's reconfiguration is abstracted (above) */
       :: t == requestLock && s == XID -> net[1]!ackLock, XID, 0
#endif
       :: t == requestLock && s != XID && ra == OnePath -> ra = Requested; lose_or(1, curB, ackLock, s, a)
       :: t == requestLock && s != XID && ra == Requested -> lose_or(1, curB, ackLock, s, a)
       :: t == syn && ra == Requested -> ra = Waiting; triesB = 0; lose_or(1, 1 - curB, synAck, s, 0)
       :: t == syn && ra == Waiting -> lose_or(1, 1 - curB, synAck, s, 0)
       :: (t == ack || (t == teardown && p == curB)) && ra == Waiting ->
          ra = TwoPaths; cutB = sndB + 1;
          if :: t == teardown -> peerDrainedB = true :: else fi;
          if
          :: ackHighB >= cutB -> drainedB = true;
#ifdef TRACE
             drainEv = 1;
#endif
#ifndef DIVERGE_RIGHT
             lose_or(1, curB, teardown, reconfigs, 0);
             if :: peerDrainedB -> completeB() :: else fi
#else
             /* (replay test only) a right anchor that completes without its own teardown when its peer's came first */
             if :: peerDrainedB -> completeB() :: else -> lose_or(1, curB, teardown, reconfigs, 0) fi
#endif
          :: else
          fi
       :: t == teardown && ra == TwoPaths && p == curB -> peerDrainedB = true;
          if :: drainedB -> completeB() :: else fi
       :: t == cancelLock && ra == Requested -> ra = OnePath; mB = NONE; lose_or(1, curB, ackCancel, s, 0)
       /* the new path is abandoned: its boxes leave (marked 2: nobody answers it) */
       :: t == cancelLock && ra == Waiting -> ra = OnePath; mB = NONE; lose_or(1, curB, ackCancel, s, 0);
          lose_or(1, 1 - curB, teardown, s, 2)
       :: t == cancelLock && ra == OnePath -> lose_or(1, curB, ackCancel, s, 0)
       :: t == teardown && ra == OnePath && ANSWERED(a) && s == reconfigs -> lose_or(1, 1 - curB, teardown, reconfigs, 1)
       :: else -> skip
       fi;
       STEP_MSG(1, t, p, s, a) }
  :: atomic { timeout && ra == Waiting && triesB < RETRIES -> retxSynAckB() }
  :: atomic { timeout && ra == TwoPaths && drainedB -> retxTeardownB() }
#if SPURIOUS
  :: atomic { spurious < SPURIOUS && ra == TwoPaths && drainedB -> spurious++; retxTeardownB() }
#endif
  od
}

/* the endpoints' segments between agent and stack */
proctype Final() {
end:
  atomic {
    allDone && timeout ->
    assert(rcvA == KB && rcvB == KA);
    assert(xHeld == 0 && xOwn != 1);
    assert(la == OnePath && ra == OnePath && !lockA && !lockX[0] && !lockX[1]);
    assert(curA == curB && (aborted || curA == RECONFIGS % 2))
  }
}

init {
  atomic {
    lockX[0] = false; lockX[1] = false;
    dLR[0] = 0; dLR[1] = 0; dRL[0] = 0; dRL[1] = 0;
    mA = NONE; mB = NONE; ackHighA = 0; ackHighB = 0;
    /* what the box saw of A's stream before any byte: its initial sequence number (the SYN) */
    fwdData[0] = DELTA; fwdData[1] = DELTA_BA; fwdData[2] = DELTA; fwdData[3] = DELTA_BA;
    sndA = DELTA; sndB = DELTA_BA;
    run Tcp(tcpOutA, tcpInA, true, DELTA);
    run Tcp(tcpOutB, tcpInB, false, DELTA_BA);
    run AgentA();
    run AgentB();
    run Relay(0);
    run Relay(1);
    run Final()
  }
}

ltl terminates { <> allDone }
ltl neverTwoPaths { [] !cutover }
ltl neverAborted { [] !aborted }
/* witness (KA >= 2): A's stream split across the two paths (a byte on each) */
ltl neverSplit { [] !(fwdData[0] > DELTA && fwdData[2] > DELTA) }
/* witness (KB >= 2): B's stream split across the two paths */
ltl neverSplitB { [] !(fwdData[1] > DELTA_BA && fwdData[3] > DELTA_BA) }
/* witnesses of contention (CONTEND=1): A's request held at X, X's own request granted, X refused */
ltl neverHeld { [] (xHeld == 0) }
ltl neverXWon { [] (xOwn != 2) }
ltl neverXRefused { [] (xOwn != 3) }
