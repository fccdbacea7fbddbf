import t from 'tap';
import fc from 'fast-check';
import { isIP } from 'node:net';
import {
  AddressError,
  type Address,
  addressEquals,
  addressFromBytes,
  addressLength,
  formatAddress,
  formatPrefix,
  formatTuple,
  hex,
  ip,
  parseAddress,
  parsePrefix,
  parseTuple,
  prefixMatches,
  reverseTuple,
  tuple,
  tupleEquals,
} from '@dysco/protocol';

// ---------------------------------------------------------------------------
// IPv4

t.test('IPv4 parse and format', async (t) => {
  const cases: [string, string][] = [
    ['0.0.0.0', '00000000'],
    ['10.0.0.1', '0a000001'],
    ['192.0.2.255', 'c00002ff'],
    ['255.255.255.255', 'ffffffff'],
  ];
  for (const [text, bytes] of cases) {
    const a = parseAddress(text);
    t.equal(a.family, 4);
    t.equal(hex(a.bytes), bytes, text);
    t.equal(formatAddress(a), text);
  }
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.-1', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1..2.3', '1.2.3.4/8', 'a.b.c.d', '0x1.2.3.4', '1.2.3.1000']) {
    t.throws(() => parseAddress(bad), AddressError, JSON.stringify(bad));
  }
});

// ---------------------------------------------------------------------------
// IPv6, RFC 5952 canonical text

t.test('IPv6 canonical text (RFC 5952 section 4)', async (t) => {
  const cases: [string, string][] = [
    // 4.1: leading zeros suppressed
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    // 4.2.1: '::' shortens as much as possible
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    // 4.2.2: a single zero group is not compressed
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // 4.2.3: the longest run is compressed; on a tie, the first
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
    // 4.3: lower case
    ['2001:DB8::ABCD:EF', '2001:db8::abcd:ef'],
    // edges
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80::', 'fe80::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
    ['1::2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    // embedded IPv4 is accepted on input (and formatted as hex groups)
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:10.0.0.1', '1:2:3:4:5:6:a00:1'],
  ];
  for (const [input, canonical] of cases) {
    const a = parseAddress(input);
    t.equal(a.family, 6, input);
    t.equal(formatAddress(a), canonical, `${input} -> ${canonical}`);
    t.equal(formatAddress(parseAddress(canonical)), canonical, `${canonical} is a fixed point`);
    t.ok(addressEquals(parseAddress(canonical), a));
  }
});

t.test('IPv6 rejections', async (t) => {
  const bad = [
    ':',
    ':::',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1::2::3',
    ':1::2',
    '1::2:',
    '12345::1',
    '00000::1',
    'g::1',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3',
    '::01.2.3.4',
    '::256.0.0.1',
    '1.2.3.4::',
    'fe80::1%eth0',
    '[::1]',
    '::1 ',
    'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x',
  ];
  for (const b of bad) t.throws(() => parseAddress(b), AddressError, JSON.stringify(b));
});

// Groups biased towards zero, so runs of zero groups (ties included) are common.
const groupsArb = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
const bytesOf = (groups: number[]) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
const addr6Arb: fc.Arbitrary<Address> = groupsArb.map((g) => ({ family: 6, bytes: bytesOf(g) }));
const addr4Arb: fc.Arbitrary<Address> = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4, bytes }));

