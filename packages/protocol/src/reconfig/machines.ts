import { assign, setup } from 'xstate';
import type { Address } from '../address.js';
import { ZERO_DELTAS, type Deltas, type NackReason } from '../messages.js';
import type { Hop, ProtocolAction, RetryPolicy, TimerName } from './types.js';

/**
 * The three state machines of one session at one agent, as xstate 5
 * machines driven through the pure `transition()` function: each transition
 * returns `emit` actions whose params are ProtocolActions, executed by the
 * caller. `SessionProtocol` (session-protocol.ts) routes control messages to
 * them and prepares the messages they may send, so the machines hold only
 * the protocol's state and its decisions. State names are the protocol's:
 *
 *  - lock (per agent, for the subsession it is the left end of):
 *      unlocked -> lockPending -> locked
 *  - leftAnchor:  OnePath -> Requesting -> SettingUp -> TwoPaths -> OnePath,
 *                 with Canceling from Requesting or SettingUp
 *  - rightAnchor: OnePath -> Requested -> Waiting -> TwoPaths -> OnePath
 */

type Maybe<T> = T | undefined;
// Params may be a function of context and event; an undefined action is dropped by the caller.
const emit = (params: Maybe<ProtocolAction> | ((a: { context: any; event: any }) => Maybe<ProtocolAction>)) => ({
  type: 'emit' as const,
  params: params as any,
});

// ---------------------------------------------------------------------------
// lock

/** A requestLock as seen by a relay, with the answers it may give. */
export interface HeldRequest {
  readonly requester: string;
  readonly reconfigId: number;
  /** requestLock forwarded rightwards with this agent's deltas added. */
  readonly forward: ProtocolAction;
  /** nackLock back to the sender, for when the request loses (its reason is filled in by nackOf). */
  readonly nack: ProtocolAction;
}

/** The held request's nackLock with the reason of its refusal. */
export function nackOf(h: HeldRequest, reason: NackReason): ProtocolAction {
  const a = h.nack;
  return a.type === 'send' && a.message.type === 'nackLock' ? { ...a, message: { ...a.message, reason } } : a;
}

export interface LockContext {
  readonly requester: string | undefined;
  readonly reconfigId: number | undefined;
  /** true when this agent is the requester (would-be left anchor). */
  readonly own: boolean;
  /** A request from the left held while our own request is pending. */
  readonly held: HeldRequest | undefined;
  /** The ackLock to repeat leftwards when a relayed request is retransmitted after locking. */
  readonly ackLeft: ProtocolAction | undefined;
}

export type LockEvent =
  | { type: 'acquire'; requester: string; reconfigId: number }
  | { type: 'relayRequest'; request: HeldRequest }
  | { type: 'ackLock'; requester: string; reconfigId: number; forwardLeft?: ProtocolAction }
  | { type: 'nackLock'; requester: string; reconfigId: number; forwardLeft?: ProtocolAction }
  | { type: 'cancelLock'; requester: string; reconfigId: number; forwardRight?: ProtocolAction }
  | { type: 'release' };

const sameRequest = (c: LockContext, e: { requester: string; reconfigId: number }) =>
  c.requester === e.requester && c.reconfigId === e.reconfigId;

