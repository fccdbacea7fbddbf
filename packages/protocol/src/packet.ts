import { type Address, type IpFamily } from './address.js';
import { fold, internetChecksum, onesSum } from './checksum.js';
import { PacketError } from './errors.js';
import type { FiveTuple } from './tuple.js';

/**
 * Raw IPv4 and IPv6 TCP packets (no link layer): parsing, building and
 * checksum verification. The reference rewriter and the tests work on the
 * same byte arrays the eBPF data plane sees at its hooks.
 *
 * What counts as TCP. A buffer is *not TCP* (the data plane passes it
 * untouched, `parsePacket` returns `{ kind: 'notTcp' }`) when it is too
 * short for the fixed IP header, its version nibble is neither 4 nor 6, the
 * protocol (IPv4) or the next header of the fixed IPv6 header is not 6, or
 * it is an IPv4 fragment (MF set or a nonzero offset). IPv6 extension
 * headers are never walked: a TCP segment behind one is not TCP here.
 * Anything that *is* TCP by that test and then fails a length check (IHL,
 * total or payload length, data offset) or carries malformed options throws
 * PacketError.
 *
 * Bytes past the IP datagram (IPv4 total length, IPv6 40 + payload length)
 * are link-layer padding: they are not part of the packet and are ignored.
 */

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LENGTH = 40;
export const TCP_HEADER_MIN = 20;
/** TCP options take at most 40 bytes (data offset 15). */
export const TCP_OPTIONS_MAX = 40;
export const IPPROTO_TCP = 6;

/** Option kinds the parser understands. */
export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMPS = 8;
/** TCP Fast Open cookie (RFC 7413), and its experimental predecessor (254 + ExID 0xF989). */
export const TCPOPT_FASTOPEN = 34;
export const TCPOPT_EXPERIMENTAL = 254;
export const TCP_FASTOPEN_EXID = 0xf989;

export interface SackBlock {
  /** First sequence number of the block. */
  readonly left: number;
  /** Sequence number just past the block. */
  readonly right: number;
}

/**
 * One TCP option. `eol` ends the list: every byte after it (normally zero
 * padding) is kept in `padding`, so parsing and building are inverse byte
 * for byte. `unknown` keeps any other kind with its data.
 */
export type TcpOption =
  | { readonly kind: 'eol'; readonly padding?: Uint8Array }
  | { readonly kind: 'nop' }
  | { readonly kind: 'mss'; readonly mss: number }
  | { readonly kind: 'wscale'; readonly shift: number }
  | { readonly kind: 'sackPermitted' }
  | { readonly kind: 'sack'; readonly blocks: readonly SackBlock[] }
  | { readonly kind: 'timestamps'; readonly tsval: number; readonly tsecr: number }
  | { readonly kind: 'unknown'; readonly code: number; readonly data: Uint8Array };

export interface Ipv4Fields {
  readonly tos: number;
  readonly id: number;
  /** The DF bit; the reserved flag bit is kept too. */
  readonly dontFragment: boolean;
  readonly reservedFlag: boolean;
  /** IPv4 header options, a multiple of 4 bytes (IHL - 5 words). */
  readonly options: Uint8Array;
}

export interface Ipv6Fields {
  readonly trafficClass: number;
  readonly flowLabel: number;
}

export interface TcpPacket {
  readonly kind: 'tcp';
  readonly family: IpFamily;
  /** Offset of the TCP header: the IP header length (IHL * 4, or 40). */
  readonly tcpOffset: number;
  /** Length of the IP datagram (header + TCP segment). */
  readonly ipLength: number;
  /** IPv4 TTL or IPv6 hop limit. */
  readonly ttl: number;
  readonly ipv4: Ipv4Fields | undefined;
  readonly ipv6: Ipv6Fields | undefined;
  /** IPv4 header checksum as found (undefined for IPv6). */
  readonly ipChecksum: number | undefined;
  readonly tuple: FiveTuple;
  readonly seq: number;
  readonly ack: number;
  /** TCP header length in bytes (data offset * 4). */
  readonly headerLength: number;
  /** The low nibble of byte 12 (reserved bits and AE/NS), kept as found. */
  readonly reserved: number;
  /** Byte 13: CWR ECE URG ACK PSH RST SYN FIN. */
  readonly flags: number;
  readonly window: number;
  readonly checksum: number;
  readonly urgent: number;
  readonly options: readonly TcpOption[];
  /** Offset of each option from the start of the TCP header (parallel to `options`). */
  readonly optionOffsets: readonly number[];
  /** The TCP payload (a view into the parsed buffer). */
  readonly payload: Uint8Array;
}

