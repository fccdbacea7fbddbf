/** Test environment helpers: root detection, compiling the test BPF programs, running commands. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when running as root (the kernel-facing tests need CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN). */
export const isRoot = process.getuid?.() === 0;

/** `skip` option for tests that need root: false (run) as root, otherwise the printed reason. */
export const needsRoot: string | false = isRoot ? false : 'needs root (loads BPF programs, creates namespaces); run the tests as root';

/** The package directory (dist-test/helpers/ -> package root). */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const bpfSourceDir = join(packageDir, 'test', 'bpf');
let outDir: string | undefined;
const compiled = new Map<string, string>();

function multiarchInclude(): string[] {
  const triple = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : `${process.arch}-linux-gnu`;
  const dir = `/usr/include/${triple}`;
  return existsSync(dir) ? [`-I${dir}`] : [];
}

/** Compiles test/bpf/NAME.bpf.c with clang into a per-process temp dir (removed at exit); returns the .o path. */
export function compileBpf(name: string): string {
  const hit = compiled.get(name);
  if (hit) return hit;
  if (!outDir) {
    outDir = mkdtempSync(join(tmpdir(), 'ebpf-ts-loader-test-'));
    const dir = outDir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const src = join(bpfSourceDir, `${name}.bpf.c`);
  const out = join(outDir, `${name}.bpf.o`);
  const r = spawnSync('clang', ['-O2', '-g', '-target', 'bpf', ...multiarchInclude(), '-c', src, '-o', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`clang failed for ${src}:\n${r.stderr}${r.error ? String(r.error) : ''}`);
  compiled.set(name, out);
  return out;
}

/** Runs a command, returning stdout; throws with stderr on failure. */
export function sh(cmd: string, ...args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** Runs a command and ignores failure (cleanup paths). */
export function shQuiet(cmd: string, ...args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}
