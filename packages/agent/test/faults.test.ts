/**
 * Hostile and broken input on the wire, while a steered session carries a
 * paced transfer through a box, with every agent requiring authentication:
 * forged control messages (unsigned, under a wrong or unknown key,
 * tampered with), malformed datagrams, a replayed signed message, and SYNs
 * whose Dysco metadata is unsigned, wrongly signed, truncated or garbled.
 * Packets are built here and sent by a raw socket inside the client's
 * namespace (inject-child.ts). Each must be counted under its reason and
 * change nothing: the session's bytes all arrive intact, no session is
 * created for a forged SYN, and the box can still be removed for real.
 * Last, a segment far beyond the receiver's window on the subsession into
 * the box (a replayed signed SYN, or plain data), which the receiving stack
 * discards, must not keep the box from anchoring a later reconfiguration.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import {
  type Address,
  type ControlMessage,
  type FiveTuple,
  KeyRing,
  ReplayCounter,
  SYN_METADATA_TAG_BYTES,
  ZERO_DELTAS,
  buildTcpPacket,
  encodeControl,
  encodeSynMetadata,
  formatAddress,
  internetChecksum,
  onesSum,
  parseAddress,
  parseTuple,
  tuple,
} from '@dysco/protocol';
import { type AgentProcess, type Host, Topology } from '@dysco/agent/topology';
import { type StreamReport, streamSha256 } from '@dysco/agent/tools/stream';
import { privilegedSkipReason, sleep, transfer } from './helpers.js';

const skip = privilegedSkipReason();
const opts = skip ? { skip } : {};
// the same bound whether run by the tap runner or by node directly (whose default is 30 s)
t.setTimeout(150_000);

const INJECT = join(dirname(fileURLToPath(import.meta.url)), 'inject-child.js');
const CAPTURE = join(dirname(fileURLToPath(import.meta.url)), 'capture-child.js');
const CONTROL_PORT = 7707;
const SECRET = '5f1e0c9a7b3d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7';
const WRONG_SECRET = 'a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f';
/** What the agents sign with (key 1), a key 1 that is not theirs, and their own secret under an id they do not have. */
const rightKeys = new KeyRing([{ keyId: 1, secret: Buffer.from(SECRET, 'hex') }]);
const wrongKeys = new KeyRing([{ keyId: 1, secret: Buffer.from(WRONG_SECRET, 'hex') }]);
const unknownKeys = new KeyRing([{ keyId: 2, secret: Buffer.from(SECRET, 'hex') }]);
const AUTH_CONFIG = { keys: [{ id: 1, secret: SECRET }], requireAuth: true };

interface SessionView {
  id: number;
  session: string;
  role: string;
  left?: { agent: string; subsession: string };
  right?: { agent: string; subsession: string };
  state: { lock: string; leftAnchor: string; rightAnchor: string; departed: boolean };
}
interface Stats {
  dataplane: Record<string, number>;
  agent: Record<string, number>;
  table: { egress: number; ingress: number; pending: number; total: number };
}

