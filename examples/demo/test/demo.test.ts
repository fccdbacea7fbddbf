/**
 * The demo as CI runs it: `node dist/main.js --quick --out FILE` in a child
 * process, as root. It must end with status 0 after every scenario
 * completed with its reconfigurations, write the plot, and leave no
 * namespace, pin or bed directory behind; interrupted, it must clean up
 * too. `--help` and usage errors need no root.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Topology } from '@dysco/agent/topology';
import { Capture } from '@dysco-example/ips';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Run {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exit: Promise<number | string>;
}

/** Runs the demo; its output is echoed as test comments when the test fails. */
function demo(args: string[], limitMs = 400_000): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGTERM'), limitMs);
  const exit = new Promise<number | string>((r) =>
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      r(code ?? signal ?? 'unknown');
    }),
  );
  return { child, output: () => out, exit };
}

/** What a demo run with this tag left: namespaces, pinned maps, its bed directory. */
function leftovers(tag: string): string[] {
  const left: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const l of ns.split('\n')) if (l.includes(tag)) left.push(`namespace ${l.split(' ')[0]}`);
  if (existsSync('/sys/fs/bpf')) for (const e of readdirSync('/sys/fs/bpf')) if (e.startsWith(`dysco-${tag}-`)) left.push(`pin /sys/fs/bpf/${e}`);
  if (existsSync(`/tmp/dysco-bed-${tag}`)) left.push(`directory /tmp/dysco-bed-${tag}`);
  return left;
}

t.test('--help lists the options and the scenarios (no root needed)', async (t) => {
  const r = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
  t.equal(r.status, 0);
  for (const o of ['--scenarios', '--duration', '--rate', '--boxes', '--quick', '--out', '--keep']) t.match(r.stdout, o, `lists ${o}`);
  for (const s of ['splice', 'ips', 'replace']) t.match(r.stdout, new RegExp(`^ +${s} +\\S`, 'm'), `describes the ${s} scenario`);
  t.match(r.stdout, /default: splice,ips,replace/);
});

t.test('usage errors: status 2 before anything is built', async (t) => {
  const bad = spawnSync(process.execPath, [MAIN, '--scenarios', 'splice,nope'], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown scenario "nope"/);
  const size = spawnSync(process.execPath, [MAIN, '--boxes', '9'], { encoding: 'utf8' });
  t.equal(size.status, 2);
  t.match(size.stderr, /--boxes 2\.\.4/);
});

// the demo also runs curl, nftables and the IPS's capture
const skip =
  (await Topology.unavailable([
    ['curl', 'curl'],
    ['nft', 'nftables'],
    ['ip', 'iproute2'],
  ])) ?? Capture.unavailable();

t.test('the quick demo: every scenario with its reconfigurations, the plot, nothing left behind', skip ? { skip } : {}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-demo-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const svg = join(dir, 'demo.svg');
  const run = demo(['--quick', '--out', svg]);
  const tag = `demo${run.child.pid}`;
  const code = await run.exit;
  const out = run.output();
  t.equal(code, 0, 'exit status 0');
  if (code !== 0) t.comment(out);

  for (const s of ['splice', 'ips', 'replace']) {
    t.match(out, new RegExp(`── ${s}: \\S`), `the ${s} scenario started`);
    t.match(out, new RegExp(`── ${s}: done`), `the ${s} scenario completed`);
  }
  // the reconfigurations, each with its measured duration
  const reconfigurations = [
    /⇄ proxy spliced out: completed in \d+\.\d ms/,
    /⇄ IPS inserted into session A: completed in \d+\.\d ms/,
    /⇄ IPS inserted into session B: completed in \d+\.\d ms/,
    /⇄ IPS removed itself from session A: completed in \d+\.\d ms/,
    /⇄ box1 replaced by box2: completed in \d+\.\d ms/,
    /⇄ box2 removed: completed in \d+\.\d ms/,
  ];
  for (const r of reconfigurations) t.match(out, r, String(r));
  // and what the applications saw
  t.match(out, /X-Cache: HIT: answered from the proxy's cache; the server saw 1 request/, 'a cache hit');
  t.match(out, /GET \/private\/secret\.txt: 403 from the proxy/, 'a denied URL');
  t.match(out, /download complete: .* SHA-256 matches/, 'the spliced download arrived intact');
  t.match(out, /next hop the server itself: the proxy is off the path/, 'the proxy is off the path');
  t.match(out, /IPS: "root:x:0:0:" in session B's server→client stream.*blocked/, 'the leak blocked by the IPS');
  t.match(out, /session B cut/, 'session B cut');
  t.match(out, /session A: every byte arrived intact both ways/, 'session A intact after the IPS left');
  t.match(out, /every byte arrived once and intact both ways/, 'the replace transfer intact');
  // progress during the long steps
  t.match(out, /\d+\.\d Mbit\/s download/, 'per-second throughput of the download');
  t.match(out, /session A: \d+\.\d Mbit\/s both ways/, 'per-second throughput of the IPS sessions');
  t.match(out, /agent on server ready in/, 'agents reported as they start');
  t.match(out, /reconfigurations of live sessions:/, 'the summary');
  t.match(out, /all scenarios completed/);
  t.notMatch(out, /FAILED|problem\(s\)/, 'no failure reported');

  t.ok(existsSync(svg), 'the plot was written');
  const plot = existsSync(svg) ? readFileSync(svg, 'utf8') : '';
  t.match(plot, /^<svg /, 'an SVG document');
  for (const title of ['splice:', 'ips:', 'replace:']) t.match(plot, `>${title}`, `a panel for ${title}`);
  t.ok((plot.match(/<polyline /g) ?? []).length >= 4, 'throughput lines: one for splice and replace, two for ips');
  t.ok((plot.match(/stroke-dasharray/g) ?? []).length >= 7, 'the reconfigurations (and the block) marked');

  t.same(leftovers(tag), [], 'no namespace, pin or bed directory left');
});

t.test('interrupted mid-transfer (SIGINT), the demo still removes everything', skip ? { skip } : {}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-demo-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = demo(['--scenarios', 'replace', '--duration', '30', '--out', join(dir, 'demo.svg')], 120_000);
  const tag = `demo${run.child.pid}`;
  for (const end = Date.now() + 90_000; !/Mbit\/s both ways/.test(run.output()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 200));
  t.match(run.output(), /Mbit\/s both ways/, 'the transfer is running');
  t.ok(leftovers(tag).length > 0, 'the bed is up');
  run.child.kill('SIGINT');
  const code = await run.exit;
  t.equal(code, 130, 'exit status 130');
  t.match(run.output(), /interrupted: stopping/);
  t.match(run.output(), /removing everything the demo created/);
  t.same(leftovers(tag), [], 'no namespace, pin or bed directory left');
  if (!t.passing()) t.comment(run.output());
});