export const lockMachine = setup({
  types: {
    context: {} as LockContext,
    events: {} as LockEvent,
  },
  actions: {
    emit: (_: unknown, _params: Maybe<ProtocolAction>) => {},
  },
  guards: {
    sameRequest: ({ context, event }) =>
      'requester' in event ? sameRequest(context, event) : 'request' in event && sameRequest(context, event.request),
    isOwn: ({ context }) => context.own,
    hasHeld: ({ context }) => context.held !== undefined,
    canHold: ({ context }) => context.own && context.held === undefined,
    heldAgain: ({ context, event }) =>
      event.type === 'relayRequest' && context.held !== undefined && sameRequest(context.held as LockContext & HeldRequest, event.request),
  },
}).createMachine({
  id: 'lock',
  initial: 'unlocked',
  context: { requester: undefined, reconfigId: undefined, own: false, held: undefined, ackLeft: undefined },
  states: {
    unlocked: {
      on: {
        acquire: {
          target: 'lockPending',
          actions: assign(({ event }) => ({ requester: event.requester, reconfigId: event.reconfigId, own: true, held: undefined, ackLeft: undefined })),
        },
        relayRequest: {
          target: 'lockPending',
          actions: [
            assign(({ event }) => ({ requester: event.request.requester, reconfigId: event.request.reconfigId, own: false, held: undefined, ackLeft: undefined })),
            emit(({ event }) => event.request.forward),
          ],
        },
        cancelLock: {
          // Nothing to clear here, but the right anchor may lie further on.
          actions: emit(({ event }) => event.forwardRight),
        },
      },
    },
    lockPending: {
      on: {
        relayRequest: [
          // a retransmission of the request we relay: the loss may be further right
          { guard: 'sameRequest', actions: emit(({ event }) => event.request.forward) },
          { guard: 'heldAgain' },
          // contention: our own request is pending, hold this one until it is answered
          { guard: 'canHold', actions: assign({ held: ({ event }) => event.request }) },
          { actions: emit(({ event }) => nackOf(event.request, 'locked')) },
        ],
        ackLock: [
          {
            guard: { type: 'sameRequest' },
            target: 'locked',
            actions: [
              // our own request won: the held one loses
              emit(({ context, event }) =>
                context.own ? context.held && nackOf(context.held, 'contention') : event.forwardLeft,
              ),
              assign(({ context, event }) => ({ held: undefined, ackLeft: context.own ? undefined : event.forwardLeft })),
            ],
          },
        ],
        nackLock: [
          {
            // our own request failed: the held one goes on, as if it had never waited
            guard: ({ context, event }) => sameRequest(context, event) && context.own && context.held !== undefined,
            target: 'lockPending',
            reenter: true,
            actions: [
              emit(({ context }) => context.held!.forward),
              assign(({ context }) => ({ requester: context.held!.requester, reconfigId: context.held!.reconfigId, own: false, held: undefined })),
            ],
          },
          { guard: ({ context, event }) => sameRequest(context, event) && context.own, target: 'unlocked', actions: assign({ requester: undefined, reconfigId: undefined, own: false }) },
          {
            guard: 'sameRequest',
            target: 'unlocked',
            actions: [emit(({ event }) => event.forwardLeft), assign({ requester: undefined, reconfigId: undefined, own: false })],
          },
        ],
        cancelLock: [
          {
            // the request we hold is abandoned by its requester: forget it
            guard: ({ context, event }) => context.held !== undefined && sameRequest(context.held as unknown as LockContext, event),
            actions: [emit(({ event }) => event.forwardRight), assign({ held: undefined })],
          },
          {
            guard: ({ context, event }) => sameRequest(context, event) && context.own && context.held !== undefined,
            target: 'lockPending',
            reenter: true,
            actions: [
              emit(({ context }) => context.held!.forward),
              assign(({ context }) => ({ requester: context.held!.requester, reconfigId: context.held!.reconfigId, own: false, held: undefined })),
            ],
          },
          {
            guard: 'sameRequest',
            target: 'unlocked',
            actions: [emit(({ event }) => event.forwardRight), assign({ requester: undefined, reconfigId: undefined, own: false, held: undefined })],
          },
          { actions: emit(({ event }) => event.forwardRight) },
        ],
      },
    },
    locked: {
      on: {
        relayRequest: [
          // the ackLock we relayed was lost on its way left: say it again
          { guard: ({ context, event }) => sameRequest(context, event.request) && context.ackLeft !== undefined, actions: emit(({ context }) => context.ackLeft) },
          { guard: 'sameRequest' },
          { actions: emit(({ event }) => nackOf(event.request, 'locked')) },
        ],
        ackLock: { guard: ({ context, event }) => sameRequest(context, event) && !context.own, actions: emit(({ event }) => event.forwardLeft) },
        cancelLock: [
          {
            guard: 'sameRequest',
            target: 'unlocked',
            actions: [emit(({ event }) => event.forwardRight), assign({ requester: undefined, reconfigId: undefined, own: false, ackLeft: undefined })],
          },
          { actions: emit(({ event }) => event.forwardRight) },
        ],
        release: {
          target: 'unlocked',
          actions: assign({ requester: undefined, reconfigId: undefined, own: false, held: undefined, ackLeft: undefined }),
        },
      },
    },
  },
});

// ---------------------------------------------------------------------------
// retransmission, shared by both anchors

