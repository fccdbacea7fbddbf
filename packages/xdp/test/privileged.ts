import { existsSync } from 'node:fs';
import { objectPath } from '@dysco/xdp';

/** Why a test needing root and the compiled programs cannot run here, or undefined when it can. */
export function privilegedSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (BPF test runs, maps, bpffs)';
  if (!existsSync(objectPath())) return `the data plane is not built (${objectPath()} missing: node packages/xdp/build.mjs)`;
  return undefined;
}
