#!/usr/bin/env node
// Compiles the data plane's C programs into build/*.bpf.o with clang.
// Run by the package's `build:native` script (and so by `npm test`, `npm run
// demo` and `npm run bench` through the root bootstrap). Rebuilds only when
// a source is newer than the object. Options: --force, --define NAME=VALUE.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'bpf');
const out = join(here, 'build');
const args = process.argv.slice(2);
const force = args.includes('--force');
const defines = args.flatMap((a, i) => (args[i - 1] === '--define' ? [`-D${a}`] : []));

function fail(msg) {
  process.stderr.write(`[xdp build] ${msg}\n`);
  process.exit(1);
}

if (spawnSync('sh', ['-c', 'command -v clang'], { stdio: 'ignore' }).status !== 0) {
  fail('clang is not installed: apt-get install clang llvm libbpf-dev');
}
if (!existsSync('/usr/include/bpf/bpf_helpers.h')) fail('libbpf headers are missing: apt-get install libbpf-dev');

// The multiarch include directory holds asm/types.h for the kernel headers.
const arch = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout?.trim() || 'x86_64-linux-gnu';
const headers = [join(src, 'include'), ...readdirSync(join(src, 'include')).map((f) => join(src, 'include', f))];
const newestHeader = Math.max(...headers.map((f) => statSync(f).mtimeMs));

mkdirSync(out, { recursive: true });
for (const file of readdirSync(src).filter((f) => f.endsWith('.bpf.c'))) {
  const input = join(src, file);
  const output = join(out, file.replace(/\.c$/, '.o'));
  const fresh =
    !force &&
    defines.length === 0 &&
    existsSync(output) &&
    statSync(output).mtimeMs >= Math.max(statSync(input).mtimeMs, newestHeader);
  if (fresh) continue;
  const argv = ['-O2', '-g', '-target', 'bpfel', '-mcpu=v3', '-Wall', '-Werror', '-Wno-unused-function',
    `-I/usr/include/${arch}`, ...defines, '-c', input, '-o', output];
  const r = spawnSync('clang', argv, { stdio: 'inherit' });
  if (r.status !== 0) fail(`clang failed on ${file} (exit ${r.status})`);
  process.stderr.write(`[xdp build] ${file} -> build/${file.replace(/\.c$/, '.o')}\n`);
}
