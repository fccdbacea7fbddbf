import type { IpFamily } from '../address.js';
import { AuthenticationError, WireFormatError } from '../errors.js';
import {
  CONTROL_TYPES,
  NACK_REASONS,
  type ControlMessage,
  type ControlType,
  type Deltas,
  type NackReason,
} from '../messages.js';
import type { KeyRing, ReplayWindow } from './auth.js';
import { AUTH_MAC_BYTES } from './auth.js';
import { ByteReader, ByteWriter } from './bytes.js';
import {
  checkTuple,
  checkUint,
  plainView,
  readChain,
  readTaggedAddress,
  readTaggedTuple,
  readTupleFields,
  writeChain,
  writeTaggedAddress,
  writeTaggedTuple,
  writeTupleFields,
} from './metadata.js';

/**
 * Control messages of the reconfiguration protocol, one per UDP payload.
 * Byte layout in docs/wire-format.md: a common header naming the message
 * type and the subsession (hop) it travels on, the type's body, and when
 * signed a trailer with key id, replay counter and HMAC-SHA256 tag.
 */

const FORMAT = 'control';

export const CONTROL_MAGIC = 0xdc5c;
export const CONTROL_VERSION = 1;
/** Flags bit 0: the authentication trailer is present. */
export const CONTROL_FLAG_AUTH = 0x01;
/** Hard limit on an encoded control message. */
export const CONTROL_MAX_BYTES = 1024;
/** Longest address list in a body (rightRequest.newChain, syn.chain). */
export const CONTROL_MAX_CHAIN = 16;
/** Largest window-scale shift (RFC 7323). */
export const CONTROL_MAX_WSCALE = 14;
/** magic, version, type, flags, family, body length, reconfigId, msgSeq (the subsession tuple follows). */
export const CONTROL_FIXED_HEADER_BYTES = 16;
/** keyId u32, counter u64, tag. */
export const CONTROL_AUTH_BYTES = 4 + 8 + AUTH_MAC_BYTES;
/** Encoded size of a Deltas value. */
export const CONTROL_DELTAS_BYTES = 20;

const U64_MAX = (1n << 64n) - 1n;

export interface DecodedControl {
  readonly message: ControlMessage;
  /** Key id of the trailer, when the message was signed. */
  readonly keyId?: number;
  /** Replay counter of the trailer, when the message was signed. */
  readonly counter?: bigint;
  /** True only when the tag was verified against a KeyRing. */
  readonly authenticated: boolean;
}

/** Header length for a subsession tuple of `family`. */
export function controlHeaderBytes(family: IpFamily): number {
  return CONTROL_FIXED_HEADER_BYTES + (family === 4 ? 12 : 36);
}

function checkI32(v: number, what: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw new WireFormatError(FORMAT, `cannot encode ${what}: ${String(v)} is not an i32`);
  }
}

function checkShift(v: number, what: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > CONTROL_MAX_WSCALE) {
    throw new WireFormatError(FORMAT, `cannot encode ${what}: window scale ${String(v)} is not 0..${CONTROL_MAX_WSCALE}`);
  }
}

function writeDeltas(w: ByteWriter, d: Deltas): void {
  checkI32(d.seqLR, 'deltas.seqLR');
  checkI32(d.seqRL, 'deltas.seqRL');
  checkI32(d.tsLR, 'deltas.tsLR');
  checkI32(d.tsRL, 'deltas.tsRL');
  checkShift(d.wsFromLR, 'deltas.wsFromLR');
  checkShift(d.wsToLR, 'deltas.wsToLR');
  checkShift(d.wsFromRL, 'deltas.wsFromRL');
  checkShift(d.wsToRL, 'deltas.wsToRL');
  w.i32(d.seqLR).i32(d.seqRL).i32(d.tsLR).i32(d.tsRL);
  w.u8(d.wsFromLR).u8(d.wsToLR).u8(d.wsFromRL).u8(d.wsToRL);
}

function readShift(r: ByteReader, what: string): number {
  const v = r.u8(what);
  if (v > CONTROL_MAX_WSCALE) r.fail(`${what}: window scale ${v} exceeds ${CONTROL_MAX_WSCALE}`);
  return v;
}

