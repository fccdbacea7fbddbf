import { BpfError } from './errors.js';
import { lib, lastErrno } from './native.js';

/**
 * The index of network interface `name` in the calling thread's network namespace (if_nametoindex(3)).
 * Throws a {@link BpfError} (`ENODEV`) naming the interface when there is none.
 */
export function ifindex(name: string): number {
  if (name.length === 0 || name.length >= 16) {
    throw new BpfError({ errno: 19, op: `look up network interface '${name}'`, details: ['interface names are 1-15 bytes'] });
  }
  const idx = lib.if_nametoindex(name);
  if (idx === 0) {
    const errno = lastErrno() || 19;
    throw new BpfError({ errno, op: `look up network interface '${name}'`, details: [`no interface named '${name}' in this network namespace`] });
  }
  return idx;
}
