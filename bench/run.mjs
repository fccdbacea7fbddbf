#!/usr/bin/env node
// `npm run bench -- <name> [--quick]`: runs one benchmark from this folder.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).map((f) => f.replace('.bench.mjs', ''));
const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join('|')}> [--quick]`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const file = join(here, `${name}.bench.mjs`);
if (!existsSync(file)) process.exit(2);
process.argv = [process.argv[0], file, ...rest];
await import(pathToFileURL(file).href);
