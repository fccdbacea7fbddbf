#!/usr/bin/env node
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`dysco: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
