import t from 'tap';
import fc from 'fast-check';
import { bytes, i32, i64, ipv4, struct, u16, u16be, u32, u32be, u64, u8, type Codec } from 'ebpf-ts-loader';

function roundTrip<T>(name: string, codec: Codec<T>, arb: fc.Arbitrary<T>): void {
  t.test(name, async (t) => {
    fc.assert(fc.property(arb, (v) => {
      const b = codec.encode(v);
      const back = codec.decode(b);
      return b.length === codec.size && back === v;
    }));
    t.pass();
  });
}

roundTrip('u8', u8, fc.integer({ min: 0, max: 0xff }));
roundTrip('u16', u16, fc.integer({ min: 0, max: 0xffff }));
roundTrip('u32', u32, fc.integer({ min: 0, max: 0xffffffff }));
roundTrip('i32', i32, fc.integer({ min: -0x80000000, max: 0x7fffffff }));
roundTrip('u64', u64, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
roundTrip('i64', i64, fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }));
roundTrip('ipv4', ipv4, fc.ipV4());

t.test('byte order', async (t) => {
  t.same([...u32.encode(0x01020304)], [4, 3, 2, 1]);
  t.same([...u32be.encode(0x01020304)], [1, 2, 3, 4]);
  t.same([...u16be.encode(4242)], [0x10, 0x92]);
  t.same([...ipv4.encode('10.0.0.1')], [10, 0, 0, 1]);
  t.throws(() => ipv4.encode('10.0.0'), /not an IPv4/);
  t.throws(() => u32.decode(Buffer.alloc(3)), /expects 4 bytes/);
});

t.test('struct codec lays fields at their offsets and zeroes padding', async (t) => {
  const flow = struct<{ saddr: string; dport: number; flags: number }>(12, {
    saddr: { offset: 0, codec: ipv4 },
    dport: { offset: 4, codec: u16be },
    flags: { offset: 8, codec: u32 },
  });
  const b = flow.encode({ saddr: '192.168.1.2', dport: 80, flags: 7 });
  t.same([...b], [192, 168, 1, 2, 0, 80, 0, 0, 7, 0, 0, 0]);
  t.same(flow.decode(b), { saddr: '192.168.1.2', dport: 80, flags: 7 });
  t.throws(() => struct(4, { x: { offset: 2, codec: u32 } }), /exceeds/);
  const raw = bytes(3);
  t.same([...raw.decode(raw.encode(Buffer.from([1, 2, 3])))], [1, 2, 3]);
  t.throws(() => raw.encode(Buffer.alloc(2)), /expects 3 bytes/);
});
