import t from 'tap';
import { spawn } from 'node:child_process';
import { Topology, eachLine } from '../dist/topology.js';

/*
 * The parts of the test-bed library that need no bed: reading a program's
 * output, and the reason a bed cannot be built.
 */

t.test('eachLine: whole lines, as they come, however the output is cut', async (t) => {
  const script = `process.stdout.write('a\\nb'); setTimeout(() => process.stdout.write('c\\n\\nd\\ne'), 100);`;
  const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: string[] = [];
  eachLine(p, (l) => got.push(l));
  await new Promise((r) => p.once('close', r));
  t.same(got, ['a', 'bc', '', 'd'], 'an unfinished last line is not a line');
});

t.test('Topology.unavailable names what is missing', async (t) => {
  const why = await Topology.unavailable([['no-such-command-here', 'some-package']]);
  t.match(why, /^needs (root \(network namespaces, BPF\)|nsenter \(util-linux\)|no-such-command-here \(some-package\))$/);
  if (process.getuid?.() === 0) t.not(why, 'needs root (network namespaces, BPF)', 'root is root');
});
