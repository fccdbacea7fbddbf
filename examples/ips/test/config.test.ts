import t from 'tap';
import { Blacklist } from '../dist/blacklist.js';
import { ConfigError, DEFAULTS, parseConfig } from '../dist/config.js';
import { tableScript } from '../dist/nft.js';

t.test('a complete configuration', async (t) => {
  const c = parseConfig({
    comment: 'test',
    interface: 'eth0',
    terms: ['/etc/passwd', { text: 'cmd.exe', name: 'windows shell' }, { hex: '90 90 90 90' }],
    caseInsensitive: true,
    blacklist: { addresses: ['192.0.2.0/24', 'fd00::9'], ports: [23, '6660-6669'] },
    releaseAfterBytes: 65536,
    reassembly: { maxBufferedBytes: 4096, maxSegments: 16, onGap: 'continue' },
    block: { action: 'reset', holdSeconds: 60 },
    nftTable: 'ips_test',
    pollMs: 200,
  });
  t.same(c.terms.map((x) => x.name), ['/etc/passwd', 'windows shell', 'hex:90909090']);
  t.same([...c.terms[2]!.bytes], [0x90, 0x90, 0x90, 0x90]);
  t.equal(c.caseInsensitive, true);
  t.same(c.blacklist.prefixes.map((p) => p.text), ['192.0.2.0/24', 'fd00::9']);
  t.same(c.blacklist.ports.map((p) => p.text), ['23', '6660-6669']);
  t.equal(c.releaseAfterBytes, 65536);
  t.same(c.reassembly, { maxBufferedBytes: 4096, maxSegments: 16, onGap: 'continue' });
  t.same(c.block, { action: 'reset', holdSeconds: 60 });
  t.equal(c.nftTable, 'ips_test');
  t.equal(c.interface, 'eth0');
});

t.test('defaults', async (t) => {
  const c = parseConfig({ terms: ['x'] });
  t.equal(c.releaseAfterBytes, DEFAULTS.releaseAfterBytes);
  t.same(c.block, DEFAULTS.block);
  t.same(c.reassembly, DEFAULTS.reassembly);
  t.equal(c.interface, undefined);
});

t.test('every problem at once, each with its path', async (t) => {
  const e = t.throws(() =>
    parseConfig(
      {
        term: [],
        terms: ['', { text: 'a', hex: '00' }, { hex: 'zz' }, 7],
        blacklist: { addresses: ['10.0.0.0/40', 5], ports: ['70000'], hosts: [] },
        releaseAfterBytes: -1,
        reassembly: { onGap: 'ignore' },
        block: { action: 'kill' },
        nftTable: 'bad name',
      },
      'ips.json',
    ),
  ) as ConfigError;
  t.type(e, ConfigError);
  const want = [
    'ips.json.term: unknown field',
    'ips.json.terms[0]: must not be empty',
    'ips.json.terms[1]: needs exactly one of "text" and "hex"',
    'ips.json.terms[2].hex: must be pairs of hex digits',
    'ips.json.terms[3]: must be a string or an object',
    'ips.json.blacklist.hosts: unknown field',
    'ips.json.blacklist.addresses[0]: prefix length',
    'ips.json.blacklist.addresses[1]: must be a string',
    'ips.json.blacklist.ports[0]: port range "70000"',
    'ips.json.releaseAfterBytes: must be an integer',
    'ips.json.reassembly.onGap: must be "block" or "continue"',
    'ips.json.block.action: must be "drop" or "reset"',
    'ips.json.nftTable: must be a table name',
  ];
  for (const w of want) t.ok(e.problems.some((p) => p.startsWith(w)), w);
  t.equal(e.problems.length, want.length, e.message);
});

t.test('nothing to block is a configuration error', async (t) => {
  t.throws(() => parseConfig({}), /neither "terms" nor a "blacklist"/);
  t.throws(() => parseConfig([]), /must be a JSON object/);
});

t.test('the nftables table: blocked sessions and the blacklist in a forward chain', async (t) => {
  const s = tableScript({ table: 'ips', action: 'drop', holdSeconds: 600, blacklist: new Blacklist({ addresses: ['10.9.0.0/16', 'fd00::7'], ports: ['6660-6669'] }) });
  t.match(s, /set sessions4 \{ type ipv4_addr \. inet_service \. ipv4_addr \. inet_service; flags timeout; timeout 600s; \}/);
  t.match(s, /set blacklist4 \{ type ipv4_addr; flags interval; auto-merge; elements = \{ 10\.9\.0\.0\/16 \}; \}/);
  t.match(s, /set blacklist6 \{[^}]*elements = \{ fd00::7 \};/);
  t.match(s, /set blacklistports \{[^}]*elements = \{ 6660-6669 \};/);
  t.match(s, /type filter hook forward priority -10; policy accept;/);
  t.match(s, /ip saddr \. tcp sport \. ip daddr \. tcp dport @sessions4 counter drop/);
  const r = tableScript({ table: 'ips', action: 'reset', holdSeconds: 600, blacklist: new Blacklist() });
  t.match(r, /@sessions4 counter reject with tcp reset/);
  t.notMatch(r, /elements/, 'empty sets have no elements clause');
});