const parsed = <T>(r: { status: number; stdout: string; stderr: string }, what: string): T => {
  if (r.status !== 0) throw new Error(`${what}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
};
// asynchronous: the transfer's processes are read by this event loop and must not wait on it
const sessionsAt = async (a: AgentProcess) => parsed<SessionView[]>(await a.cliAsync('sessions', '--json'), 'dysco sessions');
const statsOf = async (a: AgentProcess) => parsed<Stats>(await a.cliAsync('stats', '--json'), 'dysco stats');
const rejected = (s: Stats, reason: string) => s.agent[`dysco_control_messages_rejected_total{reason="${reason}"}`] ?? 0;
const receivedTotal = (s: Stats) => Object.entries(s.agent).filter(([k]) => k.startsWith('dysco_control_messages_received_total')).reduce((n, [, v]) => n + v, 0);
/** Control messages accepted between two snapshots, by type (types with none left out). */
const receivedSince = (a: Stats, b: Stats) => {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.agent)) {
    const m = /^dysco_control_messages_received_total\{type="(\w+)"\}$/.exec(k);
    if (m && v - (a.agent[k] ?? 0) > 0) out[m[1]!] = v - (a.agent[k] ?? 0);
  }
  return out;
};

/** An IPv4 UDP datagram with correct header and UDP checksums. */
function udpPacket(src: Address, dst: Address, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const udpLen = 8 + payload.length;
  const b = Buffer.alloc(20 + udpLen);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x4000, 6); // DF
  b[8] = 64;
  b[9] = 17;
  b.set(src.bytes, 12);
  b.set(dst.bytes, 16);
  b.writeUInt16BE(internetChecksum(b, 0, 0, 20), 10);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b.writeUInt16BE(udpLen, 24);
  b.set(payload, 28);
  const pseudo = Buffer.alloc(12);
  pseudo.set(src.bytes, 0);
  pseudo.set(dst.bytes, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udpLen, 10);
  b.writeUInt16BE(internetChecksum(b, onesSum(pseudo), 20) || 0xffff, 26);
  return b;
}

/** A SYN from `sub.src` to `sub.dst` carrying `payload` where Dysco metadata goes. */
function synPacket(sub: FiveTuple, payload: Uint8Array): Uint8Array {
  return buildTcpPacket({
    tuple: sub,
    seq: randomBytes(4).readUInt32BE(0),
    ack: 0,
    flags: 0x02,
    window: 64240,
    options: [{ kind: 'mss', mss: 1460 }, { kind: 'sackPermitted' }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }],
    payload,
  });
}

/** A SYN like `synPacket`'s, at sequence number `seq`. */
function synPacketAt(sub: FiveTuple, seq: number, payload: Uint8Array): Uint8Array {
  return buildTcpPacket({ tuple: sub, seq, ack: 0, flags: 0x02, window: 64240, options: [{ kind: 'mss', mss: 1460 }], payload });
}

/** Metadata bytes `body` (header included, total length patched) followed by key id 1 and a tag under the agents' own key. */
function signedMetadata(body: Uint8Array): Uint8Array {
  const out = Buffer.alloc(body.length + 4 + SYN_METADATA_TAG_BYTES);
  out.set(body, 0);
  out.writeUInt16BE(out.length, 6);
  out[5] = 0x01;
  out.writeUInt32BE(1, body.length);
  const tag = rightKeys.mac(1, out.subarray(0, body.length + 4)).subarray(0, SYN_METADATA_TAG_BYTES);
  out.set(tag, body.length + 4);
  return out;
}

interface Injection {
  readonly label: string;
  readonly to: string;
  readonly bytes: Uint8Array;
}

/** Sends the packets from `host`'s namespace through a raw socket; resolves with the labels it reports sent. */
async function inject(host: Host, dir: string, name: string, packets: readonly Injection[]): Promise<string[]> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ gapMs: 5, packets: packets.map((p) => ({ label: p.label, to: p.to, hex: Buffer.from(p.bytes).toString('hex') })) }));
  const child = host.node(INJECT, [file]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0 || !out.includes(`done ${packets.length}\n`)) throw new Error(`injection ${name} failed (exit ${code}): ${out}${err}`);
  return out.split('\n').filter((l) => l.startsWith('sent ')).map((l) => l.split(' ')[1]!);
}

interface Bed {
  bed: Topology;
  client: Host;
  box: Host;
  server: Host;
  /** A second router, on the segment and running an agent, when asked for. */
  spare: Host | undefined;
}

async function authenticatedBed(t: Test, o: { spare?: boolean } = {}): Promise<Bed> {
  const bed = Topology.create({ hosts: ['client', { name: 'box', router: true }, ...(o.spare ? [{ name: 'spare', router: true }] : []), 'server'] });
  t.teardown(() => bed.destroy());
  const client = bed.host('client');
  const box = bed.host('box');
  const server = bed.host('server');
  const spare = o.spare ? bed.host('spare') : undefined;
  const policy = { policies: [{ id: 1, match: `dst ${server.address}/32 dport 9000`, chain: [box.address] }] };
  await client.startAgent({ config: { ...AUTH_CONFIG, ...policy } });
  for (const h of [box, spare, server]) await h?.startAgent({ config: AUTH_CONFIG });
  return { bed, client, box, server, spare };
}

function checkTransfer(t: Test, c: StreamReport, s: StreamReport, bytes: number, local: string, server: string): void {
  t.equal(s.remote, local, "the server application saw the client's own address and port");
  t.equal(c.remote, `${server}:9000`, 'and the client application the server');
  t.equal(s.received, bytes, 'every byte client to server');
  t.equal(c.received, bytes, 'every byte server to client');
  t.equal(s.receivedSha256, streamSha256(1, bytes), 'client-to-server content intact');
  t.equal(c.receivedSha256, streamSha256(2, bytes), 'server-to-client content intact');
  t.notOk(c.reset || s.reset, `no reset${c.error || s.error ? ` (${c.error ?? ''} ${s.error ?? ''})` : ''}`);
  const gap = Math.max(c.maxGapMs, s.maxGapMs);
  t.ok(gap < 1000, `longest stall ${gap} ms (under one retransmission timeout)`);
}

/** The last data segment `host` sent on `hop` during a short capture on its interface (capture-child.ts). */
async function lastSegmentOn(host: Host, hop: FiveTuple): Promise<{ seq: number; ack: number; len: number }> {
  const p = host.node(CAPTURE, ['eth0', '0.5']);
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => p.once('exit', resolve));
  if (code !== 0) throw new Error(`capture on ${host.name} failed (exit ${code}): ${err}`);
  const mine = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { out: boolean; sport: number; dport: number; dst: string; seq: number; ack: number; len: number })
    .filter((x) => x.out && x.sport === hop.sport && x.dport === hop.dport && x.dst === formatAddress(hop.dst) && x.len > 0);
  const last = mine[mine.length - 1];
  if (!last) throw new Error(`no data segment of ${host.name} on its subsession in the capture`);
  return last;
}

/** Resolves with `p`'s value, or with `fallback` after `ms` (a later failure of `p`, when the bed is gone, is then ignored). */
const within = <T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> => {
  p.catch(() => undefined);
  return Promise.race([p, sleep(ms).then(() => fallback)]);
};

/** Removes the box by the client's CLI, as an operator would; asserts it completes. */
async function removeBox(t: Test, b: Bed, session: string): Promise<void> {
  const r = await b.client.agent!.cliAsync('reconfig', session, '--remove', b.box.address, '--json');
  let o: { result?: string; reason?: string; durationMs?: number } = {};
  try {
    o = JSON.parse(r.stdout) as typeof o;
  } catch {
    // reported below
  }
  t.equal(o.result, 'completed', `the box removed for real afterwards${o.reason ? ` (${o.reason})` : ''}: ${r.stdout}${r.stderr}`);
  const right = (await sessionsAt(b.client.agent!))[0]?.right;
  t.equal(right?.agent, b.server.address, 'the client now talks to the server directly');
}

t.test('forged, malformed and replayed control messages to the box mid-transfer: each refused under its reason, the session unharmed', opts, async (t) => {
  const b = await authenticatedBed(t);
  const bytes = 10_000_000; // 5 s: the steps below take a few seconds when the machine is loaded
  const tr = await transfer(b.client, b.server, { bytes, rate: 2_000_000 });
  const local = await tr.connected;
  const session = `${local}>${b.server.address}:9000`;
  await sleep(500);

  const atClient = await sessionsAt(b.client.agent!);
  t.equal(atClient.length, 1, 'the client agent has the session');
  t.equal(atClient[0]?.right?.agent, b.box.address, 'through the box');
  const sub = parseTuple(atClient[0]!.right!.subsession);
  t.equal(formatAddress(sub.dst), b.box.address, 'its right subsession ends at the box');

  const C = parseAddress(b.client.address);
  const B = parseAddress(b.box.address);
  const S = parseAddress(b.server.address);
  // a sender no agent knows: its replay state at the box is its own, not the client agent's
  const M = parseAddress(b.client.address.replace(/\.\d+$/, '.200'));
  const counter = new ReplayCounter();
  const bogusId = 0x5eed0001;
  const cancel = (reconfigId: number): ControlMessage => ({ type: 'cancelLock', subsession: sub, reconfigId, msgSeq: 1, requester: C, reason: 'operator' });
  const teardown: ControlMessage = { type: 'teardown', subsession: sub, reconfigId: bogusId + 1, msgSeq: 2, requester: C, fromLeft: true };
  const lock: ControlMessage = { type: 'requestLock', subsession: sub, reconfigId: bogusId + 2, msgSeq: 3, requester: C, rightAnchor: S, deltas: ZERO_DELTAS };

  const signed = encodeControl(cancel(bogusId + 3), rightKeys, counter.next());
  const tampered = Buffer.from(signed);
  tampered[11]! ^= 0x01; // the reconfigId, covered by the tag
  const unknownType = Buffer.from(encodeControl(cancel(bogusId + 4)));
  unknownType[3] = 42;
  const badMagic = Buffer.from(encodeControl(cancel(bogusId + 5)));
  badMagic[0] = 0xdd;
  const random = () => {
    const r = randomBytes(60);
    if (r[0] === 0xdc) r[0] = 0;
    return r;
  };
  const replayed = encodeControl(cancel(bogusId + 6), rightKeys, counter.next());

  const fromClient = (label: string, payload: Uint8Array, reason: string) => ({ label, reason, to: b.box.address, bytes: udpPacket(C, B, CONTROL_PORT, CONTROL_PORT, payload) });
  const forged = [
    fromClient('unsigned-cancelLock', encodeControl(cancel(bogusId)), 'unsigned'),
    fromClient('unsigned-teardown', encodeControl(teardown), 'unsigned'),
    fromClient('unsigned-requestLock', encodeControl(lock), 'unsigned'),
    fromClient('wrongkey-cancelLock', encodeControl(cancel(bogusId), wrongKeys, counter.next()), 'bad-tag'),
    fromClient('wrongkey-teardown', encodeControl(teardown, wrongKeys, counter.next()), 'bad-tag'),
    fromClient('tampered-cancelLock', tampered, 'bad-tag'),
    fromClient('unknownkey-requestLock', encodeControl(lock, unknownKeys, counter.next()), 'unknown-key'),
    fromClient('random-1', random(), 'format'),
    fromClient('random-2', random(), 'format'),
    fromClient('truncated-signed', signed.subarray(0, signed.length - 7), 'format'),
    fromClient('trailing-byte', Buffer.concat([signed, Buffer.of(0)]), 'format'),
    fromClient('unknown-type', unknownType, 'format'),
    fromClient('bad-magic', badMagic, 'format'),
    // the same correctly signed datagram twice: the first passes authentication, the second is a replay
    { label: 'signed-first', reason: 'accepted', to: b.box.address, bytes: udpPacket(M, B, CONTROL_PORT, CONTROL_PORT, replayed) },
    { label: 'signed-again', reason: 'replay', to: b.box.address, bytes: udpPacket(M, B, CONTROL_PORT, CONTROL_PORT, replayed) },
  ];
  const reasons = ['unsigned', 'bad-tag', 'unknown-key', 'format', 'replay', 'unknownSession'];

  const before = await statsOf(b.box.agent!);
  const sent = await inject(b.client, b.bed.dir, 'control', forged);
  t.same(sent, forged.map((f) => f.label), `${sent.length} datagrams put on the wire from the client's namespace`);
  await sleep(400);
  const after = await statsOf(b.box.agent!);

  for (const reason of reasons) {
    const want = forged.filter((f) => f.reason === reason).length;
    t.equal(rejected(after, reason) - rejected(before, reason), want, `the box refused ${want} as ${reason}`);
  }
  // the accepted cancel is for no reconfiguration of the box's: it passes it on to the server, whose ackCancel comes back
  t.same(receivedSince(before, after), { cancelLock: 1, ackCancel: 1 }, 'the box accepted only the first copy of the signed datagram (and the answer it drew), nothing forged');
  const logged = new Set(b.box.agent!.records().filter((r) => r.msg === 'control message rejected').map((r) => r.reason));
  for (const reason of ['unsigned', 'bad-tag', 'unknown-key', 'format', 'replay']) t.ok(logged.has(reason), `the box logged a rejection as ${reason}`);

  const atBox = await sessionsAt(b.box.agent!);
  t.equal(atBox.length, 1, 'the box still has the one session');
  t.same(atBox[0]?.state, { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: false }, 'unlocked, with no reconfiguration under way');
  t.equal(atBox[0]?.left?.subsession, atClient[0]!.right!.subsession, 'still fed by the same subsession');

  await removeBox(t, b, session);
  const [c, s] = await Promise.all([tr.client, tr.server]);
  checkTransfer(t, c, s, bytes, local, b.server.address);
  // the real reconfiguration's messages, all from agents, must all have been accepted
  const end = await statsOf(b.box.agent!);
  for (const reason of reasons) t.equal(rejected(end, reason), rejected(after, reason), `no genuine control message refused as ${reason}`);
  t.ok(receivedTotal(end) > receivedTotal(after), 'while the box took part in the reconfiguration');
});

