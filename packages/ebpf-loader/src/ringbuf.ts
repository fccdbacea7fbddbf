import { BpfError } from './errors.js';
import { copyFromC, lastErrno, lib, pollReadable, registerCallback, SampleFn, unregisterCallback, type Ptr, type RingBufPtr } from './native.js';
import { MapType, mapTypeName } from './constants.js';
import type { BpfMap } from './map.js';

const EINTR = 4;

/** Options of {@link RingBuffer}. */
export interface RingBufferOptions {
  /** Receives exceptions thrown by `onRecord` while {@link RingBuffer.start} drives the buffer (default: rethrown, i.e. an uncaught exception). */
  onError?: (err: unknown) => void;
}

/**
 * Consumer of a `BPF_MAP_TYPE_RINGBUF` map. Records are delivered to `onRecord` synchronously, on the JS
 * thread, from inside {@link RingBuffer.consume} / {@link RingBuffer.poll} (libbpf calls the callback on the
 * calling thread; no libbpf-owned thread is involved). Each record is a fresh copy.
 *
 * If `onRecord` throws, consumption stops after that record (it counts as consumed) and the exception
 * propagates out of consume/poll.
 */
export class RingBuffer {
  /** The ring buffer map. */
  readonly map: BpfMap;
  #rb: RingBufPtr | null;
  #cb: Ptr | null;
  #pending: { error: unknown } | undefined;
  #watcher: { stop(): void; close(): void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #onError: ((err: unknown) => void) | undefined;

  constructor(map: BpfMap, onRecord: (data: Buffer) => void, opts: RingBufferOptions = {}) {
    if (map.type !== MapType.RINGBUF) throw new TypeError(`RingBuffer: map '${map.name}' is ${mapTypeName(map.type)}, not RINGBUF`);
    this.map = map;
    this.#onError = opts.onError;
    const sample = (_ctx: Ptr | null, data: Ptr, size: number | bigint): number => {
      try {
        onRecord(copyFromC(data, Number(size)));
        return 0;
      } catch (error) {
        this.#pending = { error };
        return -1;
      }
    };
    this.#cb = registerCallback(sample as (...a: never[]) => number, SampleFn);
    const rb = lib.ring_buffer__new(map.fd, this.#cb, null, null);
    if (rb === null) {
      unregisterCallback(this.#cb);
      this.#cb = null;
      throw new BpfError({ errno: lastErrnoOr(22), op: `create ring buffer consumer for map '${map.name}'` });
    }
    this.#rb = rb;
  }

  #live(op: string): RingBufPtr {
    if (this.#rb === null) throw new BpfError({ errno: 9, op: `${op} on ring buffer '${this.map.name}'`, details: ['the consumer was closed'] });
    return this.#rb;
  }

  #finish(r: number, op: string): number {
    const pending = this.#pending;
    if (pending) {
      this.#pending = undefined;
      throw pending.error;
    }
    if (r === -EINTR) return 0;
    if (r < 0) throw new BpfError({ errno: -r, op: `${op} ring buffer '${this.map.name}'` });
    return r;
  }

  /**
   * Waits up to `timeoutMs` (default 0: do not wait) for records and consumes them; returns how many.
   * Waiting blocks the JS thread: prefer {@link RingBuffer.start} or {@link RingBuffer.consume} in servers.
   */
  poll(timeoutMs = 0): number {
    return this.#finish(lib.ring_buffer__poll(this.#live('poll'), timeoutMs), 'poll');
  }

  /** Consumes every record available now without waiting; returns how many. */
  consume(): number {
    return this.#finish(lib.ring_buffer__consume(this.#live('consume')), 'consume');
  }

  /** The epoll file descriptor that becomes readable when records are available (for your own event loop). */
  epollFd(): number {
    return lib.ring_buffer__epoll_fd(this.#live('epollFd'));
  }

  /**
   * Consumes records from the Node event loop until {@link RingBuffer.stop}: without `intervalMs`, whenever
   * the epoll fd becomes readable (a libuv poll handle; no extra thread); with `intervalMs`, on a timer.
   * Keeps the process alive while started.
   */
  start(intervalMs?: number): void {
    this.#live('start');
    this.stop();
    const drain = (): void => {
      if (this.#rb === null) return;
      try {
        this.consume();
      } catch (e) {
        if (this.#onError) this.#onError(e);
        else throw e;
      }
    };
    if (intervalMs === undefined) {
      const w = pollReadable(this.epollFd(), drain);
      this.#watcher = w;
    } else {
      if (!(intervalMs > 0)) throw new RangeError(`RingBuffer.start: intervalMs must be > 0, got ${intervalMs}`);
      this.#timer = setInterval(drain, intervalMs);
    }
    drain();
  }

  /** Stops {@link RingBuffer.start}'s polling. */
  stop(): void {
    if (this.#watcher) {
      this.#watcher.stop();
      this.#watcher.close();
      this.#watcher = undefined;
    }
    if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops polling and frees the consumer (the map stays). Idempotent. */
  close(): void {
    this.stop();
    if (this.#rb !== null) {
      lib.ring_buffer__free(this.#rb);
      this.#rb = null;
    }
    if (this.#cb !== null) {
      unregisterCallback(this.#cb);
      this.#cb = null;
    }
  }
}

function lastErrnoOr(fallback: number): number {
  const e = lastErrno();
  return e > 0 ? e : fallback;
}
