import { lib } from './native.js';
import { BpfError } from './errors.js';

let cached: number | undefined;

/**
 * Number of possible CPUs (from /sys/devices/system/cpu/possible, via libbpf). Per-CPU maps hold one value
 * for each, including CPUs that are offline.
 */
export function possibleCpus(): number {
  if (cached === undefined) {
    const n = lib.libbpf_num_possible_cpus();
    if (n <= 0) throw new BpfError({ errno: -n || 22, op: 'count possible CPUs' });
    cached = n;
  }
  return cached;
}