/** A message awaiting its answer, retransmitted with doubling timeouts. */
export interface Outstanding {
  readonly to: Address;
  readonly message: import('../messages.js').ControlMessage;
  readonly tries: number;
  readonly rto: number;
}

interface RetryContext {
  readonly retry: RetryPolicy;
  readonly outstanding: Readonly<Partial<Record<TimerName, Outstanding>>>;
}

type Build = (a: { context: any; event: any }) => { to: Address; message: import('../messages.js').ControlMessage } | undefined;

/** Send the outstanding message of `timer` and arm the timer with its current timeout. */
function sendOutstanding(timer: TimerName): Acts {
  return [
    emit(({ context }) => {
      const o = (context as RetryContext).outstanding[timer];
      return o && { type: 'send', to: o.to, message: o.message };
    }),
    emit(({ context }) => {
      const o = (context as RetryContext).outstanding[timer];
      return o && { type: 'armTimer', timer, delay: o.rto };
    }),
  ];
}

/** Drop the outstanding message of `timer`. */
function forget(timer: TimerName): Acts[number] {
  return assign(({ context }: { context: any }) => {
    const { [timer]: _gone, ...rest } = (context as RetryContext).outstanding;
    return { outstanding: rest };
  });
}

/** Send a message and arm its retransmission timer. */
// Helpers build generic action lists; xstate's per-event typing cannot follow them, hence `any`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Acts = any[];

function transmit(timer: TimerName, build: Build): Acts {
  return [
    assign(({ context, event }: { context: any; event: any }) => {
      const b = build({ context, event });
      if (!b) return {};
      const o: Outstanding = { to: b.to, message: b.message, tries: 0, rto: (context as RetryContext).retry.rto };
      return { outstanding: { ...(context as RetryContext).outstanding, [timer]: o } };
    }),
    ...sendOutstanding(timer),
  ];
}

/** Repeat an outstanding message (same msgSeq) with a doubled timeout. */
function retransmit(timer: TimerName): Acts {
  return [
    assign(({ context }: { context: any }) => {
      const c = context as RetryContext;
      const o = c.outstanding[timer];
      if (!o) return {};
      return { outstanding: { ...c.outstanding, [timer]: { ...o, tries: o.tries + 1, rto: Math.min(o.rto * 2, c.retry.maxRto) } } };
    }),
    ...sendOutstanding(timer),
  ];
}

/** Stop retransmitting. */
function settle(timer: TimerName): Acts {
  return [
    emit(({ context }) => ((context as RetryContext).outstanding[timer] ? { type: 'cancelTimer', timer } : undefined)),
    forget(timer),
  ];
}

/** The timer fired and no retry is left: forget the message (there is no timer to cancel). */
function expire(timer: TimerName): Acts {
  return [forget(timer)];
}

function settleAll(): Acts {
  return [
    ...(['requestLock', 'syn', 'cancelLock', 'synAck', 'teardown', 'rightTeardown'] as const).flatMap((t) => settle(t)),
  ];
}

const retriesLeft =
  (timer: Exclude<TimerName, 'tombstone' | 'linger'>) =>
  ({ context, event }: { context: any; event: any }) => {
    const c = context as RetryContext;
    const o = c.outstanding[timer];
    const limit = c.retry.limits[timer === 'rightTeardown' ? 'teardown' : timer];
    return event.timer === timer && o !== undefined && o.tries < limit;
  };
const isTimer =
  (timer: TimerName) =>
  ({ event }: { event: any }) =>
    event.timer === timer;

// ---------------------------------------------------------------------------
// messages the anchors build

/** What the caller gives an anchor machine to build its messages from. */
export interface Wire {
  /** Build a message for a hop; the caller fills in the common fields. */
  readonly requestLock: import('../messages.js').RequestLock;
  /** Sent with the reason of the cancel filled in. */
  readonly cancelLock: import('../messages.js').CancelLock;
  readonly syn: import('../messages.js').Syn;
  readonly ack: import('../messages.js').Ack;
  readonly teardown: import('../messages.js').Teardown;
}

// ---------------------------------------------------------------------------
// left anchor

