import t from 'tap';
import { SessionProtocol } from '../dist/reconfig/session-protocol.js';
import { DEFAULT_RETRY, type Hop, type ProtocolAction, type ProtocolEvent } from '../dist/reconfig/types.js';
import { ZERO_DELTAS, composeDeltas, type Deltas } from '../dist/messages.js';
import { tuple } from '../dist/tuple.js';
import { formatAddress, ip, type Address } from '../dist/address.js';

// Deltas across successive reconfigurations (found by the Spin model
// reconfig.pml with DELTA, DELTA_BA and RECONFIGS=2, and its trace replay):
// once a left anchor has taken a stream-changing box out, its own rewrite
// applies that box's deltas. A later segment starting at the anchor, or
// passing through it, must include them, or the next new path would carry
// the stream without them.

const A = ip('10.0.2.1');
const X = ip('10.0.2.2'); // a box that changes the byte streams
const Y = ip('10.0.2.3');
const Z = ip('10.0.2.4');
const B = ip('10.0.2.5');
const session = tuple(A, 5000, B, 80);
const sub = (l: Address, r: Address, port: number) => tuple(l, port, r, port + 1);
const hop = (to: Address, s: ReturnType<typeof tuple>): Hop => ({ agent: to, subsession: s });
const BOX: Deltas = { ...ZERO_DELTAS, seqLR: 1000, seqRL: -300 };

interface Net {
  agents: Map<string, SessionProtocol>;
  /** Next hop a new-path box extends the path with, by box. */
  nextHops: Map<string, Hop>;
  actions: { at: Address; a: ProtocolAction }[];
}

/** Delivers every message until nothing is in flight; the data plane reports each anchor drained as soon as it enters two paths. */
function run(net: Net, at: Address, ev: ProtocolEvent): void {
  const queue: { at: Address; ev: ProtocolEvent }[] = [{ at, ev }];
  for (let n = 0; queue.length > 0 && n < 1000; n++) {
    const { at: here, ev: e } = queue.shift()!;
    const agent = net.agents.get(formatAddress(here))!;
    for (const a of agent.handle(e)) {
      net.actions.push({ at: here, a });
      if (a.type === 'send') {
        const nextHop = net.nextHops.get(formatAddress(a.to));
        queue.push({ at: a.to, ev: { type: 'message', message: a.message, from: here, ...(nextHop ? { nextHop } : {}) } });
      }
      if (a.type === 'enterTwoPaths') queue.push({ at: here, ev: { type: 'oldPathDrained', side: a.side } });
    }
  }
}

t.test('a left anchor that took a delta box out carries its deltas into the next reconfiguration', async (t) => {
  const ax = sub(A, X, 1000);
  const xb = sub(X, B, 1100);
  const ay = sub(A, Y, 1200);
  const yb = sub(Y, B, 1300);
  const az = sub(A, Z, 1400);
  const zb = sub(Z, B, 1500);
  const retry = DEFAULT_RETRY;
  const net: Net = {
    agents: new Map([
      [formatAddress(A), new SessionProtocol({ self: A, session, right: hop(X, ax), retry })],
      [formatAddress(X), new SessionProtocol({ self: X, session, left: hop(A, ax), right: hop(B, xb), ownDeltas: BOX, retry })],
      [formatAddress(Y), new SessionProtocol({ self: Y, session, retry })],
      [formatAddress(Z), new SessionProtocol({ self: Z, session, retry })],
      [formatAddress(B), new SessionProtocol({ self: B, session, left: hop(X, xb), retry })],
    ]),
    nextHops: new Map([
      [formatAddress(Y), hop(B, yb)],
      [formatAddress(Z), hop(B, zb)],
    ]),
    actions: [],
  };
  const a = net.agents.get(formatAddress(A))!;
  // first: replace X by Y; A's new path applies X's deltas
  run(net, A, { type: 'reconfigure', reconfigId: 1, rightAnchor: B, newChain: [Y], newHop: hop(Y, ay) });
  const first = net.actions.find((x) => x.at === A && x.a.type === 'enterTwoPaths')?.a;
  t.same(first && first.type === 'enterTwoPaths' ? first.deltas : undefined, BOX, "the first new path applies the box's deltas");
  t.equal(a.leftAnchorState, 'OnePath', 'the first reconfiguration completed');
  t.same(a.right, hop(Y, ay), 'the session runs through Y');
  t.same(a.rightDeltas, BOX, "A's rewrite now applies them");
  // second: replace Y by Z; nothing on the way changes the streams, but A's own rewrite does
  net.actions = [];
  run(net, A, { type: 'reconfigure', reconfigId: 2, rightAnchor: B, newChain: [Z], newHop: hop(Z, az) });
  const req = net.actions.find((x) => x.at === A && x.a.type === 'send' && x.a.message.type === 'requestLock')?.a;
  t.same(req && req.type === 'send' && req.message.type === 'requestLock' ? req.message.deltas : undefined, BOX, 'requestLock starts with the deltas A applies');
  const second = net.actions.find((x) => x.at === A && x.a.type === 'enterTwoPaths')?.a;
  t.same(second && second.type === 'enterTwoPaths' ? second.deltas : undefined, BOX, 'the second new path still applies them');
  t.same(a.right, hop(Z, az), 'the session runs through Z');
  const outcomes = net.actions.filter((x) => x.at === A && x.a.type === 'outcome').map((x) => (x.a.type === 'outcome' ? x.a.result : ''));
  t.same(outcomes, ['completed'], 'the second reconfiguration completes');
});

