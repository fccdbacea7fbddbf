#!/usr/bin/env node
// Runs the whole suite with tap on the compiled tests, under c8 so the
// protocol package's line and branch coverage is measured and enforced.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (n) => join(root, 'node_modules', '.bin', n);

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['packages', 'examples'].flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).flatMap((p) => testFiles(join(root, d, p, 'dist-test'))) : []));
if (files.length === 0) {
  console.error('no test files found: was the build run?');
  process.exit(1);
}

// tap builds its runner for the plugins named in package.json; do it up front
// so a fresh checkout does not fail its first run while rebuilding.
spawnSync(bin('tap'), ['build'], { cwd: root, stdio: 'ignore' });

const coverage = [
  '--check-coverage', '--lines', '90', '--branches', '90',
  '--include', 'packages/protocol/dist/**/*.js',
  '--exclude', 'packages/protocol/dist/sim/demo.js',
  '--reporter', 'text-summary', '--reporter', 'lcov', '--report-dir', 'coverage',
];
const r = spawnSync(bin('c8'), [...coverage, bin('tap'), '--reporter=tap', '--jobs=2', ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
