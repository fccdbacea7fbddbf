import t from 'tap';
import type { Test } from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type Address, formatAddress, formatPrefix } from '@dysco/protocol';
// straight from dist: these modules need neither the data plane nor libbpf
import { CONFIG_FIELDS, ConfigError, formatMatch, loadConfig, parseMatch, policyFromSpec, validateConfig } from '../dist/config.js';
import { Logger } from '../dist/log.js';
import { Metrics } from '../dist/metrics.js';

/*
 * The configuration file, policy predicates, metrics and logs of the agent:
 * everything here runs without root, a kernel or an agent.
 */

const BASE = { address: '10.0.0.1', interfaces: ['eth0'] };

/** The problems validateConfig reports for `raw` (none when it is valid). */
function problemsOf(raw: unknown, source?: string): string[] {
  try {
    validateConfig(raw, source);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

/** The problems loadConfig reports for a file (none when it is valid). */
function loadProblems(path: string): string[] {
  try {
    loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

/** `raw` (BASE plus `extra`) has exactly one problem, at `path`, matching `what`. */
function oneProblem(t: Test, extra: Record<string, unknown>, path: string, what: RegExp): void {
  const ps = problemsOf({ ...BASE, ...extra });
  t.equal(ps.length, 1, `one problem for ${JSON.stringify(extra)}: ${JSON.stringify(ps)}`);
  const p = ps[0] ?? '';
  t.ok(p.startsWith(`config.${path}: `), `names ${path}: ${p}`);
  t.match(p.slice(`config.${path}: `.length), what, `says what is wrong with ${path}`);
}

const hexKey = (byte: number, bytes = 16) => byte.toString(16).padStart(2, '0').repeat(bytes);

t.test('defaults fill in everything but address and interfaces', async (t) => {
  const c = validateConfig(BASE);
  t.equal(formatAddress(c.address), '10.0.0.1');
  t.same(c.localAddresses.map(formatAddress), ['10.0.0.1']);
  t.same(c.interfaces, ['eth0']);
  t.equal(c.mode, 'auto');
  t.equal(c.controlPort, 7707);
  t.equal(c.socket, '/run/dysco/agent.sock');
  t.equal(c.pinRoot, '/sys/fs/bpf/dysco');
  t.equal(c.stateDir, '/var/lib/dysco');
  t.equal(c.metrics, undefined);
  t.equal(c.maxSessions, 1 << 20);
  t.same(c.ports, { low: 61000, high: 65535 });
  t.same(c.keys, []);
  t.equal(c.sendKeyId, undefined);
  t.equal(c.requireAuth, false);
  t.same(c.policies, []);
  t.equal(c.idleTimeout, 300);
  t.equal(c.closedLinger, 30);
  t.equal(c.rto, 200);
  t.equal(c.maxRto, 3200);
  t.equal(c.logLevel, 'info');
});

t.test('a complete configuration is read as written', async (t) => {
  const c = validateConfig({
    $schema: 'ignored',
    comment: 'ignored too',
    address: 'fd00::1',
    localAddresses: ['fd00::2', '10.0.0.1'],
    interfaces: ['eth0', 'veth-a.10'],
    mode: 'xdp',
    controlPort: 9000,
    socket: '/tmp/a.sock',
    pinRoot: '/sys/fs/bpf/other',
    stateDir: '/tmp/state',
    metrics: '0.0.0.0:9100',
    maxSessions: 4096,
    ports: { low: 40000, high: 40100 },
    keys: [
      { id: 1, secret: hexKey(0xab) },
      { id: 4294967295, secret: hexKey(0xcd, 32).toUpperCase() },
    ],
    sendKeyId: 4294967295,
    requireAuth: false,
    policies: [{ id: 7, match: 'tcp dst 10.0.2.0/24 and dport 80-90', chain: ['10.0.1.1', '10.0.1.9'] }],
    idleTimeout: 1.5,
    closedLinger: 0,
    rto: 50,
    maxRto: 50,
    logLevel: 'debug',
  });
  t.same(c.localAddresses.map(formatAddress), ['fd00::1', 'fd00::2', '10.0.0.1'], 'address first when not listed');
  t.same(c.interfaces, ['eth0', 'veth-a.10']);
  t.equal(c.mode, 'xdp');
  t.equal(c.controlPort, 9000);
  t.equal(c.socket, '/tmp/a.sock');
  t.equal(c.pinRoot, '/sys/fs/bpf/other');
  t.equal(c.stateDir, '/tmp/state');
  t.same(c.metrics, { host: '0.0.0.0', port: 9100 });
  t.equal(c.maxSessions, 4096);
  t.same(c.ports, { low: 40000, high: 40100 });
  t.same(
    c.keys.map((k) => [k.keyId, Buffer.from(k.secret).toString('hex')]),
    [
      [1, hexKey(0xab)],
      [4294967295, hexKey(0xcd, 32)],
    ],
  );
  t.equal(c.sendKeyId, 4294967295);
  t.equal(c.requireAuth, false);
  t.equal(c.policies.length, 1);
  const p = c.policies[0]!;
  t.equal(p.id, 7);
  t.equal(formatMatch(p), 'dst 10.0.2.0/24 dport 80-90');
  t.same(p.chain.map(formatAddress), ['10.0.1.1', '10.0.1.9']);
  t.equal(c.idleTimeout, 1.5);
  t.equal(c.closedLinger, 0);
  t.equal(c.rto, 50);
  t.equal(c.maxRto, 50);
  t.equal(c.logLevel, 'debug');
});

t.test('localAddresses that list the address keep their order', async (t) => {
  const c = validateConfig({ ...BASE, localAddresses: ['10.0.0.9', '10.0.0.1'] });
  t.same(c.localAddresses.map(formatAddress), ['10.0.0.9', '10.0.0.1']);
});

t.test('keys: the first signs by default and authentication is then required', async (t) => {
  const c = validateConfig({ ...BASE, keys: [{ id: 3, secret: hexKey(1) }, { id: 2, secret: hexKey(2) }] });
  t.equal(c.sendKeyId, 3);
  t.equal(c.requireAuth, true);
  t.equal(validateConfig({ ...BASE, keys: [{ id: 3, secret: hexKey(1) }], requireAuth: false }).requireAuth, false);
});

t.test('metrics endpoints', async (t) => {
  t.same(validateConfig({ ...BASE, metrics: '127.0.0.1:9100' }).metrics, { host: '127.0.0.1', port: 9100 });
  t.same(validateConfig({ ...BASE, metrics: ':9100' }).metrics, { host: '127.0.0.1', port: 9100 }, 'host defaults to loopback');
  t.same(validateConfig({ ...BASE, metrics: '[::1]:9100' }).metrics, { host: '::1', port: 9100 }, 'IPv6 in brackets');
  t.equal(validateConfig({ ...BASE, metrics: null }).metrics, undefined, 'null: none');
});

t.test('the document itself', async (t) => {
  for (const raw of [null, [], 'address', 42]) t.same(problemsOf(raw), ['config: must be a JSON object'], JSON.stringify(raw));
  t.same(problemsOf(null, 'agent.json'), ['agent.json: must be a JSON object']);
});

t.test('unknown fields are named, with the known ones', async (t) => {
  oneProblem(t, { adress: '10.0.0.2' }, 'adress', /^unknown field \(known: address, localAddresses, interfaces, .*maxRto\)$/);
  const ps = problemsOf({ ...BASE, one: 1, two: 2 });
  t.same(
    ps.map((p) => p.split(':')[0]),
    ['config.one', 'config.two'],
  );
  t.notMatch(ps[0], /\$schema|comment/, 'the ignored fields are not offered');
});

t.test('address and interfaces are required', async (t) => {
  t.same(problemsOf({}), ['config.address: is required', 'config.interfaces: is required: a non-empty list of interface names']);
  t.same(problemsOf({ interfaces: ['eth0'] }), ['config.address: is required']);
  oneProblem(t, { interfaces: [] }, 'interfaces', /non-empty list/);
  oneProblem(t, { interfaces: 'eth0' }, 'interfaces', /non-empty list/);
});

t.test('bad addresses', async (t) => {
  oneProblem(t, { address: '10.0.0.256' }, 'address', /not an IPv4 or IPv6 address: "10\.0\.0\.256"/);
  oneProblem(t, { address: 167772161 }, 'address', /must be an IP address string, got 167772161/);
  oneProblem(t, { address: '10.0.0.0/24' }, 'address', /not an IPv4 or IPv6 address/);
  oneProblem(t, { localAddresses: '10.0.0.2' }, 'localAddresses', /must be a list of addresses/);
  oneProblem(t, { localAddresses: ['10.0.0.2', 'fd00::g'] }, 'localAddresses[1]', /not an IPv4 or IPv6 address: "fd00::g"/);
  oneProblem(t, { localAddresses: Array.from({ length: 8 }, (_, i) => `10.0.1.${i}`) }, 'localAddresses', /at most 8 addresses fit the data plane, got 9/);
  t.same(problemsOf({ ...BASE, localAddresses: Array.from({ length: 7 }, (_, i) => `10.0.1.${i}`) }), [], 'eight with the address');
});

t.test('interface names', async (t) => {
  const ps = problemsOf({ ...BASE, interfaces: ['eth0', 'a-name-too-long-x', 3, '', 'bad/name'] });
  t.same(ps, [
    'config.interfaces[1]: not an interface name: "a-name-too-long-x"',
    'config.interfaces[2]: not an interface name: 3',
    'config.interfaces[3]: not an interface name: ""',
    'config.interfaces[4]: not an interface name: "bad/name"',
  ]);
});

t.test('scalar fields: range, type, choices', async (t) => {
  oneProblem(t, { mode: 'ebpf' }, 'mode', /must be one of "auto", "xdp", "tc", got "ebpf"/);
  for (const v of [0, 65536, 1.5, '7707']) oneProblem(t, { controlPort: v }, 'controlPort', new RegExp(`must be an integer in 1\\.\\.65535, got ${JSON.stringify(JSON.stringify(v)).slice(1, -1)}`));
  oneProblem(t, { socket: '' }, 'socket', /must be a non-empty string, got ""/);
  oneProblem(t, { pinRoot: 5 }, 'pinRoot', /must be a non-empty string, got 5/);
  oneProblem(t, { stateDir: null }, 'stateDir', /must be a non-empty string, got null/);
  for (const v of ['localhost', 'h:70000', 9100, '10.0.0.1:']) oneProblem(t, { metrics: v }, 'metrics', /must be "host:port" or null/);
  oneProblem(t, { maxSessions: 8 }, 'maxSessions', /16\.\.16777216, got 8/);
  oneProblem(t, { maxSessions: (1 << 24) + 1 }, 'maxSessions', /16\.\.16777216/);
  t.equal(validateConfig({ ...BASE, maxSessions: 1 << 24 }).maxSessions, 1 << 24);
  oneProblem(t, { idleTimeout: 0 }, 'idleTimeout', /must be a number in 1\.\.604800, got 0/);
  oneProblem(t, { idleTimeout: '300' }, 'idleTimeout', /must be a number/);
  oneProblem(t, { closedLinger: -1 }, 'closedLinger', /must be a number in 0\.\.3600/);
  oneProblem(t, { rto: 0 }, 'rto', /must be an integer in 1\.\.60000/);
  oneProblem(t, { rto: 500, maxRto: 300 }, 'maxRto', /^must be at least rto \(500\), got 300$/);
  oneProblem(t, { maxRto: 100 }, 'maxRto', /must be at least rto \(200\), got 100/);
  oneProblem(t, { logLevel: 'trace' }, 'logLevel', /must be one of "debug", "info", "warn", "error", got "trace"/);
});

t.test('port ranges', async (t) => {
  for (const ports of [{ low: 5, high: 2 }, { low: 0, high: 10 }, { low: 1, high: 65536 }, { low: 1.5, high: 3 }, { low: 1 }, 'x', [1, 2]]) {
    oneProblem(t, { ports }, 'ports', /must be \{ "low": N, "high": M \} with 1 <= N <= M <= 65535, got /);
  }
  t.same(validateConfig({ ...BASE, ports: { low: 9, high: 9 } }).ports, { low: 9, high: 9 }, 'a single port');
});

t.test('keys', async (t) => {
  oneProblem(t, { keys: { id: 1, secret: hexKey(1) } }, 'keys', /must be a list of \{ "id", "secret" \}/);
  oneProblem(t, { keys: ['abc'] }, 'keys[0]', /must be an object/);
  for (const id of [-1, 1.5, '1', 2 ** 32]) oneProblem(t, { keys: [{ id, secret: hexKey(1) }] }, 'keys[0].id', /must be an integer in 0\.\.4294967295/);
  oneProblem(t, { keys: [{ id: 1, secret: 'zz'.repeat(16) }] }, 'keys[0].secret', /must be a hex string/);
  oneProblem(t, { keys: [{ id: 1, secret: `${hexKey(1)}a` }] }, 'keys[0].secret', /must be a hex string/);
  oneProblem(t, { keys: [{ id: 1, secret: 12 }] }, 'keys[0].secret', /must be a hex string/);
  oneProblem(t, { keys: [{ id: 1, secret: hexKey(1, 15) }] }, 'keys[0].secret', /^must be at least 16 bytes \(32 hex digits\), got 15$/);
  t.equal(validateConfig({ ...BASE, keys: [{ id: 0, secret: hexKey(1, 16) }] }).keys.length, 1, '16 bytes and id 0 are fine');
  oneProblem(t, { keys: [{ id: 5, secret: hexKey(1) }, { id: 6, secret: hexKey(2) }, { id: 5, secret: hexKey(3) }] }, 'keys[2].id', /^key id 5 given twice$/);
  oneProblem(t, { keys: [{ id: 5, secret: hexKey(1) }], sendKeyId: 6 }, 'sendKeyId', /must be the id of one of the keys, got 6/);
  oneProblem(t, { sendKeyId: 0 }, 'sendKeyId', /must be the id of one of the keys, got 0/);
  oneProblem(t, { requireAuth: true }, 'requireAuth', /^needs keys$/);
  oneProblem(t, { requireAuth: 'yes', keys: [{ id: 5, secret: hexKey(1) }] }, 'requireAuth', /must be true or false/);
});

t.test('policies', async (t) => {
  const pol = (p: Record<string, unknown>) => ({ policies: [{ id: 1, match: 'dport 80', chain: ['10.0.0.2'], ...p }] });
  oneProblem(t, { policies: {} }, 'policies', /must be a list/);
  oneProblem(t, { policies: [7] }, 'policies[0]', /must be an object \{ "id", "match", "chain" \}/);
  for (const id of [0, -1, 'one', 2 ** 32, undefined]) oneProblem(t, pol({ id }), 'policies[0].id', /must be an integer in 1\.\.4294967295/);
  oneProblem(t, pol({ match: 80 }), 'policies[0].match', /must be a string such as/);
  oneProblem(t, pol({ match: 'port 80' }), 'policies[0].match', /unknown word "port"/);
  oneProblem(t, pol({ match: '' }), 'policies[0].match', /empty match would steer every TCP connection/);
  oneProblem(t, pol({ match: 'dport 90-80' }), 'policies[0].match', /not a range within 0\.\.65535/);
  // (whether an empty chain is allowed is changing: the lower bound is left out here)
  oneProblem(t, pol({ chain: '10.0.0.2' }), 'policies[0].chain', /must be a list of [01]\.\.7 middlebox addresses/);
  oneProblem(t, pol({ chain: { 0: '10.0.0.2' } }), 'policies[0].chain', /must be a list of [01]\.\.7 middlebox addresses/);
  oneProblem(t, pol({ chain: Array.from({ length: 8 }, (_, i) => `10.0.3.${i}`) }), 'policies[0].chain', /must be a list of [01]\.\.7 middlebox addresses/);
  t.equal(validateConfig({ ...BASE, ...pol({ chain: Array.from({ length: 7 }, (_, i) => `10.0.3.${i}`) }) }).policies[0]?.chain.length, 7, 'seven boxes fit');
  oneProblem(t, pol({ chain: ['10.0.0.2', 'box-b'] }), 'policies[0].chain[1]', /not an IPv4 or IPv6 address: "box-b"/);
  oneProblem(t, pol({ chain: ['10.0.0.2', null] }), 'policies[0].chain[1]', /must be an IP address string, got null/);
  oneProblem(
    t,
    {
      policies: [
        { id: 4, match: 'dport 80', chain: ['10.0.0.2'] },
        { id: 4, match: 'dport 81', chain: ['10.0.0.3'] },
      ],
    },
    'policies[1].id',
    /^policy id 4 given twice$/,
  );
  const c = validateConfig({ ...BASE, policies: [{ id: 2, match: 'src 10.9.0.0/16 sport 1000-2000', chain: ['10.0.0.2'] }, { id: 1, match: 'dst fd00::/64', chain: ['fd00::2'] }] });
  t.same(
    c.policies.map((p) => [p.id, formatMatch(p), p.chain.map(formatAddress)]),
    [
      [2, 'src 10.9.0.0/16 sport 1000-2000', ['10.0.0.2']],
      [1, 'dst fd00::/64', ['fd00::2']],
    ],
    'policies kept in the order written',
  );
});

t.test('every problem is reported at once', async (t) => {
  const ps = problemsOf({
    adress: '10.0.0.1',
    interfaces: ['eth0', 'x/y'],
    mode: 'fast',
    ports: { low: 10, high: 1 },
    keys: [{ id: 1, secret: 'abcd' }],
    requireAuth: true,
    policies: [{ id: 1, match: 'dst 10.0.0.0/8', chain: '10.0.0.2' }],
    logLevel: 'loud',
  });
  t.same(
    ps.map((p) => p.slice(0, p.indexOf(': '))),
    ['config.adress', 'config.address', 'config.interfaces[1]', 'config.ports', 'config.keys[0].secret', 'config.requireAuth', 'config.policies[0].chain', 'config.mode', 'config.logLevel'],
  );
  const e = (() => {
    try {
      validateConfig({ interfaces: ['eth0'], mode: 'fast' });
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(e instanceof ConfigError);
  t.equal((e as Error).message, 'invalid configuration:\n  config.address: is required\n  config.mode: must be one of "auto", "xdp", "tc", got "fast"', 'one problem a line');
  t.throws(() => validateConfig({ interfaces: ['eth0'] }), { name: 'ConfigError', message: 'invalid configuration: config.address: is required' }, 'a single problem on one line');
});

t.test('loadConfig', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ ...BASE, controlPort: 7000 }));
  t.equal(loadConfig(good).controlPort, 7000);

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ address: 'nowhere', interfaces: ['eth0'], rto: -3 }));
  t.same(loadProblems(bad), [`${bad}.address: not an IPv4 or IPv6 address: "nowhere"`, `${bad}.rto: must be an integer in 1..60000, got -3`], 'paths start with the file name');

  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{ "address": "10.0.0.1", }');
  const bp = loadProblems(broken);
  t.equal(bp.length, 1);
  t.ok(bp[0]?.startsWith(`${broken}: not valid JSON: `), bp[0] ?? '');

  const missing = join(dir, 'missing.json');
  const mp = loadProblems(missing);
  t.equal(mp.length, 1);
  t.ok(mp[0]?.startsWith(`${missing}: cannot read: ENOENT`), mp[0] ?? '');
});

