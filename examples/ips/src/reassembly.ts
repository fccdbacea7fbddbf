/**
 * TCP byte-stream reassembly for one direction of a connection, from the
 * segments a passive observer captures: in any order, duplicated,
 * retransmitted with different boundaries, and with 32-bit sequence numbers
 * that wrap. The stream starts at the first sequence number the observer
 * sees (SYN + 1 when it sees the SYN), which is what a box inserted into a
 * live session needs: everything before it has gone by.
 *
 * Segments ahead of the next expected byte wait in a bounded buffer. When
 * the buffer overflows (a segment the observer never saw, which cannot be
 * waited for forever), the reassembler gives up on the missing bytes and
 * reports a gap, so that a scanner knows a match cannot span it.
 */

export type Piece =
  /** Bytes `offset .. offset + data.length` of the stream, in order. */
  | { readonly kind: 'data'; readonly offset: number; readonly data: Uint8Array }
  /**
   * Bytes the reassembler will never have: `overflow` when the out-of-order
   * buffer was full, `truncated` when the capture cut a segment short.
   */
  | { readonly kind: 'gap'; readonly offset: number; readonly length: number; readonly cause: 'overflow' | 'truncated' };

export interface ReassemblerOptions {
  /** Bytes held out of order at most (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** Segments held out of order at most (default 1024). */
  readonly maxSegments?: number;
}

export interface PushOptions {
  /** The segment carries FIN: the stream ends after it. */
  readonly fin?: boolean;
  /**
   * The segment's payload length on the wire, when the capture holds only
   * its first `payload.length` bytes; the rest is reported as a gap.
   */
  readonly wireLength?: number;
}

export interface ReassemblyStats {
  /** Bytes received again after they had been delivered or buffered. */
  duplicateBytes: number;
  /** Segments that arrived ahead of the next expected byte. */
  outOfOrderSegments: number;
  /** Gaps reported, and the bytes they cover. */
  gaps: number;
  gapBytes: number;
  /** Segments ignored because their sequence number was absurdly far ahead. */
  rejectedSegments: number;
}

/** A buffered segment: stream bytes `off .. off + data.length + missing`, the last `missing` of them not captured. */
interface Seg {
  off: number;
  data: Uint8Array;
  missing: number;
}

const segEnd = (s: Seg) => s.off + s.data.length + s.missing;
/** Segments further ahead than this are not part of the connection's window. */
const MAX_AHEAD = 2 ** 30;

export class Reassembler {
  /** Sequence number of stream offset 0. */
  readonly isn: number;
  readonly maxBufferedBytes: number;
  readonly maxSegments: number;
  readonly stats: ReassemblyStats = { duplicateBytes: 0, outOfOrderSegments: 0, gaps: 0, gapBytes: 0, rejectedSegments: 0 };
  private delivered = 0;
  private readonly buffer: Seg[] = [];
  private bufferedBytes = 0;
  private fin: number | undefined;

  /** `initialSeq`: the sequence number of the first byte (the SYN's sequence number + 1, or the first segment's). */
  constructor(initialSeq: number, o: ReassemblerOptions = {}) {
    this.isn = initialSeq >>> 0;
    this.maxBufferedBytes = o.maxBufferedBytes ?? 1 << 20;
    this.maxSegments = o.maxSegments ?? 1024;
  }

  /** Stream offset of the next byte to deliver (= bytes delivered or skipped as gaps). */
  get offset(): number {
    return this.delivered;
  }

  /** Bytes held out of order. */
  get buffered(): number {
    return this.bufferedBytes;
  }

  /** The FIN was seen and every byte before it delivered (or skipped). */
  get finished(): boolean {
    return this.fin !== undefined && this.delivered >= this.fin;
  }

  /** Stream offset of a sequence number, relative to the next expected byte (wrapping arithmetic). */
  offsetOf(seq: number): number {
    const next = (this.isn + this.delivered) >>> 0;
    return this.delivered + ((seq - next) | 0);
  }

