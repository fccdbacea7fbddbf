/**
 * Decoding of captured frames down to the TCP segment: Ethernet (with
 * 802.1Q tags), Linux cooked capture and raw IP link types; IPv4 and IPv6;
 * the TCP header. The payload length comes from the IP header, not from
 * the captured length, so Ethernet padding is never taken for data and a
 * capture that cut the packet short is recognized.
 */
import type { Address, FiveTuple } from '@dysco/protocol';

export type LinkType = 'ETHERNET' | 'LINKTYPE_LINUX_SLL' | 'RAW';

export interface TcpSegment {
  readonly tuple: FiveTuple;
  readonly seq: number;
  readonly ack: number;
  readonly syn: boolean;
  readonly fin: boolean;
  readonly rst: boolean;
  /** The captured payload: a view of the capture buffer, valid until the next packet. */
  readonly payload: Uint8Array;
  /** The payload's length according to the IP header (more than `payload.length` when the capture was truncated). */
  readonly wireLength: number;
}

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = [0x8100, 0x88a8, 0x9100];
const PROTO_TCP = 6;

const u16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const u32 = (b: Uint8Array, i: number) => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;

/** Offset and ethertype of the network header, or undefined for frames that are not IP. */
function linkHeader(frame: Uint8Array, len: number, link: LinkType): { at: number; type: number } | undefined {
  switch (link) {
    case 'ETHERNET': {
      if (len < 14) return undefined;
      let at = 12;
      let type = u16(frame, at);
      while (ETH_VLAN.includes(type)) {
        at += 4;
        if (len < at + 2) return undefined;
        type = u16(frame, at);
      }
      return { at: at + 2, type };
    }
    case 'LINKTYPE_LINUX_SLL':
      if (len < 16) return undefined;
      return { at: 16, type: u16(frame, 14) };
    case 'RAW': {
      if (len < 1) return undefined;
      const v = frame[0]! >> 4;
      return { at: 0, type: v === 4 ? ETH_IPV4 : v === 6 ? ETH_IPV6 : 0 };
    }
  }
}

/**
 * The TCP segment in the first `len` bytes of `frame`, or undefined when the
 * frame is not a TCP segment this decoder can read (another protocol, an IP
 * fragment other than the first, a header cut short by the capture).
 */
export function decodeTcp(frame: Uint8Array, len: number, link: LinkType): TcpSegment | undefined {
  const l = linkHeader(frame, len, link);
  if (!l) return undefined;
  let at = l.at;
  let src: Address;
  let dst: Address;
  let ipEnd: number; // end of the IP packet in the frame, as its header says
  if (l.type === ETH_IPV4) {
    if (len < at + 20 || frame[at]! >> 4 !== 4) return undefined;
    const ihl = (frame[at]! & 0x0f) * 4;
    if (ihl < 20 || len < at + ihl) return undefined;
    const total = u16(frame, at + 2);
    const frag = u16(frame, at + 6);
    if ((frag & 0x1fff) !== 0 || (frag & 0x2000) !== 0) return undefined; // fragments: not reassembled here
    if (frame[at + 9] !== PROTO_TCP || total < ihl) return undefined;
    src = { family: 4, bytes: frame.slice(at + 12, at + 16) };
    dst = { family: 4, bytes: frame.slice(at + 16, at + 20) };
    ipEnd = at + total;
    at += ihl;
  } else if (l.type === ETH_IPV6) {
    if (len < at + 40 || frame[at]! >> 4 !== 6) return undefined;
    const payloadLen = u16(frame, at + 4);
    let next = frame[at + 6]!;
    src = { family: 6, bytes: frame.slice(at + 8, at + 24) };
    dst = { family: 6, bytes: frame.slice(at + 24, at + 40) };
    ipEnd = at + 40 + payloadLen;
    at += 40;
    // hop-by-hop, routing and destination options headers; a fragment header ends the search
    while (next === 0 || next === 43 || next === 60) {
      if (len < at + 2) return undefined;
      next = frame[at]!;
      at += (frame[at + 1]! + 1) * 8;
    }
    if (next !== PROTO_TCP) return undefined;
  } else return undefined;
  if (len < at + 20) return undefined;
  const dataOff = (frame[at + 12]! >> 4) * 4;
  if (dataOff < 20 || len < at + dataOff || ipEnd < at + dataOff) return undefined;
  const flags = frame[at + 13]!;
  const start = at + dataOff;
  const wireLength = ipEnd - start;
  return {
    tuple: { src, dst, sport: u16(frame, at), dport: u16(frame, at + 2) },
    seq: u32(frame, at + 4),
    ack: u32(frame, at + 8),
    fin: (flags & 0x01) !== 0,
    syn: (flags & 0x02) !== 0,
    rst: (flags & 0x04) !== 0,
    payload: frame.subarray(start, Math.min(ipEnd, len)),
    wireLength,
  };
}