export type NotTcpReason = 'notIp' | 'notTcpProtocol' | 'ipv6ExtensionHeader' | 'fragment';

export interface NotTcp {
  readonly kind: 'notTcp';
  readonly reason: NotTcpReason;
}

export type ParsedPacket = TcpPacket | NotTcp;

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function readU16(b: Uint8Array, at: number): number {
  return u16(b, at);
}

export function readU32(b: Uint8Array, at: number): number {
  return u32(b, at);
}

export function writeU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/**
 * Where the TCP segment of an IP packet is, or why there is none. Only the
 * IP layer is checked here; `parsePacket` goes on to the TCP header.
 */
export interface IpView {
  readonly family: IpFamily;
  readonly tcpOffset: number;
  readonly ipLength: number;
}

export function locateTcp(buf: Uint8Array): IpView | NotTcp {
  if (buf.length < 1) return { kind: 'notTcp', reason: 'notIp' };
  const version = buf[0]! >> 4;
  if (version === 4) {
    if (buf.length < IPV4_HEADER_MIN) return { kind: 'notTcp', reason: 'notIp' };
    if (buf[9] !== IPPROTO_TCP) return { kind: 'notTcp', reason: 'notTcpProtocol' };
    const frag = u16(buf, 6);
    if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return { kind: 'notTcp', reason: 'fragment' };
    const ihl = (buf[0]! & 0x0f) * 4;
    if (ihl < IPV4_HEADER_MIN) throw new PacketError(`IPv4 header length ${ihl} < 20`);
    const total = u16(buf, 2);
    if (total > buf.length) throw new PacketError(`IPv4 total length ${total} exceeds the ${buf.length} bytes present`);
    if (total < ihl + TCP_HEADER_MIN) throw new PacketError(`IPv4 total length ${total} leaves no room for a TCP header`);
    return { family: 4, tcpOffset: ihl, ipLength: total };
  }
  if (version === 6) {
    if (buf.length < IPV6_HEADER_LENGTH) return { kind: 'notTcp', reason: 'notIp' };
    if (buf[6] !== IPPROTO_TCP) return { kind: 'notTcp', reason: 'ipv6ExtensionHeader' };
    const payloadLength = u16(buf, 4);
    const total = IPV6_HEADER_LENGTH + payloadLength;
    if (total > buf.length) throw new PacketError(`IPv6 payload length ${payloadLength} exceeds the bytes present`);
    if (payloadLength < TCP_HEADER_MIN) throw new PacketError(`IPv6 payload length ${payloadLength} leaves no room for a TCP header`);
    return { family: 6, tcpOffset: IPV6_HEADER_LENGTH, ipLength: total };
  }
  return { kind: 'notTcp', reason: 'notIp' };
}

/**
 * Parses the option area [start, end) of a TCP header. Throws PacketError on
 * a length byte below 2, an option running past the header, or a known kind
 * with the wrong length (SACK must be 2 + 8n with n >= 1).
 */
