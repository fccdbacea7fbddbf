import { createHmac, timingSafeEqual } from 'node:crypto';
import { AuthenticationError, DyscoError } from '../errors.js';

/**
 * Authentication of SYN metadata and control messages: HMAC-SHA256 under
 * operator-supplied keys, selected by a 32-bit key identifier carried in the
 * clear, plus an IPsec-style anti-replay window for control messages.
 *
 * There is no built-in or default key: a KeyRing holds only what the
 * operator configured, and an empty ring signs nothing.
 */

/** Shortest secret a KeyRing accepts (128 bits). */
export const AUTH_MIN_SECRET_BYTES = 16;

/** Length of a full HMAC-SHA256 output. */
export const AUTH_MAC_BYTES = 32;

/** Shortest tag `KeyRing.verify` compares (a truncated MAC). */
export const AUTH_MIN_TAG_BYTES = 16;

export interface AuthKey {
  /** u32 identifier carried on the wire next to the tag. */
  readonly keyId: number;
  /** At least AUTH_MIN_SECRET_BYTES bytes. */
  readonly secret: Uint8Array;
}

export interface KeyRingOptions {
  /** Key used to sign outgoing messages (default: the first key). */
  readonly sendKeyId?: number;
  /**
   * Refuse unsigned input (default: true when the ring has keys). Setting it
   * to false while keys are present is a rollout mode: outgoing messages are
   * signed, signed input is verified, unsigned input is still accepted.
   */
  readonly requireAuth?: boolean;
}

/** A misconfigured KeyRing (short secret, duplicate or unknown key id). */
export class AuthConfigError extends DyscoError {
  constructor(message: string) {
    super('ERR_AUTH_CONFIG', message);
    this.name = 'AuthConfigError';
  }
}

function isU32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

export class KeyRing {
  /** Whether unsigned input is refused. */
  readonly requireAuth: boolean;
  /** Key id used by `sign`, undefined for an empty ring. */
  readonly sendKeyId: number | undefined;
  // Private so that secrets never show up in logs or util.inspect output.
  readonly #secrets = new Map<number, Uint8Array>();

  constructor(keys: readonly AuthKey[], options: KeyRingOptions = {}) {
    for (const k of keys) {
      if (!isU32(k.keyId)) throw new AuthConfigError(`key id must be a u32, not ${String(k.keyId)}`);
      if (!(k.secret instanceof Uint8Array)) throw new AuthConfigError(`key ${k.keyId}: secret must be a Uint8Array`);
      if (k.secret.length < AUTH_MIN_SECRET_BYTES) {
        throw new AuthConfigError(
          `key ${k.keyId}: secret of ${k.secret.length} bytes is shorter than ${AUTH_MIN_SECRET_BYTES}`,
        );
      }
      if (this.#secrets.has(k.keyId)) throw new AuthConfigError(`duplicate key id ${k.keyId}`);
      this.#secrets.set(k.keyId, Uint8Array.from(k.secret));
    }
    const send = options.sendKeyId ?? keys[0]?.keyId;
    if (send !== undefined && !this.#secrets.has(send)) {
      throw new AuthConfigError(`send key id ${send} is not in the ring`);
    }
    this.sendKeyId = send;
    this.requireAuth = options.requireAuth ?? keys.length > 0;
  }

  /** Key ids in the ring, in configuration order. */
  get keyIds(): number[] {
    return [...this.#secrets.keys()];
  }

  hasKey(keyId: number): boolean {
    return this.#secrets.has(keyId);
  }

  /** True when the ring has a key to sign with. */
  get canSign(): boolean {
    return this.sendKeyId !== undefined;
  }

  /** Full 32-byte HMAC-SHA256 of `data` under `keyId`. Throws AuthenticationError('unknown-key'). */
  mac(keyId: number, data: Uint8Array): Uint8Array {
    const secret = this.#secrets.get(keyId);
    if (secret === undefined) throw new AuthenticationError('unknown-key', `no key with id ${keyId}`);
    const digest = createHmac('sha256', secret).update(data).digest();
    return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
  }

  /** Signs with the send key; `tagBytes` truncates the MAC (16..32). */
  sign(data: Uint8Array, tagBytes: number = AUTH_MAC_BYTES): { keyId: number; tag: Uint8Array } {
    const keyId = this.sendKeyId;
    if (keyId === undefined) throw new AuthConfigError('the key ring is empty: nothing to sign with');
    checkTagLength(tagBytes);
    return { keyId, tag: this.mac(keyId, data).slice(0, tagBytes) };
  }

  /**
   * Checks `tag` (a MAC truncated to its own length, 16..32 bytes) against
   * `data` under `keyId`, in constant time. Throws AuthenticationError with
   * reason 'unknown-key' or 'bad-tag'.
   */
  verify(keyId: number, data: Uint8Array, tag: Uint8Array): void {
    if (tag.length < AUTH_MIN_TAG_BYTES || tag.length > AUTH_MAC_BYTES) {
      throw new AuthenticationError('bad-tag', `a tag has ${AUTH_MIN_TAG_BYTES}..${AUTH_MAC_BYTES} bytes, not ${tag.length}`);
    }
    const expected = this.mac(keyId, data).subarray(0, tag.length);
    if (!timingSafeEqual(expected, tag)) {
      throw new AuthenticationError('bad-tag', `authentication tag does not verify under key ${keyId}`);
    }
  }
}

function checkTagLength(n: number): void {
  if (!Number.isInteger(n) || n < AUTH_MIN_TAG_BYTES || n > AUTH_MAC_BYTES) {
    throw new AuthConfigError(`tag length must be ${AUTH_MIN_TAG_BYTES}..${AUTH_MAC_BYTES}, not ${n}`);
  }
}

/** Width of the anti-replay window, in counter values. */
export const REPLAY_WINDOW_SIZE = 64;

const U64_MAX = (1n << 64n) - 1n;
const WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW_SIZE)) - 1n;