function readDeltas(r: ByteReader): Deltas {
  const seqLR = r.i32('deltas.seqLR');
  const seqRL = r.i32('deltas.seqRL');
  const tsLR = r.i32('deltas.tsLR');
  const tsRL = r.i32('deltas.tsRL');
  const wsFromLR = readShift(r, 'deltas.wsFromLR');
  const wsToLR = readShift(r, 'deltas.wsToLR');
  const wsFromRL = readShift(r, 'deltas.wsFromRL');
  const wsToRL = readShift(r, 'deltas.wsToRL');
  return { seqLR, seqRL, tsLR, tsRL, wsFromLR, wsToLR, wsFromRL, wsToRL };
}

function writeReason(w: ByteWriter, reason: NackReason): void {
  const i = NACK_REASONS.indexOf(reason);
  if (i < 0) throw new WireFormatError(FORMAT, `cannot encode reason ${JSON.stringify(reason)}`);
  w.u8(i);
}

function readReason(r: ByteReader): NackReason {
  const i = r.u8('reason');
  const reason = NACK_REASONS[i];
  if (reason === undefined) r.fail(`unknown reason ${i}`);
  return reason;
}

/**
 * The ends byte of ack and teardown: bit 0 fromLeft (teardown only), bit 1
 * an upTo u32 follows, bit 2 the sender sent nothing on the old path (upTo
 * null; never with bit 1).
 */
const ENDS_FROM_LEFT = 1;
const ENDS_UP_TO = 2;
const ENDS_NOTHING = 4;

function writeEnds(w: ByteWriter, fromLeft: boolean, upTo: number | null | undefined): void {
  if (upTo !== undefined && upTo !== null) checkUint(FORMAT, upTo, 32, 'upTo');
  w.u8((fromLeft ? ENDS_FROM_LEFT : 0) | (typeof upTo === 'number' ? ENDS_UP_TO : 0) | (upTo === null ? ENDS_NOTHING : 0));
  if (typeof upTo === 'number') w.u32(upTo);
}

function readEnds(r: ByteReader, teardown: boolean): { fromLeft: boolean; upTo?: number | null } {
  const b = r.u8('ends');
  const allowed = ENDS_UP_TO | ENDS_NOTHING | (teardown ? ENDS_FROM_LEFT : 0);
  if ((b & ~allowed) !== 0) r.fail(`ends byte 0x${b.toString(16)} has unknown bits`);
  if ((b & ENDS_UP_TO) !== 0 && (b & ENDS_NOTHING) !== 0) r.fail('ends byte says both upTo and nothing sent');
  const fromLeft = (b & ENDS_FROM_LEFT) !== 0;
  if (b & ENDS_UP_TO) return { fromLeft, upTo: r.u32('upTo') };
  return b & ENDS_NOTHING ? { fromLeft, upTo: null } : { fromLeft };
}

function writeBody(w: ByteWriter, m: ControlMessage): void {
  writeTaggedAddress(w, FORMAT, m.requester, 'requester');
  switch (m.type) {
    case 'requestLock':
    case 'ackLock':
      writeTaggedAddress(w, FORMAT, m.rightAnchor, 'rightAnchor');
      writeDeltas(w, m.deltas);
      return;
    case 'nackLock':
    case 'cancelLock':
      writeReason(w, m.reason);
      return;
    case 'ackCancel':
    case 'synAck':
      return;
    case 'ack':
      writeEnds(w, false, m.upTo);
      return;
    case 'rightRequest':
      writeTaggedAddress(w, FORMAT, m.rightAnchor, 'rightAnchor');
      writeChain(w, FORMAT, m.newChain, CONTROL_MAX_CHAIN, 'newChain');
      return;
    case 'syn':
      writeTaggedAddress(w, FORMAT, m.leftAnchor, 'leftAnchor');
      writeTaggedAddress(w, FORMAT, m.rightAnchor, 'rightAnchor');
      writeTaggedTuple(w, FORMAT, m.session, 'session');
      writeChain(w, FORMAT, m.chain, CONTROL_MAX_CHAIN, 'chain');
      writeDeltas(w, m.deltas);
      return;
    case 'teardown':
      if (typeof m.fromLeft !== 'boolean') throw new WireFormatError(FORMAT, 'cannot encode fromLeft: not a boolean');
      writeEnds(w, m.fromLeft, m.upTo);
      return;
    default: {
      const never: never = m;
      throw new WireFormatError(FORMAT, `cannot encode message type ${JSON.stringify((never as { type: unknown }).type)}`);
    }
  }
}