t.test('a box that took a delta box out as left anchor adds those deltas when it relays a request', async (t) => {
  // P (left anchor) removed delta box X between it and B; later A, left of P, moves the whole segment A..B
  const P = ip('10.0.2.6');
  const ap = sub(A, P, 1600);
  const px = sub(P, X, 1700);
  const xb = sub(X, B, 1800);
  const pb = sub(P, B, 1900);
  const ab = sub(A, B, 2000);
  const net: Net = {
    agents: new Map([
      [formatAddress(A), new SessionProtocol({ self: A, session, right: hop(P, ap) })],
      [formatAddress(P), new SessionProtocol({ self: P, session, left: hop(A, ap), right: hop(X, px) })],
      [formatAddress(X), new SessionProtocol({ self: X, session, left: hop(P, px), right: hop(B, xb), ownDeltas: BOX })],
      [formatAddress(B), new SessionProtocol({ self: B, session, left: hop(X, xb) })],
    ]),
    nextHops: new Map(),
    actions: [],
  };
  run(net, P, { type: 'reconfigure', reconfigId: 1, rightAnchor: B, newChain: [], newHop: hop(B, pb) });
  t.same(net.agents.get(formatAddress(P))!.rightDeltas, BOX, "P's rewrite applies X's deltas");
  net.actions = [];
  run(net, A, { type: 'reconfigure', reconfigId: 1, rightAnchor: B, newChain: [], newHop: hop(B, ab) });
  const enter = net.actions.find((x) => x.at === A && x.a.type === 'enterTwoPaths')?.a;
  t.same(enter && enter.type === 'enterTwoPaths' ? enter.deltas : undefined, BOX, "A's new path, which bypasses P, applies X's deltas");
});

t.test('window-scale identities compose into no rescaling, whatever their numbers', async (t) => {
  const id10 = { ...ZERO_DELTAS, wsFromLR: 10, wsToLR: 10, wsFromRL: 7, wsToRL: 7 };
  const sum = composeDeltas(ZERO_DELTAS, id10);
  t.equal(sum.wsFromLR, sum.wsToLR, 'left to right: none');
  t.equal(sum.wsFromRL, sum.wsToRL, 'right to left: none');
  t.same(composeDeltas(id10, ZERO_DELTAS), { ...ZERO_DELTAS }, 'either order');
  // a real rescaling survives an identity on either side, in both directions
  const r = { ...ZERO_DELTAS, wsFromLR: 7, wsToLR: 2, wsFromRL: 3, wsToRL: 9 };
  for (const x of [composeDeltas(r, id10), composeDeltas(id10, r)]) {
    t.same([x.wsFromLR, x.wsToLR, x.wsFromRL, x.wsToRL], [7, 2, 3, 9]);
  }
  // two rescalings chain: the first's sender scale to the second's receiver scale
  const r2 = { ...ZERO_DELTAS, wsFromLR: 2, wsToLR: 5, wsFromRL: 4, wsToRL: 3 };
  const c = composeDeltas(r, r2);
  t.same([c.wsFromLR, c.wsToLR], [7, 5], 'left to right: a then b');
  t.same([c.wsFromRL, c.wsToRL], [4, 9], 'right to left: b then a');
});
