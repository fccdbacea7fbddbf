import { strictEqual } from 'node:assert';
import t from 'tap';
import fc from 'fast-check';
import { parseTuple } from '@dysco/protocol';
import { Blacklist, BlacklistError, parsePortRange, parsePrefix, prefixContains } from '../dist/blacklist.js';

t.test('addresses and prefixes, either end', async (t) => {
  const b = new Blacklist({ addresses: ['192.0.2.0/24', '10.1.2.3', '2001:db8::/32'] });
  t.same(b.match(parseTuple('192.0.2.77:40000>10.0.0.1:80')), { entry: '192.0.2.0/24', kind: 'address', end: 'source' });
  t.same(b.match(parseTuple('10.0.0.9:40000>10.1.2.3:443')), { entry: '10.1.2.3', kind: 'address', end: 'destination' });
  t.same(b.match(parseTuple('[2001:db8:1::5]:5000>[fd00::1]:80')), { entry: '2001:db8::/32', kind: 'address', end: 'source' });
  t.equal(b.match(parseTuple('192.0.3.1:40000>10.1.2.4:80')), undefined);
  t.equal(b.match(parseTuple('[2001:db9::1]:5000>[fd00::1]:80')), undefined);
});

t.test('ports and ranges, either end', async (t) => {
  const b = new Blacklist({ ports: [23, '6660-6669'] });
  t.same(b.match(parseTuple('10.0.0.1:40000>10.0.0.2:23')), { entry: '23', kind: 'port', end: 'destination' });
  t.same(b.match(parseTuple('10.0.0.1:6665>10.0.0.2:80')), { entry: '6660-6669', kind: 'port', end: 'source' });
  t.equal(b.match(parseTuple('10.0.0.1:6670>10.0.0.2:22')), undefined);
});

t.test('a prefix is masked to its length, and written back canonically', async (t) => {
  t.equal(parsePrefix('10.1.2.3/8').text, '10.0.0.0/8');
  t.equal(parsePrefix('2001:0db8:0:0::1/32').text, '2001:db8::/32');
  t.equal(parsePrefix('0.0.0.0/0').length, 0);
  t.ok(prefixContains(parsePrefix('0.0.0.0/0'), parseTuple('1.2.3.4:1>5.6.7.8:2').src), '/0 contains every address of its family');
  t.notOk(prefixContains(parsePrefix('0.0.0.0/0'), parseTuple('[::1]:1>[::2]:2').src), 'but none of the other');
});

t.test('bad entries are refused with the reason', async (t) => {
  t.throws(() => parsePrefix('10.0.0.0/33'), BlacklistError);
  t.throws(() => parsePrefix('fd00::/129'), BlacklistError);
  t.throws(() => parsePrefix('example.com'), BlacklistError);
  t.throws(() => parsePortRange('0'), BlacklistError);
  t.throws(() => parsePortRange('70000'), BlacklistError);
  t.throws(() => parsePortRange('20-10'), BlacklistError);
  t.throws(() => parsePortRange('http'), BlacklistError);
  t.same(parsePortRange(' 10 - 20 '), { low: 10, high: 20, text: '10-20' });
});

t.test('property: prefix membership agrees with comparing the top bits', async (t) => {
  const bits = (b: Uint8Array) => [...b].map((x) => x.toString(2).padStart(8, '0')).join('');
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }), (p, a, len) => {
      const prefix = parsePrefix(`${[...p].join('.')}/${len}`);
      const addr = { family: 4 as const, bytes: a };
      strictEqual(prefixContains(prefix, addr), bits(p).slice(0, len) === bits(a).slice(0, len));
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 cases');
});
