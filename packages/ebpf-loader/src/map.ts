import { readFileSync, unlinkSync } from 'node:fs';
import { BpfError } from './errors.js';
import { lib, type MapPtr } from './native.js';
import { MapType, PERCPU_MAP_TYPES, mapTypeName } from './constants.js';
import type { Codec } from './codec.js';
import { TypedMap } from './typed-map.js';
import { possibleCpus } from './cpus.js';
import type { OwnerState } from './owner.js';

const ENOENT = 2;
const EBADF = 9;
const EINVAL = 22;
const E2BIG = 7;
const EOPNOTSUPP = 95;
const ENOSPC = 28;
const ENOTSUPP = 524;

/** Update flags: `'any'` creates or replaces, `'noexist'` only creates, `'exist'` only replaces. */
export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Readonly<Record<UpdateFlag, number>> = { any: 0, noexist: 1, exist: 2 };

function flagValue(flags: UpdateFlag | undefined): number {
  const v = UPDATE_FLAGS[flags ?? 'any'];
  if (v === undefined) throw new TypeError(`update flag must be 'any', 'noexist' or 'exist', got ${String(flags)}`);
  return v;
}

/** Options for {@link BpfMap.lookupBatch}. */
export interface LookupBatchOptions {
  /** Entries fetched per syscall (grown automatically when a hash bucket does not fit). Default 256. */
  batchSize?: number;
}

/**
 * @internal How a BpfMap reaches its kernel object: through a libbpf `struct bpf_map` of a {@link BpfObject}
 * (fd valid once the object is loaded, owned by the object) or a file descriptor it owns itself.
 */
export type MapSource =
  | { kind: 'object'; ptr: MapPtr; owner: OwnerState }
  | { kind: 'fd'; fd: number; owner: OwnerState };

/** Metadata of a map. */
interface MapMeta {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/**
 * A BPF map. Keys and values are raw Buffers of exactly `keySize` / `valueSize` bytes
 * (for per-CPU maps, values are `perCpuStride * possibleCpus` bytes: see {@link BpfMap.valueBufferSize});
 * use {@link BpfMap.typed} for decoded access.
 */
export class BpfMap {
  /** Map name (from the ELF object, or the kernel's 15-byte name for a pinned map). */
  readonly name: string;
  /** `enum bpf_map_type` value; see {@link MapType}. */
  readonly type: number;
  /** Key size in bytes. */
  readonly keySize: number;
  /** Value size in bytes (of one CPU's value for per-CPU maps). */
  readonly valueSize: number;
  /** Capacity (changed by {@link BpfMap.resize} before the object is loaded). */
  maxEntries: number;
  /** `map_flags` (BPF_F_*). */
  readonly flags: number;
  /** Path this map was last pinned at through {@link BpfMap.pin}, or opened from. */
  #pinnedAt: string | undefined;
  readonly #src: MapSource;
  /** Whether batch syscalls work for this map (learned on first use). */
  #batchOk: boolean | undefined;

  /** @internal Use {@link BpfObject.map} or {@link BpfMap.fromPinned}. */
  constructor(src: MapSource, meta: MapMeta, pinnedAt?: string) {
    this.#src = src;
    this.name = meta.name;
    this.type = meta.type;
    this.keySize = meta.keySize;
    this.valueSize = meta.valueSize;
    this.maxEntries = meta.maxEntries;
    this.flags = meta.flags;
    this.#pinnedAt = pinnedAt;
  }

  /**
   * Sets the capacity of a map of an object that is not loaded yet (the
   * size the C definition declares is only a default).
   */
  resize(maxEntries: number): void {
    const src = this.#src;
    if (src.kind !== 'object') throw new BpfError({ errno: 22, op: `resize map '${this.name}'`, details: ['only maps of an object can be resized, before it is loaded'] });
    if (src.owner.loaded) throw new BpfError({ errno: 16, op: `resize map '${this.name}'`, details: ['the object is loaded already: resize before load()'] });
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 0xffffffff) {
      throw new BpfError({ errno: 22, op: `resize map '${this.name}'`, details: [`${maxEntries} is not a positive u32`] });
    }
    const r = lib.bpf_map__set_max_entries(src.ptr, maxEntries);
    if (r < 0) throw new BpfError({ errno: -r, op: `resize map '${this.name}' to ${maxEntries} entries` });
    this.maxEntries = maxEntries;
  }

