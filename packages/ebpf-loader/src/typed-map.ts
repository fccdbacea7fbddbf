import type { BpfMap, UpdateFlag } from './map.js';
import type { Codec } from './codec.js';

/** A {@link BpfMap} seen through codecs: same operations, decoded keys and values. Create with {@link BpfMap.typed}. */
export class TypedMap<K, V> {
  /** The underlying raw map. */
  readonly raw: BpfMap;
  readonly #key: Codec<K>;
  readonly #value: Codec<V>;

  /** @internal Use {@link BpfMap.typed}. */
  constructor(raw: BpfMap, key: Codec<K>, value: Codec<V>) {
    this.raw = raw;
    this.#key = key;
    this.#value = value;
  }

  /** Decoded value under `key` (the first CPU's for a per-CPU map: use lookupPerCpu there), or undefined. */
  lookup(key: K): V | undefined {
    const raw = this.raw.lookup(this.#key.encode(key));
    if (raw === undefined) return undefined;
    return this.#value.decode(raw.subarray(0, this.#value.size));
  }

  /** Stores `value` under `key` (see {@link BpfMap.update}); per-CPU maps get the same value on every CPU. */
  update(key: K, value: V, flags: UpdateFlag = 'any'): void {
    const k = this.#key.encode(key);
    const v = this.#value.encode(value);
    if (this.raw.isPerCpu) this.raw.updatePerCpu(k, Array.from({ length: this.raw.valueBufferSize / this.raw.perCpuStride }, () => v), flags);
    else this.raw.update(k, v, flags);
  }

  /** Deletes `key`; false when absent. */
  delete(key: K): boolean {
    return this.raw.delete(this.#key.encode(key));
  }

  /** Decoded keys. */
  *keys(): IterableIterator<K> {
    for (const k of this.raw.keys()) yield this.#key.decode(k);
  }

  /** Decoded `[key, value]` pairs (first CPU's value for per-CPU maps). */
  *entries(): IterableIterator<[K, V]> {
    for (const [k, v] of this.raw.entries()) yield [this.#key.decode(k), this.#value.decode(v.subarray(0, this.#value.size))];
  }

  /** Same as {@link TypedMap.entries}. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /** Decoded per-CPU values of `key` (per-CPU maps only; throws ENOENT when absent). */
  lookupPerCpu(key: K): V[] {
    return this.raw.lookupPerCpu(this.#key.encode(key)).map((b) => this.#value.decode(b));
  }

  /** All entries through one batch read (see {@link BpfMap.lookupBatch}). */
  lookupBatch(): Array<[K, V]> {
    return this.raw.lookupBatch().map(([k, v]) => [this.#key.decode(k), this.#value.decode(v.subarray(0, this.#value.size))]);
  }

  /** Batch update (see {@link BpfMap.updateBatch}); not for per-CPU maps. */
  updateBatch(entries: Iterable<readonly [K, V]>, flags: UpdateFlag = 'any'): void {
    const raw: Array<[Buffer, Buffer]> = [];
    for (const [k, v] of entries) raw.push([this.#key.encode(k), this.#value.encode(v)]);
    this.raw.updateBatch(raw, flags);
  }

  /** Batch delete (see {@link BpfMap.deleteBatch}); returns how many keys were present. */
  deleteBatch(keys: Iterable<K>): number {
    const raw: Buffer[] = [];
    for (const k of keys) raw.push(this.#key.encode(k));
    return this.raw.deleteBatch(raw);
  }
}
