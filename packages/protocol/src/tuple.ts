import { type Address, addressEquals, formatAddress, parseAddress } from './address.js';
import { AddressError } from './errors.js';

/**
 * A TCP five-tuple (the protocol number is always 6 and is left implicit).
 * Both addresses have the same family.
 */
export interface FiveTuple {
  readonly src: Address;
  readonly dst: Address;
  readonly sport: number;
  readonly dport: number;
}

/**
 * A session (the end-to-end connection as the end hosts' sockets see it) is
 * named by its five-tuple in the client-to-server direction.
 */
export type SessionTuple = FiveTuple;

/**
 * A subsession is one hop between two consecutive agents, named by its
 * five-tuple in the left-to-right direction: source is the left agent,
 * destination the next element of the chain, ports chosen by the left agent.
 */
export type SubsessionTuple = FiveTuple;

export function tuple(src: Address | string, sport: number, dst: Address | string, dport: number): FiveTuple {
  const s = typeof src === 'string' ? parseAddress(src) : src;
  const d = typeof dst === 'string' ? parseAddress(dst) : dst;
  if (s.family !== d.family) throw new AddressError('a five-tuple mixes IPv4 and IPv6');
  checkPort(sport);
  checkPort(dport);
  return { src: s, dst: d, sport, dport };
}

function checkPort(p: number): void {
  if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new AddressError(`not a port: ${p}`);
}

/** The same connection seen in the other direction. */
export function reverseTuple(t: FiveTuple): FiveTuple {
  return { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
}

export function tupleEquals(a: FiveTuple, b: FiveTuple): boolean {
  return a.sport === b.sport && a.dport === b.dport && addressEquals(a.src, b.src) && addressEquals(a.dst, b.dst);
}

function endpoint(a: Address, port: number): string {
  const text = formatAddress(a);
  return a.family === 6 ? `[${text}]:${port}` : `${text}:${port}`;
}

/** `10.0.0.1:4000>10.0.0.2:80`, `[fd00::1]:4000>[fd00::2]:80`: used as map keys and in logs. */
export function formatTuple(t: FiveTuple): string {
  return `${endpoint(t.src, t.sport)}>${endpoint(t.dst, t.dport)}`;
}

function parseEndpoint(text: string): [Address, number] {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new AddressError(`not an address:port: ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  checkPort(port);
  return [parseAddress(m[1] ?? m[2]!), port];
}

export function parseTuple(text: string): FiveTuple {
  const arrow = text.indexOf('>');
  if (arrow < 0) throw new AddressError(`a tuple is src:port>dst:port, not ${JSON.stringify(text)}`);
  const [src, sport] = parseEndpoint(text.slice(0, arrow));
  const [dst, dport] = parseEndpoint(text.slice(arrow + 1));
  return tuple(src, sport, dst, dport);
}

/**
 * A segment is a contiguous run of subsessions between a left and a right
 * anchor; a reconfiguration replaces it. `chain` lists the agents strictly
 * between the anchors on the old path.
 */
export interface Segment {
  readonly leftAnchor: Address;
  readonly rightAnchor: Address;
}