t.test('CONFIG_FIELDS describes every field validateConfig reads', async (t) => {
  const names = CONFIG_FIELDS.map(([k]) => k);
  t.equal(new Set(names).size, names.length, 'no field twice');
  for (const [k, d] of CONFIG_FIELDS) t.ok(d.length > 10, `${k} has a description`);
  // a field CONFIG_FIELDS lists is not unknown to validateConfig
  const ps = problemsOf({ ...BASE, ...Object.fromEntries(names.map((n) => [n, undefined])) });
  t.same(ps, ['config.address: is required', 'config.interfaces: is required: a non-empty list of interface names'], 'every listed field is known');
});

// ---------------------------------------------------------------------------
// policy predicates

t.test('parseMatch', async (t) => {
  const m = parseMatch('dst 10.0.0.0/24 dport 80');
  t.same(Object.keys(m).sort(), ['dport', 'dst']);
  t.equal(formatPrefix(m.dst!), '10.0.0.0/24');
  t.same(m.dport, [80, 80]);
  const n = parseMatch('  tcp\tsrc 10.0.0.1 and sport 1000-2000 and dst fd00::/8 dport 0-65535 ');
  t.equal(formatPrefix(n.src!), '10.0.0.1/32', 'a bare address is a host prefix');
  t.same(n.sport, [1000, 2000]);
  t.equal(formatPrefix(n.dst!), 'fd00::/8');
  t.same(n.dport, [0, 65535]);
  t.equal(formatMatch(n), 'src 10.0.0.1/32 dst fd00::/8 sport 1000-2000 dport 0-65535');
  const p = policyFromSpec({ id: 3, match: 'dport 443', chain: ['10.0.0.5', 'fd00::5'] });
  t.equal(p.id, 3);
  t.same(p.dport, [443, 443]);
  t.same(p.chain.map(formatAddress), ['10.0.0.5', 'fd00::5']);
});

