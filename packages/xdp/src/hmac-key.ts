/**
 * Key preparation for the kernel's HMAC-SHA256 (bpf/include/hmac.h): the
 * kernel gets the SHA-256 states after compressing K ^ ipad and K ^ opad,
 * never the key, and hashes only the message blocks. node:crypto does not
 * expose intermediate states, so the compression function is written here
 * (FIPS 180-4 section 6.2.2).
 */
import { createHash, createHmac } from 'node:crypto';

/** Bytes of a struct hmac_key: inner[8] then outer[8], u32 each in host order (little-endian). */
export const HMAC_KEY_SIZE = 64;
/** Bytes of the tags the kernel computes: the first 16 of HMAC-SHA256. */
export const HMAC_TAG_SIZE = 16;
/** The longest message hmac_sha256_tag accepts (HMAC_MSG_MAX). */
export const HMAC_MSG_MAX = 512;

const BLOCK = 64;

/** SHA-256's initial state (FIPS 180-4 section 5.3.3). */
export const SHA256_IV: readonly number[] = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));

/**
 * One SHA-256 compression: the state after `state` absorbs the 64-byte
 * `block`. Returns a new array of eight u32 words; `state` is not modified.
 */
export function sha256Compress(state: ArrayLike<number>, block: Uint8Array): Uint32Array {
  if (state.length !== 8) throw new RangeError(`a SHA-256 state has 8 words, got ${state.length}`);
  if (block.length !== BLOCK) throw new RangeError(`a SHA-256 block has 64 bytes, got ${block.length}`);
  const w = new Uint32Array(64);
  const view = new DataView(block.buffer, block.byteOffset, BLOCK);
  for (let t = 0; t < 16; t++) w[t] = view.getUint32(4 * t, false);
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15]!;
    const y = w[t - 2]!;
    const s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3);
    const s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10);
    w[t] = w[t - 16]! + s0 + w[t - 7]! + s1;
  }
  let [a, b, c, d, e, f, g, h] = Array.from(state, (v) => v >>> 0) as [
    number, number, number, number, number, number, number, number,
  ];
  for (let t = 0; t < 64; t++) {
    const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + K[t]! + w[t]!) >>> 0;
    const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) >>> 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) >>> 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) >>> 0;
  }
  const out = new Uint32Array(8);
  [a, b, c, d, e, f, g, h].forEach((v, i) => (out[i] = state[i]! + v));
  return out;
}

function secretBytes(secret: Uint8Array | string): Uint8Array {
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
}

/**
 * The struct hmac_key for a secret (RFC 2104: a key longer than 64 bytes is
 * replaced by its SHA-256): 64 bytes, the state after K ^ ipad then the
 * state after K ^ opad, each eight little-endian u32 (host order on x86-64
 * and arm64, which is what the kernel's words are).
 */
export function hmacKeyStates(secret: Uint8Array | string): Buffer {
  let k = secretBytes(secret);
  if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
  const ipad = new Uint8Array(BLOCK).fill(0x36);
  const opad = new Uint8Array(BLOCK).fill(0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i]! ^= k[i]!;
    opad[i]! ^= k[i]!;
  }
  const out = Buffer.alloc(HMAC_KEY_SIZE);
  sha256Compress(SHA256_IV, ipad).forEach((v, i) => out.writeUInt32LE(v, 4 * i));
  sha256Compress(SHA256_IV, opad).forEach((v, i) => out.writeUInt32LE(v, 32 + 4 * i));
  ipad.fill(0);
  opad.fill(0);
  return out;
}

/** The tag the kernel computes, in user space: the first 16 bytes of HMAC-SHA256(secret, message). */
export function hmacTag(secret: Uint8Array | string, message: Uint8Array): Buffer {
  return createHmac('sha256', secretBytes(secret)).update(message).digest().subarray(0, HMAC_TAG_SIZE);
}
