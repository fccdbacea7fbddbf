import t from 'tap';
import fc from 'fast-check';
import {
  PacketError,
  TCP_ACK,
  TCP_SYN,
  type TcpOption,
  type TcpPacketSpec,
  buildTcpPacket,
  checkChecksums,
  encodeTcpOptions,
  hasFastOpen,
  ip,
  packetSpec,
  parsePacket,
  parseTcpPacket,
  tuple,
  verifyChecksums,
} from '@dysco/protocol';

const v4 = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
const v6 = tuple('fd00::1', 40000, 'fd00::2:1', 443);

const everyOption: TcpOption[] = [
  { kind: 'mss', mss: 1460 },
  { kind: 'nop' },
  { kind: 'wscale', shift: 7 },
  { kind: 'sackPermitted' },
  { kind: 'timestamps', tsval: 0xdeadbeef, tsecr: 7 },
  { kind: 'unknown', code: 253, data: Uint8Array.of(0x44, 0x59, 0, 0, 0, 9) },
  { kind: 'eol', padding: new Uint8Array(3) },
];

function stripForCompare(o: TcpOption): unknown {
  return o.kind === 'unknown' ? { ...o, data: [...o.data] } : o.kind === 'eol' ? { kind: 'eol', padding: [...(o.padding ?? [])] } : o;
}

t.test('build and parse round trip, IPv4 and IPv6, every option kind', async (t) => {
  for (const tup of [v4, v6]) {
    const spec: TcpPacketSpec = {
      tuple: tup,
      seq: 0xfffffff0,
      ack: 12345,
      flags: TCP_SYN | TCP_ACK,
      window: 65535,
      options: everyOption,
      payload: Uint8Array.of(1, 2, 3),
      ttl: 17,
    };
    const b = buildTcpPacket(spec);
    t.ok(verifyChecksums(b), 'checksums valid');
    const p = parseTcpPacket(b);
    t.equal(p.family, tup.src.family);
    t.equal(p.ttl, 17);
    t.same(p.tuple, tup);
    t.equal(p.seq, 0xfffffff0);
    t.equal(p.ack, 12345);
    t.equal(p.flags, TCP_SYN | TCP_ACK);
    t.equal(p.window, 65535);
    t.equal(p.headerLength, 20 + 4 + 1 + 3 + 2 + 10 + 8 + 4);
    t.same(p.options.map(stripForCompare), everyOption.map(stripForCompare));
    t.same([...p.payload], [1, 2, 3]);
    t.same(buildTcpPacket(packetSpec(p)), b, 'rebuilding the parsed packet gives the same bytes');
  }
  const sack: TcpOption[] = [
    { kind: 'nop' },
    { kind: 'nop' },
    { kind: 'sack', blocks: [1, 2, 3, 4].map((i) => ({ left: i * 1000, right: i * 1000 + 500 })) },
  ];
  const b = buildTcpPacket({ tuple: v6, seq: 1, ack: 2, flags: TCP_ACK, window: 9, options: sack });
  t.same(parseTcpPacket(b).options, sack, 'four SACK blocks');
  t.equal(parseTcpPacket(b).optionOffsets[2], 22);
});

t.test('IPv4 options, TOS, id, DF and IPv6 traffic class/flow label survive', async (t) => {
  const b = buildTcpPacket({
    tuple: v4,
    seq: 1,
    ack: 0,
    flags: TCP_SYN,
    window: 1,
    ipv4: { tos: 0xb8, id: 0x1234, dontFragment: false, options: Uint8Array.of(1, 1, 1, 0) },
  });
  const p = parseTcpPacket(b);
  t.equal(p.tcpOffset, 24);
  t.same(p.ipv4, { tos: 0xb8, id: 0x1234, dontFragment: false, reservedFlag: false, options: Uint8Array.of(1, 1, 1, 0) });
  t.ok(verifyChecksums(b));
  t.same(buildTcpPacket(packetSpec(p)), b);
  const b6 = buildTcpPacket({ tuple: v6, seq: 1, ack: 0, flags: TCP_SYN, window: 1, ipv6: { trafficClass: 0xa5, flowLabel: 0xabcde } });
  const p6 = parseTcpPacket(b6);
  t.same(p6.ipv6, { trafficClass: 0xa5, flowLabel: 0xabcde });
  t.same(buildTcpPacket(packetSpec(p6)), b6);
});

t.test('trailing link-layer padding is not part of the packet', async (t) => {
  const b = buildTcpPacket({ tuple: v4, seq: 1, ack: 2, flags: TCP_ACK, window: 3 });
  const padded = new Uint8Array(b.length + 6);
  padded.set(b);
  const p = parseTcpPacket(padded);
  t.equal(p.ipLength, b.length);
  t.equal(p.payload.length, 0);
  t.ok(verifyChecksums(padded));
});