t.test("a signed control message the box accepted is refused as a replay by the agent that replaces it after a kill -9", opts, async (t) => {
  const b = await authenticatedBed(t);
  const tr = await transfer(b.client, b.server, { bytes: 16_000_000, rate: 2_000_000 });
  const local = await tr.connected;
  const session = `${local}>${b.server.address}:9000`;
  await sleep(500);
  const sub = parseTuple((await sessionsAt(b.client.agent!))[0]!.right!.subsession);
  const C = parseAddress(b.client.address);
  const B = parseAddress(b.box.address);
  const M = parseAddress(b.client.address.replace(/\.\d+$/, '.201'));
  // a correctly signed cancel for no reconfiguration of the box's, as recorded on the wire
  const datagram = udpPacket(M, B, CONTROL_PORT, CONTROL_PORT, encodeControl({ type: 'cancelLock', subsession: sub, reconfigId: 0x5eed0100, msgSeq: 1, requester: C, reason: 'operator' }, rightKeys, new ReplayCounter().next()));
  const first = await statsOf(b.box.agent!);
  await inject(b.client, b.bed.dir, 'recorded', [{ label: 'recorded', to: b.box.address, bytes: datagram }]);
  await sleep(300);
  t.same(receivedSince(first, await statsOf(b.box.agent!)).cancelLock, 1, 'the box accepted it');

  await b.box.agent!.stop('SIGKILL');
  await b.box.startAgent({ config: AUTH_CONFIG });
  const before = await statsOf(b.box.agent!);
  await inject(b.client, b.bed.dir, 'replayed', [{ label: 'replayed', to: b.box.address, bytes: datagram }]);
  await sleep(300);
  const after = await statsOf(b.box.agent!);
  t.equal(rejected(after, 'replay') - rejected(before, 'replay'), 1, 'its successor refused the same datagram as a replay');
  t.equal(receivedSince(before, after).cancelLock ?? 0, 0, 'and acted on nothing');

  await removeBox(t, b, session);
  const [c, s] = await Promise.all([tr.client, tr.server]);
  checkTransfer(t, c, s, 16_000_000, local, b.server.address);
});

