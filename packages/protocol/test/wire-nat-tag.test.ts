import t from 'tap';
import fc from 'fast-check';
import {
  NAT_TAG_EXID,
  NAT_TAG_OPTION_KIND,
  NAT_TAG_OPTION_LENGTH,
  WireFormatError,
  decodeNatTagOption,
  encodeNatTagOption,
  fromHex,
  hex,
} from '@dysco/protocol';

t.test('constants', async (t) => {
  t.equal(NAT_TAG_OPTION_KIND, 253, 'RFC 6994 shared experimental kind');
  t.equal(NAT_TAG_EXID, 0x4459);
  t.equal(NAT_TAG_OPTION_LENGTH, 8);
  t.equal(NAT_TAG_OPTION_LENGTH % 4, 0, 'keeps the options area 32-bit aligned');
});

t.test('golden vectors', async (t) => {
  const vectors: [number, string][] = [
    [0xdeadbeef, 'fd' + '08' + '4459' + 'deadbeef'],
    [0, 'fd' + '08' + '4459' + '00000000'],
    [1, 'fd' + '08' + '4459' + '00000001'],
    [0xffffffff, 'fd' + '08' + '4459' + 'ffffffff'],
    [0x01020304, 'fd' + '08' + '4459' + '01020304'],
  ];
  for (const [tag, h] of vectors) {
    const enc = encodeNatTagOption(tag);
    t.equal(enc.length, 8);
    t.equal(hex(enc), h, `encode ${tag}`);
    t.equal(decodeNatTagOption(fromHex(h)), tag, `decode ${h}`);
  }
});

t.test('round trip over all u32 tags', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (tag) => {
      const b = encodeNatTagOption(tag);
      return b.length === NAT_TAG_OPTION_LENGTH && decodeNatTagOption(b) === tag;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test('the option may be followed by the rest of the options area', async (t) => {
  // tag option, then NOP, NOP, timestamps, end of options
  const area = fromHex('fd084459cafef00d' + '0101' + '080a0000000100000000' + '00');
  t.equal(decodeNatTagOption(area), 0xcafef00d);
  t.equal(decodeNatTagOption(area.subarray(0, 8)), 0xcafef00d);
});

t.test('rejections', async (t) => {
  const good = 'fd084459deadbeef';
  const bad = (h: string, why: string) => t.throws(() => decodeNatTagOption(fromHex(h)), WireFormatError, why);
  bad('fe084459deadbeef', 'kind 254 (the other experimental kind)');
  bad('1e084459deadbeef', 'kind 30 (MPTCP)');
  bad('08084459deadbeef', 'kind 8 (timestamps)');
  bad('fd064459deadbeef', 'length 6');
  bad('fd0a4459deadbeef0000', 'length 10');
  bad('fd004459deadbeef', 'length 0');
  bad('fd084458deadbeef', 'wrong ExID (last byte)');
  bad('fd085944deadbeef', 'ExID byte-swapped');
  bad('fd08f989deadbeef', 'a 32-bit-ExID-looking value');
  for (let n = 0; n < 8; n++) bad(good.slice(0, 2 * n), `truncated to ${n} bytes`);
  for (const v of [-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => encodeNatTagOption(v), WireFormatError, `encode ${v}`);
  }
});

t.test('arbitrary bytes: a u32 or WireFormatError, nothing else', async (t) => {
  let decoded = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 16 }), (b) => {
      try {
        const v = decodeNatTagOption(b);
        decoded++;
        return Number.isInteger(v) && v >= 0 && v <= 0xffffffff && b[0] === 253 && b[1] === 8 && b[2] === 0x44 && b[3] === 0x59;
      } catch (e) {
        return e instanceof WireFormatError;
      }
    }),
    { numRuns: 5000 },
  );
  t.equal(decoded, 0, 'random bytes practically never carry our kind, length and ExID');
  // With the fixed prefix, every tail decodes to exactly its value.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (tail) => {
      const v = decodeNatTagOption(Uint8Array.of(0xfd, 0x08, 0x44, 0x59, ...tail));
      return hex(tail) === v.toString(16).padStart(8, '0');
    }),
    { numRuns: 1000 },
  );
});