t.test('not TCP: passed through by the data plane, never misparsed', async (t) => {
  const b = buildTcpPacket({ tuple: v4, seq: 1, ack: 2, flags: TCP_ACK, window: 3, payload: Uint8Array.of(9) });
  const udp = Uint8Array.from(b);
  udp[9] = 17;
  t.same(parsePacket(udp), { kind: 'notTcp', reason: 'notTcpProtocol' });
  const mf = Uint8Array.from(b);
  mf[6] = 0x20;
  t.same(parsePacket(mf), { kind: 'notTcp', reason: 'fragment' });
  const off = Uint8Array.from(b);
  off[7] = 1;
  t.same(parsePacket(off), { kind: 'notTcp', reason: 'fragment' });
  const b6 = buildTcpPacket({ tuple: v6, seq: 1, ack: 2, flags: TCP_ACK, window: 3 });
  const ext = Uint8Array.from(b6);
  ext[6] = 0; // hop-by-hop options header
  t.same(parsePacket(ext), { kind: 'notTcp', reason: 'ipv6ExtensionHeader' });
  t.same(parsePacket(new Uint8Array(0)), { kind: 'notTcp', reason: 'notIp' });
  t.same(parsePacket(b.subarray(0, 19)), { kind: 'notTcp', reason: 'notIp' });
  t.same(parsePacket(b6.subarray(0, 39)), { kind: 'notTcp', reason: 'notIp' });
  const v5 = Uint8Array.from(b);
  v5[0] = 0x55;
  t.same(parsePacket(v5), { kind: 'notTcp', reason: 'notIp' });
  t.throws(() => parseTcpPacket(udp), PacketError);
});

function optionBytes(bytes: number[]): Uint8Array {
  // A packet whose option area is exactly `bytes` (zero-padded to a multiple of 4).
  const area = new Uint8Array((bytes.length + 3) & ~3);
  area.set(bytes);
  const base = buildTcpPacket({ tuple: v4, seq: 1, ack: 2, flags: TCP_ACK, window: 3, options: [{ kind: 'unknown', code: 99, data: new Uint8Array(area.length - 2) }] });
  base.set(area, 40);
  return base;
}