t.test('parseMatch rejections', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /empty match would steer every TCP connection/],
    ['   ', /empty match/],
    ['tcp', /empty match/],
    ['tcp and', /empty match/],
    ['port 80', /^unknown word "port" \(expected src, dst, sport or dport\)$/],
    ['dport 80 tcp', /unknown word "tcp"/],
    ['dst 10.0.0.0/8 from 10.0.0.1', /unknown word "from"/],
    ['dst', /^dst needs a prefix$/],
    ['src', /^src needs a prefix$/],
    ['dst 10.0.0.0/33', /bad prefix length/],
    ['src 10.0.0', /not an IPv4 or IPv6 address/],
    ['dport', /^dport needs a port or a range N-M, got ""$/],
    ['sport x', /^sport needs a port or a range N-M, got "x"$/],
    ['dport 80-', /dport needs a port or a range N-M/],
    ['dport -80', /dport needs a port or a range N-M/],
    ['dport 123456', /dport needs a port or a range N-M/],
    ['dport 90-80', /^dport 90-80 is not a range within 0\.\.65535$/],
    ['sport 70000', /^sport 70000 is not a range within 0\.\.65535$/],
    ['dport 1-65536', /not a range within 0\.\.65535/],
    ['dport 80 dport 81', /^dport given twice$/],
    ['sport 1 sport 1', /^sport given twice$/],
    ['src 10.0.0.1 dst 10.0.0.2 src 10.0.0.3', /^src given twice$/],
    ['dst ::1 and dst ::2', /^dst given twice$/],
  ];
  for (const [text, re] of cases) t.throws(() => parseMatch(text), { message: re }, JSON.stringify(text));
});