export interface LeftAnchorContext extends RetryContext {
  readonly reconfigId: number | undefined;
  readonly requester: Address | undefined;
  readonly oldHop: Hop | undefined;
  readonly newHop: Hop | undefined;
  readonly deltas: Deltas;
  readonly drained: boolean;
  readonly peerDrained: boolean;
  readonly reason: NackReason | undefined;
  /** Messages prepared by the caller when the reconfiguration starts. */
  readonly wire: Wire | undefined;
}

export type LeftAnchorEvent =
  | { type: 'start'; reconfigId: number; requester: Address; oldHop: Hop; newHop: Hop; wire: Wire }
  | { type: 'ackLock'; deltas: Deltas; syn: import('../messages.js').Syn }
  | { type: 'nackLock'; reason: NackReason }
  | { type: 'synAck' }
  | { type: 'ackCancel' }
  | { type: 'teardown' }
  | { type: 'oldPathDrained' }
  | { type: 'cancel' }
  | { type: 'timeout'; timer: TimerName };

const outcome = (result: 'completed' | 'aborted'): Acts[number] =>
  emit(({ context }) => ({
    type: 'outcome',
    reconfigId: context.reconfigId,
    requester: context.requester,
    result,
    ...(result === 'aborted' ? { reason: context.reason ?? 'timeout' } : {}),
  }));

/** What both anchor machines hold when no reconfiguration is under way. */
function anchorAtRest(retry: RetryPolicy) {
  return {
    retry,
    outstanding: {},
    reconfigId: undefined,
    requester: undefined,
    oldHop: undefined,
    newHop: undefined,
    deltas: ZERO_DELTAS,
    drained: false,
    peerDrained: false,
    reason: undefined,
  };
}

/** Both sides drained: the new path becomes the only one (side: where it attaches at this anchor). */
function completeOn(side: 'left' | 'right'): Acts {
  return [
    ...settleAll(),
    emit(({ context }) => ({ type: 'completeTwoPaths', side, oldHop: context.oldHop, newHop: context.newHop })),
    outcome('completed'),
  ];
}

const completeLeft = completeOn('right');

/** Whether a segment's boxes change the byte stream (their sequence deltas are not zero): see enterTwoPaths. */
export function changesStream(d: Deltas): boolean {
  return (d.seqLR | 0) !== 0 || (d.seqRL | 0) !== 0;
}

