import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * The command-line helper of middlebox programs, through a program that
 * uses it (command-line-child.ts): what it prints and its exit status.
 */

const CHILD = fileURLToPath(new URL('./command-line-child.js', import.meta.url));
const USAGE = 'usage: box [--config FILE] [--n N] [--tag T...] [--fail]\n';

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CHILD, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'dysco-command-line-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the options, typed and parsed', async (t) => {
  const r = run('--n', '3', '--tag', 'a', '--tag', 'b');
  t.same(r, { status: 0, stdout: `${JSON.stringify({ n: '3', tags: ['a', 'b'], fail: false })}\n`, stderr: '' });
});

t.test('--help and -h: the usage on stdout, status 0', async (t) => {
  t.same(run('--help'), { status: 0, stdout: USAGE, stderr: '' });
  t.same(run('-h', '--n', 'x'), { status: 0, stdout: USAGE, stderr: '' }, 'before any check of the program');
});

t.test('usage errors: the message and the usage on stderr, status 2', async (t) => {
  t.same(run('--bogus'), { status: 2, stdout: '', stderr: `box: Unknown option '--bogus'\n${USAGE}` });
  t.same(run('--n'), { status: 2, stdout: '', stderr: `box: Option '--n <value>' argument missing\n${USAGE}` });
  t.match(run('extra'), { status: 2, stdout: '', stderr: /^box: Unexpected argument 'extra'/ });
  t.same(run('--n', 'x'), { status: 2, stdout: '', stderr: `box: --n: not a number: x\n${USAGE}` }, "the program's own");
});

t.test('fail: the message alone, status 1', async (t) => {
  t.same(run('--fail'), { status: 1, stdout: '', stderr: 'box: it failed\n' });
});

t.test('the configuration file: its problems, status 2', async (t) => {
  const good = join(dir, 'good.json');
  writeFileSync(good, '{ "port": 8080 }');
  t.same(run('--config', good), { status: 0, stdout: `${JSON.stringify({ fail: false, config: { port: 8080 } })}\n`, stderr: '' });
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{ "port": 0 }');
  t.same(run('--config', bad), { status: 2, stdout: '', stderr: `box: invalid configuration: ${bad}.port: must be an integer in 1..65535, got 0\n` });
  const missing = join(dir, 'missing.json');
  t.match(run('--config', missing), { status: 2, stdout: '', stderr: `box: invalid configuration: ${missing}: cannot read: ENOENT` });
});