t.test('IPv6 format agrees with the WHATWG URL serializer (same compression rule)', async (t) => {
  fc.assert(
    fc.property(addr6Arb, (a) => {
      const text = formatAddress(a);
      return `[${text}]` === new URL(`http://[${text}]/`).hostname;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('every textual form of an address parses to the same bytes', async (t) => {
  // Alternative spellings built independently of formatAddress.
  const spell = (groups: number[], style: number, caseUpper: boolean, zStart: number, zLen: number): string => {
    const g = groups.map((x) => {
      const h = x.toString(16);
      return style === 1 ? h.padStart(4, '0') : h;
    });
    let text: string;
    // Compress any run of zero groups (not necessarily the longest) when asked and possible.
    const run = g.slice(zStart, zStart + zLen);
    if (style === 2 && zLen > 0 && zStart + zLen <= 8 && groups.slice(zStart, zStart + zLen).every((x) => x === 0) && run.length === zLen) {
      text = `${g.slice(0, zStart).join(':')}::${g.slice(zStart + zLen).join(':')}`;
    } else if (style === 3) {
      const b = bytesOf(groups);
      text = `${g.slice(0, 6).join(':')}:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    } else {
      text = g.join(':');
    }
    return caseUpper ? text.toUpperCase() : text;
  };
  fc.assert(
    fc.property(groupsArb, fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 8 }), (groups, style, upper, zs, zl) => {
      const text = spell(groups, style, upper, zs, zl);
      const a = parseAddress(text);
      return a.family === 6 && hex(a.bytes) === hex(bytesOf(groups)) && isIP(text) === 6;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

t.test('format then parse is the identity, for both families', async (t) => {
  fc.assert(
    fc.property(fc.oneof(addr4Arb, addr6Arb), (a) => {
      const back = parseAddress(formatAddress(a));
      return back.family === a.family && addressEquals(back, a) && formatAddress(back) === formatAddress(a);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('parse accepts exactly what node:net accepts (alphabet of address characters)', async (t) => {
  const token = fc.constantFrom(...'0123456789abcdefABCDEF:.'.split(''), '::', 'ffff', '255', '0.', '1.');
  fc.assert(
    fc.property(fc.array(token, { maxLength: 24 }), (tokens) => {
      const text = tokens.join('');
      let ours: number;
      try {
        ours = parseAddress(text).family;
      } catch (e) {
        if (!(e instanceof AddressError)) throw e;
        ours = 0;
      }
      return ours === isIP(text);
    }),
    { numRuns: 20000 },
  );
  t.pass();
});

t.test('arbitrary strings: an address or AddressError', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        const a = parseAddress(s);
        return a.bytes.length === addressLength(a.family);
      } catch (e) {
        return e instanceof AddressError;
      }
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

t.test('addressFromBytes, addressEquals, ip', async (t) => {
  t.equal(addressFromBytes(Uint8Array.of(1, 2, 3, 4)).family, 4);
  t.equal(addressFromBytes(new Uint8Array(16)).family, 6);
  for (const n of [0, 3, 5, 15, 17]) t.throws(() => addressFromBytes(new Uint8Array(n)), AddressError, `${n} bytes`);
  const src = Uint8Array.of(10, 0, 0, 1);
  const a = addressFromBytes(src);
  src[3] = 9;
  t.equal(formatAddress(a), '10.0.0.1', 'copies its input');
  t.ok(addressEquals(ip('10.0.0.1'), ip('10.0.0.1')));
  t.notOk(addressEquals(ip('10.0.0.1'), ip('10.0.0.2')));
  t.notOk(addressEquals(ip('0.0.0.0'), ip('::')), 'families differ');
  t.notOk(addressEquals(ip('::ffff:10.0.0.1'), ip('10.0.0.1')), 'mapped IPv6 is not the IPv4 address');
  t.equal(addressLength(4), 4);
  t.equal(addressLength(6), 16);
});

// ---------------------------------------------------------------------------
// Prefixes

t.test('prefixes', async (t) => {
  const p8 = parsePrefix('10.0.0.0/8');
  t.equal(p8.length, 8);
  t.equal(formatPrefix(p8), '10.0.0.0/8');
  t.ok(prefixMatches(p8, ip('10.255.1.2')));
  t.notOk(prefixMatches(p8, ip('11.0.0.0')));
  t.notOk(prefixMatches(p8, ip('::a00:0')), 'an IPv6 address never matches an IPv4 prefix');

  const p12 = parsePrefix('172.16.0.0/12');
  t.ok(prefixMatches(p12, ip('172.31.255.255')));
  t.notOk(prefixMatches(p12, ip('172.32.0.0')));
  t.notOk(prefixMatches(p12, ip('172.15.255.255')));

  t.equal(parsePrefix('192.0.2.1').length, 32, 'no length: host prefix');
  t.equal(parsePrefix('2001:db8::1').length, 128);
  t.ok(prefixMatches(parsePrefix('0.0.0.0/0'), ip('203.0.113.7')));
  t.ok(prefixMatches(parsePrefix('::/0'), ip('2001:db8::1')));
  t.notOk(prefixMatches(parsePrefix('::/0'), ip('1.2.3.4')));

  const v6 = parsePrefix('2001:DB8:0:0::/33');
  t.equal(formatPrefix(v6), '2001:db8::/33');
  t.ok(prefixMatches(v6, ip('2001:db8:7fff::1')));
  t.notOk(prefixMatches(v6, ip('2001:db8:8000::1')));
  t.ok(prefixMatches(parsePrefix('fd00::1/128'), ip('fd00::1')));
  t.notOk(prefixMatches(parsePrefix('fd00::1/128'), ip('fd00::2')));

  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/a', '/8', '10.0.0/8', '10.0.0.0/8/8', '10.0.0.0/1000']) {
    t.throws(() => parsePrefix(bad), AddressError, bad);
  }
});

t.test('prefix membership agrees with a bit-by-bit reference', async (t) => {
  const bit = (b: Uint8Array, i: number) => (b[i >> 3]! >> (7 - (i & 7))) & 1;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.tuple(addr4Arb, addr4Arb, fc.integer({ min: 0, max: 32 })),
        fc.tuple(addr6Arb, addr6Arb, fc.integer({ min: 0, max: 128 })),
      ),
      fc.boolean(),
      ([base, other, len], share) => {
        // Half the time, make `other` share the first `len` bits of `base`.
        const cand = Uint8Array.from(other.bytes);
        if (share) for (let i = 0; i < len; i++) if (bit(cand, i) !== bit(base.bytes, i)) cand[i >> 3]! ^= 1 << (7 - (i & 7));
        let expected = true;
        for (let i = 0; i < len; i++) if (bit(cand, i) !== bit(base.bytes, i)) expected = false;
        const p = parsePrefix(`${formatAddress(base)}/${len}`);
        return prefixMatches(p, { family: base.family, bytes: cand }) === expected;
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------
// Tuples

t.test('tuples: parse, format, reverse, equality', async (t) => {
  const v4 = parseTuple('10.0.0.1:4000>10.0.0.2:80');
  t.equal(formatTuple(v4), '10.0.0.1:4000>10.0.0.2:80');
  t.equal(v4.sport, 4000);
  t.equal(v4.dport, 80);
  t.ok(tupleEquals(v4, tuple('10.0.0.1', 4000, '10.0.0.2', 80)));
  t.equal(formatTuple(reverseTuple(v4)), '10.0.0.2:80>10.0.0.1:4000');
  t.ok(tupleEquals(reverseTuple(reverseTuple(v4)), v4));
  t.notOk(tupleEquals(v4, reverseTuple(v4)));

  const v6 = parseTuple('[2001:DB8:0::1]:0>[fd00::2]:65535');
  t.equal(formatTuple(v6), '[2001:db8::1]:0>[fd00::2]:65535', 'canonical addresses in brackets');
  t.equal(v6.src.family, 6);

  t.throws(() => tuple('10.0.0.1', 1, 'fd00::1', 2), AddressError, 'mixed families');
  t.throws(() => parseTuple('10.0.0.1:1>[fd00::1]:2'), AddressError, 'mixed families (text)');
  for (const p of [-1, 65536, 1.5, Number.NaN]) t.throws(() => tuple('10.0.0.1', p, '10.0.0.2', 80), AddressError, `port ${p}`);
  for (const bad of [
    '10.0.0.1:4000',
    '10.0.0.1>10.0.0.2:80',
    '10.0.0.1:4000>10.0.0.2',
    '10.0.0.1:65536>10.0.0.2:80',
    '10.0.0.1:123456>10.0.0.2:80',
    'fd00::1:80>fd00::2:80',
    '[10.0.0.1:80>10.0.0.2:80',
    '[fd00::1]>[fd00::2]:80',
    '',
    '>',
  ]) {
    t.throws(() => parseTuple(bad), AddressError, JSON.stringify(bad));
  }
});

t.test('tuple text round trip', async (t) => {
  const port = fc.integer({ min: 0, max: 0xffff });
  const tupleArb = fc.oneof(
    fc.record({ src: addr4Arb, dst: addr4Arb, sport: port, dport: port }),
    fc.record({ src: addr6Arb, dst: addr6Arb, sport: port, dport: port }),
  );
  fc.assert(
    fc.property(tupleArb, (tu) => {
      const text = formatTuple(tu);
      const back = parseTuple(text);
      return tupleEquals(back, tu) && formatTuple(back) === text && tupleEquals(reverseTuple(reverseTuple(tu)), tu);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
