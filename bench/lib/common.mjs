// Shared pieces of the benchmarks: statistics, tables, the RESULT line,
// system tools, the C helper's build, child processes, and cleanup that runs
// on success, on failure and on Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = join(BENCH_DIR, '..');
export const quick = process.argv.includes('--quick');

/** Value of `--name VALUE` on the command line, or `dflt`. */
export function option(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- statistics ---------------------------------------------------------------

export function median(xs) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs, p) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** { median, min, max, n } of a sample. */
export function summary(xs) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Rounds to `d` significant-looking decimals for JSON. */
export const round = (x, d = 3) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

/** Rotates `xs` by `k`: interleaved rounds change which configuration goes first. */
export const rotate = (xs, k) => xs.map((_, i) => xs[(i + k) % xs.length]);

// ---- output -------------------------------------------------------------------

/**
 * A plain-text table: `columns` are { title, align: 'l'|'r' }, rows are
 * arrays of strings.
 */
export function table(columns, rows) {
  const w = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => String(r[i]).length)));
  const cell = (s, i) => (columns[i].align === 'l' ? String(s).padEnd(w[i]) : String(s).padStart(w[i]));
  const line = (r) => r.map(cell).join('  ').trimEnd();
  return [line(columns.map((c) => c.title)), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function say(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Prints the final machine-readable line. */
export function printResult(obj) {
  process.stdout.write(`RESULT ${JSON.stringify(obj)}\n`);
}

/** Facts about the machine the figures were measured on. */
export function machine() {
  let cpu = '';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // no procfs
  }
  const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
  let memGiB = 0;
  try {
    memGiB = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1048576;
  } catch {
    // no procfs
  }
  const cores = spawnSync('nproc', [], { encoding: 'utf8' }).stdout.trim();
  return { cpu, cores: Number(cores) || undefined, kernel, node: process.versions.node, memGiB: round(memGiB, 1), date: new Date().toISOString() };
}

// ---- system -------------------------------------------------------------------

export function requireRoot(name) {
  if (process.getuid?.() !== 0) {
    console.error(`${name} benchmark: needs root (network namespaces, BPF)`);
    process.exit(1);
  }
}

const haveBinary = (bin) => (bin.startsWith('/') ? existsSync(bin) : spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0);

/** Installs the Debian packages whose binaries are missing: [[package, binary], ...]. */
export function ensureCommands(list) {
  const missing = list.filter(([, bin]) => !haveBinary(bin)).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  say(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  const still = list.filter(([, bin]) => !haveBinary(bin)).map(([pkg]) => pkg);
  if (r.status !== 0 || still.length > 0) throw new Error(`could not install ${still.join(' ')}`);
}

/** Namespace test beds need these. */
export const BED_COMMANDS = [['iproute2', 'ip'], ['util-linux', 'nsenter'], ['nftables', 'nft'], ['ethtool', 'ethtool']];

/**
 * Compiles bench/tools/NAME.c (once per content: the binary is cached under
 * /tmp by the source's hash) and returns the binary's path.
 */
export function buildTool(name) {
  ensureCommands([['gcc', 'gcc']]);
  const src = join(BENCH_DIR, 'tools', `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join('/tmp', 'dysco-bench-tools');
  const bin = join(dir, `${name}-${hash}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  const r = spawnSync('gcc', ['-O2', '-Wall', '-pthread', '-o', tmp, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${src}: ${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

// ---- processes ----------------------------------------------------------------

/** Calls `onLine` with each line of a child's stdout. */
export function onLines(proc, onLine, stream = 'stdout') {
  let buf = '';
  proc[stream].setEncoding('utf8');
  proc[stream].on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

/** Waits for a stdout line matching `pred`; rejects when the process exits first or after `timeoutMs`. */
export function waitLine(proc, pred, what, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    let err = '';
    proc.stderr?.on('data', (d) => (err += d));
    const timer = setTimeout(() => reject(new Error(`${what}: no ready line after ${timeoutMs} ms ${err}`)), timeoutMs);
    onLines(proc, (l) => {
      if (pred(l)) {
        clearTimeout(timer);
        resolve(l);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}): ${err.trim()}`));
    });
  });
}

/**
 * Runs argv in a host's namespace without blocking the event loop; resolves
 * with { code, stdout, stderr }. Killed after `timeoutMs`.
 */
export function execIn(host, argv, timeoutMs = 120000) {
  return new Promise((resolve) => {
    const p = host.spawn(argv);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), signal, stdout, stderr });
    });
  });
}

/** The last line of `text` that parses as a JSON object. */
export function lastJson(text) {
  const ls = text.trim().split('\n').reverse();
  for (const l of ls) {
    if (!l.startsWith('{')) continue;
    try {
      return JSON.parse(l);
    } catch {
      // not JSON
    }
  }
  return undefined;
}

/** Spawns a process outside the namespaces (the `all` runner's children). */
export function spawnHere(argv, opts = {}) {
  return spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

// ---- cleanup ------------------------------------------------------------------

const cleanups = [];
let cleaning;

/** Registers `fn` (sync or async) to run once at the end, on failure or on a signal; the last registered runs first. */
export function atCleanup(fn) {
  cleanups.push(fn);
}

export function runCleanups() {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        say(`cleanup: ${e?.message ?? e}`);
      }
    }
  })();
  return cleaning;
}

/**
 * Runs a benchmark's main function: cleanups run after it, after an error,
 * and on SIGINT/SIGTERM/SIGHUP (then the process exits 130/143/129).
 */
export function runMain(main) {
  const onSignal = (sig, code) => {
    process.once(sig, () => {
      say(`${sig}: removing everything this benchmark created`);
      const force = setTimeout(() => process.exit(code), 20000);
      force.unref();
      void runCleanups().then(() => process.exit(code));
    });
  };
  onSignal('SIGINT', 130);
  onSignal('SIGTERM', 143);
  onSignal('SIGHUP', 129);
  main().then(
    async () => {
      await runCleanups();
      process.exit(process.exitCode ?? 0);
    },
    async (e) => {
      process.stderr.write(`benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      await runCleanups();
      process.exit(1);
    },
  );
}