type Predicate = ReturnType<typeof parseMatch>;

const addressArb: fc.Arbitrary<Address> = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes): Address => ({ family: 4, bytes })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes): Address => ({ family: 6, bytes })),
);
const prefixArb = addressArb.chain((address) => fc.integer({ min: 0, max: address.family === 4 ? 32 : 128 }).map((length) => ({ address, length })));
const portArb = fc.integer({ min: 0, max: 65535 });
const rangeArb: fc.Arbitrary<[number, number]> = fc.oneof(
  portArb.map((p): [number, number] => [p, p]),
  fc.tuple(portArb, portArb).map(([a, b]): [number, number] => [Math.min(a, b), Math.max(a, b)]),
);
const predicateArb: fc.Arbitrary<Predicate> = fc
  .record({ src: prefixArb, dst: prefixArb, sport: rangeArb, dport: rangeArb }, { requiredKeys: [] })
  .filter((p) => Object.keys(p).length > 0)
  .map((p) => ({ ...p })); // an ordinary object, as parseMatch returns

/** Runs a property; the test fails with fast-check's report (seed and counterexample) when it does. */
function check<T>(t: Test, arb: fc.Arbitrary<T>, pred: (v: T) => boolean, what: string, numRuns = 2000): void {
  const r = fc.check(fc.property(arb, pred), { numRuns });
  t.equal(r.failed, false, r.failed ? `${what}\n${fc.defaultReportMessage(r) ?? ''}` : what);
  t.equal(r.numRuns, numRuns, `${what}: ${numRuns} cases`);
}

