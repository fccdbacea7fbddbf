#!/usr/bin/env node
// `npm run bench -- <name> [--quick]`: runs one benchmark from this folder.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The benchmarks, in the order `all` runs them, with what each measures. */
const KNOWN = {
  dataplane: 'ns per packet of the eBPF programs (BPF test runs)',
  protocol: 'reference rewriter packets/s and state-machine events/s',
  scale: '10k, 100k and 1M sessions in one data plane: memory, install/delete time, packet cost; agent memory and adoption time',
  throughput: 'iperf3 through one and two boxes: plain routing, Dysco TC/XDP, nftables',
  latency: 'one-byte round trips (p50, p99) with and without Dysco',
  setup: 'new connections per second with and without Dysco',
  reconfig: 'remove/insert/replace/splice durations on live transfers, bytes lost, concurrent rate',
  all: 'every benchmark, then docs/benchmarks.md',
};

const here = dirname(fileURLToPath(import.meta.url));
const found = readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).map((f) => f.replace('.bench.mjs', ''));
const names = [...Object.keys(KNOWN).filter((n) => found.includes(n)), ...found.filter((n) => !(n in KNOWN)).sort()];
const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || !names.includes(name)) {
  console.error(`usage: npm run bench -- <name> [--quick]\n\n${names.map((n) => `  ${n.padEnd(11)} ${KNOWN[n] ?? ''}`).join('\n')}`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const file = join(here, `${name}.bench.mjs`);
if (!existsSync(file)) process.exit(2);
process.argv = [process.argv[0], file, ...rest];
await import(pathToFileURL(file).href);