interface Common {
  readonly subsession: ControlMessage['subsession'];
  readonly reconfigId: number;
  readonly msgSeq: number;
}

function readBody(r: ByteReader, type: ControlType, c: Common): ControlMessage {
  const requester = readTaggedAddress(r, 'requester');
  switch (type) {
    case 'requestLock':
    case 'ackLock': {
      const rightAnchor = readTaggedAddress(r, 'rightAnchor');
      const deltas = readDeltas(r);
      return { type, ...c, requester, rightAnchor, deltas };
    }
    case 'nackLock':
    case 'cancelLock':
      return { type, ...c, requester, reason: readReason(r) };
    case 'ackCancel':
    case 'synAck':
      return { type, ...c, requester };
    case 'ack': {
      const { fromLeft: _, ...e } = readEnds(r, false);
      return { type, ...c, requester, ...e };
    }
    case 'rightRequest': {
      const rightAnchor = readTaggedAddress(r, 'rightAnchor');
      const newChain = readChain(r, CONTROL_MAX_CHAIN, 'newChain');
      return { type, ...c, requester, rightAnchor, newChain };
    }
    case 'syn': {
      const leftAnchor = readTaggedAddress(r, 'leftAnchor');
      const rightAnchor = readTaggedAddress(r, 'rightAnchor');
      const session = readTaggedTuple(r, 'session');
      const chain = readChain(r, CONTROL_MAX_CHAIN, 'chain');
      const deltas = readDeltas(r);
      return { type, ...c, requester, leftAnchor, rightAnchor, session, chain, deltas };
    }
    case 'teardown': {
      return { type, ...c, requester, ...readEnds(r, true) };
    }
  }
}

/**
 * Encodes a control message. When `keys` can sign, the message is signed
 * with the ring's send key and `counter` (required then) goes into the
 * trailer: it must strictly increase per sender and key, and a
 * retransmission is re-signed with a fresh counter (its msgSeq stays).
 * Throws WireFormatError when the value cannot be encoded.
 */
export function encodeControl(msg: ControlMessage, keys?: KeyRing, counter?: bigint): Uint8Array {
  const typeIndex = CONTROL_TYPES.indexOf(msg.type);
  if (typeIndex < 0) throw new WireFormatError(FORMAT, `cannot encode message type ${JSON.stringify(msg.type)}`);
  const family = checkTuple(FORMAT, msg.subsession, 'subsession');
  checkUint(FORMAT, msg.reconfigId, 32, 'reconfigId');
  checkUint(FORMAT, msg.msgSeq, 32, 'msgSeq');
  const signer = keys?.canSign === true ? keys : undefined;
  if (signer !== undefined && (typeof counter !== 'bigint' || counter < 0n || counter > U64_MAX)) {
    throw new WireFormatError(FORMAT, `cannot sign: replay counter ${String(counter)} is not a u64`);
  }
  const w = new ByteWriter(128);
  w.u16(CONTROL_MAGIC)
    .u8(CONTROL_VERSION)
    .u8(typeIndex)
    .u8(signer ? CONTROL_FLAG_AUTH : 0)
    .u8(family)
    .u16(0)
    .u32(msg.reconfigId)
    .u32(msg.msgSeq);
  writeTupleFields(w, msg.subsession);
  const headerLen = w.length;
  writeBody(w, msg);
  const bodyLen = w.length - headerLen;
  const total = w.length + (signer ? CONTROL_AUTH_BYTES : 0);
  if (total > CONTROL_MAX_BYTES) {
    throw new WireFormatError(FORMAT, `cannot encode: ${total} bytes exceeds ${CONTROL_MAX_BYTES}`);
  }
  w.patchU16(6, bodyLen);
  if (signer === undefined) return w.finish();
  w.u32(signer.sendKeyId!).u64(counter!);
  const signed = w.finish();
  const { tag } = signer.sign(signed, AUTH_MAC_BYTES);
  const out = new Uint8Array(total);
  out.set(signed, 0);
  out.set(tag, signed.length);
  return out;
}

