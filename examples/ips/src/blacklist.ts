/**
 * Address and port blacklists. A connection is blacklisted when either of
 * its ends has a listed address (a host or a prefix) or a listed port (a
 * port or a range): the lists say whom not to talk to, whichever side
 * opened the connection.
 */
import { type Address, type FiveTuple, formatAddress, parseAddress } from '@dysco/protocol';

export interface Prefix {
  readonly address: Address;
  readonly length: number;
  /** As written in the configuration, for the logs. */
  readonly text: string;
}

export interface PortRange {
  readonly low: number;
  readonly high: number;
  readonly text: string;
}

export interface BlacklistSpec {
  /** `10.0.0.1`, `192.0.2.0/24`, `2001:db8::/32`... */
  readonly addresses?: readonly string[];
  /** `23`, `"6660-6669"`... */
  readonly ports?: readonly (number | string)[];
}

export class BlacklistError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlacklistError';
  }
}

/** Parses `ADDR` or `ADDR/LEN`; the address is masked to the prefix. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let address: Address;
  try {
    address = parseAddress(addrText.trim());
  } catch {
    throw new BlacklistError(`not an address or prefix: ${JSON.stringify(text)}`);
  }
  const max = address.family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) throw new BlacklistError(`prefix length of ${JSON.stringify(text)} must be 0..${max}`);
    length = Number(l);
  }
  const bytes = new Uint8Array(address.bytes);
  for (let bit = length; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { address: { family: address.family, bytes }, length, text: length === max ? formatAddress(address) : `${formatAddress({ family: address.family, bytes })}/${length}` };
}

/** Parses `PORT` or `LOW-HIGH` (or a number). */
export function parsePortRange(v: number | string): PortRange {
  const text = String(v).trim();
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text);
  if (!m) throw new BlacklistError(`not a port or port range: ${JSON.stringify(v)}`);
  const low = Number(m[1]);
  const high = m[2] !== undefined ? Number(m[2]) : low;
  if (low < 1 || high > 65535 || low > high) throw new BlacklistError(`port range ${JSON.stringify(v)} must be within 1..65535, low <= high`);
  return { low, high, text: low === high ? String(low) : `${low}-${high}` };
}

export function prefixContains(p: Prefix, a: Address): boolean {
  if (p.address.family !== a.family) return false;
  const full = p.length >> 3;
  for (let i = 0; i < full; i++) if (p.address.bytes[i] !== a.bytes[i]) return false;
  const rest = p.length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (p.address.bytes[full]! & mask) === (a.bytes[full]! & mask);
}

/** Why a connection is blacklisted: the entry and which end matched it. */
export interface BlacklistHit {
  readonly entry: string;
  readonly kind: 'address' | 'port';
  readonly end: 'source' | 'destination';
}

export class Blacklist {
  readonly prefixes: readonly Prefix[];
  readonly ports: readonly PortRange[];

  constructor(spec: BlacklistSpec = {}) {
    this.prefixes = (spec.addresses ?? []).map(parsePrefix);
    this.ports = (spec.ports ?? []).map(parsePortRange);
  }

  get empty(): boolean {
    return this.prefixes.length === 0 && this.ports.length === 0;
  }

  /** The first entry either end of the connection matches, addresses first; undefined when none does. */
  match(t: FiveTuple): BlacklistHit | undefined {
    for (const p of this.prefixes) {
      if (prefixContains(p, t.src)) return { entry: p.text, kind: 'address', end: 'source' };
      if (prefixContains(p, t.dst)) return { entry: p.text, kind: 'address', end: 'destination' };
    }
    for (const r of this.ports) {
      if (t.sport >= r.low && t.sport <= r.high) return { entry: r.text, kind: 'port', end: 'source' };
      if (t.dport >= r.low && t.dport <= r.high) return { entry: r.text, kind: 'port', end: 'destination' };
    }
    return undefined;
  }
}
