#!/usr/bin/env node
// The one entry point behind `npm run demo`, `npm test` and `npm run bench`:
// brings a fresh machine to the point where the command can run (system
// packages, npm dependencies, the build), then runs it. Every step is
// idempotent and skipped when already done, so it costs little on a warm tree.
// Uses only Node's standard library: it runs before `npm install`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [command = 'test', ...args] = process.argv.slice(2);

/** Debian packages each command needs, with the binary that shows each is there. */
const EBPF = [['clang', 'clang'], ['llvm', 'llc'], ['libbpf-dev', '/usr/include/bpf/bpf_helpers.h'], ['libbpf1', '/usr/lib/x86_64-linux-gnu/libbpf.so.1'], ['iproute2', 'ip'], ['bpftool', 'bpftool'], ['gcc', 'gcc']];
/** What the live tests run in their namespaces: real middleboxes and applications, and libpcap for the capture library's build. */
const LIVE = [['haproxy', 'haproxy'], ['nftables', 'nft'], ['iperf3', 'iperf3'], ['ethtool', 'ethtool'], ['iputils-ping', 'ping'], ['util-linux', 'nsenter'], ['curl', 'curl'], ['libpcap-dev', '/usr/include/pcap.h'], ['make', 'make'], ['g++', 'g++']];
const SYSTEM_PACKAGES = {
  test: [['spin', 'spin'], ...EBPF, ...LIVE],
  spin: [['spin', 'spin'], ['gcc', 'gcc']],
  // the demo runs real agents in namespaces; `--simulated` is the protocol simulator alone, `--help` needs nothing
  demo: args.includes('--simulated') || args.includes('--help') ? [] : [...EBPF, ...LIVE],
  bench: EBPF,
};

function say(msg) {
  process.stderr.write(`[bootstrap] ${msg}\n`);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(cmd, argv, what) {
  const status = run(cmd, argv);
  if (status !== 0) {
    say(`${what} failed (exit ${status}): ${cmd} ${argv.join(' ')}`);
    process.exit(status);
  }
}

function haveBinary(name) {
  if (name.startsWith('/')) return existsSync(name);
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 11)) {
    say(`Node ${process.versions.node} is too old: Dysco-TS needs Node >= 20.11`);
    process.exit(1);
  }
}

function systemPackages() {
  const wanted = SYSTEM_PACKAGES[command] ?? [];
  const missing = wanted.filter(([, bin]) => !haveBinary(bin)).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    say(`missing system packages: ${missing.join(' ')}; install them as root (apt-get install ${missing.join(' ')})`);
    process.exit(1);
  }
  say(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-qq'], { env }) !== 0) say('apt-get update failed; trying the install anyway');
  if (run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env }) !== 0) {
    say(`apt-get could not install ${missing.join(' ')}`);
    process.exit(1);
  }
}

function npmDependencies() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.bootstrap-stamp');
  const manifests = ['package.json', 'package-lock.json']
    .concat(spawnSync('sh', ['-c', 'ls packages/*/package.json examples/*/package.json 2>/dev/null'], { cwd: root, encoding: 'utf8' }).stdout.split('\n'))
    .filter((f) => f && existsSync(join(root, f)));
  const hash = createHash('sha256');
  for (const f of manifests) hash.update(f).update(readFileSync(join(root, f)));
  const digest = hash.digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return;
  say('installing npm dependencies');
  must('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund', '--loglevel=error'], 'npm install');
  writeFileSync(stamp, digest);
}

function build() {
  must(join(root, 'node_modules', '.bin', 'tsc'), ['-b'], 'the TypeScript build');
  // Native parts (the eBPF programs) of the packages that have them, when their toolchain is here.
  if (haveBinary('clang') && haveBinary('/usr/include/bpf/bpf_helpers.h')) {
    must('npm', ['run', 'build:native', '--workspaces', '--if-present', '--silent'], 'the native build');
  } else if (command === 'test' || command === 'bench' || (command === 'demo' && SYSTEM_PACKAGES.demo.length > 0)) {
    say('clang or libbpf-dev is missing: the eBPF programs cannot be built');
    process.exit(1);
  }
}

checkNode();
systemPackages();
npmDependencies();
build();

const bin = (name) => join(root, 'node_modules', '.bin', name);
switch (command) {
  case 'test':
    process.exit(run(process.execPath, [join(root, 'scripts', 'test.mjs'), ...args]));
  case 'demo':
    if (args.includes('--simulated')) {
      process.exit(run(process.execPath, [join(root, 'packages', 'protocol', 'dist', 'sim', 'demo.js'), ...args.filter((a) => a !== '--simulated')]));
    }
    process.exit(run(process.execPath, [join(root, 'examples', 'demo', 'dist', 'main.js'), ...args]));
  case 'bench':
    process.exit(run(process.execPath, [join(root, 'bench', 'run.mjs'), ...args]));
  case 'spin':
    process.exit(run(process.execPath, [join(root, 'packages', 'spin-models', 'dist', 'cli.js'), ...args]));
  default:
    say(`unknown command ${command} (demo, test, bench, spin)`);
    process.exit(2);
}
void bin;
