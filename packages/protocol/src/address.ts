import { AddressError } from './errors.js';

/**
 * An IP address in its wire form: 4 bytes for IPv4, 16 for IPv6. Addresses
 * are compared and hashed through their canonical text (`formatAddress`),
 * which is what session-table keys and logs use.
 */
export type IpFamily = 4 | 6;

export interface Address {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
}

export function addressLength(family: IpFamily): 4 | 16 {
  return family === 4 ? 4 : 16;
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  let head = text;
  let tail4: Uint8Array | undefined;
  // An embedded IPv4 suffix (::ffff:10.0.0.1) counts for two groups.
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.includes('.', lastColon)) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (!tail4) return undefined;
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (s: string): number[] | undefined => {
    if (s === '') return [];
    const gs = s.split(':');
    const out: number[] = [];
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groupsOf(halves[0]!);
  const right = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!left || !right) return undefined;
  const total = left.length + right.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...left, ...new Array<number>(8 - total).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Parses dotted-quad IPv4 or RFC 4291 IPv6 text. Throws AddressError. */
export function parseAddress(text: string): Address {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = text.includes(':') ? parseIpv6(text) : undefined;
  if (v6) return { family: 6, bytes: v6 };
  throw new AddressError(`not an IPv4 or IPv6 address: ${JSON.stringify(text)}`);
}

/** Builds an address from wire bytes (4 or 16 of them). */
export function addressFromBytes(bytes: Uint8Array): Address {
  if (bytes.length === 4) return { family: 4, bytes: Uint8Array.from(bytes) };
  if (bytes.length === 16) return { family: 6, bytes: Uint8Array.from(bytes) };
  throw new AddressError(`an address has 4 or 16 bytes, not ${bytes.length}`);
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatAddress(a: Address): string {
  const b = a.bytes;
  if (a.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function addressEquals(a: Address, b: Address): boolean {
  if (a.family !== b.family) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

/** Shorthand used throughout tests and examples. */
export function ip(text: string): Address {
  return parseAddress(text);
}

/** A prefix such as 10.0.0.0/8 or fd00::/64; `matches` tests membership. */
export interface Prefix {
  readonly address: Address;
  readonly length: number;
}

export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  const max = address.family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) {
      throw new AddressError(`bad prefix length in ${JSON.stringify(text)} (0..${max})`);
    }
    length = Number(l);
  }
  return { address, length };
}

export function prefixMatches(p: Prefix, a: Address): boolean {
  if (p.address.family !== a.family) return false;
  const full = p.length >> 3;
  for (let i = 0; i < full; i++) if (p.address.bytes[i] !== a.bytes[i]) return false;
  const rest = p.length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((p.address.bytes[full]! ^ a.bytes[full]!) & mask) === 0;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.address)}/${p.length}`;
}
