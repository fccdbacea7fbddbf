/*
 * locking.pml -- the locking phase of Dysco's reconfiguration protocol,
 * with contention between concurrent requests.
 *
 * What it models. A chain of N agents (0 is the client, N-1 the server);
 * agent i is the left end of subsession i. M reconfiguration requests, each
 * over a segment [L[r], R[r]] of the chain, are issued by their left anchors
 * at any time. Every agent runs the lock machine of the TypeScript
 * implementation (states unlocked, lockPending, locked; a request held while
 * the agent's own request is pending, refused when the own request wins,
 * forwarded when it fails), the leftAnchor machine (OnePath, Requesting,
 * SettingUp, Canceling) and the rightAnchor machine (OnePath, Requested).
 * Control messages (requestLock, ackLock, nackLock, cancelLock, ackCancel)
 * travel hop by hop in FIFO channels; the network may lose up to LOSSES of
 * them; a left anchor retransmits requestLock when nothing else can happen
 * (Spin's timeout), up to RETRIES times, then cancels. cancelLock is
 * retransmitted without limit. Agents remember cancelled requests
 * (tombstones), so a request overtaken by its own cancel starts nothing;
 * the requests whose nackLock they relayed, and those of a completed
 * reconfiguration, likewise; and the requests they refused, so that a later
 * copy of one is refused again (the requester gave up on the first refusal,
 * and nobody would release what an accepted copy locks). With EARLY=1 one
 * requestLock retransmission may fire while messages are in flight (a timer
 * shorter than the round trip), so two copies of a request can be on their
 * way at once: what makes a copy reach an agent after it refused another.
 *
 * What it abstracts away. Once its segment is locked (SettingUp), a
 * reconfiguration completes in one atomic step that replaces the segment's
 * subsessions by new, unlocked ones (the new path, two paths and teardown
 * are in reconfig.pml); the chain keeps its agents. No data.
 *
 * Checks (see the manifest): assertions -- a granted segment is locked for
 * its request on every subsession, and no two granted, unfinished segments
 * overlap; nothing is left locked, pending or held once every request has
 * finished and no message is in flight. Valid end states (no deadlock).
 * LTL: `terminates` (every request ends, completed or aborted; under weak
 * fairness), `noOverlap`. Witnesses that must fail: `neverContended`,
 * `neverAborted`, `neverGranted`, `neverCanceled`.
 * With SELF_REMOVAL=1, request 0 comes from the box it removes: the box
 * sends rightRequest to its left neighbour (repeated after losses until the
 * request starts), which then proceeds as left anchor or refuses (busy).
 * Mutants (compile-time): MUTANT_NO_LOCK_CHECK, MUTANT_NO_HOLD,
 * MUTANT_CANCEL_IGNORED, MUTANT_NO_RETRANSMIT, MUTANT_REFUSAL_FORGOTTEN (with
 * EARLY: an agent that refused a request relays a later copy of it once it is
 * free again, as SessionProtocol did until the simulator found it).
 */

#ifndef N
#define N 4
#endif
#ifndef M
#define M 2
#endif
#ifndef LOSSES
#define LOSSES 2
#endif
#ifndef RETRIES
#define RETRIES 1
#endif
#ifndef CHAN
#define CHAN 4
#endif
/* EARLY=1: one requestLock retransmission may fire before the answer could have come */
#ifndef EARLY
#define EARLY 0
#endif
/* SELF_REMOVAL=1: request 0 is asked for by the box it removes (agent L[0]+1), with rightRequest */
#ifndef SELF_REMOVAL
#define SELF_REMOVAL 0
#endif

mtype = { requestLock, ackLock, nackLock, cancelLock, ackCancel, rightRequest };

/* lock */
#define unlocked 0
#define lockPending 1
#define locked 2
/* leftAnchor */
#define OnePath 0
#define Requesting 1
#define SettingUp 2
#define Canceling 4
/* rightAnchor */
#define Requested 1
/* outcome of a request */
#define pending 0
#define completed 1
#define aborted 2
#define NONE 255

byte L[M];
byte R[M];
byte lock[N];
byte lockReq[N];
bool lockOwn[N];
byte held[N];
byte tomb[N];            /* bit r: request r was cancelled, refused further on or completed through this agent */
byte refused[N];         /* bit r: this agent refused request r (nackLock) */
byte la[N];
byte laReq[N];
byte tries[N];
byte ra[N];
byte raReq[N];
bool started[M];
bool granted[M];
byte outcome[M];
byte losses = 0;
byte inflight = 0;       /* control messages sent and not yet received */
bool contended = false;  /* some request was held: contention happened */
bool asked = false;      /* the box has sent its rightRequest */
bool canceled = false;   /* some left anchor gave up and cancelled */
bool early = false;      /* the early retransmission (EARLY) has fired */

