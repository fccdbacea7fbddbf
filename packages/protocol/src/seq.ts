/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 1982 serial numbers).
 * Every comparison of sequence or ack numbers in the protocol goes through
 * these, so wraparound is handled in one place.
 */
export function seqAdd(a: number, b: number): number {
  return (a + b) >>> 0;
}

export function seqSub(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** Signed distance b - a in (-2^31, 2^31]. */
export function seqDiff(a: number, b: number): number {
  return (b - a) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLeq(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGeq(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: number, b: number): number {
  return seqGt(a, b) ? a : b;
}

export function seqMin(a: number, b: number): number {
  return seqLt(a, b) ? a : b;
}