t.test('formatMatch and parseMatch round trip', async (t) => {
  check(t, predicateArb, (p) => isDeepStrictEqual(parseMatch(formatMatch(p)), p), 'parseMatch(formatMatch(p)) is p');

  // any way of writing a predicate: clauses in any order, "tcp" first, "and" between, any blanks
  const writings = predicateArb.chain((p) => {
    const text = formatMatch(p);
    const clauses = text.match(/\S+ \S+/g)!;
    return fc
      .record({
        order: fc.shuffledSubarray(clauses, { minLength: clauses.length, maxLength: clauses.length }),
        tcp: fc.boolean(),
        ands: fc.array(fc.boolean(), { minLength: clauses.length, maxLength: clauses.length }),
        blank: fc.constantFrom(' ', '  ', '\t', ' \n '),
      })
      .map(({ order, tcp, ands, blank }) => ({
        canonical: text,
        written: `${blank}${tcp ? `tcp${blank}` : ''}${order.map((c, i) => `${i > 0 && ands[i] ? `and${blank}` : ''}${c.replace(' ', blank)}`).join(blank)}${blank}`,
      }));
  });
  check(t, writings, ({ canonical, written }) => formatMatch(parseMatch(written)) === canonical, 'every writing reads as the canonical text');

  // a clause written twice is refused
  const doubled = predicateArb.chain((p) => {
    const clauses = formatMatch(p).match(/\S+ \S+/g)!;
    return fc.nat({ max: clauses.length - 1 }).map((i) => ({ text: [...clauses, clauses[i]!].join(' '), word: clauses[i]!.split(' ')[0]! }));
  });
  check(
    t,
    doubled,
    ({ text, word }) => {
      try {
        parseMatch(text);
        return false;
      } catch (e) {
        return (e as Error).message === `${word} given twice`;
      }
    },
    'a clause given twice is refused',
  );
});