export function leftAnchorMachine(retry: RetryPolicy) {
  return setup({
    types: { context: {} as LeftAnchorContext, events: {} as LeftAnchorEvent },
    actions: { emit: (_: unknown, _params: Maybe<ProtocolAction>) => {} },
  }).createMachine({
    id: 'leftAnchor',
    initial: 'OnePath',
    context: { ...anchorAtRest(retry), wire: undefined },
    states: {
      OnePath: {
        on: {
          start: {
            target: 'Requesting',
            actions: [
              assign(({ event }) => ({
                reconfigId: event.reconfigId,
                requester: event.requester,
                oldHop: event.oldHop,
                newHop: event.newHop,
                wire: event.wire,
                deltas: ZERO_DELTAS,
                drained: false,
                peerDrained: false,
                reason: undefined,
              })),
              ...transmit('requestLock', ({ context }) => ({ to: context.oldHop.agent, message: context.wire.requestLock })),
            ],
          },
        },
      },
      Requesting: {
        on: {
          ackLock: {
            target: 'SettingUp',
            actions: [
              ...settle('requestLock'),
              assign({ deltas: ({ event }) => event.deltas }),
              emit(({ context }) => ({ type: 'prepareNewPath', side: 'right', hop: context.newHop, deltas: context.deltas })),
              ...transmit('syn', ({ context, event }) => ({ to: context.newHop.agent, message: event.syn })),
            ],
          },
          nackLock: {
            target: 'OnePath',
            actions: [...settle('requestLock'), assign({ reason: ({ event }) => event.reason }), outcome('aborted')],
          },
          timeout: [
            { guard: retriesLeft('requestLock'), actions: retransmit('requestLock') },
            {
              guard: isTimer('requestLock'),
              target: 'Canceling',
              actions: [...expire('requestLock'), assign({ reason: 'timeout' as NackReason })],
            },
          ],
          cancel: { target: 'Canceling', actions: [...settle('requestLock'), assign({ reason: 'operator' as NackReason })] },
        },
      },
      SettingUp: {
        on: {
          synAck: {
            target: 'TwoPaths',
            actions: [
              ...settle('syn'),
              emit(({ context }) => ({ type: 'enterTwoPaths', side: 'right', hop: context.newHop, deltas: context.deltas, awaitPeerData: changesStream(context.deltas) })),
              emit(({ context }) => ({ type: 'send', to: context.newHop.agent, message: context.wire.ack })),
            ],
          },
          timeout: [
            { guard: retriesLeft('syn'), actions: retransmit('syn') },
            {
              guard: isTimer('syn'),
              target: 'Canceling',
              actions: [
                ...expire('syn'),
                assign({ reason: 'newPathFailed' as NackReason }),
                emit(({ context }) => ({ type: 'abortNewPath', side: 'right', hop: context.newHop })),
              ],
            },
          ],
          cancel: {
            target: 'Canceling',
            actions: [
              ...settle('syn'),
              assign({ reason: 'operator' as NackReason }),
              emit(({ context }) => ({ type: 'abortNewPath', side: 'right', hop: context.newHop })),
            ],
          },
        },
      },
      Canceling: {
        entry: transmit('cancelLock', ({ context }) => ({ to: context.oldHop.agent, message: { ...context.wire.cancelLock, reason: context.reason } })),
        on: {
          ackCancel: { target: 'OnePath', actions: [...settle('cancelLock'), outcome('aborted')] },
          timeout: { guard: isTimer('cancelLock'), actions: retransmit('cancelLock') },
        },
      },
      TwoPaths: {
        on: {
          // the right anchor did not hear our ack and repeats its synAck
          synAck: { actions: emit(({ context }) => ({ type: 'send', to: context.newHop.agent, message: context.wire.ack })) },
          oldPathDrained: [
            { guard: ({ context }) => context.drained },
            {
              guard: ({ context }) => context.peerDrained,
              target: 'OnePath',
              actions: [
                assign({ drained: true }),
                emit(({ context }) => ({ type: 'send', to: context.oldHop.agent, message: context.wire.teardown })),
                ...completeLeft,
              ],
            },
            {
              actions: [
                assign({ drained: true }),
                ...transmit('teardown', ({ context }) => ({ to: context.oldHop.agent, message: context.wire.teardown })),
              ],
            },
          ],
          teardown: [
            { guard: ({ context }) => context.drained, target: 'OnePath', actions: [assign({ peerDrained: true }), ...completeLeft] },
            { actions: assign({ peerDrained: true }) },
          ],
          timeout: [
            { guard: retriesLeft('teardown'), actions: retransmit('teardown') },
            // the peer's teardown never came: our side is drained, the old path is no longer needed by us
            { guard: isTimer('teardown'), target: 'OnePath', actions: [...expire('teardown'), ...completeLeft] },
          ],
        },
      },
    },
  });
}

// ---------------------------------------------------------------------------
// right anchor

export interface RightAnchorContext extends RetryContext {
  readonly reconfigId: number | undefined;
  readonly requester: Address | undefined;
  readonly oldHop: Hop | undefined;
  readonly newHop: Hop | undefined;
  readonly deltas: Deltas;
  readonly drained: boolean;
  readonly peerDrained: boolean;
  readonly reason: NackReason | undefined;
  readonly ackLock: import('../messages.js').AckLock | undefined;
  readonly synAck: import('../messages.js').SynAck | undefined;
  readonly teardown: import('../messages.js').Teardown | undefined;
}

export type RightAnchorEvent =
  | {
      type: 'requestLock';
      reconfigId: number;
      requester: Address;
      oldHop: Hop;
      deltas: Deltas;
      ackLock: import('../messages.js').AckLock;
      teardown: import('../messages.js').Teardown;
    }
  | { type: 'syn'; newHop: Hop; synAck: import('../messages.js').SynAck }
  | { type: 'ack' }
  | { type: 'teardown' }
  | { type: 'cancelLock'; ackCancel: ProtocolAction; reason: NackReason }
  | { type: 'oldPathDrained' }
  | { type: 'timeout'; timer: TimerName };

const completeRight = completeOn('left');