t.test('malformed TCP throws PacketError', async (t) => {
  const good = buildTcpPacket({ tuple: v4, seq: 1, ack: 2, flags: TCP_ACK, window: 3, payload: Uint8Array.of(1, 2, 3, 4) });
  const mutate = (f: (b: Uint8Array) => void) => {
    const b = Uint8Array.from(good);
    f(b);
    return b;
  };
  const cases: [string, Uint8Array][] = [
    ['IHL < 5', mutate((b) => (b[0] = 0x44))],
    ['total length beyond the buffer', mutate((b) => (b[3] = b[3]! + 1))],
    ['total length without room for TCP', mutate((b) => ((b[2] = 0), (b[3] = 30)))],
    ['buffer truncated', good.subarray(0, good.length - 1)],
    ['data offset < 5', mutate((b) => (b[32] = 0x40))],
    ['data offset beyond the segment', mutate((b) => (b[32] = 0xf0))],
    ['option length 0', optionBytes([99, 0])],
    ['option length 1', optionBytes([99, 1, 0, 0])],
    ['option runs past the header', optionBytes([99, 6, 0, 0])],
    ['option without length byte', optionBytes([1, 1, 1, 99])],
    ['MSS of length 3', optionBytes([2, 3, 0, 1])],
    ['window scale of length 4', optionBytes([3, 4, 0, 1])],
    ['SACK-permitted of length 3', optionBytes([4, 3, 0, 1])],
    ['SACK of length 9', optionBytes([5, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])],
    ['SACK with no block', optionBytes([5, 2, 1, 1])],
    ['timestamps of length 9', optionBytes([8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
  ];
  for (const [name, b] of cases) t.throws(() => parsePacket(b), PacketError, name);
  const b6 = buildTcpPacket({ tuple: v6, seq: 1, ack: 2, flags: TCP_ACK, window: 3 });
  const long6 = Uint8Array.from(b6);
  long6[5] = long6[5]! + 1;
  t.throws(() => parsePacket(long6), PacketError, 'IPv6 payload length beyond the buffer');
  const short6 = Uint8Array.from(b6);
  short6[5] = 19;
  t.throws(() => parsePacket(short6), PacketError, 'IPv6 payload too short for TCP');
});

t.test('options that are well formed but unusual', async (t) => {
  const p = parseTcpPacket(optionBytes([1, 0, 7, 7]));
  t.same(p.options, [{ kind: 'nop' }, { kind: 'eol', padding: Uint8Array.of(7, 7) }], 'bytes after EOL are kept as padding');
  t.throws(() => encodeTcpOptions([{ kind: 'unknown', code: 99, data: new Uint8Array(40) }]), PacketError, 'too long');
  t.throws(() => encodeTcpOptions([{ kind: 'sack', blocks: [] }]), PacketError);
});

t.test('checksum verification detects corruption', async (t) => {
  for (const tup of [v4, v6]) {
    const b = buildTcpPacket({ tuple: tup, seq: 5, ack: 6, flags: TCP_ACK, window: 7, payload: Uint8Array.of(1, 2, 3) });
    t.same(checkChecksums(b), { ip: true, tcp: true });
    const c = Uint8Array.from(b);
    c[c.length - 1] = c[c.length - 1]! ^ 0x10;
    t.equal(checkChecksums(c).tcp, false);
    if (tup.src.family === 4) {
      const h = Uint8Array.from(b);
      h[8] = 1;
      t.equal(checkChecksums(h).ip, false);
    }
  }
});

t.test('fast open detection', async (t) => {
  const base = { tuple: v4, seq: 1, ack: 0, flags: TCP_SYN, window: 3 };
  t.notOk(hasFastOpen(parseTcpPacket(buildTcpPacket(base))));
  t.ok(hasFastOpen(parseTcpPacket(buildTcpPacket({ ...base, payload: Uint8Array.of(1) }))));
  t.ok(hasFastOpen(parseTcpPacket(buildTcpPacket({ ...base, options: [{ kind: 'unknown', code: 34, data: new Uint8Array(0) }] }))));
  t.ok(hasFastOpen(parseTcpPacket(buildTcpPacket({ ...base, options: [{ kind: 'unknown', code: 254, data: Uint8Array.of(0xf9, 0x89) }] }))));
});

// ---- properties ---------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const addr4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4 as const, bytes }));
const addr6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6 as const, bytes }));
const port = fc.integer({ min: 0, max: 0xffff });
const tupleArb = fc.oneof(
  fc.record({ src: addr4, dst: addr4, sport: port, dport: port }),
  fc.record({ src: addr6, dst: addr6, sport: port, dport: port }),
);
const optionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: 'nop' }),
  fc.integer({ min: 0, max: 0xffff }).map((mss): TcpOption => ({ kind: 'mss', mss })),
  fc.integer({ min: 0, max: 255 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sackPermitted' }),
  fc.array(fc.record({ left: u32, right: u32 }), { minLength: 1, maxLength: 3 }).map((blocks): TcpOption => ({ kind: 'sack', blocks })),
  fc.record({ tsval: u32, tsecr: u32 }).map((r): TcpOption => ({ kind: 'timestamps', ...r })),
  fc
    .record({ code: fc.integer({ min: 9, max: 255 }).filter((c) => c !== 34), data: fc.uint8Array({ maxLength: 6 }) })
    .map((r): TcpOption => ({ kind: 'unknown', ...r })),
);
export const specArb: fc.Arbitrary<TcpPacketSpec> = fc.record({
  tuple: tupleArb,
  seq: u32,
  ack: u32,
  flags: fc.integer({ min: 0, max: 255 }),
  window: port,
  options: fc.array(optionArb, { maxLength: 6 }).filter((os) => os.reduce((n, o) => n + (o.kind === 'nop' ? 1 : o.kind === 'sack' ? 2 + 8 * o.blocks.length : o.kind === 'timestamps' ? 10 : o.kind === 'mss' ? 4 : o.kind === 'wscale' ? 3 : o.kind === 'unknown' ? 2 + o.data.length : 2), 0) <= 40),
  payload: fc.uint8Array({ maxLength: 64 }),
  ttl: fc.integer({ min: 0, max: 255 }),
  urgent: port,
});

t.test('property: built packets parse back to their spec, rebuild identically, verify', async (t) => {
  fc.assert(
    fc.property(specArb, (spec) => {
      const b = buildTcpPacket(spec);
      if (!verifyChecksums(b)) return false;
      const p = parseTcpPacket(b);
      const again = buildTcpPacket(packetSpec(p));
      if (Buffer.compare(Buffer.from(again), Buffer.from(b)) !== 0) return false;
      const nonPad = p.options.filter((o) => o.kind !== 'eol');
      return (
        p.seq === spec.seq &&
        p.ack === spec.ack &&
        p.flags === spec.flags &&
        p.window === spec.window &&
        p.urgent === spec.urgent &&
        p.ttl === spec.ttl &&
        JSON.stringify(nonPad.map(stripForCompare)) === JSON.stringify((spec.options ?? []).map(stripForCompare)) &&
        Buffer.from(p.payload).equals(Buffer.from(spec.payload ?? []))
      );
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test('property: arbitrary and corrupted bytes never crash, only PacketError', async (t) => {
  const onlyPacketError = (b: Uint8Array) => {
    try {
      parsePacket(b);
    } catch (e) {
      if (!(e instanceof PacketError)) throw e;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), onlyPacketError), { numRuns: 2000 });
  // Corrupt valid packets: far more likely to get past the IP checks.
  fc.assert(
    fc.property(specArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), (spec, edits, cut) => {
      const b = buildTcpPacket(spec);
      for (const [at, v] of edits) b[at % b.length] = v;
      onlyPacketError(b.subarray(0, b.length - (cut % 8)));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('IPv6 addresses keep their bytes', async (t) => {
  const p = parseTcpPacket(buildTcpPacket({ tuple: v6, seq: 0, ack: 0, flags: 0, window: 0 }));
  t.same(p.tuple.dst, ip('fd00::2:1'));
});