export function parseTcpOptions(
  buf: Uint8Array,
  start: number,
  end: number,
  base = start - TCP_HEADER_MIN,
): { options: TcpOption[]; offsets: number[] } {
  const options: TcpOption[] = [];
  const offsets: number[] = [];
  let i = start;
  while (i < end) {
    const kind = buf[i]!;
    offsets.push(i - base);
    if (kind === TCPOPT_EOL) {
      options.push({ kind: 'eol', padding: buf.slice(i + 1, end) });
      return { options, offsets };
    }
    if (kind === TCPOPT_NOP) {
      options.push({ kind: 'nop' });
      i++;
      continue;
    }
    if (i + 1 >= end) throw new PacketError(`TCP option ${kind} at ${i - base} has no length byte`);
    const len = buf[i + 1]!;
    if (len < 2) throw new PacketError(`TCP option ${kind} at ${i - base} has length ${len} < 2`);
    if (i + len > end) throw new PacketError(`TCP option ${kind} at ${i - base} (length ${len}) runs past the header`);
    const want = (n: number, name: string) => {
      if (len !== n) throw new PacketError(`TCP ${name} option has length ${len}, not ${n}`);
    };
    switch (kind) {
      case TCPOPT_MSS:
        want(4, 'MSS');
        options.push({ kind: 'mss', mss: u16(buf, i + 2) });
        break;
      case TCPOPT_WSCALE:
        want(3, 'window scale');
        options.push({ kind: 'wscale', shift: buf[i + 2]! });
        break;
      case TCPOPT_SACK_PERMITTED:
        want(2, 'SACK-permitted');
        options.push({ kind: 'sackPermitted' });
        break;
      case TCPOPT_SACK: {
        if (len < 10 || (len - 2) % 8 !== 0) throw new PacketError(`TCP SACK option has length ${len}, not 2 + 8n`);
        const blocks: SackBlock[] = [];
        for (let j = i + 2; j < i + len; j += 8) blocks.push({ left: u32(buf, j), right: u32(buf, j + 4) });
        options.push({ kind: 'sack', blocks });
        break;
      }
      case TCPOPT_TIMESTAMPS:
        want(10, 'timestamps');
        options.push({ kind: 'timestamps', tsval: u32(buf, i + 2), tsecr: u32(buf, i + 6) });
        break;
      default:
        options.push({ kind: 'unknown', code: kind, data: buf.slice(i + 2, i + len) });
    }
    i += len;
  }
  return { options, offsets };
}

/** Parses an IPv4 or IPv6 TCP packet. Throws PacketError when it is TCP but malformed. */
export function parsePacket(buf: Uint8Array): ParsedPacket {
  const ipv = locateTcp(buf);
  if ('kind' in ipv) return ipv;
  const { family, tcpOffset: t, ipLength } = ipv;
  const alen = family === 4 ? 4 : 16;
  const srcAt = family === 4 ? 12 : 8;
  const src: Address = { family, bytes: buf.slice(srcAt, srcAt + alen) };
  const dst: Address = { family, bytes: buf.slice(srcAt + alen, srcAt + 2 * alen) };
  const headerLength = (buf[t + 12]! >> 4) * 4;
  if (headerLength < TCP_HEADER_MIN) throw new PacketError(`TCP data offset ${headerLength / 4} < 5`);
  if (t + headerLength > ipLength) {
    throw new PacketError(`TCP header length ${headerLength} exceeds the ${ipLength - t}-byte segment`);
  }
  const { options, offsets } = parseTcpOptions(buf, t + TCP_HEADER_MIN, t + headerLength, t);
  let ipv4: Ipv4Fields | undefined;
  let ipv6: Ipv6Fields | undefined;
  if (family === 4) {
    const frag = u16(buf, 6);
    ipv4 = {
      tos: buf[1]!,
      id: u16(buf, 4),
      dontFragment: (frag & 0x4000) !== 0,
      reservedFlag: (frag & 0x8000) !== 0,
      options: buf.slice(IPV4_HEADER_MIN, t),
    };
  } else {
    ipv6 = {
      trafficClass: ((buf[0]! & 0x0f) << 4) | (buf[1]! >> 4),
      flowLabel: ((buf[1]! & 0x0f) << 16) | u16(buf, 2),
    };
  }
  return {
    kind: 'tcp',
    family,
    tcpOffset: t,
    ipLength,
    ttl: family === 4 ? buf[8]! : buf[7]!,
    ipv4,
    ipv6,
    ipChecksum: family === 4 ? u16(buf, 10) : undefined,
    tuple: { src, dst, sport: u16(buf, t), dport: u16(buf, t + 2) },
    seq: u32(buf, t + 4),
    ack: u32(buf, t + 8),
    headerLength,
    reserved: buf[t + 12]! & 0x0f,
    flags: buf[t + 13]!,
    window: u16(buf, t + 14),
    checksum: u16(buf, t + 16),
    urgent: u16(buf, t + 18),
    options,
    optionOffsets: offsets,
    payload: buf.subarray(t + headerLength, ipLength),
  };
}

