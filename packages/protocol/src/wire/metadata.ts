import type { Address, IpFamily } from '../address.js';
import { AuthenticationError, WireFormatError } from '../errors.js';
import type { FiveTuple } from '../tuple.js';
import type { KeyRing } from './auth.js';
import { ByteReader, ByteWriter } from './bytes.js';

/**
 * SYN metadata: the rest of the service chain, carried as the payload of
 * the SYN that opens each subsession. Byte layout in docs/wire-format.md.
 *
 * The decoder is strict on purpose: a SYN payload is only metadata if the
 * magic, version, flags and exact total length all agree and nothing is
 * left over, so a TCP Fast Open payload or random data is never taken for
 * a chain.
 */

const FORMAT = 'syn-metadata';

/** First four bytes: 'DYSC' with the high bit of the 'D' set (0xC4 0x59 0x53 0x43). */
export const SYN_METADATA_MAGIC = 0xc4595343;
export const SYN_METADATA_VERSION = 1;
/** Flags bit 0: keyId and tag follow the chain. */
export const SYN_METADATA_FLAG_AUTH = 0x01;
/** Longest chain carried (destination included). */
export const SYN_METADATA_MAX_CHAIN = 16;
/** Hard limit on the whole payload. */
export const SYN_METADATA_MAX_BYTES = 512;
/** magic, version, flags, total length. */
export const SYN_METADATA_HEADER_BYTES = 8;
/** HMAC-SHA256 truncated to this many bytes. */
export const SYN_METADATA_TAG_BYTES = 16;
/** keyId u32 + tag. */
export const SYN_METADATA_AUTH_BYTES = 4 + SYN_METADATA_TAG_BYTES;

export interface SynMetadata {
  /** The session five-tuple (client to server). */
  readonly session: FiveTuple;
  /** The rest of the chain, left to right, ending at the destination host. */
  readonly chain: readonly Address[];
}

// ---------------------------------------------------------------------------
// Field codecs shared by the SYN metadata and control-message formats.
// Not part of the package's public surface (index.ts exports names, not *).

/**
 * A plain Uint8Array view of `b`. ByteReader copies fields with `slice`,
 * which on a Node Buffer returns a view into the packet instead of a copy;
 * decoding through a plain view keeps decoded addresses independent of the
 * caller's buffer. @internal
 */
export function plainView(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** @internal */
export function checkAddress(format: string, a: Address, what: string): IpFamily {
  const f = a?.family;
  if (f !== 4 && f !== 6) throw new WireFormatError(format, `cannot encode ${what}: family ${String(f)}`);
  const want = f === 4 ? 4 : 16;
  if (!(a.bytes instanceof Uint8Array) || a.bytes.length !== want) {
    throw new WireFormatError(format, `cannot encode ${what}: IPv${f} address needs ${want} bytes`);
  }
  return f;
}

/** @internal */
export function checkUint(format: string, v: number, bits: 8 | 16 | 32, what: string): void {
  const max = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new WireFormatError(format, `cannot encode ${what}: ${String(v)} is not a u${bits}`);
  }
}

/** @internal */
export function readFamily(r: ByteReader, what: string): IpFamily {
  const f = r.u8(`${what} family`);
  if (f !== 4 && f !== 6) r.fail(`${what}: bad address family ${f}`);
  return f;
}

/** Family byte then 4 or 16 address bytes. @internal */
export function writeTaggedAddress(w: ByteWriter, format: string, a: Address, what: string): void {
  w.u8(checkAddress(format, a, what)).bytes(a.bytes);
}

/** @internal */
export function readTaggedAddress(r: ByteReader, what: string): Address {
  return r.address(readFamily(r, what), what);
}

/** Checks a tuple for encoding and returns its (single) family. @internal */
export function checkTuple(format: string, t: FiveTuple, what: string): IpFamily {
  const f = checkAddress(format, t.src, `${what} source`);
  if (checkAddress(format, t.dst, `${what} destination`) !== f) {
    throw new WireFormatError(format, `cannot encode ${what}: it mixes IPv4 and IPv6`);
  }
  checkUint(format, t.sport, 16, `${what} source port`);
  checkUint(format, t.dport, 16, `${what} destination port`);
  return f;
}

/** src, dst, sport, dport; the family is written elsewhere. @internal */
export function writeTupleFields(w: ByteWriter, t: FiveTuple): void {
  w.bytes(t.src.bytes).bytes(t.dst.bytes).u16(t.sport).u16(t.dport);
}

/** @internal */
export function readTupleFields(r: ByteReader, family: IpFamily, what: string): FiveTuple {
  const src = r.address(family, `${what} source`);
  const dst = r.address(family, `${what} destination`);
  const sport = r.u16(`${what} source port`);
  const dport = r.u16(`${what} destination port`);
  return { src, dst, sport, dport };
}

/** Family byte then the tuple fields. @internal */
export function writeTaggedTuple(w: ByteWriter, format: string, t: FiveTuple, what: string): void {
  w.u8(checkTuple(format, t, what));
  writeTupleFields(w, t);
}

/** @internal */
export function readTaggedTuple(r: ByteReader, what: string): FiveTuple {
  return readTupleFields(r, readFamily(r, what), what);
}

