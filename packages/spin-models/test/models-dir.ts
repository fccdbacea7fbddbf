/**
 * A private copy of the Promela models for one test process. Spin writes its
 * preprocessor output next to the model it reads, so two test files running
 * simulations side by side in the package's own models/ would read each
 * other's; each runs in its own copy, removed when the process exits.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function privateModelsDir(root: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-models-'));
  cpSync(join(root, 'models'), dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