/** Parses a packet that must be TCP (tests, simulator). Throws PacketError otherwise. */
export function parseTcpPacket(buf: Uint8Array): TcpPacket {
  const p = parsePacket(buf);
  if (p.kind !== 'tcp') throw new PacketError(`not a TCP packet (${p.reason})`);
  return p;
}

/** Encoded length of one option. */
export function tcpOptionLength(o: TcpOption): number {
  switch (o.kind) {
    case 'eol':
      return 1 + (o.padding?.length ?? 0);
    case 'nop':
      return 1;
    case 'mss':
      return 4;
    case 'wscale':
      return 3;
    case 'sackPermitted':
      return 2;
    case 'sack':
      return 2 + 8 * o.blocks.length;
    case 'timestamps':
      return 10;
    case 'unknown':
      return 2 + o.data.length;
  }
}

/**
 * Encodes an option list, zero-padded (EOL bytes) to a multiple of 4.
 * Throws PacketError when the result exceeds 40 bytes or an option cannot
 * be encoded (SACK without blocks, unknown option longer than 255 bytes).
 */
export function encodeTcpOptions(options: readonly TcpOption[]): Uint8Array {
  let len = 0;
  for (const o of options) len += tcpOptionLength(o);
  const padded = (len + 3) & ~3;
  if (padded > TCP_OPTIONS_MAX) throw new PacketError(`TCP options need ${padded} bytes, at most 40 fit`);
  const out = new Uint8Array(padded);
  let i = 0;
  for (const o of options) {
    switch (o.kind) {
      case 'eol':
        out[i] = TCPOPT_EOL;
        if (o.padding) out.set(o.padding, i + 1);
        break;
      case 'nop':
        out[i] = TCPOPT_NOP;
        break;
      case 'mss':
        out[i] = TCPOPT_MSS;
        out[i + 1] = 4;
        writeU16(out, i + 2, o.mss);
        break;
      case 'wscale':
        out[i] = TCPOPT_WSCALE;
        out[i + 1] = 3;
        out[i + 2] = o.shift;
        break;
      case 'sackPermitted':
        out[i] = TCPOPT_SACK_PERMITTED;
        out[i + 1] = 2;
        break;
      case 'sack':
        if (o.blocks.length === 0) throw new PacketError('a SACK option needs at least one block');
        out[i] = TCPOPT_SACK;
        out[i + 1] = 2 + 8 * o.blocks.length;
        o.blocks.forEach((b, j) => {
          writeU32(out, i + 2 + 8 * j, b.left);
          writeU32(out, i + 6 + 8 * j, b.right);
        });
        break;
      case 'timestamps':
        out[i] = TCPOPT_TIMESTAMPS;
        out[i + 1] = 10;
        writeU32(out, i + 2, o.tsval);
        writeU32(out, i + 6, o.tsecr);
        break;
      case 'unknown':
        if (o.code === TCPOPT_EOL || o.code === TCPOPT_NOP) throw new PacketError(`option kind ${o.code} has no length`);
        out[i] = o.code;
        out[i + 1] = 2 + o.data.length;
        out.set(o.data, i + 2);
        break;
    }
    i += tcpOptionLength(o);
  }
  return out;
}

/** Everything needed to build a packet; `packetSpec` gives it back for a parsed one. */
export interface TcpPacketSpec {
  readonly tuple: FiveTuple;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly options?: readonly TcpOption[];
  readonly payload?: Uint8Array;
  /** TTL or hop limit, 64 by default. */
  readonly ttl?: number;
  readonly urgent?: number;
  /** Low nibble of TCP byte 12. */
  readonly reserved?: number;
  /** IPv4 fields; defaults: tos 0, id 0, DF set, no options. */
  readonly ipv4?: Partial<Ipv4Fields>;
  /** IPv6 fields; defaults 0. */
  readonly ipv6?: Partial<Ipv6Fields>;
}