t.test('forged and malformed SYN metadata to the box mid-transfer: dropped and counted, no session created', opts, async (t) => {
  const b = await authenticatedBed(t);
  const bytes = 20_000_000; // 10 s: the steps below take several seconds when the machine is loaded, and the box is removed while it runs
  const tr = await transfer(b.client, b.server, { bytes, rate: 2_000_000 });
  const local = await tr.connected;
  const session = `${local}>${b.server.address}:9000`;
  await sleep(500);

  const realSub = (await sessionsAt(b.client.agent!))[0]?.right?.subsession ?? '';
  const realPort = parseTuple(realSub).sport;
  const C = parseAddress(b.client.address);
  const S = parseAddress(b.server.address);
  // subsessions such as the client's agent would open toward the box: equal ports in its range, unused
  let port = 61000 + (process.pid % 4000);
  const subsession = () => {
    if (++port === realPort) port++;
    return tuple(b.client.address, port, b.box.address, port);
  };
  // the session each forged SYN claims: a connection from the client to the server's port 9000, through the box
  const meta = (sport: number) => ({ session: tuple(b.client.address, sport, b.server.address, 9000), chain: [S] });
  const unsigned = encodeSynMetadata(meta(40001));
  const good = encodeSynMetadata(meta(40002), rightKeys);
  const flipped = Buffer.from(encodeSynMetadata(meta(40003), rightKeys));
  flipped[24]! ^= 0x01; // inside the chain's address, covered by the tag
  const truncated = encodeSynMetadata(meta(40004), rightKeys).subarray(0, good.length - 5);
  const truncatedRelabelled = Buffer.from(truncated);
  truncatedRelabelled.writeUInt16BE(truncatedRelabelled.length, 6);
  const unknownFlags = Buffer.from(unsigned);
  unknownFlags[5] = 0x02;
  const noRoomForTag = Buffer.from(unsigned.subarray(0, 24));
  noRoomForTag[5] = 0x01;
  noRoomForTag.writeUInt16BE(24, 6);
  // correctly signed under the agents' key, but not a valid body
  const body = Buffer.from(unsigned); // header, session, chain count 1, the server
  const badFamily = Buffer.from(body);
  badFamily[8] = 9;
  const shortChain = Buffer.from(body);
  shortChain[21] = 3;
  const wrongLast = Buffer.from(encodeSynMetadata({ session: meta(40005).session, chain: [parseAddress(b.client.address.replace(/\.\d+$/, '.99'))] }));
  const v6Session = Buffer.from(encodeSynMetadata({ session: tuple('2001:db8::1', 40006, '2001:db8::2', 9000), chain: [parseAddress('2001:db8::2')] }));

  const syn = (label: string, payload: Uint8Array, counter: 'authFailed' | 'malformedMetadata' | 'staleSubsession') => ({ label, counter, to: b.box.address, bytes: synPacket(subsession(), payload) });
  const cases = [
    syn('unsigned', unsigned, 'authFailed'),
    syn('wrong-key', encodeSynMetadata(meta(40007), wrongKeys), 'authFailed'),
    syn('unknown-key', encodeSynMetadata(meta(40008), unknownKeys), 'authFailed'),
    syn('tampered', flipped, 'authFailed'),
    syn('truncated-length-fixed', truncatedRelabelled, 'authFailed'),
    // its length field no longer matches: not metadata at all, a plain SYN to a subsession port the box does not have
    syn('truncated', truncated, 'staleSubsession'),
    syn('unknown-flags', unknownFlags, 'malformedMetadata'),
    syn('no-room-for-tag', noRoomForTag, 'malformedMetadata'),
    syn('signed-bad-family', signedMetadata(badFamily), 'malformedMetadata'),
    syn('signed-short-chain', signedMetadata(shortChain), 'malformedMetadata'),
    syn('signed-chain-not-ending-at-destination', signedMetadata(wrongLast), 'malformedMetadata'),
    syn('signed-ipv6-session-in-ipv4', signedMetadata(v6Session), 'malformedMetadata'),
  ];

  const boxBefore = await statsOf(b.box.agent!);
  const sessionsBefore = await sessionsAt(b.box.agent!);
  t.equal(sessionsBefore.length, 1, 'the box has the real session');
  const joinedBefore = b.box.agent!.records().filter((r) => r.msg === 'session joined').length;
  const sent = await inject(b.client, b.bed.dir, 'syn', cases);
  t.same(sent, cases.map((c) => c.label), `${sent.length} SYNs put on the wire from the client's namespace`);
  await sleep(400);
  const boxAfter = await statsOf(b.box.agent!);

  for (const counter of ['authFailed', 'malformedMetadata', 'staleSubsession'] as const) {
    const want = cases.filter((c) => c.counter === counter).length;
    t.equal((boxAfter.dataplane[counter] ?? 0) - (boxBefore.dataplane[counter] ?? 0), want, `the box's data plane dropped ${want} as ${counter}`);
  }
  t.equal(boxAfter.dataplane.chainTooLong, boxBefore.dataplane.chainTooLong, 'none as a chain too long');
  t.equal(boxAfter.dataplane.entryConflict, boxBefore.dataplane.entryConflict, 'none as an entry conflict');
  const atBox = await sessionsAt(b.box.agent!);
  t.same(atBox.map((s) => s.session), [session], 'the box lists only the real session');
  t.equal(b.box.agent!.records().filter((r) => r.msg === 'session joined').length, joinedBefore, 'its agent joined no other');
  t.same(
    { egress: boxAfter.table.egress, ingress: boxAfter.table.ingress, pending: boxAfter.table.pending },
    { egress: boxBefore.table.egress, ingress: boxBefore.table.ingress, pending: boxBefore.table.pending },
    'and its kernel holds no entry for any of them',
  );
  t.equal((await sessionsAt(b.server.agent!)).length, 1, 'nothing reached the server as a session either');

  await removeBox(t, b, session);
  const [c, s] = await Promise.all([tr.client, tr.server]);
  checkTransfer(t, c, s, bytes, local, b.server.address);
});