export function rightAnchorMachine(retry: RetryPolicy) {
  return setup({
    types: { context: {} as RightAnchorContext, events: {} as RightAnchorEvent },
    actions: { emit: (_: unknown, _params: Maybe<ProtocolAction>) => {} },
  }).createMachine({
    id: 'rightAnchor',
    initial: 'OnePath',
    context: {
      ...anchorAtRest(retry),
      ackLock: undefined,
      synAck: undefined,
      teardown: undefined,
    },
    states: {
      OnePath: {
        on: {
          requestLock: {
            target: 'Requested',
            actions: [
              assign(({ event }) => ({
                reconfigId: event.reconfigId,
                requester: event.requester,
                oldHop: event.oldHop,
                newHop: undefined,
                deltas: event.deltas,
                ackLock: event.ackLock,
                teardown: event.teardown,
                drained: false,
                peerDrained: false,
                reason: undefined,
              })),
              emit(({ context }) => ({ type: 'send', to: context.oldHop.agent, message: context.ackLock })),
            ],
          },
        },
      },
      Requested: {
        on: {
          // our ackLock was lost: the requester (or a relay) repeats the request
          requestLock: { actions: emit(({ context }) => ({ type: 'send', to: context.oldHop.agent, message: context.ackLock })) },
          syn: {
            target: 'Waiting',
            actions: [
              assign(({ event }) => ({ newHop: event.newHop, synAck: event.synAck })),
              emit(({ context }) => ({ type: 'prepareNewPath', side: 'left', hop: context.newHop, deltas: ZERO_DELTAS })),
              ...transmit('synAck', ({ context }) => ({ to: context.newHop.agent, message: context.synAck })),
            ],
          },
          cancelLock: {
            target: 'OnePath',
            actions: [assign({ reason: ({ event }) => event.reason }), emit(({ event }) => event.ackCancel), outcome('aborted')],
          },
        },
      },
      Waiting: {
        on: {
          requestLock: { actions: emit(({ context }) => ({ type: 'send', to: context.oldHop.agent, message: context.ackLock })) },
          syn: { actions: emit(({ context }) => ({ type: 'send', to: context.newHop.agent, message: context.synAck })) },
          ack: {
            target: 'TwoPaths',
            actions: [...settle('synAck'), emit(({ context }) => ({ type: 'enterTwoPaths', side: 'left', hop: context.newHop, deltas: ZERO_DELTAS, awaitPeerData: changesStream(context.deltas) }))],
          },
          // the left anchor only tears down once it is in TwoPaths: our ack was lost
          teardown: {
            target: 'TwoPaths',
            actions: [
              ...settle('synAck'),
              assign({ peerDrained: true }),
              emit(({ context }) => ({ type: 'enterTwoPaths', side: 'left', hop: context.newHop, deltas: ZERO_DELTAS, awaitPeerData: changesStream(context.deltas) })),
            ],
          },
          timeout: [
            { guard: retriesLeft('synAck'), actions: retransmit('synAck') },
            // stop repeating; the left anchor's ack, teardown (after the fallback of an agent that waited
            // a minute for ours) or cancelLock still resolves this state
            { guard: isTimer('synAck'), actions: expire('synAck') },
          ],
          cancelLock: {
            target: 'OnePath',
            actions: [
              ...settle('synAck'),
              assign({ reason: ({ event }) => event.reason }),
              emit(({ context }) => ({ type: 'abortNewPath', side: 'left', hop: context.newHop })),
              emit(({ event }) => event.ackCancel),
              outcome('aborted'),
            ],
          },
        },
      },
      TwoPaths: {
        on: {
          oldPathDrained: [
            { guard: ({ context }) => context.drained },
            {
              guard: ({ context }) => context.peerDrained,
              target: 'OnePath',
              actions: [
                assign({ drained: true }),
                emit(({ context }) => ({ type: 'send', to: context.oldHop.agent, message: context.teardown })),
                ...completeRight,
              ],
            },
            {
              actions: [
                assign({ drained: true }),
                ...transmit('rightTeardown', ({ context }) => ({ to: context.oldHop.agent, message: context.teardown })),
              ],
            },
          ],
          teardown: [
            { guard: ({ context }) => context.drained, target: 'OnePath', actions: [assign({ peerDrained: true }), ...completeRight] },
            { actions: assign({ peerDrained: true }) },
          ],
          timeout: [
            { guard: retriesLeft('rightTeardown'), actions: retransmit('rightTeardown') },
            { guard: isTimer('rightTeardown'), target: 'OnePath', actions: [...expire('rightTeardown'), ...completeRight] },
          ],
        },
      },
    },
  });
}