  /**
   * Adds one segment (`seq`: the sequence number of its first payload
   * byte). Returns what became deliverable, in stream order.
   */
  push(seq: number, payload: Uint8Array, o: PushOptions = {}): Piece[] {
    const out: Piece[] = [];
    const wire = Math.max(o.wireLength ?? payload.length, payload.length);
    let off = this.offsetOf(seq >>> 0);
    if (off - this.delivered >= MAX_AHEAD) {
      this.stats.rejectedSegments++;
      return out;
    }
    if (o.fin && this.fin === undefined) this.fin = off + wire;
    const end = off + wire;
    if (wire === 0 || end <= this.delivered) {
      this.stats.duplicateBytes += wire;
      return out;
    }
    let data = payload;
    let missing = wire - payload.length;
    if (off < this.delivered) {
      const cut = this.delivered - off;
      this.stats.duplicateBytes += cut;
      if (cut >= data.length) {
        missing -= cut - data.length;
        data = data.subarray(data.length);
      } else data = data.subarray(cut);
      off = this.delivered;
    }
    if (off === this.delivered) {
      this.emit({ off, data, missing }, out);
      this.drain(out);
      return out;
    }
    this.stats.outOfOrderSegments++;
    this.insert({ off, data, missing });
    while (this.buffer.length > this.maxSegments || this.bufferedBytes > this.maxBufferedBytes) {
      const first = this.buffer[0]!;
      const length = first.off - this.delivered;
      out.push({ kind: 'gap', offset: this.delivered, length, cause: 'overflow' });
      this.stats.gaps++;
      this.stats.gapBytes += length;
      this.delivered = first.off;
      this.drain(out);
    }
    return out;
  }

  /** Delivers a segment that starts at the next expected byte. */
  private emit(s: Seg, out: Piece[]): void {
    if (s.data.length > 0) {
      out.push({ kind: 'data', offset: this.delivered, data: s.data });
      this.delivered += s.data.length;
    }
    if (s.missing > 0) {
      out.push({ kind: 'gap', offset: this.delivered, length: s.missing, cause: 'truncated' });
      this.stats.gaps++;
      this.stats.gapBytes += s.missing;
      this.delivered += s.missing;
    }
  }

  /** Delivers buffered segments that have become contiguous. */
  private drain(out: Piece[]): void {
    while (this.buffer.length > 0 && this.buffer[0]!.off <= this.delivered) {
      const s = this.buffer.shift()!;
      this.bufferedBytes -= s.data.length;
      const end = segEnd(s);
      if (end <= this.delivered) {
        this.stats.duplicateBytes += end - s.off;
        continue;
      }
      const cut = this.delivered - s.off;
      if (cut > 0) {
        this.stats.duplicateBytes += cut;
        if (cut >= s.data.length) {
          s.missing -= cut - s.data.length;
          s.data = s.data.subarray(s.data.length);
        } else s.data = s.data.subarray(cut);
        s.off = this.delivered;
      }
      this.emit(s, out);
    }
  }

  /** Buffers the parts of a segment no buffered segment covers yet (the first copy of a byte wins). */
  private insert(s: Seg): void {
    const end = segEnd(s);
    const dataEnd = s.off + s.data.length;
    const piece = (a: number, b: number): Seg => ({
      off: a,
      // copied: the caller's buffer is reused for the next captured packet
      data: a < dataEnd ? s.data.slice(a - s.off, Math.min(b, dataEnd) - s.off) : new Uint8Array(0),
      missing: b > dataEnd ? b - Math.max(a, dataEnd) : 0,
    });
    const pieces: Seg[] = [];
    let cursor = s.off;
    // first buffered segment that ends after the new one starts
    let i = this.lowerBound(s.off);
    while (i > 0 && segEnd(this.buffer[i - 1]!) > s.off) i--;
    for (let k = i; k < this.buffer.length && cursor < end; k++) {
      const b = this.buffer[k]!;
      if (b.off >= end) break;
      if (segEnd(b) <= cursor) continue;
      if (b.off > cursor) pieces.push(piece(cursor, b.off));
      this.stats.duplicateBytes += Math.min(segEnd(b), end) - Math.max(b.off, cursor);
      cursor = Math.max(cursor, segEnd(b));
    }
    if (cursor < end) pieces.push(piece(cursor, end));
    for (const p of pieces) {
      this.buffer.splice(this.lowerBound(p.off), 0, p);
      this.bufferedBytes += p.data.length;
    }
  }

  /** Index of the first buffered segment starting at or after `off`. */
  private lowerBound(off: number): number {
    let lo = 0;
    let hi = this.buffer.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.buffer[mid]!.off < off) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