chan fromLeft[N] = [CHAN] of { mtype, byte };
chan fromRight[N] = [CHAN] of { mtype, byte };

#define allDone (outcome[0] != pending && (M < 2 || outcome[1] != pending) && (M < 3 || outcome[2] != pending))
#define quiet (inflight == 0)
/* agent i has a request it has not issued yet */
#define canStart(i) ((L[0] == i && !started[0] && !SELF_REMOVAL) || (M > 1 && L[1] == i && !started[1]) || (M > 2 && L[2] == i && !started[2]))
#define overlap(a, b) (L[a] < R[b] && L[b] < R[a])

/*
 * With -DTRACE, every step of an agent prints its event and the agent's
 * state afterwards ("@@@ agent event request lock lockReq lockOwn held la"),
 * which the TypeScript test replays against the TypeScript lock machine.
 * Events: 1 start, 2 requestLock, 3 cancelLock, 4 ackLock, 5 nackLock,
 * 6 ackCancel, 7 timeout, 9 complete.
 */
#ifdef TRACE
#define STEP(ev, r) printf("@@@ %d %d %d %d %d %d %d %d\n", i, ev, r, lock[i], lockReq[i], lockOwn[i], held[i], la[i])
#else
#define STEP(ev, r) skip
#endif

/* a transmission the network may lose while its loss budget lasts */
inline send(ch, t, r) {
  if
  :: losses < LOSSES -> losses++
  :: ch!t, r; inflight++
  fi
}

inline toRightOf(i, t, r) { send(fromLeft[i + 1], t, r) }
inline toLeftOf(i, t, r) { send(fromRight[i - 1], t, r) }

/* this agent refuses request r, and remembers it */
#ifndef MUTANT_REFUSAL_FORGOTTEN
inline refuse(i, r) { refused[i] = refused[i] | (1 << r); toLeftOf(i, nackLock, r) }
#else
inline refuse(i, r) { toLeftOf(i, nackLock, r) }
#endif

/* a held request goes on, as if it had never waited */
inline forwardHeld(i) {
  lockReq[i] = held[i];
  lockOwn[i] = false;
  lock[i] = lockPending;
  toRightOf(i, requestLock, held[i]);
  held[i] = NONE
}

/* the segment is granted: check it, then complete in one step (new, unlocked subsessions) */
inline grant(i, r) {
  granted[r] = true;
  j = L[r];
  do
  :: j < R[r] -> assert(lock[j] == locked && lockReq[j] == r); j++
  :: else -> break
  od;
  k = 0;
  do
  :: k < M -> assert(k == r || !granted[k] || !overlap(k, r)); k++
  :: else -> break
  od
}

inline complete(i, r) {
  d_step {
    j = L[r];
    do
    :: j < R[r] -> lock[j] = unlocked; lockReq[j] = NONE; lockOwn[j] = false; j++
    :: else -> break
    od;
    /* the old subsessions are gone: a late copy of the request reaches nobody (the left anchor and the
       right anchor remember the reconfiguration, the boxes between them have left the session) */
    j = L[r];
    do
    :: j <= R[r] -> tomb[j] = tomb[j] | (1 << r); j++
    :: else -> break
    od;
    if
    :: ra[R[r]] == Requested && raReq[R[r]] == r -> ra[R[r]] = OnePath
    :: else
    fi;
    granted[r] = false;
    outcome[r] = completed;
    la[i] = OnePath
  }
}