/** Builds a packet with correct IPv4 header and TCP checksums. Throws PacketError on impossible specs. */
export function buildTcpPacket(spec: TcpPacketSpec): Uint8Array {
  const { tuple: t } = spec;
  const family = t.src.family;
  if (t.dst.family !== family) throw new PacketError('source and destination families differ');
  const alen = family === 4 ? 4 : 16;
  if (t.src.bytes.length !== alen || t.dst.bytes.length !== alen) throw new PacketError('address length does not match its family');
  const opts = encodeTcpOptions(spec.options ?? []);
  const payload = spec.payload ?? new Uint8Array(0);
  const ipOptions = family === 4 ? (spec.ipv4?.options ?? new Uint8Array(0)) : new Uint8Array(0);
  if (ipOptions.length % 4 !== 0 || ipOptions.length > 40) throw new PacketError('IPv4 options must be a multiple of 4, at most 40 bytes');
  const ipHeader = family === 4 ? IPV4_HEADER_MIN + ipOptions.length : IPV6_HEADER_LENGTH;
  const tcpHeader = TCP_HEADER_MIN + opts.length;
  const total = ipHeader + tcpHeader + payload.length;
  if (family === 4 ? total > 0xffff : total - IPV6_HEADER_LENGTH > 0xffff) throw new PacketError('packet too long');
  const b = new Uint8Array(total);
  const ttl = spec.ttl ?? 64;
  if (family === 4) {
    const v4 = spec.ipv4 ?? {};
    b[0] = 0x40 | (ipHeader / 4);
    b[1] = v4.tos ?? 0;
    writeU16(b, 2, total);
    writeU16(b, 4, v4.id ?? 0);
    writeU16(b, 6, ((v4.dontFragment ?? true) ? 0x4000 : 0) | (v4.reservedFlag ? 0x8000 : 0));
    b[8] = ttl;
    b[9] = IPPROTO_TCP;
    b.set(t.src.bytes, 12);
    b.set(t.dst.bytes, 16);
    b.set(ipOptions, 20);
  } else {
    const v6 = spec.ipv6 ?? {};
    const tc = v6.trafficClass ?? 0;
    const fl = v6.flowLabel ?? 0;
    b[0] = 0x60 | (tc >> 4);
    b[1] = ((tc & 0x0f) << 4) | ((fl >> 16) & 0x0f);
    writeU16(b, 2, fl & 0xffff);
    writeU16(b, 4, total - IPV6_HEADER_LENGTH);
    b[6] = IPPROTO_TCP;
    b[7] = ttl;
    b.set(t.src.bytes, 8);
    b.set(t.dst.bytes, 24);
  }
  const o = ipHeader;
  writeU16(b, o, t.sport);
  writeU16(b, o + 2, t.dport);
  writeU32(b, o + 4, spec.seq >>> 0);
  writeU32(b, o + 8, spec.ack >>> 0);
  b[o + 12] = ((tcpHeader / 4) << 4) | ((spec.reserved ?? 0) & 0x0f);
  b[o + 13] = spec.flags & 0xff;
  writeU16(b, o + 14, spec.window);
  writeU16(b, o + 18, spec.urgent ?? 0);
  b.set(opts, o + TCP_HEADER_MIN);
  b.set(payload, o + tcpHeader);
  fillChecksums(b);
  return b;
}

/** The spec that rebuilds `p` (checksums are recomputed by the builder). */
export function packetSpec(p: TcpPacket): TcpPacketSpec {
  return {
    tuple: p.tuple,
    seq: p.seq,
    ack: p.ack,
    flags: p.flags,
    window: p.window,
    options: p.options,
    payload: Uint8Array.from(p.payload),
    ttl: p.ttl,
    urgent: p.urgent,
    reserved: p.reserved,
    ...(p.ipv4 ? { ipv4: p.ipv4 } : {}),
    ...(p.ipv6 ? { ipv6: p.ipv6 } : {}),
  };
}

