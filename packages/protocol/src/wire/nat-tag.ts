import { WireFormatError } from '../errors.js';

/**
 * The NAT tag: a TCP option an ingress agent adds to a SYN before handing
 * it to a middlebox that rewrites the five-tuple, so that the egress agent
 * can recognise the SYN by the tag when its tuple matches no pending entry.
 * It uses the shared experimental option kind with an experiment
 * identifier (RFC 6994). Layout in docs/wire-format.md.
 */

const FORMAT = 'nat-tag';

/** RFC 6994 shared experimental option kind. */
export const NAT_TAG_OPTION_KIND = 253;
/** Our 16-bit experiment identifier ('DY'). */
export const NAT_TAG_EXID = 0x4459;
/** kind, length, ExID (2), tag (4). */
export const NAT_TAG_OPTION_LENGTH = 8;

/** The 8 option bytes carrying the u32 `tag`. */
export function encodeNatTagOption(tag: number): Uint8Array {
  if (typeof tag !== 'number' || !Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) {
    throw new WireFormatError(FORMAT, `cannot encode tag ${String(tag)}: not a u32`);
  }
  return Uint8Array.of(
    NAT_TAG_OPTION_KIND,
    NAT_TAG_OPTION_LENGTH,
    NAT_TAG_EXID >>> 8,
    NAT_TAG_EXID & 0xff,
    (tag >>> 24) & 0xff,
    (tag >>> 16) & 0xff,
    (tag >>> 8) & 0xff,
    tag & 0xff,
  );
}

/**
 * Reads the tag from option bytes starting at the kind byte. The option's
 * own length byte delimits it, so `option` may extend past it (for example
 * the rest of the options area); it must hold at least the 8 option bytes.
 * Throws WireFormatError when the kind, length or ExID is not ours.
 */
export function decodeNatTagOption(option: Uint8Array): number {
  if (option.length < 2) throw new WireFormatError(FORMAT, `truncated: ${option.length} bytes`);
  if (option[0] !== NAT_TAG_OPTION_KIND) throw new WireFormatError(FORMAT, `option kind ${option[0]} is not ${NAT_TAG_OPTION_KIND}`);
  if (option[1] !== NAT_TAG_OPTION_LENGTH) {
    throw new WireFormatError(FORMAT, `option length ${option[1]} is not ${NAT_TAG_OPTION_LENGTH}`);
  }
  if (option.length < NAT_TAG_OPTION_LENGTH) {
    throw new WireFormatError(FORMAT, `truncated: ${option.length} of ${NAT_TAG_OPTION_LENGTH} bytes`);
  }
  const exid = (option[2]! << 8) | option[3]!;
  if (exid !== NAT_TAG_EXID) throw new WireFormatError(FORMAT, `experiment id 0x${exid.toString(16)} is not ours`);
  return ((option[4]! << 24) | (option[5]! << 16) | (option[6]! << 8) | option[7]!) >>> 0;
}