/**
 * A segment whose sequence number lies far beyond the receiver's window is
 * discarded by the receiving stack (RFC 793), so on its own it harms no TCP
 * connection. (The box cannot know the receiver's actual window; it knows
 * that no window is larger than 2^30 bytes, and ignores for its cutoff what
 * lies beyond that: see docs/session-table.md.) Sent on the subsession into the box, it must not harm the
 * session either: neither when it is a SYN replaying the session's genuine
 * signed metadata (the metadata has no replay counter; it verifies, and the
 * box takes it for a retransmitted SYN), nor when it is a plain data
 * segment, which needs no key at all. Afterwards the box inserts a spare
 * after itself: a reconfiguration in which the box is the left anchor, and
 * cuts its own egress over to the new path.
 */
for (const forged of ['a replayed signed SYN', 'a data segment'] as const) {
  t.test(`${forged} far beyond the window on the subsession into the box, then a reconfiguration the box anchors: it completes, the session unharmed`, opts, async (t) => {
    const b = await authenticatedBed(t, { spare: true });
    const bytes = 10_000_000; // 5 s: the steps below take a few seconds when the machine is loaded
    const tr = await transfer(b.client, b.server, { bytes, rate: 2_000_000 });
    const local = await tr.connected;
    const session = `${local}>${b.server.address}:9000`;
    await sleep(500);
    const hop = parseTuple((await sessionsAt(b.client.agent!))[0]?.right?.subsession ?? '');
    t.equal(formatAddress(hop.dst), b.box.address, 'the client sends to the box on its subsession');
    const last = await lastSegmentOn(b.client, hop);
    // 1.5 GB ahead of what the client has sent: beyond the largest window TCP can open (2^30), inside the half of the sequence space that counts as ahead
    const seq = (last.seq + 1_500_000_000) >>> 0;
    const packet =
      forged === 'a replayed signed SYN'
        ? synPacketAt(hop, seq, encodeSynMetadata({ session: parseTuple(session), chain: [parseAddress(b.server.address)] }, rightKeys))
        : buildTcpPacket({ tuple: hop, seq, ack: last.ack, flags: 0x18, window: 501, payload: Buffer.alloc(100, 0x41) });
    const before = await statsOf(b.box.agent!);
    await inject(b.client, b.bed.dir, 'ahead', [{ label: 'ahead', to: b.box.address, bytes: packet }]);
    await sleep(300);
    const after = await statsOf(b.box.agent!);
    t.equal(after.dataplane.authFailed, before.dataplane.authFailed, 'the box did not refuse it');
    if (forged === 'a replayed signed SYN') t.ok(after.dataplane.synRetransmitted! > before.dataplane.synRetransmitted!, 'its metadata verified: the box took it for a retransmission of the session\'s SYN');

    const r = await within(b.box.agent!.cliAsync('reconfig', session, '--insert', b.spare!.address, '--after', b.box.address, '--json'), 8000, undefined);
    t.match(r?.stdout ?? 'no outcome after 8 s', /"result": "completed"/, `the box inserted the spare after itself: ${r ? r.stdout + r.stderr : 'no outcome after 8 s'}`);
    const atBox = (await sessionsAt(b.box.agent!))[0];
    t.same(atBox?.state, { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: false }, 'the box is done with it');
    t.equal(atBox?.right?.agent, b.spare!.address, 'and sends to the spare');
    const done = await within(Promise.all([tr.client, tr.server]), 8000, undefined);
    t.ok(done, 'the transfer finished');
    if (done) checkTransfer(t, done[0], done[1], bytes, local, b.server.address);
  });
}