  /** @internal Wraps a libbpf map of an object. */
  static fromObjectMap(ptr: MapPtr, owner: OwnerState): BpfMap {
    return new BpfMap({ kind: 'object', ptr, owner }, {
      name: lib.bpf_map__name(ptr),
      type: lib.bpf_map__type(ptr),
      keySize: lib.bpf_map__key_size(ptr),
      valueSize: lib.bpf_map__value_size(ptr),
      maxEntries: lib.bpf_map__max_entries(ptr),
      flags: lib.bpf_map__map_flags(ptr),
    });
  }

  /**
   * Opens a map pinned in a bpffs (by this or another process). The returned map owns its file descriptor:
   * call {@link BpfMap.close} when done (the pin stays).
   */
  static fromPinned(path: string): BpfMap {
    const fd = lib.bpf_obj_get(path);
    if (fd < 0) {
      throw new BpfError({ errno: -fd, op: `open pinned BPF map ${path}`, details: fd === -ENOENT ? ['nothing is pinned at that path (is bpffs mounted?)'] : [] });
    }
    let meta: MapMeta;
    try {
      meta = mapInfo(fd, path);
    } catch (e) {
      lib.close(fd);
      throw e;
    }
    return new BpfMap({ kind: 'fd', fd, owner: { closed: false, loaded: true, label: path } }, meta, path);
  }

  /** The map's file descriptor. Throws when the owning object is not loaded or was closed. */
  get fd(): number {
    const src = this.#src;
    if (src.owner.closed) throw new BpfError({ errno: EBADF, op: `use map '${this.name}'`, details: [`${src.owner.label} was closed`] });
    if (src.kind === 'fd') return src.fd;
    const fd = lib.bpf_map__fd(src.ptr);
    if (fd < 0) throw new BpfError({ errno: EBADF, op: `use map '${this.name}'`, details: [`${src.owner.label} is not loaded yet: call load() first`] });
    return fd;
  }

  /** Whether values are stored per CPU (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE). */
  get isPerCpu(): boolean {
    return PERCPU_MAP_TYPES.has(this.type);
  }

  /** Bytes one CPU's value occupies in a per-CPU buffer: `valueSize` rounded up to 8, as the kernel lays it out. */
  get perCpuStride(): number {
    return Math.ceil(this.valueSize / 8) * 8;
  }

  /** Size of the value buffer the syscalls read or write: `valueSize`, or `perCpuStride * possibleCpus()` for per-CPU maps. */
  get valueBufferSize(): number {
    return this.isPerCpu ? this.perCpuStride * possibleCpus() : this.valueSize;
  }

  /** Where the map is pinned: libbpf's pin path for an object map, else the last {@link BpfMap.pin} / {@link BpfMap.fromPinned} path. */
  get pinPath(): string | undefined {
    if (this.#src.kind === 'object') return lib.bpf_map__pin_path(this.#src.ptr) ?? this.#pinnedAt;
    return this.#pinnedAt;
  }

  #what(): string {
    return `map '${this.name}' (${mapTypeName(this.type)})`;
  }

