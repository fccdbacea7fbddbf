import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Topology, eachLine } from '../dist/topology.js';
import { privilegedSkipReason } from './helpers.js';

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

const skip = privilegedSkipReason();

t.test("a bed is removed when a test runner's timeout (SIGALRM) ends its process", skip ? { skip } : {}, async (t) => {
  const url = new URL('../dist/topology.js', import.meta.url).href;
  // the child builds a bed and then receives `signal`; with `listener`, something else (a test runner) also listens
  const child = (signal: string, listener: boolean) => `
    const { Topology } = await import(${JSON.stringify(url)});
    ${listener ? `process.on('${signal}', () => setTimeout(() => process.exit(7), 50));` : ''}
    const bed = Topology.create({ hosts: ['a', 'b'] });
    console.log(JSON.stringify({ ns: [...bed.hosts.values()].map((h) => h.ns), pin: [...bed.hosts.values()].map((h) => h.pinRoot) }));
    process.kill(process.pid, '${signal}');
    setTimeout(() => {}, 5000);
  `;
  for (const [signal, listener, status] of [['SIGALRM', true, 7], ['SIGALRM', false, null]] as const) {
    // a plain node process: the runner's preloads (which listen for signals too) are left out
    const p = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', child(signal, listener)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let made: { ns: string[]; pin: string[] } = { ns: [], pin: [] };
    eachLine(p, (l) => (made = JSON.parse(l) as typeof made));
    const [code, sig] = await new Promise<[number | null, string | null]>((r) => p.once('exit', (c, s) => r([c, s])));
    const what = `${signal}${listener ? ' with another listener' : ''}`;
    t.equal(listener ? code : sig, listener ? status : signal, `${what}: the process ends as it would have`);
    t.equal(made.ns.length, 2, `${what}: the bed had been built`);
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    t.same(made.ns.filter((n) => left.includes(n)), [], `${what}: no namespace of the bed is left`);
    t.same(made.pin.filter((d) => existsSync(d)), [], `${what}: no pin directory is left`);
  }
});
