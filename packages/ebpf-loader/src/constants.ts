/**
 * Numeric constants from the kernel UAPI (`linux/bpf.h`, `linux/if_link.h`, `linux/pkt_cls.h`).
 * Values after Debian 12's 6.1 headers (TCX attach types) are taken from the upstream UAPI of Linux 6.6+.
 */

/** `enum bpf_map_type` (subset that user space commonly meets). */
export const MapType = {
  UNSPEC: 0,
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  CPUMAP: 16,
  XSKMAP: 17,
  SOCKHASH: 18,
  CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  DEVMAP_HASH: 25,
  STRUCT_OPS: 26,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
  BLOOM_FILTER: 30,
  USER_RINGBUF: 31,
} as const;

/** `enum bpf_prog_type` (subset). */
export const ProgType = {
  UNSPEC: 0,
  SOCKET_FILTER: 1,
  KPROBE: 2,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  LWT_IN: 10,
  LWT_OUT: 11,
  LWT_XMIT: 12,
  SOCK_OPS: 13,
  SK_SKB: 14,
  CGROUP_DEVICE: 15,
  SK_MSG: 16,
  RAW_TRACEPOINT: 17,
  CGROUP_SOCK_ADDR: 18,
  LWT_SEG6LOCAL: 19,
  LIRC_MODE2: 20,
  SK_REUSEPORT: 21,
  FLOW_DISSECTOR: 22,
  CGROUP_SYSCTL: 23,
  RAW_TRACEPOINT_WRITABLE: 24,
  CGROUP_SOCKOPT: 25,
  TRACING: 26,
  STRUCT_OPS: 27,
  EXT: 28,
  LSM: 29,
  SK_LOOKUP: 30,
  SYSCALL: 31,
} as const;

/** `enum bpf_attach_type` values this library uses. */
export const AttachType = {
  XDP: 37,
  /** Linux >= 6.6 (not in Debian 12's 6.1 headers). */
  TCX_INGRESS: 46,
  /** Linux >= 6.6 (not in Debian 12's 6.1 headers). */
  TCX_EGRESS: 47,
} as const;

/** XDP program verdicts (`enum xdp_action`). */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

/** TC classifier verdicts (`TC_ACT_*`). */
export const TcAction = { UNSPEC: -1, OK: 0, RECLASSIFY: 1, SHOT: 2, PIPE: 3, STOLEN: 4, QUEUED: 5, REPEAT: 6, REDIRECT: 7 } as const;

/** `XDP_FLAGS_*` for bpf_xdp_attach. */
export const XdpFlags = { UPDATE_IF_NOEXIST: 1, SKB_MODE: 2, DRV_MODE: 4, HW_MODE: 8, REPLACE: 16 } as const;

/** Flags for BPF_PROG_TEST_RUN (`BPF_F_TEST_*`). */
export const TestRunFlags = { RUN_ON_CPU: 1, XDP_LIVE_FRAMES: 2, SKB_CHECKSUM_COMPLETE: 4 } as const;

/** Map types whose values are stored once per possible CPU. */
export const PERCPU_MAP_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE,
]);

/** The name of a map type number (`'HASH'`), or `'TYPE_<n>'`. */
export function mapTypeName(type: number): string {
  return nameOf(MapType, type);
}

/** The name of a program type number (`'XDP'`), or `'TYPE_<n>'`. */
export function progTypeName(type: number): string {
  return nameOf(ProgType, type);
}

function nameOf(table: Readonly<Record<string, number>>, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return `TYPE_${value}`;
}