// ---------------------------------------------------------------------------
// metrics

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/**
 * A reader of the Prometheus text format (version 0.0.4) strict enough to
 * catch what a scraper refuses: HELP and TYPE once per family and before its
 * samples, a family's samples together, label values with their escapes,
 * numeric values, a final newline.
 */
function parseExposition(text: string): { help: Map<string, string>; type: Map<string, string>; samples: Sample[] } {
  if (!text.endsWith('\n')) throw new Error('no final newline');
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: Sample[] = [];
  const done = new Set<string>();
  let current: string | undefined;
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  const enter = (name: string) => {
    if (current !== name) {
      if (done.has(name)) throw new Error(`family ${name} is not contiguous`);
      if (current) done.add(current);
      current = name;
    }
  };
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      enter(m[1]!);
      if (help.has(m[1]!)) throw new Error(`second HELP for ${m[1]}`);
      if (/\\(?![\\n])/.test(m[2]!)) throw new Error(`bad escape in HELP of ${m[1]}`);
      help.set(m[1]!, m[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c)));
      continue;
    }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      enter(m[1]!);
      if (type.has(m[1]!)) throw new Error(`second TYPE for ${m[1]}`);
      if (samples.some((s) => s.name === m![1])) throw new Error(`TYPE after samples of ${m[1]}`);
      type.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`unexpected comment: ${line}`);
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`not a sample: ${line}`);
    const name = nm[0];
    enter(name);
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
        if (!ln) throw new Error(`bad label name at ${i}: ${line}`);
        i += ln[0].length;
        if (line.slice(i, i + 2) !== '="') throw new Error(`expected =" at ${i}: ${line}`);
        i += 2;
        let v = '';
        for (;;) {
          const c = line[i++];
          if (c === undefined) throw new Error(`unterminated label value: ${line}`);
          if (c === '"') break;
          if (c === '\\') {
            const e = line[i++];
            if (e === 'n') v += '\n';
            else if (e === '\\' || e === '"') v += e;
            else throw new Error(`bad escape \\${e}: ${line}`);
          } else v += c;
        }
        if (ln[0] in labels) throw new Error(`label ${ln[0]} twice: ${line}`);
        labels[ln[0]] = v;
        if (line[i] === ',') i++;
        else if (line[i] !== '}') throw new Error(`expected , or } at ${i}: ${line}`);
      }
      i++;
    }
    const rest = line.slice(i);
    const vm = /^ (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|[+-]Inf)$/.exec(rest);
    if (!vm) throw new Error(`bad value ${JSON.stringify(rest)}: ${line}`);
    if (!help.has(name) || !type.has(name)) throw new Error(`sample of ${name} before its HELP and TYPE`);
    samples.push({ name, labels, value: Number(vm[1]) });
  }
  return { help, type, samples };
}