  #checkKey(key: Buffer, op: string): void {
    if (!Buffer.isBuffer(key)) throw new TypeError(`${op} on ${this.#what()}: key must be a Buffer`);
    if (key.length !== this.keySize) throw new RangeError(`${op} on ${this.#what()}: key is ${key.length} bytes, the map's keys are ${this.keySize}`);
  }

  #checkValue(value: Buffer, op: string): void {
    if (!Buffer.isBuffer(value)) throw new TypeError(`${op} on ${this.#what()}: value must be a Buffer`);
    const want = this.valueBufferSize;
    if (value.length !== want) {
      const perCpu = this.isPerCpu ? ` (${possibleCpus()} CPUs x ${this.perCpuStride} bytes; see updatePerCpu)` : '';
      throw new RangeError(`${op} on ${this.#what()}: value is ${value.length} bytes, expected ${want}${perCpu}`);
    }
  }

  #fail(errno: number, op: string, details: string[] = []): never {
    if (errno === E2BIG) details.push(`the map is full (maxEntries ${this.maxEntries})`);
    throw new BpfError({ errno, op: `${op} on ${this.#what()}`, details });
  }

  /** The value stored under `key`, or `undefined` when there is none. Per-CPU maps return all CPUs' values concatenated. */
  lookup(key: Buffer): Buffer | undefined {
    this.#checkKey(key, 'lookup');
    const value = Buffer.alloc(this.valueBufferSize);
    const r = lib.bpf_map_lookup_elem(this.fd, key, value);
    if (r === -ENOENT) return undefined;
    if (r < 0) this.#fail(-r, 'lookup');
    return value;
  }

  /** Stores `value` under `key`. `flags`: 'any' (default), 'noexist' (fail with EEXIST if present), 'exist' (fail with ENOENT if absent). */
  update(key: Buffer, value: Buffer, flags: UpdateFlag = 'any'): void {
    this.#checkKey(key, 'update');
    this.#checkValue(value, 'update');
    const r = lib.bpf_map_update_elem(this.fd, key, value, flagValue(flags));
    if (r < 0) this.#fail(-r, `update (${flags})`);
  }

  /** Deletes `key`; false when it was not there. Array maps cannot delete (EINVAL). */
  delete(key: Buffer): boolean {
    this.#checkKey(key, 'delete');
    const r = lib.bpf_map_delete_elem(this.fd, key);
    if (r === -ENOENT) return false;
    if (r < 0) this.#fail(-r, 'delete', r === -EINVAL && isArrayLike(this.type) ? ['array maps cannot delete elements; overwrite them with zeros instead'] : []);
    return true;
  }

  /**
   * Iterates over the keys (BPF_MAP_GET_NEXT_KEY). For hash maps, deleting the current key while iterating
   * makes the kernel restart from the first key; collect keys first if you delete.
   */
  *keys(): IterableIterator<Buffer> {
    const fd = this.fd;
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = lib.bpf_map_get_next_key(fd, prev, next);
      if (r === -ENOENT) return;
      if (r < 0) this.#fail(-r, 'iterate keys');
      yield next;
      prev = next;
    }
  }

  /** Iterates over `[key, value]` pairs (entries deleted concurrently are skipped). */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /** Same as {@link BpfMap.entries}. */
  [Symbol.iterator](): IterableIterator<[Buffer, Buffer]> {
    return this.entries();
  }

  /** Whether the kernel implements batch operations for this map; probed by the first batch call. */
  get batchSupported(): boolean | undefined {
    return this.#batchOk;
  }

  /**
   * Reads the whole map with BPF_MAP_LOOKUP_BATCH, `batchSize` entries per syscall. Falls back to
   * {@link BpfMap.entries} when the kernel has no batch lookup for this map type. Per-CPU values are
   * {@link BpfMap.valueBufferSize} bytes, as from {@link BpfMap.lookup}.
   */
  lookupBatch(opts: LookupBatchOptions = {}): Array<[Buffer, Buffer]> {
    if (this.#batchOk === false) return [...this.entries()];
    const fd = this.fd;
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    let size = Math.max(1, Math.min(opts.batchSize ?? 256, this.maxEntries || 1));
    const tokenSize = Math.max(ks, 8);
    let inBatch: Buffer | null = null;
    let outBatch = Buffer.alloc(tokenSize);
    const out: Array<[Buffer, Buffer]> = [];
    for (;;) {
      const keys = Buffer.alloc(size * ks);
      const values = Buffer.alloc(size * vs);
      const count: [number] = [size];
      const r = lib.bpf_map_lookup_batch(fd, inBatch, outBatch, keys, values, count, null);
      if (r < 0 && r !== -ENOENT) {
        if (r === -ENOSPC && count[0] === 0) {
          size *= 2; // a hash bucket holds more entries than fit: retry the same position with more room
          continue;
        }
        if ((r === -ENOTSUPP || r === -EOPNOTSUPP) && inBatch === null) {
          this.#batchOk = false;
          return [...this.entries()];
        }
        this.#fail(-r, 'lookup batch');
      }
      this.#batchOk = true;
      for (let i = 0; i < count[0]; i++) {
        out.push([Buffer.from(keys.subarray(i * ks, (i + 1) * ks)), Buffer.from(values.subarray(i * vs, (i + 1) * vs))]);
      }
      if (r === -ENOENT) return out;
      inBatch = outBatch;
      outBatch = Buffer.alloc(tokenSize);
    }
  }

  /**
   * Writes many entries with one BPF_MAP_UPDATE_BATCH syscall (falls back to one update per entry when the
   * kernel lacks it). The kernel's batch update takes no NOEXIST/EXIST flag, so with `'noexist'` or `'exist'`
   * the entries are written one by one (still checked per entry). On failure the error says how many entries
   * were written before it.
   */
  updateBatch(entries: Iterable<readonly [Buffer, Buffer]>, flags: UpdateFlag = 'any'): void {
    const list = [...entries];
    flagValue(flags);
    for (const [k, v] of list) {
      this.#checkKey(k, 'update batch');
      this.#checkValue(v, 'update batch');
    }
    if (list.length === 0) return;
    const oneByOne = (): void => {
      list.forEach(([k, v], i) => {
        try {
          this.update(k, v, flags);
        } catch (e) {
          if (e instanceof BpfError) this.#fail(e.errno, `update batch (${flags}, one by one)`, [`${i} of ${list.length} entries were written before the failure`]);
          throw e;
        }
      });
    };
    if (this.#batchOk === false || flags !== 'any') {
      oneByOne();
      return;
    }
    const keys = Buffer.concat(list.map(([k]) => k));
    const values = Buffer.concat(list.map(([, v]) => v));
    const count: [number] = [list.length];
    const r = lib.bpf_map_update_batch(this.fd, keys, values, count, batchOpts(0));
    if (r < 0) {
      if (r === -ENOTSUPP || r === -EOPNOTSUPP) {
        this.#batchOk = false;
        oneByOne();
        return;
      }
      const done = count[0] < list.length ? [`${count[0]} of ${list.length} entries were written before the failure`] : [];
      this.#fail(-r, 'update batch', done);
    }
    this.#batchOk = true;
  }

  /**
   * Deletes the given keys with BPF_MAP_DELETE_BATCH (falls back to one delete per key when the kernel lacks
   * it). Keys that are not present are skipped; returns how many were deleted.
   */
  deleteBatch(keys: Iterable<Buffer>): number {
    const list = [...keys];
    for (const k of list) this.#checkKey(k, 'delete batch');
    if (list.length === 0) return 0;
    const perKey = (): number => list.reduce((n, k) => n + (this.delete(k) ? 1 : 0), 0);
    if (this.#batchOk === false) return perKey();
    const all = Buffer.concat(list);
    const ks = this.keySize;
    let start = 0;
    let deleted = 0;
    while (start < list.length) {
      const count: [number] = [list.length - start];
      const r = lib.bpf_map_delete_batch(this.fd, all.subarray(start * ks), count, null);
      if (r === 0) {
        this.#batchOk = true;
        return deleted + count[0];
      }
      if ((r === -ENOTSUPP || r === -EOPNOTSUPP) && deleted === 0 && start === 0) {
        this.#batchOk = false;
        return perKey();
      }
      if (r !== -ENOENT) this.#fail(-r, 'delete batch', [`${deleted + count[0]} keys were deleted before the failure`]);
      // count[0] keys went, the next one was absent: skip it and go on.
      deleted += count[0];
      start += count[0] + 1;
    }
    return deleted;
  }

  /**
   * The value of `key` on every possible CPU (per-CPU maps only): one Buffer of `valueSize` bytes per CPU,
   * cut from the kernel's layout of `perCpuStride` (valueSize rounded up to 8) bytes per CPU.
   * Throws a BpfError (ENOENT) when the key is absent.
   */
  lookupPerCpu(key: Buffer): Buffer[] {
    this.#requirePerCpu('lookupPerCpu');
    const raw = this.lookup(key);
    if (raw === undefined) this.#fail(ENOENT, 'lookupPerCpu', [`key ${key.toString('hex')} is not in the map`]);
    return splitPerCpu(raw, this.perCpuStride, this.valueSize);
  }

  /** Stores one value per possible CPU (per-CPU maps only); `values.length` must equal {@link possibleCpus}. */
  updatePerCpu(key: Buffer, values: readonly Buffer[], flags: UpdateFlag = 'any'): void {
    this.#requirePerCpu('updatePerCpu');
    const n = possibleCpus();
    if (values.length !== n) throw new RangeError(`updatePerCpu on ${this.#what()}: got ${values.length} values, the kernel has ${n} possible CPUs`);
    const stride = this.perCpuStride;
    const raw = Buffer.alloc(stride * n);
    values.forEach((v, i) => {
      if (v.length !== this.valueSize) throw new RangeError(`updatePerCpu on ${this.#what()}: value ${i} is ${v.length} bytes, expected ${this.valueSize}`);
      v.copy(raw, i * stride);
    });
    this.update(key, raw, flags);
  }

  #requirePerCpu(op: string): void {
    if (!this.isPerCpu) throw new TypeError(`${op}: ${this.#what()} is not a per-CPU map`);
  }

  /** Pins the map at `path` in a bpffs (see {@link mountBpffs}), so it outlives this process. */
  pin(path: string): void {
    const src = this.#src;
    const r = src.kind === 'object' ? lib.bpf_map__pin(src.ptr, path) : lib.bpf_obj_pin(this.fd, path);
    if (r < 0) this.#fail(-r, `pin at ${path}`, r === -EEXIST_NEG ? ['something is already pinned there'] : []);
    this.#pinnedAt = path;
  }

  /** Removes the pin at `path`, or where the map is pinned ({@link BpfMap.pinPath}). The map itself lives on while referenced. */
  unpin(path?: string): void {
    const src = this.#src;
    const target = path ?? this.pinPath;
    if (target === undefined) throw new Error(`unpin ${this.#what()}: the map is not pinned and no path was given`);
    if (src.kind === 'object' && lib.bpf_map__is_pinned(src.ptr) && (path === undefined || path === lib.bpf_map__pin_path(src.ptr))) {
      const r = lib.bpf_map__unpin(src.ptr, path ?? null);
      if (r < 0) this.#fail(-r, `unpin ${target}`);
    } else {
      try {
        unlinkSync(target);
      } catch (e) {
        const errno = -((e as NodeJS.ErrnoException).errno ?? -EINVAL);
        throw new BpfError({ errno, op: `unpin ${this.#what()} at ${target}`, cause: e });
      }
    }
    if (target === this.#pinnedAt) this.#pinnedAt = undefined;
  }

  /** Decoded view of this map through key and value codecs (sizes are checked against the map). */
  typed<K, V>(codec: { key: Codec<K>; value: Codec<V> }): TypedMap<K, V> {
    if (codec.key.size !== this.keySize) throw new RangeError(`typed(): key codec is ${codec.key.size} bytes, ${this.#what()} has ${this.keySize}-byte keys`);
    if (codec.value.size !== this.valueSize) throw new RangeError(`typed(): value codec is ${codec.value.size} bytes, ${this.#what()} has ${this.valueSize}-byte values`);
    return new TypedMap(this, codec.key, codec.value);
  }

  /** Releases the file descriptor of a map opened with {@link BpfMap.fromPinned}; no-op for maps of a BpfObject (the object owns them). */
  close(): void {
    const src = this.#src;
    if (src.kind === 'fd' && !src.owner.closed) {
      src.owner.closed = true;
      lib.close(src.fd);
    }
  }
}

const EEXIST_NEG = -17;

function isArrayLike(type: number): boolean {
  return type === MapType.ARRAY || type === MapType.PERCPU_ARRAY || type === MapType.PROG_ARRAY || type === MapType.CGROUP_ARRAY;
}

function splitPerCpu(raw: Buffer, stride: number, size: number): Buffer[] {
  const n = raw.length / stride;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(Buffer.from(raw.subarray(i * stride, i * stride + size)));
  return out;
}

/** struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; } */
function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

/** Reads `struct bpf_map_info` for a map fd; rejects fds that are not maps. */
function mapInfo(fd: number, path: string): MapMeta {
  let fdinfo = '';
  try {
    fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    // Without procfs we cannot tell maps from other objects; trust the caller.
  }
  if (fdinfo && !/^map_type:/m.test(fdinfo)) {
    throw new BpfError({ errno: EINVAL, op: `open pinned BPF map ${path}`, details: ['the object pinned there is not a map (a program or link?)'] });
  }
  const info = Buffer.alloc(88);
  const len: [number] = [info.length];
  const r = lib.bpf_obj_get_info_by_fd(fd, info, len);
  if (r < 0) throw new BpfError({ errno: -r, op: `read map info of ${path}` });
  const nameEnd = info.indexOf(0, 24);
  return {
    type: info.readUInt32LE(0),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: info.subarray(24, nameEnd < 0 || nameEnd > 40 ? 40 : nameEnd).toString('utf8'),
  };
}

