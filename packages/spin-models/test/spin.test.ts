import t from 'tap';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifest, runCheck, spinAvailable } from '../dist/runner.js';

// `npm run spin`'s default checks, inside `npm test`: every model check must
// end with the verdict the manifest expects (mutants and witnesses fail,
// the rest pass exhaustively with their pinned state counts).

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// the checks take a few minutes on two cores, more while the rest of the suite runs beside them
t.setTimeout(20 * 60_000);

const skip = spinAvailable() ? false : 'spin and gcc are not installed (the bootstrap installs them: npm test as root)';

t.test('Spin checks of the manifest', { skip }, async (t) => {
  const checks = loadManifest(join(root, 'manifest.json')).checks.filter((c) => !c.large);
  t.ok(checks.some((c) => c.expect === 'fail') && checks.some((c) => c.expect === 'pass'), 'both kinds of checks are present');
  for (const c of checks) {
    const r = runCheck(c, root);
    t.ok(r.ok, `${c.name}: ${r.ok ? (c.expect === 'pass' ? `${r.report?.statesStored} states` : r.report?.firstError) : r.reasons.join('; ')}`);
    if (!r.ok) t.comment(`${r.log}\n${r.trail ?? ''}`);
  }
});
