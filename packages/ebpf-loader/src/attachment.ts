import { unlinkSync } from 'node:fs';
import { BpfError } from './errors.js';
import { lib } from './native.js';

/** How a program is attached to an interface. */
export type AttachmentKind = 'xdp-native' | 'xdp-generic' | 'tc-clsact' | 'tcx';

/**
 * A program attached to a network interface. XDP and clsact attachments are netlink state of the
 * interface: they stay when the process exits, until {@link Attachment.detach} (or the interface goes).
 * A TCX attachment is a BPF link owned by this process: it goes away when the process exits, unless it
 * was pinned with {@link Attachment.pin}.
 */
export interface Attachment {
  /** Hook and mode. */
  readonly kind: AttachmentKind;
  /** Interface name as given. */
  readonly ifname: string;
  /** Interface index at attach time. */
  readonly ifindex: number;
  /** Name of the attached program. */
  readonly program: string;
  /** Kernel id of the attached program. */
  readonly progId: number;
  /** Removes the program from the hook (only if it is still the one this attachment put there). Idempotent; an interface that no longer exists counts as detached. */
  detach(): void;
  /** TCX only: pins the link in a bpffs so the attachment survives this process; {@link detachPinnedLink} removes it later. */
  pin?(path: string): void;
}

/** @internal The kernel id of a program fd (`struct bpf_prog_info.id`). */
export function progIdOf(fd: number, what: string): number {
  const info = Buffer.alloc(8);
  const len: [number] = [info.length];
  const r = lib.bpf_obj_get_info_by_fd(fd, info, len);
  if (r < 0) throw new BpfError({ errno: -r, op: `read the id of ${what}` });
  return info.readUInt32LE(4);
}

/**
 * Detaches and unpins a BPF link pinned at `path` (e.g. a TCX attachment pinned by an earlier process).
 * Returns false when nothing is pinned there.
 */
export function detachPinnedLink(path: string): boolean {
  const fd = lib.bpf_obj_get(path);
  if (fd === -2) return false;
  if (fd < 0) throw new BpfError({ errno: -fd, op: `open pinned link ${path}` });
  try {
    const r = lib.bpf_link_detach(fd);
    if (r < 0) throw new BpfError({ errno: -r, op: `detach pinned link ${path}`, details: r === -22 ? ['the object pinned there is not a detachable link'] : [] });
  } finally {
    lib.close(fd);
  }
  unlinkSync(path);
  return true;
}
