import { BpfError } from './errors.js';
import { lib } from './native.js';
import { ifindex as ifindexOf } from './netif.js';
import { XdpFlags } from './constants.js';
import { progIdOf, type Attachment } from './attachment.js';
import type { BpfProgram } from './program.js';

const ENODEV = 19;
const EBUSY = 16;
const EEXIST = 17;
const EPERM = 1;

/** Options of {@link attachXdp}. */
export interface XdpAttachOptions {
  /**
   * `'native'`: in the driver (XDP_FLAGS_DRV_MODE); `'generic'`: in the stack after the skb is built
   * (XDP_FLAGS_SKB_MODE, works on any device); `'auto'` (default): native, else generic.
   */
  mode?: 'native' | 'generic' | 'auto';
  /** Replace a program already attached in that mode (default false: fail with EBUSY). */
  replace?: boolean;
}

/**
 * Attaches an XDP program to interface `ifname` through netlink (bpf_xdp_attach). The attachment outlives
 * the process until detached. Note: native XDP on veth devices disables GSO/GRO for the traffic it sees.
 */
export function attachXdp(ifname: string, prog: BpfProgram, opts: XdpAttachOptions = {}): Attachment {
  const mode = opts.mode ?? 'auto';
  if (mode !== 'native' && mode !== 'generic' && mode !== 'auto') throw new TypeError(`attachXdp: mode must be 'native', 'generic' or 'auto', got ${String(mode)}`);
  const idx = ifindexOf(ifname);
  const progFd = prog.fd;
  const progId = progIdOf(progFd, `program '${prog.name}'`);
  const base = opts.replace ? 0 : XdpFlags.UPDATE_IF_NOEXIST;
  const tryMode = (m: 'native' | 'generic'): number =>
    lib.bpf_xdp_attach(idx, progFd, base | (m === 'native' ? XdpFlags.DRV_MODE : XdpFlags.SKB_MODE), null);

  let used: 'native' | 'generic' = mode === 'generic' ? 'generic' : 'native';
  let r = tryMode(used);
  let nativeErr = 0;
  if (r < 0 && mode === 'auto' && r !== -EBUSY && r !== -EEXIST && r !== -EPERM) {
    nativeErr = -r;
    used = 'generic';
    r = tryMode(used);
  }
  if (r < 0) {
    const details: string[] = [];
    if (r === -EBUSY || r === -EEXIST) {
      const id: [number] = [0];
      const q = lib.bpf_xdp_query_id(idx, used === 'native' ? XdpFlags.DRV_MODE : XdpFlags.SKB_MODE, id);
      details.push(`${ifname} already has an XDP program${q === 0 && id[0] ? ` (id ${id[0]})` : ''} in this or the other mode: detach it first, or pass replace: true`);
    }
    if (nativeErr) details.push(`native mode failed first with errno ${nativeErr}`);
    throw new BpfError({ errno: -r, op: `attach XDP program '${prog.name}' to ${ifname} (${used} mode)`, details });
  }
  const modeFlag = used === 'native' ? XdpFlags.DRV_MODE : XdpFlags.SKB_MODE;
  let attached = true;
  return {
    kind: used === 'native' ? 'xdp-native' : 'xdp-generic',
    ifname,
    ifindex: idx,
    program: prog.name,
    progId,
    detach(): void {
      if (!attached) return;
      const id: [number] = [0];
      const q = lib.bpf_xdp_query_id(idx, modeFlag, id);
      if (q === -ENODEV || (q === 0 && id[0] !== progId)) {
        attached = false; // interface gone, or somebody else's program is there now: nothing of ours to remove
        return;
      }
      if (q < 0) throw new BpfError({ errno: -q, op: `query XDP program on ${ifname}` });
      const d = lib.bpf_xdp_attach(idx, -1, modeFlag, null);
      if (d < 0 && d !== -ENODEV) throw new BpfError({ errno: -d, op: `detach XDP program '${prog.name}' from ${ifname} (${used} mode)` });
      attached = false;
    },
  };
}
