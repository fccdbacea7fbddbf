import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ConfigReader, REQUIRED, readConfigFile, shown } from '../dist/config-reader.js';

/*
 * The reader middleboxes (and the agent) validate their JSON configuration
 * with: every problem names its field and says what is wrong, all of them
 * at once.
 */

/** The problems `read` finds in `raw` (none when it reads it). */
function problemsOf(raw: unknown, read: (r: ConfigReader) => void, source?: string): string[] {
  try {
    const r = ConfigReader.read(raw, source);
    read(r);
    r.done(undefined);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

t.test('the document must be an object', async (t) => {
  for (const raw of [null, [], 'x', 3, undefined]) t.throws(() => ConfigReader.read(raw), { name: 'ConfigError', problems: ['config: must be a JSON object'] }, JSON.stringify(raw) ?? 'undefined');
  t.throws(() => ConfigReader.read([], 'box.json'), { message: 'invalid configuration: box.json: must be a JSON object' });
});

t.test('scalars: the value, the default when absent, the default and a problem when wrong', async (t) => {
  const raw = { n: 5, f: 1.5, s: 'x', b: false, o: 'tc', z: null };
  const r = ConfigReader.read(raw, 'c.json');
  t.equal(r.int('n', 1, 0, 10), 5);
  t.equal(r.int('absent', 7, 0, 10), 7);
  t.equal(r.int('absent', undefined, 0, 10), undefined);
  t.equal(r.int('n', 1, 6, 10), 1, 'out of range: the default');
  t.equal(r.int('f', 1, 0, 10), 1, 'not an integer');
  t.equal(r.number('f', 0, 0, 2), 1.5);
  t.equal(r.number('s', 0, 0, 2), 0);
  t.equal(r.string('s', 'd'), 'x');
  t.equal(r.string('s', 'd', /^y$/, 'a y'), 'd');
  t.equal(r.string('z', 'd'), 'd', 'null is a wrong value, not an absent one');
  t.equal(r.boolean('b', true), false);
  t.equal(r.oneOf('o', ['tc', 'xdp'], 'xdp'), 'tc');
  t.equal(r.oneOf('s', ['a', 'b', 'c'], 'a'), 'a');
  t.ok(!r.ok);
  t.same(r.problems, [
    'c.json.n: must be an integer in 6..10, got 5',
    'c.json.f: must be an integer in 0..10, got 1.5',
    'c.json.s: must be a number in 0..2, got "x"',
    'c.json.s: must be a y, got "x"',
    'c.json.z: must be a non-empty string, got null',
    'c.json.s: must be one of "a", "b", "c", got "x"',
  ]);
  t.throws(() => r.done(1), { name: 'ConfigError', problems: r.problems });
});

t.test('choices: two read as "a" or "b"', async (t) => {
  t.same(problemsOf({ action: 'kill' }, (r) => r.oneOf('action', ['drop', 'reset'], 'drop')), ['config.action: must be "drop" or "reset", got "kill"']);
});

t.test('REQUIRED: an absent field is a problem, and reads as undefined', async (t) => {
  let id: number | undefined = 0;
  t.same(
    problemsOf({}, (r) => {
      id = r.int('id', REQUIRED, 1, 9);
    }),
    ['config.id: is required and must be an integer in 1..9'],
  );
  t.equal(id, undefined);
  t.same(problemsOf({ id: 0 }, (r) => r.int('id', REQUIRED, 1, 9)), ['config.id: must be an integer in 1..9, got 0']);
  t.same(problemsOf({ id: 3 }, (r) => t.equal(r.int('id', REQUIRED, 1, 9), 3)), []);
});

t.test('objects are shown by their kind, other values as JSON', async (t) => {
  t.equal(shown({ secret: 'abc' }), 'an object');
  t.equal(shown([1, 'a']), '[1,"a"]');
  t.equal(shown('a"b'), '"a\\"b"');
  t.equal(shown(null), 'null');
  t.equal(shown(undefined), 'undefined');
});

t.test('sections and unknown fields', async (t) => {
  const ps = problemsOf({ $schema: 's', comment: 'c', a: { x: 1, y: 2, comment: 'c' }, b: 5, c: 1, typo: 2 }, (r) => {
    r.known(['a', 'b', 'c']);
    const a = r.section('a');
    a.known(['x']);
    t.equal(a.int('x', 0, 0, 9), 1);
    const b = r.section('b');
    t.equal(b.int('x', 4, 0, 9), 4, 'a section that is not an object reads as empty');
    t.equal(b.value, undefined);
    const none = r.section('none');
    t.equal(none.int('x', 3, 0, 9), 3, 'an absent section too');
    t.equal(none.path, 'config.none');
  });
  t.same(ps, ['config.typo: unknown field (known: a, b, c)', 'config.a.y: unknown field (known: x)', 'config.b: must be an object, got 5']);
});

t.test('lists: each element at its place, left out when its reader says undefined', async (t) => {
  let got: number[] = [];
  const ps = problemsOf({ ports: [80, 'x', 443, -1] }, (r) => {
    got = r.list('ports', 'a list of ports', (e, i) => {
      t.equal(e.path, `config.ports[${i}]`);
      return typeof e.value === 'number' && e.value > 0 ? e.value : e.problem(`not a port: ${shown(e.value)}`);
    });
  });
  t.same(got, [80, 443]);
  t.same(ps, ['config.ports[1]: not a port: "x"', 'config.ports[3]: not a port: -1']);
  t.same(problemsOf({ ports: 80 }, (r) => t.same(r.list('ports', 'a list of ports', (e) => e.value), [])), ['config.ports: must be a list of ports, got 80']);
  t.same(problemsOf({ ports: [] }, (r) => r.list('ports', 'a non-empty list of ports', (e) => e.value, 1)), ['config.ports: must be a non-empty list of ports, got []']);
  t.same(problemsOf({}, (r) => t.same(r.list('ports', 'a list', (e) => e.value), [], 'absent: empty')), []);
  t.same(problemsOf({ keys: { id: 1, secret: 'ab' } }, (r) => r.list('keys', 'a list of keys', (e) => e.value)), ['config.keys: must be a list of keys, got an object'], 'an object is not repeated');
  t.same(problemsOf({ s: ['a', ''] }, (r) => r.strings('s')), ['config.s: must be a list of non-empty strings']);
  t.same(problemsOf({ s: ['a', 'b'] }, (r) => t.same(r.strings('s'), ['a', 'b'])), []);
});

t.test('objects of objects: entries, nested paths', async (t) => {
  const ps = problemsOf({ hosts: { a: '1.2.3.4', b: 5, c: { port: 'x' } } }, (r) => {
    const h = r.section('hosts');
    t.same(
      h.entries().map(([k, v]) => [k, v.path]),
      [
        ['a', 'config.hosts.a'],
        ['b', 'config.hosts.b'],
        ['c', 'config.hosts.c'],
      ],
    );
    t.equal(h.at('c').isObject, true);
    h.at('c').int('port', 0, 1, 2);
    t.equal(h.at('c').at('port').at(0).value, undefined, 'an index into a non-list: absent');
    t.equal(r.has('hosts'), true);
    t.equal(r.has('nothing'), false);
  });
  t.same(ps, ['config.hosts.c.port: must be an integer in 1..2, got "x"']);
  t.equal(ConfigReader.read({ toString: 1 }).has('valueOf'), false, 'only own fields');
});

t.test('parse and attempt: what a converter throws is the problem', async (t) => {
  const port = (text: string) => {
    if (!/^\d+$/.test(text)) throw new Error(`not a port: ${JSON.stringify(text)}`);
    return Number(text);
  };
  let v: (number | undefined)[] = [];
  const ps = problemsOf({ a: '80', b: 'x', c: 80 }, (r) => {
    v = ['a', 'b', 'c', 'd'].map((k) => r.at(k).parse('a port string', port));
  });
  t.same(v, [80, undefined, undefined, undefined]);
  t.same(ps, ['config.b: not a port: "x"', 'config.c: must be a port string, got 80']);
  t.same(
    problemsOf({ x: 1 }, (r) => {
      t.equal(r.attempt(() => 3), 3);
      r.attempt(() => {
        throw new RangeError('too far');
      });
    }),
    ['config: too far'],
    'a problem with the document itself names the source alone',
  );
  t.throws(() => ConfigReader.read({}).attempt(() => {
    throw 'not an Error';
  }), 'what is not an Error is not a configuration problem');
});

t.test('ConfigError: one problem on one line, several one a line', async (t) => {
  t.equal(new ConfigError(['a: b']).message, 'invalid configuration: a: b');
  t.equal(new ConfigError(['a: b', 'c: d']).message, 'invalid configuration:\n  a: b\n  c: d');
});

t.test('any document: the readers never throw, and every problem starts with a path of the document', async (t) => {
  const r = fc.check(
    fc.property(fc.dictionary(fc.constantFrom('n', 's', 'l', 'o', 'x'), fc.jsonValue({ maxDepth: 3 })), (raw) => {
      const reader = ConfigReader.read(raw, 'f');
      reader.known(['n', 's', 'l', 'o']);
      reader.int('n', 0, 0, 10);
      reader.string('s', '');
      reader.list('l', 'a list', (e) => e.string('v', undefined) ?? e.problem('no v'));
      const o = reader.section('o');
      o.boolean('b', false);
      o.oneOf('c', ['x', 'y', 'z'], 'x');
      return reader.problems.every((p) => /^f(\.[nslox]|\.l\[\d+\](\.v)?|\.o\.[bc])?: \S/.test(p));
    }),
    { numRuns: 500 },
  );
  t.equal(r.failed, false, r.failed ? (fc.defaultReportMessage(r) ?? '') : 'every problem has a path');
});

t.test('readConfigFile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-config-reader-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const read = (raw: unknown, source: string) => {
    const r = ConfigReader.read(raw, source);
    return r.done({ port: r.int('port', 80, 1, 65535) });
  };
  const good = join(dir, 'good.json');
  writeFileSync(good, '{ "port": 8080 }');
  t.same(readConfigFile(good, read), { port: 8080 });
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{ "port": 0 }');
  t.throws(() => readConfigFile(bad, read), { name: 'ConfigError', problems: [`${bad}.port: must be an integer in 1..65535, got 0`] }, 'paths start with the file name');
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{ "port": ');
  t.throws(() => readConfigFile(broken, read), { name: 'ConfigError', message: new RegExp(`^invalid configuration: ${broken}: not valid JSON: `) });
  t.throws(() => readConfigFile(join(dir, 'missing.json'), read), { name: 'ConfigError', message: /: cannot read: ENOENT/ });
});