proctype Agent(byte i) {
  mtype t;
  byte r, j, k;
end:
  do
  /* this agent starts one of its requests */
  :: atomic { la[i] == OnePath && canStart(i) -> r = 0;
       do
       :: r < M && L[r] == i && !started[r] -> break
       :: r < M && !(L[r] == i && !started[r]) -> r++
       :: r >= M -> break
       od;
     if
     :: r < M ->
        started[r] = true;
        if
        :: lock[i] == unlocked ->
           lock[i] = lockPending; lockOwn[i] = true; lockReq[i] = r;
           la[i] = Requesting; laReq[i] = r; tries[i] = 0;
           toRightOf(i, requestLock, r)
        :: else -> outcome[r] = aborted   /* busy */
        fi;
        STEP(1, r)
     :: else -> skip
     fi }

  /* a box asks its left neighbour to take it out of the chain */
  :: atomic { SELF_REMOVAL && i == L[0] + 1 && !asked -> asked = true; toLeftOf(i, rightRequest, 0) }
  :: atomic { SELF_REMOVAL && timeout && i == L[0] + 1 && asked && !started[0] -> toLeftOf(i, rightRequest, 0) }

  /* from the left: requestLock, cancelLock */
  :: atomic { fromLeft[i]?t, r -> inflight--;
     if
     :: t == requestLock && (refused[i] & (1 << r)) -> toLeftOf(i, nackLock, r)   /* refused before: refused again */
     :: t == requestLock && !(refused[i] & (1 << r)) && (tomb[i] & (1 << r)) -> skip   /* overtaken by its own cancel, or dead */
     :: t == requestLock && !((refused[i] | tomb[i]) & (1 << r)) && i == R[r] ->
        if
        :: ra[i] == OnePath -> ra[i] = Requested; raReq[i] = r; toLeftOf(i, ackLock, r)
        :: ra[i] == Requested && raReq[i] == r -> toLeftOf(i, ackLock, r)
        :: else -> refuse(i, r)                             /* busy */
        fi
     :: t == requestLock && !((refused[i] | tomb[i]) & (1 << r)) && i != R[r] ->
        if
        :: lock[i] == unlocked ->
           lock[i] = lockPending; lockOwn[i] = false; lockReq[i] = r; toRightOf(i, requestLock, r)
        :: lock[i] == lockPending && lockReq[i] == r -> toRightOf(i, requestLock, r)
#ifndef MUTANT_NO_HOLD
        :: lock[i] == lockPending && lockReq[i] != r && lockOwn[i] && held[i] == NONE -> held[i] = r; contended = true
        :: lock[i] == lockPending && lockReq[i] != r && lockOwn[i] && held[i] == r -> skip
        :: lock[i] == lockPending && lockReq[i] != r && lockOwn[i] && held[i] != NONE && held[i] != r -> refuse(i, r)
        :: lock[i] == lockPending && lockReq[i] != r && !lockOwn[i] -> refuse(i, r)
#else
        :: lock[i] == lockPending && lockReq[i] != r -> lockReq[i] = r; lockOwn[i] = false; toRightOf(i, requestLock, r)
#endif
        :: lock[i] == locked && lockReq[i] == r -> toLeftOf(i, ackLock, r)
#ifndef MUTANT_NO_LOCK_CHECK
        :: lock[i] == locked && lockReq[i] != r -> refuse(i, r)
#else
        :: lock[i] == locked && lockReq[i] != r -> lockReq[i] = r; lock[i] = lockPending; toRightOf(i, requestLock, r)
#endif
        fi
     :: t == cancelLock ->
        tomb[i] = tomb[i] | (1 << r);
        if
        :: i == R[r] && ra[i] == Requested && raReq[i] == r -> ra[i] = OnePath; toLeftOf(i, ackCancel, r)
        :: i == N - 1 && !(ra[i] == Requested && raReq[i] == r) -> toLeftOf(i, ackCancel, r)
        :: i != N - 1 && !(i == R[r] && ra[i] == Requested && raReq[i] == r) ->
#ifndef MUTANT_CANCEL_IGNORED
           if
           :: held[i] == r -> held[i] = NONE
           :: lock[i] != unlocked && lockReq[i] == r -> lock[i] = unlocked; lockReq[i] = NONE
           :: else
           fi;
#endif
           toRightOf(i, cancelLock, r)
        fi
     :: else -> skip
     fi;
     STEP((t == requestLock -> 2 : 3), r) }

  /* from the right: ackLock, nackLock, ackCancel */
  :: atomic { fromRight[i]?t, r -> inflight--;
     if
     :: t == ackLock && i == L[r] && la[i] == Requesting && laReq[i] == r ->
        lock[i] = locked;
        la[i] = SettingUp;
        grant(i, r);
        /* a request held behind ours is refused: ours won */
        if
        :: held[i] != NONE -> refuse(i, held[i]); held[i] = NONE
        :: else
        fi
     :: t == ackLock && i != L[r] && lock[i] != unlocked && lockReq[i] == r ->
        lock[i] = locked; toLeftOf(i, ackLock, r)
     :: t == nackLock && i == L[r] && la[i] == Requesting && laReq[i] == r ->
        la[i] = OnePath; outcome[r] = aborted;
        if
        :: held[i] != NONE -> forwardHeld(i)
        :: else -> lock[i] = unlocked; lockReq[i] = NONE; lockOwn[i] = false
        fi
     :: t == nackLock && i != L[r] && lock[i] == lockPending && lockReq[i] == r ->
        /* the request is dead: a copy of it still on its way must not lock this agent again */
        lock[i] = unlocked; lockReq[i] = NONE; tomb[i] = tomb[i] | (1 << r); toLeftOf(i, nackLock, r)
     :: t == ackCancel && i == L[r] && la[i] == Canceling && laReq[i] == r ->
        la[i] = OnePath; outcome[r] = aborted;
        if
        :: held[i] != NONE -> forwardHeld(i)
        :: else -> lock[i] = unlocked; lockReq[i] = NONE; lockOwn[i] = false
        fi
     :: t == ackCancel && i != L[r] -> toLeftOf(i, ackCancel, r)
     /* the left anchor acts on a box's request, as on its own (once; busy: refused) */
     :: t == rightRequest && i == L[r] && !started[r] ->
        started[r] = true;
        if
        :: la[i] == OnePath && lock[i] == unlocked ->
           lock[i] = lockPending; lockOwn[i] = true; lockReq[i] = r;
           la[i] = Requesting; laReq[i] = r; tries[i] = 0;
           toRightOf(i, requestLock, r)
        :: else -> outcome[r] = aborted
        fi;
        STEP(1, r)
     :: else -> skip   /* stale or duplicate */
     fi;
     if :: t != rightRequest -> STEP((t == ackLock -> 4 : (t == nackLock -> 5 : 6)), r) :: else fi }

  /* granted: the reconfiguration runs its course (reconfig.pml) and completes */
  :: atomic { la[i] == SettingUp -> r = laReq[i]; complete(i, r); STEP(9, r) }

  /* nothing else can happen: the left anchor's message or its answer was lost */
#if EARLY
  /* a timer shorter than the round trip: one retransmission while the answer may still be coming */
  :: atomic { !early && la[i] == Requesting && tries[i] < RETRIES ->
     early = true; tries[i]++; toRightOf(i, requestLock, laReq[i]); STEP(7, laReq[i]) }
#endif
#ifndef MUTANT_NO_RETRANSMIT
  :: atomic { timeout && la[i] == Requesting ->
     if
     :: tries[i] < RETRIES -> tries[i]++; toRightOf(i, requestLock, laReq[i])
     :: tries[i] >= RETRIES ->
        /* our own lock stays until the cancel is acknowledged (as in the TypeScript machine) */
        la[i] = Canceling;
        canceled = true;
        toRightOf(i, cancelLock, laReq[i])
     fi;
     STEP(7, laReq[i]) }
#endif
  :: atomic { timeout && la[i] == Canceling -> toRightOf(i, cancelLock, laReq[i]) }
  od
}