/**
 * Decodes one control message.
 *
 * - WireFormatError: not exactly one well-formed encoding (bad magic,
 *   version, type, flags, family, length, field values, trailing bytes).
 * - AuthenticationError (only when `keys` is given): 'unsigned' when the
 *   ring requires authentication and the message carries no trailer (no
 *   downgrade), 'unknown-key', 'bad-tag', and 'replay' when `replay` is
 *   given and the counter was already accepted from that sender and key or
 *   is older than the window.
 *
 * The tag is verified before the subsession and body are parsed; the
 * replay window is consulted, and the counter committed, only after the
 * tag verified and the whole message decoded. Without `keys` a signed
 * message is parsed but not verified (`authenticated: false`) and the
 * replay window is left alone.
 */
export function decodeControl(
  input: Uint8Array,
  keys?: KeyRing,
  replay?: { window: ReplayWindow; sender: string },
): DecodedControl {
  const bytes = plainView(input);
  const n = bytes.length;
  if (n > CONTROL_MAX_BYTES) throw new WireFormatError(FORMAT, `${n} bytes exceeds ${CONTROL_MAX_BYTES}`);
  const h: ByteReader = new ByteReader(FORMAT, bytes);
  const magic = h.u16('magic');
  if (magic !== CONTROL_MAGIC) h.fail(`bad magic 0x${magic.toString(16).padStart(4, '0')}`);
  const version = h.u8('version');
  if (version !== CONTROL_VERSION) h.fail(`unsupported version ${version}`);
  const typeIndex = h.u8('type');
  const type = CONTROL_TYPES[typeIndex];
  if (type === undefined) h.fail(`unknown message type ${typeIndex}`);
  const flags = h.u8('flags');
  if ((flags & ~CONTROL_FLAG_AUTH) !== 0) h.fail(`unknown flag bits 0x${flags.toString(16)}`);
  const family = h.u8('family');
  if (family !== 4 && family !== 6) h.fail(`bad subsession family ${family}`);
  const bodyLen = h.u16('body length');
  const headerLen = controlHeaderBytes(family);
  const signed = (flags & CONTROL_FLAG_AUTH) !== 0;
  const bodyEnd = headerLen + bodyLen;
  const expected = bodyEnd + (signed ? CONTROL_AUTH_BYTES : 0);
  if (n !== expected) h.fail(`length ${n} does not match the header (${expected} bytes)`);

  let keyId: number | undefined;
  let counter: bigint | undefined;
  let authenticated = false;
  if (signed) {
    const t = new ByteReader(FORMAT, bytes, bodyEnd);
    keyId = t.u32('key id');
    counter = t.u64('counter');
    if (keys !== undefined) {
      keys.verify(keyId, bytes.subarray(0, bodyEnd + 12), bytes.subarray(bodyEnd + 12));
      authenticated = true;
    }
  } else if (keys?.requireAuth === true) {
    throw new AuthenticationError('unsigned', `unsigned ${type} refused: authentication is required`);
  }

  const r = new ByteReader(FORMAT, bytes, 8, bodyEnd);
  const reconfigId = r.u32('reconfigId');
  const msgSeq = r.u32('msgSeq');
  const subsession = readTupleFields(r, family, 'subsession');
  const message = readBody(r, type, { subsession, reconfigId, msgSeq });
  r.expectEnd();

  if (authenticated && replay !== undefined) {
    if (!replay.window.checkAndCommit(replay.sender, keyId!, counter!)) {
      throw new AuthenticationError('replay', `replayed or too old counter ${counter} from ${replay.sender} (key ${keyId})`);
    }
  }
  const out: DecodedControl = signed ? { message, keyId: keyId!, counter: counter!, authenticated } : { message, authenticated };
  return out;
}