/** Count u8 then family-tagged addresses. @internal */
export function writeChain(w: ByteWriter, format: string, chain: readonly Address[], max: number, what: string): void {
  if (!Array.isArray(chain) || chain.length > max) {
    throw new WireFormatError(format, `cannot encode ${what}: ${chain?.length} entries, at most ${max}`);
  }
  w.u8(chain.length);
  chain.forEach((a, i) => writeTaggedAddress(w, format, a, `${what}[${i}]`));
}

/** @internal */
export function readChain(r: ByteReader, max: number, what: string): Address[] {
  const n = r.u8(`${what} count`);
  if (n > max) r.fail(`${what} of ${n} entries exceeds ${max}`);
  const out: Address[] = [];
  for (let i = 0; i < n; i++) out.push(readTaggedAddress(r, `${what}[${i}]`));
  return out;
}

// ---------------------------------------------------------------------------

/**
 * Encodes SYN metadata; signs it with the ring's send key when `keys` can
 * sign. Throws WireFormatError when the value cannot be encoded (mixed
 * family session, bad port, chain longer than SYN_METADATA_MAX_CHAIN).
 */
export function encodeSynMetadata(m: SynMetadata, keys?: KeyRing): Uint8Array {
  const w = new ByteWriter(128);
  const signer = keys?.canSign === true ? keys : undefined;
  const signing = signer !== undefined;
  w.u32(SYN_METADATA_MAGIC)
    .u8(SYN_METADATA_VERSION)
    .u8(signing ? SYN_METADATA_FLAG_AUTH : 0)
    .u16(0);
  writeTaggedTuple(w, FORMAT, m.session, 'session');
  writeChain(w, FORMAT, m.chain, SYN_METADATA_MAX_CHAIN, 'chain');
  const total = w.length + (signing ? SYN_METADATA_AUTH_BYTES : 0);
  if (total > SYN_METADATA_MAX_BYTES) {
    throw new WireFormatError(FORMAT, `cannot encode: ${total} bytes exceeds ${SYN_METADATA_MAX_BYTES}`);
  }
  w.patchU16(6, total);
  if (!signing) return w.finish();
  w.u32(signer.sendKeyId!);
  const signed = w.finish();
  const { tag } = signer.sign(signed, SYN_METADATA_TAG_BYTES);
  const out = new Uint8Array(total);
  out.set(signed, 0);
  out.set(tag, signed.length);
  return out;
}

/**
 * Cheap pre-check for the data path: magic, version and a total-length
 * field equal to the payload length. A true answer does not mean the
 * payload decodes; a false one means it certainly does not.
 */
export function isSynMetadataCandidate(payload: Uint8Array): boolean {
  const n = payload.length;
  if (n < SYN_METADATA_HEADER_BYTES || n > SYN_METADATA_MAX_BYTES) return false;
  const magic = ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0;
  if (magic !== SYN_METADATA_MAGIC || payload[4] !== SYN_METADATA_VERSION) return false;
  return ((payload[6]! << 8) | payload[7]!) === n;
}

/**
 * Decodes SYN metadata. Throws WireFormatError for anything that is not
 * exactly one well-formed encoding, and AuthenticationError when `keys` is
 * given and the payload is unsigned although the ring requires
 * authentication ('unsigned'), is signed with a key not in the ring
 * ('unknown-key') or its tag does not verify ('bad-tag').
 *
 * The tag is verified before the body is parsed. Without `keys`, a signed
 * payload is parsed and its tag is not checked.
 */
export function decodeSynMetadata(input: Uint8Array, keys?: KeyRing): SynMetadata {
  const payload = plainView(input);
  const n = payload.length;
  if (n > SYN_METADATA_MAX_BYTES) throw new WireFormatError(FORMAT, `${n} bytes exceeds ${SYN_METADATA_MAX_BYTES}`);
  const h = new ByteReader(FORMAT, payload);
  const magic = h.u32('magic');
  if (magic !== SYN_METADATA_MAGIC) h.fail(`bad magic 0x${magic.toString(16).padStart(8, '0')}`);
  const version = h.u8('version');
  if (version !== SYN_METADATA_VERSION) h.fail(`unsupported version ${version}`);
  const flags = h.u8('flags');
  if ((flags & ~SYN_METADATA_FLAG_AUTH) !== 0) h.fail(`unknown flag bits 0x${flags.toString(16)}`);
  const total = h.u16('total length');
  if (total !== n) h.fail(`total length field ${total} but payload has ${n} bytes`);
  const signed = (flags & SYN_METADATA_FLAG_AUTH) !== 0;
  let bodyEnd = n;
  if (signed) {
    bodyEnd = n - SYN_METADATA_AUTH_BYTES;
    if (bodyEnd < SYN_METADATA_HEADER_BYTES) h.fail('truncated: no room for key id and tag');
    if (keys !== undefined) {
      const keyId = new ByteReader(FORMAT, payload, bodyEnd).u32('key id');
      keys.verify(keyId, payload.subarray(0, bodyEnd + 4), payload.subarray(bodyEnd + 4));
    }
  } else if (keys?.requireAuth === true) {
    throw new AuthenticationError('unsigned', 'unsigned SYN metadata refused: authentication is required');
  }
  const r = new ByteReader(FORMAT, payload, SYN_METADATA_HEADER_BYTES, bodyEnd);
  const session = readTaggedTuple(r, 'session');
  const chain = readChain(r, SYN_METADATA_MAX_CHAIN, 'chain');
  r.expectEnd();
  return { session, chain };
}
