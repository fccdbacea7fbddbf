/**
 * Encodes values of type `T` to and from fixed-size Buffers (map keys and values).
 * `size` is the byte size, which must match the map's key or value size.
 */
export interface Codec<T> {
  /** Size of an encoded value in bytes. */
  size: number;
  /** Encodes `v` into a Buffer of exactly `size` bytes. */
  encode(v: T): Buffer;
  /** Decodes a Buffer of `size` bytes. */
  decode(b: Buffer): T;
}

function intCodec<T>(size: number, write: (b: Buffer, v: T) => void, read: (b: Buffer) => T): Codec<T> {
  return {
    size,
    encode(v) {
      const b = Buffer.alloc(size);
      write(b, v);
      return b;
    },
    decode(b) {
      checkLength(b, size);
      return read(b);
    },
  };
}

function checkLength(b: Buffer, size: number): void {
  if (b.length !== size) throw new RangeError(`codec expects ${size} bytes, got ${b.length}`);
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = intCodec(1, (b, v) => b.writeUInt8(v), (b) => b.readUInt8(0));
/** Unsigned 16-bit integer in host (little-endian) order. */
export const u16: Codec<number> = intCodec(2, (b, v) => b.writeUInt16LE(v), (b) => b.readUInt16LE(0));
/** Unsigned 32-bit integer in host (little-endian) order, the usual `__u32` map key. */
export const u32: Codec<number> = intCodec(4, (b, v) => b.writeUInt32LE(v), (b) => b.readUInt32LE(0));
/** Signed 32-bit integer, little-endian. */
export const i32: Codec<number> = intCodec(4, (b, v) => b.writeInt32LE(v), (b) => b.readInt32LE(0));
/** Unsigned 64-bit integer, little-endian, as a bigint (counters). */
export const u64: Codec<bigint> = intCodec(8, (b, v) => b.writeBigUInt64LE(v), (b) => b.readBigUInt64LE(0));
/** Signed 64-bit integer, little-endian, as a bigint. */
export const i64: Codec<bigint> = intCodec(8, (b, v) => b.writeBigInt64LE(v), (b) => b.readBigInt64LE(0));
/** Unsigned 16-bit integer in network (big-endian) order, e.g. a `__be16` port. */
export const u16be: Codec<number> = intCodec(2, (b, v) => b.writeUInt16BE(v), (b) => b.readUInt16BE(0));
/** Unsigned 32-bit integer in network (big-endian) order, e.g. a `__be32` address as a number. */
export const u32be: Codec<number> = intCodec(4, (b, v) => b.writeUInt32BE(v), (b) => b.readUInt32BE(0));

/** An IPv4 address in network order (`__be32`), as dotted-quad text. */
export const ipv4: Codec<string> = {
  size: 4,
  encode(v) {
    const parts = v.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`not an IPv4 address: ${v}`);
    return Buffer.from(parts);
  },
  decode(b) {
    checkLength(b, 4);
    return [...b].join('.');
  },
};

/** Raw bytes of a fixed size (copied in both directions). */
export function bytes(size: number): Codec<Buffer> {
  return {
    size,
    encode(v) {
      checkLength(v, size);
      return Buffer.from(v);
    },
    decode(b) {
      checkLength(b, size);
      return Buffer.from(b);
    },
  };
}

/** A field of a {@link struct} codec: its codec and byte offset. */
export interface StructField<T> {
  offset: number;
  codec: Codec<T>;
}

/**
 * A C struct of fixed layout: give each field's offset and codec (padding bytes encode as zero, as the
 * verifier and hash maps expect).
 *
 * ```ts
 * const flowKey = struct(12, { saddr: { offset: 0, codec: ipv4 }, daddr: { offset: 4, codec: ipv4 },
 *                              sport: { offset: 8, codec: u16be }, dport: { offset: 10, codec: u16be } });
 * ```
 */
export function struct<T extends Record<string, unknown>>(size: number, fields: { [K in keyof T]: StructField<T[K]> }): Codec<T> {
  const entries = Object.entries(fields) as Array<[keyof T & string, StructField<unknown>]>;
  for (const [name, f] of entries) {
    if (f.offset < 0 || f.offset + f.codec.size > size) throw new RangeError(`struct field '${name}' (offset ${f.offset}, ${f.codec.size} bytes) exceeds the ${size}-byte struct`);
  }
  return {
    size,
    encode(v) {
      const b = Buffer.alloc(size);
      for (const [name, f] of entries) f.codec.encode(v[name]).copy(b, f.offset);
      return b;
    },
    decode(b) {
      checkLength(b, size);
      const out: Record<string, unknown> = {};
      for (const [name, f] of entries) out[name] = f.codec.decode(b.subarray(f.offset, f.offset + f.codec.size));
      return out as T;
    },
  };
}
