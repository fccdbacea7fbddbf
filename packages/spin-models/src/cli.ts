#!/usr/bin/env node
/**
 * `npm run spin [-- --large] [--only SUBSTRING] [--verbose]`: runs the checks
 * of manifest.json with Spin and fails on any check whose verdict is not
 * the expected one.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadManifest, runCheck, spinAvailable } from './runner.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    large: { type: 'boolean', default: false },
    only: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: npm run spin -- [--large] [--only SUBSTRING] [--verbose]\n  --large  also run the large configurations (minutes, gigabytes)\n');
  process.exit(0);
}
if (!spinAvailable()) {
  process.stderr.write('spin and gcc are needed: apt-get install spin gcc\n');
  process.exit(1);
}
const manifest = loadManifest(join(root, 'manifest.json'));
const checks = manifest.checks.filter((c) => (values.large || !c.large) && (!values.only || c.name.includes(values.only)));
let failed = 0;
console.log(`${checks.length} Spin checks${values.large ? ' (with the large configurations)' : ''}\n`);
for (const c of checks) {
  const r = runCheck(c, root);
  const rep = r.report;
  const what = c.expect === 'pass' ? `${rep?.statesStored ?? '?'} states, ${rep?.memoryMb ?? '?'} MB` : `fails as expected: ${rep?.firstError ?? '-'}`;
  console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(44)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.ok ? what : r.reasons.join('; ')}`);
  if (!r.ok) {
    failed++;
    console.log(r.log.split('\n').map((l) => `     | ${l}`).join('\n'));
  }
  if ((!r.ok || values.verbose) && r.trail) {
    console.log('     message-sequence chart of the trail:');
    console.log(r.trail.split('\n').filter((l) => /[!?]|Error|CYCLE/.test(l)).map((l) => `     | ${l}`).join('\n'));
  }
}
console.log(`\n${checks.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