/* once everything has finished and nothing is in flight, nothing is left locked, pending or held */
proctype Leaks() {
  byte j;
end:
  atomic {
    allDone && quiet ->
    j = 0;
    do
    :: j < N -> assert(lock[j] == unlocked && held[j] == NONE && ra[j] == OnePath && la[j] == OnePath); j++
    :: else -> break
    od
  }
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < N -> lock[i] = unlocked; lockReq[i] = NONE; lockOwn[i] = false; held[i] = NONE; tomb[i] = 0; refused[i] = 0;
                la[i] = OnePath; laReq[i] = NONE; tries[i] = 0; ra[i] = OnePath; raReq[i] = NONE; i++
    :: else -> break
    od;
    /* overlapping segments: each request's left anchor lies inside the next one's segment */
    i = 0;
    do
    :: i < M -> L[i] = i; R[i] = i + 2; started[i] = false; granted[i] = false; outcome[i] = pending; i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < N -> run Agent(i); i++
    :: else -> break
    od;
    run Leaks()
  }
}

ltl terminates { <> allDone }
ltl noOverlap { [] !(granted[0] && granted[1] && overlap(0, 1)) }
/* witnesses: each must FAIL, proving the behaviour is reachable */
ltl neverContended { [] !contended }
ltl neverAborted { [] (outcome[0] != aborted && outcome[1] != aborted) }
ltl neverGranted { [] !(granted[0] || granted[1]) }
ltl neverCanceled { [] !canceled }
ltl neverGranted0 { [] !granted[0] }   /* with SELF_REMOVAL: the box's own removal is granted somewhere */
