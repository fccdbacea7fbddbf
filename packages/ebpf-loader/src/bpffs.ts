import { mkdirSync, statfsSync } from 'node:fs';
import { BpfError } from './errors.js';
import { lib, lastErrno } from './native.js';

/** `BPF_FS_MAGIC` from linux/magic.h: the f_type statfs(2) reports for a bpffs mount. */
const BPF_FS_MAGIC = 0xcafe4a11;

/** Whether `path` is (inside) a mounted BPF filesystem. Returns false when the path does not exist. */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Mounts the BPF filesystem at `path` (creating the directory) unless a bpffs is already mounted there.
 * Idempotent; needs CAP_SYS_ADMIN. Pinning objects requires a bpffs, and Debian does not mount one at boot.
 */
export function mountBpffs(path = '/sys/fs/bpf'): void {
  if (isBpffs(path)) return;
  mkdirSync(path, { recursive: true });
  if (lib.mount('bpf', path, 'bpf', 0, null) !== 0) {
    const errno = lastErrno();
    throw new BpfError({
      errno,
      op: `mount bpffs at ${path}`,
      details: errno === 1 ? ['mounting needs root (CAP_SYS_ADMIN)'] : [],
    });
  }
}
