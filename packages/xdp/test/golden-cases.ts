/**
 * Golden cases: fixed tables and packets whose expected outputs are written
 * down in golden.test.ts, byte for byte. They pin the behaviour of both the
 * reference and the kernel, so a change of either shows as a failing vector.
 */
import {
  type Address,
  SessionTable,
  TCP_ACK,
  TCP_SYN,
  buildTcpPacket,
  encodeSynMetadata,
  ip,
  plainRewrite,
  reverseTuple,
  tuple,
} from '@dysco/protocol';
import type { Prepared } from './syn-cases.js';

const ts = { kind: 'timestamps', tsval: 1000, tsecr: 2000 } as const;

function prepared(
  direction: 'egress' | 'ingress',
  family: 4 | 6,
  makeTable: () => SessionTable,
  packet: Uint8Array,
  localAddresses: Address[] = [],
): Prepared {
  return { direction, family, makeTable, packet, localAddresses, ports: { low: 61000, high: 65535, seed: 5 }, seed: 9, checksumComplete: false };
}

const s4 = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
const sub4 = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
const s6 = tuple('2001:db8::1', 40000, '2001:db8::2', 443);
const sub6 = tuple('2001:db8::1', 61001, '2001:db8::10', 61001);
const deltas = { seqDelta: 1000, ackDelta: 0xfffffc18, tsvalDelta: 7, tsecrDelta: 0xfffffff9, wsFrom: 7, wsTo: 5 };

export const GOLDEN: Record<string, Prepared> = {
  'IPv4 egress, deltas, window, SACK and timestamps': prepared(
    'egress',
    4,
    () => {
      const t = new SessionTable();
      t.installEgress({ key: s4, old: { ...plainRewrite(sub4), ...deltas }, twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0 });
      return t;
    },
    buildTcpPacket({
      tuple: s4, seq: 5000, ack: 9000, flags: TCP_ACK | 0x08, window: 1000,
      options: [{ kind: 'nop' }, { kind: 'nop' }, ts, { kind: 'sack', blocks: [{ left: 9500, right: 9600 }] }],
      payload: new TextEncoder().encode('GET / HTTP/1.1\r\n'),
    }),
  ),
  'IPv6 ingress, deltas': prepared(
    'ingress',
    6,
    () => {
      const t = new SessionTable();
      t.installIngress({ key: reverseTuple(sub6), rewrite: { ...plainRewrite(reverseTuple(s6)), ...deltas }, path: 'old', egressKey: s6, packets: 0, bytes: 0, lastSeen: 0 });
      return t;
    },
    buildTcpPacket({ tuple: reverseTuple(sub6), seq: 7000, ack: 5016, flags: TCP_ACK, window: 2000, options: [{ kind: 'nop' }, { kind: 'nop' }, ts], payload: new Uint8Array(100).fill(0x61) }),
  ),
  'IPv4 two paths: data, ack and SACK on the new path': prepared(
    'egress',
    4,
    () => {
      const t = new SessionTable();
      t.installEgress({ key: s4, old: plainRewrite(sub4), twoPath: undefined, sndHigh: 4000, packets: 0, bytes: 0, lastSeen: 0 });
      t.enterTwoPath(s4, plainRewrite(tuple('10.0.0.1', 61002, '10.0.0.11', 61002)), 4000);
      t.getEgress(s4)!.twoPath!.newPathMinSeq = 12000;
      return t;
    },
    buildTcpPacket({ tuple: s4, seq: 4500, ack: 13000, flags: TCP_ACK, window: 500, options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [{ left: 11500, right: 12500 }] }], payload: new Uint8Array(10) }),
  ),
  'IPv4 SYN steered at the originator': prepared(
    'egress',
    4,
    () => {
      const t = new SessionTable();
      t.setPolicies([{ id: 3, dport: [80, 80], chain: [ip('10.0.0.10')] }]);
      return t;
    },
    buildTcpPacket({ tuple: s4, seq: 100, ack: 0, flags: TCP_SYN, window: 64240, options: [{ kind: 'mss', mss: 1460 }, { kind: 'sackPermitted' }, ts, { kind: 'nop' }, { kind: 'wscale', shift: 7 }] }),
    [ip('10.0.0.1')],
  ),
  'IPv4 SYN at a middlebox: metadata stripped, NAT tag inserted': prepared(
    'ingress',
    4,
    () => new SessionTable(),
    buildTcpPacket({ tuple: sub4, seq: 100, ack: 0, flags: TCP_SYN, window: 64240, options: [{ kind: 'mss', mss: 1460 }], payload: encodeSynMetadata({ session: s4, chain: [ip('10.0.0.20'), s4.dst] }) }),
    [ip('10.0.0.10')],
  ),
  'IPv6 SYN at the last hop: metadata stripped': prepared(
    'ingress',
    6,
    () => new SessionTable(),
    buildTcpPacket({ tuple: sub6, seq: 100, ack: 0, flags: TCP_SYN, window: 64240, payload: encodeSynMetadata({ session: s6, chain: [] }) }),
    [ip('2001:db8::10')],
  ),
};