interface WindowState {
  /** Highest counter accepted so far. */
  top: bigint;
  /** Bit i set: counter `top - i` was accepted. */
  seen: bigint;
}

/**
 * Anti-replay state per (sender, key id), as in IPsec (RFC 4303, 3.4.3): the
 * highest counter accepted and a 64-bit bitmap of the counters just below
 * it. A counter is fresh when it is above the highest one, or inside the
 * window and not yet seen; anything older than the window is refused.
 *
 * Only authenticated messages may be committed (decodeControl commits after
 * the tag verified), so forged traffic can neither advance the window nor
 * grow this map.
 */
export class ReplayWindow {
  readonly #state = new Map<string, WindowState>();

  static #key(sender: string, keyId: number): string {
    // The numeric prefix cannot contain '|', so the key is unambiguous.
    return `${keyId}|${sender}`;
  }

  /** Whether `counter` would be accepted; changes nothing. */
  check(sender: string, keyId: number, counter: bigint): boolean {
    if (counter < 0n || counter > U64_MAX) return false;
    const s = this.#state.get(ReplayWindow.#key(sender, keyId));
    if (s === undefined || counter > s.top) return true;
    const age = s.top - counter;
    if (age >= BigInt(REPLAY_WINDOW_SIZE)) return false;
    return ((s.seen >> age) & 1n) === 0n;
  }

  /** Records `counter` as seen. Call only for a message whose tag verified and whose `check` passed. */
  commit(sender: string, keyId: number, counter: bigint): void {
    if (counter < 0n || counter > U64_MAX) return;
    const key = ReplayWindow.#key(sender, keyId);
    const s = this.#state.get(key);
    if (s === undefined) {
      this.#state.set(key, { top: counter, seen: 1n });
      return;
    }
    if (counter > s.top) {
      const shift = counter - s.top;
      s.seen = shift >= BigInt(REPLAY_WINDOW_SIZE) ? 1n : ((s.seen << shift) | 1n) & WINDOW_MASK;
      s.top = counter;
      return;
    }
    const age = s.top - counter;
    if (age < BigInt(REPLAY_WINDOW_SIZE)) s.seen |= 1n << age;
  }

  /** `check`, then `commit` when it passed. Returns whether the counter was fresh. */
  checkAndCommit(sender: string, keyId: number, counter: bigint): boolean {
    if (!this.check(sender, keyId, counter)) return false;
    this.commit(sender, keyId, counter);
    return true;
  }

  /**
   * The window of every sender and key as plain JSON (counters as decimal
   * strings), for a receiver that must not accept, after a restart, what it
   * accepted before: see `restore`.
   */
  save(): Record<string, { top: string; seen: string }> {
    const out: Record<string, { top: string; seen: string }> = {};
    for (const [k, s] of this.#state) out[k] = { top: s.top.toString(), seen: s.seen.toString() };
    return out;
  }

  /** A window taken up from `save()`'s output; malformed entries are skipped. */
  static restore(saved: unknown): ReplayWindow {
    const w = new ReplayWindow();
    if (!saved || typeof saved !== 'object') return w;
    for (const [k, v] of Object.entries(saved as Record<string, unknown>)) {
      const e = v as { top?: unknown; seen?: unknown } | null;
      if (!/^\d+\|./.test(k) || typeof e?.top !== 'string' || typeof e.seen !== 'string' || !/^\d+$/.test(e.top) || !/^\d+$/.test(e.seen)) continue;
      const top = BigInt(e.top);
      if (top > U64_MAX) continue;
      w.#state.set(k, { top, seen: BigInt(e.seen) & WINDOW_MASK });
    }
    return w;
  }

  /** Drops the state of one sender (all its keys), e.g. when its neighbour entry goes away. */
  forget(sender: string): void {
    for (const k of [...this.#state.keys()]) {
      if (k.slice(k.indexOf('|') + 1) === sender) this.#state.delete(k);
    }
  }

  /** Number of (sender, key id) pairs tracked. */
  get size(): number {
    return this.#state.size;
  }
}

/**
 * A strictly increasing u64 counter for signing control messages. The
 * default start is derived from the wall clock (milliseconds shifted left
 * by 20 bits), so a restarted sender resumes above the counters its
 * neighbours already hold in their replay windows, as long as it sends
 * fewer than about a million messages per millisecond.
 */
export class ReplayCounter {
  #next: bigint;
  constructor(start: bigint = BigInt(Date.now()) << 20n) {
    if (start < 0n || start > U64_MAX) throw new AuthConfigError(`counter start out of u64 range: ${start}`);
    this.#next = start;
  }

  next(): bigint {
    const v = this.#next;
    if (v > U64_MAX) throw new AuthConfigError('replay counter exhausted');
    this.#next = v + 1n;
    return v;
  }

  /** The value `next()` will return, without consuming it. */
  peek(): bigint {
    return this.#next;
  }
}