t.test('metrics render as Prometheus text', async (t) => {
  const m = new Metrics();
  const sent = m.counter('dysco_sent_total', 'Messages sent, by type');
  const errors = m.counter('dysco_errors_total', 'Errors');
  let scraped = 0;
  let sessions = 3;
  m.gauge('dysco_sessions', 'Sessions now', () => {
    scraped++;
    return [{ labels: {}, value: sessions }];
  });
  m.gauge('dysco_by_kind', 'By kind', () => [
    { labels: { kind: 'a' }, value: 1 },
    { labels: { kind: 'b' }, value: 2.5 },
  ]);
  sent({ type: 'syn' });
  sent({ type: 'syn' });
  sent({ type: 'ack' }, 5);
  sent({ a: '1', type: 'nack' });
  sent({ type: 'nack', a: '1' }, 2);

  const r = parseExposition(m.render());
  t.same(Object.fromEntries(r.type), { dysco_sent_total: 'counter', dysco_errors_total: 'counter', dysco_sessions: 'gauge', dysco_by_kind: 'gauge' });
  t.same(Object.fromEntries(r.help), { dysco_sent_total: 'Messages sent, by type', dysco_errors_total: 'Errors', dysco_sessions: 'Sessions now', dysco_by_kind: 'By kind' });
  const find = (name: string, labels: Record<string, string>) => r.samples.filter((s) => s.name === name && isDeepStrictEqual(s.labels, labels)).map((s) => s.value);
  t.same(find('dysco_sent_total', { type: 'syn' }), [2]);
  t.same(find('dysco_sent_total', { type: 'ack' }), [5]);
  t.same(find('dysco_sent_total', { a: '1', type: 'nack' }), [3], 'labels in any order are one series');
  t.equal(r.samples.filter((s) => s.name === 'dysco_sent_total').length, 3);
  t.equal(r.samples.filter((s) => s.name === 'dysco_errors_total').length, 0, 'a counter never incremented has no sample');
  t.same(find('dysco_sessions', {}), [3]);
  t.same(find('dysco_by_kind', { kind: 'b' }), [2.5]);
  t.equal(scraped, 1, 'gauges are read when rendered');

  sessions = 11;
  errors();
  const r2 = parseExposition(m.render());
  t.equal(scraped, 2);
  t.same(r2.samples.filter((s) => s.name === 'dysco_sessions').map((s) => s.value), [11], 'the gauge shows the value at the scrape');
  t.same(r2.samples.filter((s) => s.name === 'dysco_errors_total').map((s) => s.value), [1]);

  t.equal(m.value('dysco_sent_total', { type: 'nack', a: '1' }), 3);
  t.equal(m.value('dysco_sent_total', { type: 'rst' }), 0);
  t.equal(m.value('dysco_nothing'), 0);
  t.equal(m.value('dysco_by_kind', { kind: 'a' }), 1);
  t.same(m.snapshot(), {
    'dysco_sent_total{type="syn"}': 2,
    'dysco_sent_total{type="ack"}': 5,
    'dysco_sent_total{a="1",type="nack"}': 3,
    dysco_errors_total: 1,
    dysco_sessions: 11,
    'dysco_by_kind{kind="a"}': 1,
    'dysco_by_kind{kind="b"}': 2.5,
  });
});

t.test('label values are escaped', async (t) => {
  const m = new Metrics();
  const c = m.counter('dysco_odd_total', 'Odd labels');
  const odd = 'a "quoted" \\path\\ and\na newline, {braces} = é';
  c({ what: odd });
  const text = m.render();
  t.ok(text.includes(String.raw`what="a \"quoted\" \\path\\ and\na newline, {braces} = é"`), 'escaped in the text');
  t.same(parseExposition(text).samples, [{ name: 'dysco_odd_total', labels: { what: odd }, value: 1 }]);

  const valueArb = fc.array(fc.constantFrom('a', 'Z', '"', '\\', '\n', 'n', ',', '}', '{', '=', ' ', 'é', '\u{1f600}'), { maxLength: 12 }).map((a) => a.join(''));
  check(
    t,
    fc.array(fc.tuple(valueArb, fc.integer({ min: 1, max: 1000 })), { minLength: 1, maxLength: 20 }),
    (incs) => {
      const m = new Metrics();
      const c = m.counter('dysco_x_total', 'X');
      const want = new Map<string, number>();
      for (const [v, by] of incs) {
        c({ v }, by);
        want.set(v, (want.get(v) ?? 0) + by);
      }
      const got = new Map(parseExposition(m.render()).samples.map((s) => [s.labels.v!, s.value]));
      return isDeepStrictEqual(got, want);
    },
    'any label values read back, and the counts add up',
    500,
  );
});

t.test('serve answers /metrics over HTTP and nothing else', async (t) => {
  const m = new Metrics();
  m.counter('dysco_hits_total', 'Hits')({ path: '/' }, 4);
  let n = 0;
  m.gauge('dysco_scrapes', 'Scrapes', () => [{ labels: {}, value: ++n }]);
  const server = await m.serve('127.0.0.1', 0);
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port, address } = server.address() as AddressInfo;
  t.equal(address, '127.0.0.1');
  t.not(port, 0, 'an ephemeral port');
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4');
  const body = parseExposition(await res.text());
  t.same(body.samples, [
    { name: 'dysco_hits_total', labels: { path: '/' }, value: 4 },
    { name: 'dysco_scrapes', labels: {}, value: 1 },
  ]);
  const again = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  t.same(again.samples.find((s) => s.name === 'dysco_scrapes')?.value, 2, 'collected at each scrape');
  for (const path of ['/', '/metric', '/metrics/x', '/favicon.ico']) {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    t.equal(r.status, 404, path);
    await r.text();
  }
});

