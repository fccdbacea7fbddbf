import { unlinkSync } from 'node:fs';
import { BpfError } from './errors.js';
import { lib } from './native.js';
import { ifindex as ifindexOf } from './netif.js';
import { AttachType } from './constants.js';
import { progIdOf, type Attachment } from './attachment.js';
import type { BpfProgram } from './program.js';

const EEXIST = 17;
const ENOENT = 2;
const ENODEV = 19;
const EINVAL = 22;

/** Options of {@link attachTc}. */
export interface TcAttachOptions {
  /** Which side of the interface. */
  direction: 'ingress' | 'egress';
  /**
   * `'clsact'`: a cls_bpf filter (direct-action) on the clsact qdisc, created if missing (it is left in
   * place on detach); `'tcx'`: a TCX BPF link (Linux >= 6.6); `'auto'` (default): TCX when the kernel has it, else clsact.
   */
  kind?: 'clsact' | 'tcx' | 'auto';
  /** clsact only: filter priority (1-65535; 0 = let the kernel choose). */
  priority?: number;
  /** clsact only: filter handle (0 = let the kernel choose). */
  handle?: number;
  /** clsact only: replace an existing filter with the same handle and priority. */
  replace?: boolean;
}

/** struct bpf_tc_hook: sz, ifindex, attach_point, parent (24 bytes). */
function tcHook(ifindex: number, direction: 'ingress' | 'egress'): Buffer {
  const h = Buffer.alloc(24);
  h.writeBigUInt64LE(24n, 0);
  h.writeInt32LE(ifindex, 8);
  h.writeInt32LE(direction === 'ingress' ? 1 : 2, 12); // BPF_TC_INGRESS / BPF_TC_EGRESS
  return h;
}

/** struct bpf_tc_opts: sz, prog_fd, flags, prog_id, handle, priority (32 bytes). */
function tcOpts(fields: { progFd?: number; flags?: number; handle?: number; priority?: number }): Buffer {
  const o = Buffer.alloc(32);
  o.writeBigUInt64LE(32n, 0);
  o.writeInt32LE(fields.progFd ?? 0, 8);
  o.writeUInt32LE(fields.flags ?? 0, 12);
  o.writeUInt32LE(fields.handle ?? 0, 20);
  o.writeUInt32LE(fields.priority ?? 0, 24);
  return o;
}

/**
 * Attaches a TC (`SEC("tc")`, BPF_PROG_TYPE_SCHED_CLS) program to `ifname`'s ingress or egress.
 * clsact attachments persist after the process exits until detached; TCX links end with the process
 * unless pinned (`attachment.pin(path)`, then {@link detachPinnedLink}).
 */
export function attachTc(ifname: string, prog: BpfProgram, opts: TcAttachOptions): Attachment {
  const { direction } = opts;
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`attachTc: direction must be 'ingress' or 'egress', got ${String(direction)}`);
  const kind = opts.kind ?? 'auto';
  if (kind !== 'clsact' && kind !== 'tcx' && kind !== 'auto') throw new TypeError(`attachTc: kind must be 'clsact', 'tcx' or 'auto', got ${String(kind)}`);
  const idx = ifindexOf(ifname);
  if (kind === 'clsact') return attachClsact(ifname, idx, prog, opts);
  const link = lib.bpf_link_create(prog.fd, idx, direction === 'ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS, null);
  if (link >= 0) return tcxAttachment(ifname, idx, prog, direction, link);
  if (kind === 'auto' && link === -EINVAL) return attachClsact(ifname, idx, prog, opts);
  throw new BpfError({
    errno: -link,
    op: `attach TC program '${prog.name}' to ${ifname} ${direction} (tcx link)`,
    details: link === -EINVAL ? ['TCX needs Linux >= 6.6 and a SEC("tc"/"tcx/...") program; use kind: \'clsact\' on older kernels'] : [],
  });
}

function attachClsact(ifname: string, idx: number, prog: BpfProgram, opts: TcAttachOptions): Attachment {
  const { direction } = opts;
  const what = `TC program '${prog.name}' on ${ifname} ${direction} (clsact)`;
  const hook = tcHook(idx, direction);
  const c = lib.bpf_tc_hook_create(hook);
  if (c < 0 && c !== -EEXIST) throw new BpfError({ errno: -c, op: `create clsact qdisc on ${ifname}` });
  const priority = opts.priority ?? 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > 0xffff) throw new RangeError(`attachTc: priority must be 0-65535, got ${priority}`);
  const o = tcOpts({ progFd: prog.fd, flags: opts.replace ? 1 : 0, handle: opts.handle ?? 0, priority });
  const r = lib.bpf_tc_attach(hook, o);
  if (r < 0) {
    throw new BpfError({
      errno: -r,
      op: `attach ${what}`,
      details: r === -EEXIST ? ['a filter with that handle and priority exists: pass replace: true or other values'] : [],
    });
  }
  const handle = o.readUInt32LE(20);
  const prio = o.readUInt32LE(24);
  const progId = o.readUInt32LE(16);
  let attached = true;
  return {
    kind: 'tc-clsact',
    ifname,
    ifindex: idx,
    program: prog.name,
    progId,
    detach(): void {
      if (!attached) return;
      const d = lib.bpf_tc_detach(tcHook(idx, direction), tcOpts({ handle, priority: prio }));
      // ENOENT: the filter (or the whole qdisc, or the interface) is already gone.
      if (d < 0 && d !== -ENOENT && d !== -ENODEV && d !== -EINVAL) throw new BpfError({ errno: -d, op: `detach ${what} (handle ${handle}, priority ${prio})` });
      attached = false;
    },
  };
}

function tcxAttachment(ifname: string, idx: number, prog: BpfProgram, direction: 'ingress' | 'egress', linkFd: number): Attachment {
  const what = `TC program '${prog.name}' on ${ifname} ${direction} (tcx link)`;
  let fd = linkFd;
  let pinnedAt: string | undefined;
  let progId = 0;
  try {
    progId = progIdOf(prog.fd, `program '${prog.name}'`);
  } catch (e) {
    lib.close(fd);
    throw e;
  }
  return {
    kind: 'tcx',
    ifname,
    ifindex: idx,
    program: prog.name,
    progId,
    pin(path: string): void {
      if (fd < 0) throw new BpfError({ errno: 9, op: `pin ${what} at ${path}`, details: ['the link was detached'] });
      const r = lib.bpf_obj_pin(fd, path);
      if (r < 0) throw new BpfError({ errno: -r, op: `pin ${what} at ${path}`, details: r === -EEXIST ? ['something is already pinned there'] : [] });
      pinnedAt = path;
    },
    detach(): void {
      if (fd < 0) return;
      const d = lib.bpf_link_detach(fd);
      lib.close(fd);
      fd = -1;
      if (pinnedAt !== undefined) {
        try {
          unlinkSync(pinnedAt);
        } catch {
          // Already unpinned by someone else.
        }
        pinnedAt = undefined;
      }
      if (d < 0 && d !== -ENODEV && d !== -ENOENT) throw new BpfError({ errno: -d, op: `detach ${what}` });
    },
  };
}
