export * from './errors.js';
export * from './address.js';
export * from './tuple.js';
export * from './seq.js';
export * from './checksum.js';
export * from './table.js';
export * from './messages.js';
export { ByteReader, ByteWriter, hex, fromHex } from './wire/bytes.js';
