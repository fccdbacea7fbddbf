/**
 * Internet checksum (RFC 1071) and its incremental update (RFC 1624,
 * eqn. 3): the data plane never recomputes a whole checksum for a rewrite,
 * it folds the difference of the changed 16-bit words in.
 */

/** One's-complement sum of `data` (big-endian 16-bit words), not yet folded or inverted. */
export function onesSum(data: Uint8Array, initial = 0, start = 0, end = data.length): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for `data` (the field itself must be zero or excluded). */
export function internetChecksum(data: Uint8Array, initial = 0, start = 0, end = data.length): number {
  return ~fold(onesSum(data, initial, start, end)) & 0xffff;
}

/**
 * HC' = ~(~HC + ~m + m'), for one 16-bit word changing from m to m2.
 * Kept exact for the 0x0000/0xffff corner (RFC 1624 section 3).
 */
export function csumReplace16(check: number, oldWord: number, newWord: number): number {
  const sum = (~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(sum) & 0xffff;
}

export function csumReplace32(check: number, oldValue: number, newValue: number): number {
  let c = csumReplace16(check, (oldValue >>> 16) & 0xffff, (newValue >>> 16) & 0xffff);
  c = csumReplace16(c, oldValue & 0xffff, newValue & 0xffff);
  return c;
}

/** Replaces a run of bytes (even length, 16-bit aligned in the summed data). */
export function csumReplaceBytes(check: number, oldBytes: Uint8Array, newBytes: Uint8Array): number {
  let c = check;
  for (let i = 0; i + 1 < oldBytes.length; i += 2) {
    c = csumReplace16(c, (oldBytes[i]! << 8) | oldBytes[i + 1]!, (newBytes[i]! << 8) | newBytes[i + 1]!);
  }
  return c;
}
