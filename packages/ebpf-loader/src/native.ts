/**
 * @internal
 * The foreign-function layer: libbpf.so.1 and a few libc functions, loaded once with koffi.
 *
 * Conventions: pointers are `bigint` (koffi 3), NULL comes back as `null`; Node Buffers passed for `void *`
 * parameters are handed to C in place (no copy), so C may write into them during the call. libbpf 1.x
 * functions return a negative errno, or NULL with `errno` set.
 */
import koffi from 'koffi';
import { setErrnoDescriber } from './errors.js';

/** A native pointer (koffi 3 represents pointers as BigInt). */
export type Ptr = bigint;

function loadLibrary(names: string[]): ReturnType<typeof koffi.load> {
  let last: unknown;
  for (const name of names) {
    try {
      return koffi.load(name);
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`cannot load ${names.join(' or ')}: ${(last as Error).message} (install libbpf1 / libbpf-dev)`, { cause: last });
}

const bpf = loadLibrary(['libbpf.so.1', 'libbpf.so']);
const libc = loadLibrary(['libc.so.6']);

/** Opaque libbpf handles, all carried as raw pointers. */
export type ObjPtr = Ptr;
export type ProgPtr = Ptr;
export type MapPtr = Ptr;
export type RingBufPtr = Ptr;

/** A koffi function typed loosely; each binding below narrows it. */
type Fn = (...args: unknown[]) => unknown;
const f = (lib: typeof bpf, decl: string): Fn => lib.func(decl) as Fn;

/** libbpf's print callback prototype; `ap` is the va_list, passed through to vasprintf(3) as an opaque pointer. */
const PrintFn = koffi.proto('int ebpf_ts_libbpf_print_fn(int level, const char *fmt, void *ap)');
/** ring_buffer_sample_fn. */
export const SampleFn = koffi.proto('int ebpf_ts_ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export const lib = {
  // --- objects ---
  bpf_object__open_file: f(bpf, 'void *bpf_object__open_file(const char *path, void *opts)') as (path: string, opts: Buffer | null) => ObjPtr | null,
  bpf_object__load: f(bpf, 'int bpf_object__load(void *obj)') as (obj: ObjPtr) => number,
  bpf_object__close: f(bpf, 'void bpf_object__close(void *obj)') as (obj: ObjPtr) => void,
  bpf_object__name: f(bpf, 'const char *bpf_object__name(void *obj)') as (obj: ObjPtr) => string | null,
  bpf_object__next_program: f(bpf, 'void *bpf_object__next_program(void *obj, void *prog)') as (obj: ObjPtr, prev: ProgPtr | null) => ProgPtr | null,
  bpf_object__next_map: f(bpf, 'void *bpf_object__next_map(void *obj, void *map)') as (obj: ObjPtr, prev: MapPtr | null) => MapPtr | null,
  // --- programs ---
  bpf_program__name: f(bpf, 'const char *bpf_program__name(void *prog)') as (p: ProgPtr) => string,
  bpf_program__section_name: f(bpf, 'const char *bpf_program__section_name(void *prog)') as (p: ProgPtr) => string,
  bpf_program__fd: f(bpf, 'int bpf_program__fd(void *prog)') as (p: ProgPtr) => number,
  bpf_program__type: f(bpf, 'int bpf_program__type(void *prog)') as (p: ProgPtr) => number,
  bpf_program__autoload: f(bpf, 'bool bpf_program__autoload(void *prog)') as (p: ProgPtr) => boolean,
  bpf_program__set_log_buf: f(bpf, 'int bpf_program__set_log_buf(void *prog, void *buf, size_t size)') as (p: ProgPtr, buf: Ptr | null, size: number) => number,
  bpf_program__set_log_level: f(bpf, 'int bpf_program__set_log_level(void *prog, uint32_t level)') as (p: ProgPtr, level: number) => number,
  bpf_prog_test_run_opts: f(bpf, 'int bpf_prog_test_run_opts(int prog_fd, void *opts)') as (fd: number, opts: Buffer) => number,
  // --- maps (object-owned) ---
  bpf_map__name: f(bpf, 'const char *bpf_map__name(void *map)') as (m: MapPtr) => string,
  bpf_map__fd: f(bpf, 'int bpf_map__fd(void *map)') as (m: MapPtr) => number,
  bpf_map__type: f(bpf, 'int bpf_map__type(void *map)') as (m: MapPtr) => number,
  bpf_map__key_size: f(bpf, 'uint32_t bpf_map__key_size(void *map)') as (m: MapPtr) => number,
  bpf_map__value_size: f(bpf, 'uint32_t bpf_map__value_size(void *map)') as (m: MapPtr) => number,
  bpf_map__max_entries: f(bpf, 'uint32_t bpf_map__max_entries(void *map)') as (m: MapPtr) => number,
  bpf_map__map_flags: f(bpf, 'uint32_t bpf_map__map_flags(void *map)') as (m: MapPtr) => number,
  bpf_map__set_max_entries: f(bpf, 'int bpf_map__set_max_entries(void *map, uint32_t max_entries)') as (m: MapPtr, n: number) => number,
  bpf_map__pin: f(bpf, 'int bpf_map__pin(void *map, const char *path)') as (m: MapPtr, path: string | null) => number,
  bpf_map__unpin: f(bpf, 'int bpf_map__unpin(void *map, const char *path)') as (m: MapPtr, path: string | null) => number,
  bpf_map__pin_path: f(bpf, 'const char *bpf_map__pin_path(void *map)') as (m: MapPtr) => string | null,
  bpf_map__is_pinned: f(bpf, 'bool bpf_map__is_pinned(void *map)') as (m: MapPtr) => boolean,
  // --- maps (by fd) ---
  bpf_map_lookup_elem: f(bpf, 'int bpf_map_lookup_elem(int fd, void *key, void *value)') as (fd: number, key: Buffer, value: Buffer) => number,
  bpf_map_update_elem: f(bpf, 'int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)') as (fd: number, key: Buffer, value: Buffer, flags: number) => number,
  bpf_map_delete_elem: f(bpf, 'int bpf_map_delete_elem(int fd, void *key)') as (fd: number, key: Buffer) => number,
  bpf_map_get_next_key: f(bpf, 'int bpf_map_get_next_key(int fd, void *key, void *next_key)') as (fd: number, key: Buffer | null, next: Buffer) => number,
  bpf_map_lookup_batch: f(bpf, 'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, void *opts)') as
    (fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: [number], opts: Buffer | null) => number,
  bpf_map_update_batch: f(bpf, 'int bpf_map_update_batch(int fd, void *keys, void *values, _Inout_ uint32_t *count, void *opts)') as
    (fd: number, keys: Buffer, values: Buffer, count: [number], opts: Buffer | null) => number,
  bpf_map_delete_batch: f(bpf, 'int bpf_map_delete_batch(int fd, void *keys, _Inout_ uint32_t *count, void *opts)') as
    (fd: number, keys: Buffer, count: [number], opts: Buffer | null) => number,
  // --- generic fd objects ---
  bpf_obj_pin: f(bpf, 'int bpf_obj_pin(int fd, const char *path)') as (fd: number, path: string) => number,
  bpf_obj_get: f(bpf, 'int bpf_obj_get(const char *path)') as (path: string) => number,
  bpf_obj_get_info_by_fd: f(bpf, 'int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)') as (fd: number, info: Buffer, len: [number]) => number,
  // --- attachment ---
  bpf_xdp_attach: f(bpf, 'int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, void *opts)') as (ifindex: number, progFd: number, flags: number, opts: Buffer | null) => number,
  bpf_xdp_query_id: f(bpf, 'int bpf_xdp_query_id(int ifindex, int flags, _Out_ uint32_t *prog_id)') as (ifindex: number, flags: number, id: [number]) => number,
  bpf_tc_hook_create: f(bpf, 'int bpf_tc_hook_create(void *hook)') as (hook: Buffer) => number,
  bpf_tc_hook_destroy: f(bpf, 'int bpf_tc_hook_destroy(void *hook)') as (hook: Buffer) => number,
  bpf_tc_attach: f(bpf, 'int bpf_tc_attach(void *hook, void *opts)') as (hook: Buffer, opts: Buffer) => number,
  bpf_tc_detach: f(bpf, 'int bpf_tc_detach(void *hook, void *opts)') as (hook: Buffer, opts: Buffer) => number,
  bpf_link_create: f(bpf, 'int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)') as (progFd: number, targetFd: number, attachType: number, opts: Buffer | null) => number,
  bpf_link_detach: f(bpf, 'int bpf_link_detach(int link_fd)') as (fd: number) => number,
  // --- ring buffer ---
  ring_buffer__new: bpf.func('void *ring_buffer__new(int map_fd, ebpf_ts_ring_buffer_sample_fn *cb, void *ctx, void *opts)') as (fd: number, cb: Ptr, ctx: null, opts: null) => RingBufPtr | null,
  ring_buffer__free: f(bpf, 'void ring_buffer__free(void *rb)') as (rb: RingBufPtr) => void,
  ring_buffer__poll: f(bpf, 'int ring_buffer__poll(void *rb, int timeout_ms)') as (rb: RingBufPtr, timeoutMs: number) => number,
  ring_buffer__consume: f(bpf, 'int ring_buffer__consume(void *rb)') as (rb: RingBufPtr) => number,
  ring_buffer__epoll_fd: f(bpf, 'int ring_buffer__epoll_fd(void *rb)') as (rb: RingBufPtr) => number,
  // --- misc ---
  libbpf_num_possible_cpus: f(bpf, 'int libbpf_num_possible_cpus(void)') as () => number,
  libbpf_set_print: bpf.func('void *libbpf_set_print(ebpf_ts_libbpf_print_fn *fn)') as (fn: Ptr | null) => Ptr | null,
  // --- libc ---
  if_nametoindex: f(libc, 'unsigned int if_nametoindex(const char *name)') as (name: string) => number,
  mount: f(libc, 'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, void *data)') as
    (src: string, target: string, fstype: string, flags: number, data: null) => number,
  close: f(libc, 'int close(int fd)') as (fd: number) => number,
  strerror: f(libc, 'const char *strerror(int errnum)') as (errno: number) => string,
  vasprintf: f(libc, 'int vasprintf(_Out_ void **strp, const char *fmt, void *ap)') as (out: [Ptr | null], fmt: string, ap: Ptr) => number,
  free: f(libc, 'void free(void *ptr)') as (p: Ptr) => void,
};

setErrnoDescriber((e) => lib.strerror(e));

/** errno of the last failed native call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Restores errno (used by callbacks that run inside libbpf). */
export function setErrno(value: number): void {
  koffi.errno(value);
}

/** Allocates `size` bytes of C memory holding an empty C string (only the first byte is zeroed, so large buffers stay uncommitted); free with {@link freeC}. */
export function allocC(size: number): Ptr {
  const p = koffi.alloc('uint8_t', size) as Ptr;
  new Uint8Array(koffi.view(p, 1))[0] = 0;
  return p;
}

/** Frees memory from {@link allocC}. */
export function freeC(p: Ptr): void {
  koffi.free(p);
}

/** Copies `len` bytes of C memory at `p` into a fresh Buffer. */
export function copyFromC(p: Ptr, len: number): Buffer {
  if (len === 0) return Buffer.alloc(0);
  return Buffer.from(new Uint8Array(koffi.view(p, len)));
}

/** Reads a NUL-terminated C string of at most `max` bytes at `p`. */
export function cString(p: Ptr, max: number): string {
  const bytes = new Uint8Array(koffi.view(p, max));
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.subarray(0, end < 0 ? max : end)).toString('utf8');
}

/** The address of a Buffer's first byte, to place in option structs. The Buffer must stay referenced during the call. */
export function addressOf(buf: Buffer): bigint {
  return buf.length === 0 ? 0n : (koffi.address(buf) as bigint);
}

/** Registers a long-lived C callback. */
export function registerCallback(fn: (...args: never[]) => number, proto: ReturnType<typeof koffi.proto>): Ptr {
  return koffi.register(fn, koffi.pointer(proto));
}

/** Releases a callback from {@link registerCallback}. */
export function unregisterCallback(p: Ptr): void {
  koffi.unregister(p);
}

/** Watches a file descriptor for readability on the Node event loop (koffi's libuv poll handle). */
export function pollReadable(fd: number, onReadable: () => void): { stop(): void; close(): void; unref(): void; ref(): void } {
  return koffi.node.poll(fd, { readable: true }, () => onReadable());
}

export { PrintFn };