t.test('serve fails on a port in use', async (t) => {
  const a = await new Metrics().serve('127.0.0.1', 0);
  t.teardown(() => a.close());
  await t.rejects(new Metrics().serve('127.0.0.1', (a.address() as AddressInfo).port), { code: 'EADDRINUSE' });
});

// ---------------------------------------------------------------------------
// logs

function capture(level?: ConstructorParameters<typeof Logger>[0]): { log: Logger; lines: string[]; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = new Logger(level, (l) => lines.push(l));
  return { log, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

t.test('logs are JSON lines with time, level and message', async (t) => {
  const { log, lines, records } = capture('debug');
  const before = Date.now();
  log.debug('d');
  log.info('two\nlines', { session: 4, tuple: '10.0.0.1:1>10.0.0.2:2' });
  log.warn('w', { nested: { a: [1, 2] } });
  log.error('e');
  const after = Date.now();
  t.equal(lines.length, 4);
  for (const l of lines) {
    t.ok(l.endsWith('\n'), 'ends the line');
    t.equal(l.indexOf('\n'), l.length - 1, 'one line each');
  }
  const rs = records();
  t.same(rs.map((r) => [r.level, r.msg]), [
    ['debug', 'd'],
    ['info', 'two\nlines'],
    ['warn', 'w'],
    ['error', 'e'],
  ]);
  for (const r of rs) {
    t.match(r.t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const ms = Date.parse(r.t as string);
    t.ok(ms >= before - 1 && ms <= after + 1, 'the time of the call');
  }
  t.same(Object.keys(rs[1]!), ['t', 'level', 'msg', 'session', 'tuple'], 'time, level and message first');
  t.equal(rs[1]!.session, 4);
  t.same(rs[2]!.nested, { a: [1, 2] });
});

t.test('level filtering', async (t) => {
  const levels = ['debug', 'info', 'warn', 'error'] as const;
  for (const [i, level] of levels.entries()) {
    const { log, records } = capture(level);
    for (const l of levels) log[l](l);
    t.same(records().map((r) => r.msg), levels.slice(i), `at ${level}`);
    t.same(levels.map((l) => log.enabled(l)), levels.map((_, j) => j >= i));
  }
  const { log, records } = capture();
  log.debug('hidden');
  log.info('shown');
  t.same(records().map((r) => r.msg), ['shown'], 'info by default');
  log.setLevel('error');
  log.warn('hidden now');
  log.error('still shown');
  log.setLevel('debug');
  log.debug('shown again');
  t.same(records().map((r) => r.msg), ['shown', 'still shown', 'shown again']);
});

t.test('child loggers add their fields', async (t) => {
  const { log, records } = capture('info');
  const a = log.child({ component: 'control', session: 1 });
  const b = a.child({ session: 2, peer: '10.0.0.2' });
  a.info('from a');
  b.info('from b');
  b.info('overridden', { peer: '10.0.0.3' });
  log.info('from the parent');
  b.debug('below the level the child inherited');
  const rs = records().map(({ t: _t, level: _l, ...rest }) => rest);
  t.same(rs, [
    { msg: 'from a', component: 'control', session: 1 },
    { msg: 'from b', component: 'control', session: 2, peer: '10.0.0.2' },
    { msg: 'overridden', component: 'control', session: 2, peer: '10.0.0.3' },
    { msg: 'from the parent' },
  ]);
});

t.test('bigints are written as decimal strings', async (t) => {
  const { log, records } = capture();
  log.info('counters', { packets: 18446744073709551615n, small: 3n, list: [1n, 2] });
  const [r] = records();
  t.equal(r!.packets, '18446744073709551615');
  t.equal(r!.small, '3');
  t.same(r!.list, ['1', 2]);
});


t.test('a policy that mixes address families is refused: it could never match', async (t) => {
  const base = { address: '10.0.0.1', interfaces: ['eth0'] };
  t.same(problemsOf({ ...base, policies: [{ id: 1, match: 'dst 10.0.0.0/8', chain: ['fd00::1'] }] }), ['config.policies[0]: mixes IPv4 and IPv6 addresses: it could never match']);
  t.same(problemsOf({ ...base, interfaces: 'eth0' }), ['config.interfaces: must be a non-empty list of interface names, got "eth0"']);
  const keys = Array.from({ length: 65 }, (_, i) => ({ id: i, secret: 'ab'.repeat(16) }));
  t.same(problemsOf({ ...base, keys }), ['config.keys: at most 64 keys fit the data plane, got 65']);
});