/** One's-complement sum of the TCP pseudo-header for a segment of `tcpLength` bytes. */
function pseudoHeaderSum(buf: Uint8Array, family: IpFamily, tcpLength: number): number {
  if (family === 4) return onesSum(buf, IPPROTO_TCP + tcpLength, 12, 20);
  // Upper-layer length is 32 bits; its high half is zero for anything that fits a payload length.
  return onesSum(buf, IPPROTO_TCP + (tcpLength >>> 16) + (tcpLength & 0xffff), 8, 40);
}

/**
 * Recomputes the IPv4 header checksum and the TCP checksum of a packet in
 * place, from scratch (used where a length changed and by the builder).
 * The packet must pass `locateTcp`.
 */
export function fillChecksums(buf: Uint8Array): void {
  const v = locateTcp(buf);
  if ('kind' in v) throw new PacketError(`not a TCP packet (${v.reason})`);
  const t = v.tcpOffset;
  if (v.family === 4) {
    writeU16(buf, 10, 0);
    writeU16(buf, 10, internetChecksum(buf, 0, 0, t));
  }
  writeU16(buf, t + 16, 0);
  const tcpLength = v.ipLength - t;
  writeU16(buf, t + 16, internetChecksum(buf, pseudoHeaderSum(buf, v.family, tcpLength), t, v.ipLength));
}

export interface ChecksumReport {
  /** IPv4 header checksum correct (always true for IPv6, which has none). */
  readonly ip: boolean;
  readonly tcp: boolean;
}

/**
 * Checks the IPv4 header and TCP checksums by summing everything, the
 * checksum fields included: a correct packet sums to 0xffff. Written
 * independently of the incremental updates it is used to check.
 */
export function checkChecksums(pkt: Uint8Array): ChecksumReport {
  const version = pkt[0]! >> 4;
  if (version === 4) {
    const ihl = (pkt[0]! & 0x0f) * 4;
    const total = (pkt[2]! << 8) | pkt[3]!;
    const ipOk = fold(onesSum(pkt, 0, 0, ihl)) === 0xffff;
    let pseudo = 0;
    for (let i = 12; i < 20; i += 2) pseudo += (pkt[i]! << 8) | pkt[i + 1]!;
    pseudo += 6 + (total - ihl);
    const tcpOk = fold(onesSum(pkt, pseudo, ihl, total)) === 0xffff;
    return { ip: ipOk, tcp: tcpOk };
  }
  if (version === 6) {
    const plen = (pkt[4]! << 8) | pkt[5]!;
    let pseudo = 0;
    for (let i = 8; i < 40; i += 2) pseudo += (pkt[i]! << 8) | pkt[i + 1]!;
    pseudo += 6 + plen;
    return { ip: true, tcp: fold(onesSum(pkt, pseudo, 40, 40 + plen)) === 0xffff };
  }
  throw new PacketError('not an IP packet');
}

/** True when both checksums are correct. */
export function verifyChecksums(pkt: Uint8Array): boolean {
  const r = checkChecksums(pkt);
  return r.ip && r.tcp;
}

/** Payload length plus one for each of SYN and FIN: the sequence space a segment occupies. */
export function segmentLength(p: Pick<TcpPacket, 'flags' | 'payload'>): number {
  return p.payload.length + (p.flags & TCP_SYN ? 1 : 0) + (p.flags & TCP_FIN ? 1 : 0);
}

/** The first option of a kind, with its offset from the TCP header start. */
export function findOption<K extends TcpOption['kind']>(
  p: TcpPacket,
  kind: K,
): { option: Extract<TcpOption, { kind: K }>; offset: number } | undefined {
  for (let i = 0; i < p.options.length; i++) {
    const o = p.options[i]!;
    if (o.kind === kind) return { option: o as Extract<TcpOption, { kind: K }>, offset: p.optionOffsets[i]! };
  }
  return undefined;
}

/** True for a SYN that already carries data or a Fast Open option (it is not steered). */
export function hasFastOpen(p: TcpPacket): boolean {
  if (p.payload.length > 0) return true;
  return p.options.some(
    (o) =>
      o.kind === 'unknown' &&
      (o.code === TCPOPT_FASTOPEN || (o.code === TCPOPT_EXPERIMENTAL && o.data.length >= 2 && u16(o.data, 0) === TCP_FASTOPEN_EXID)),
  );
}