/** Packets that must be dropped and counted, never rewritten. */
export const REJECTED: Record<string, { prepared: Prepared; counter: string }> = {
  'TCP option with length 1': {
    prepared: prepared('ingress', 4, () => new SessionTable(), (() => {
      const p = buildTcpPacket({ tuple: s4, seq: 1, ack: 1, flags: TCP_ACK, window: 1, options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }] });
      p[20 + 20] = 8; // timestamps kind
      p[20 + 21] = 1; // with length 1
      return p;
    })()),
    counter: 'malformedPacket',
  },
  'IPv4 total length beyond the packet': {
    prepared: prepared('egress', 4, () => new SessionTable(), (() => {
      const p = buildTcpPacket({ tuple: s4, seq: 1, ack: 1, flags: TCP_ACK, window: 1 });
      p[2] = 0x05; // total length 1280+
      return p;
    })()),
    counter: 'malformedPacket',
  },
  'SYN metadata of an unknown version': {
    prepared: prepared('ingress', 4, () => new SessionTable(), (() => {
      const meta = encodeSynMetadata({ session: s4, chain: [s4.dst] });
      return buildTcpPacket({ tuple: sub4, seq: 1, ack: 0, flags: TCP_SYN, window: 1, payload: Uint8Array.from(meta, (b, i) => (i === 5 ? 0x80 : b)) });
    })(), [ip('10.0.0.10')]),
    counter: 'malformedMetadata',
  },
  'SYN metadata with a chain of nine': {
    prepared: prepared('ingress', 4, () => new SessionTable(), buildTcpPacket({
      tuple: sub4, seq: 1, ack: 0, flags: TCP_SYN, window: 1,
      payload: encodeSynMetadata({ session: s4, chain: [...Array.from({ length: 8 }, (_, i) => ip(`10.0.1.${i + 1}`)), s4.dst] }),
    }), [ip('10.0.0.10')]),
    counter: 'chainTooLong',
  },
  'SYN metadata whose chain does not end at the destination': {
    prepared: prepared('ingress', 4, () => new SessionTable(), buildTcpPacket({
      tuple: sub4, seq: 1, ack: 0, flags: TCP_SYN, window: 1, payload: encodeSynMetadata({ session: s4, chain: [ip('10.0.0.20')] }),
    }), [ip('10.0.0.10')]),
    counter: 'malformedMetadata',
  },
  'a straggler to a subsession port nothing maps': {
    prepared: prepared('ingress', 4, () => new SessionTable(), buildTcpPacket({
      tuple: sub4, seq: 77, ack: 88, flags: TCP_ACK, window: 100, payload: Uint8Array.of(1, 2, 3),
    }), [ip('10.0.0.10')]),
    counter: 'staleSubsession',
  },
};
