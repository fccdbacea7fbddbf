import { seqAdd, seqGeq, seqGt, seqLeq, seqLt, seqSub } from '../seq.js';

/**
 * A small reliable byte-stream transport for the simulator's end hosts:
 * TCP's handshake, cumulative acks with SACK blocks, per-segment
 * retransmission timers and FIN, in both directions at once. It is not TCP
 * (no congestion control, a fixed window), but it produces and consumes
 * real TCP headers, so the reference rewriter sees what it would see from a
 * kernel: acks, SACK blocks, retransmissions below the cutoff, FINs.
 *
 * It also checks what the protocol promises an endpoint: never an ack for
 * bytes it did not send.
 */

export interface Segment {
  readonly seq: number;
  readonly ack: number;
  readonly syn: boolean;
  readonly fin: boolean;
  readonly hasAck: boolean;
  readonly window: number;
  readonly sack: readonly (readonly [number, number])[];
  readonly payload: Uint8Array;
}

export interface TransportOptions {
  readonly isn: number;
  readonly mss: number;
  /** Segments in flight at most. */
  readonly window: number;
  /** Retransmission timeout, ms. */
  readonly rto: number;
  /** The bytes this endpoint sends, then FIN. */
  readonly data: Uint8Array;
  readonly active: boolean;
}

interface InFlight {
  readonly seq: number;
  readonly len: number; // payload length (+1 for FIN, for SYN)
  readonly syn: boolean;
  readonly fin: boolean;
  deadline: number;
  sacked: boolean;
  sent: number;
  tries: number;
}

// Patient, because the simulator loses up to 30% on each of up to six hops.
const MAX_RETRIES = 1000;

export class StreamEndpoint {
  readonly violations: string[] = [];
  /** Bytes delivered in order to the application. */
  private readonly chunks: Uint8Array[] = [];
  private deliveredBytes = 0;
  private readonly isn: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence number ever sent + 1 (snd_max). */
  private sndMax: number;
  private irs: number | undefined;
  private rcvNxt = 0;
  private readonly ooo = new Map<number, Uint8Array>();
  private oooFin: number | undefined;
  private state: 'closed' | 'synSent' | 'synReceived' | 'established' = 'closed';
  private readonly inflight: InFlight[] = [];
  private dataOffset = 0; // bytes of `data` handed to segments so far
  private finSent = false;
  finReceived = false;
  retransmissions = 0;

  constructor(private readonly o: TransportOptions) {
    this.isn = o.isn >>> 0;
    this.sndUna = this.isn;
    this.sndNxt = this.isn;
    this.sndMax = this.isn;
  }

  get delivered(): Uint8Array {
    const out = new Uint8Array(this.deliveredBytes);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  get deliveredLength(): number {
    return this.deliveredBytes;
  }

  /** Everything sent (data and FIN) is acknowledged. */
  get sendDone(): boolean {
    return this.finSent && this.inflight.length === 0;
  }

  get done(): boolean {
    return this.sendDone && this.finReceived;
  }

  open(now: number): Segment[] {
    if (!this.o.active) return [];
    this.state = 'synSent';
    return [this.emit({ seq: this.isn, len: 1, syn: true, fin: false }, now)];
  }

  private emit(f: { seq: number; len: number; syn: boolean; fin: boolean }, now: number): Segment {
    const entry: InFlight = { ...f, deadline: now + this.o.rto, sacked: false, sent: now, tries: 0 };
    this.inflight.push(entry);
    const end = seqAdd(f.seq, f.len);
    if (seqGt(end, this.sndMax)) this.sndMax = end;
    if (seqGt(end, this.sndNxt)) this.sndNxt = end;
    return this.segmentFor(entry);
  }

  private segmentFor(f: InFlight): Segment {
    const dataLen = f.len - (f.syn ? 1 : 0) - (f.fin ? 1 : 0);
    const start = f.syn ? 0 : seqSub(f.seq, seqAdd(this.isn, 1));
    return {
      seq: f.seq,
      ack: this.rcvNxt,
      syn: f.syn,
      fin: f.fin,
      hasAck: this.irs !== undefined,
      window: 0xffff,
      sack: this.sackBlocks(),
      payload: this.o.data.subarray(start, start + dataLen),
    };
  }

  private ackOnly(): Segment {
    return { seq: this.sndNxt, ack: this.rcvNxt, syn: false, fin: false, hasAck: true, window: 0xffff, sack: this.sackBlocks(), payload: new Uint8Array(0) };
  }

  private sackBlocks(): [number, number][] {
    if (this.irs === undefined || this.ooo.size === 0) return [];
    const starts = [...this.ooo.keys()].sort((a, b) => (seqLt(a, b) ? -1 : 1));
    const blocks: [number, number][] = [];
    for (const s of starts) {
      const e = seqAdd(s, this.ooo.get(s)!.length);
      const last = blocks[blocks.length - 1];
      if (last && seqGeq(last[1], s)) {
        if (seqGt(e, last[1])) last[1] = e;
      } else blocks.push([s, e]);
    }
    return blocks.slice(-3).reverse();
  }

  /** Fill the window with new data, then FIN. */
  private pump(now: number): Segment[] {
    const out: Segment[] = [];
    if (this.state !== 'established') return out;
    while (this.inflight.length < this.o.window) {
      const left = this.o.data.length - this.dataOffset;
      if (left > 0) {
        const len = Math.min(left, this.o.mss);
        const seq = seqAdd(seqAdd(this.isn, 1), this.dataOffset);
        this.dataOffset += len;
        out.push(this.emit({ seq, len, syn: false, fin: false }, now));
      } else if (!this.finSent) {
        this.finSent = true;
        out.push(this.emit({ seq: seqAdd(seqAdd(this.isn, 1), this.dataOffset), len: 1, syn: false, fin: true }, now));
      } else break;
    }
    return out;
  }

  onSegment(s: Segment, now: number): Segment[] {
    const out: Segment[] = [];
    if (s.syn) {
      if (this.irs === undefined) {
        this.irs = s.seq;
        this.rcvNxt = seqAdd(s.seq, 1);
      }
      if (!s.hasAck) {
        // passive open: answer SYN-ACK (or repeat it)
        if (this.state === 'closed') {
          this.state = 'synReceived';
          out.push(this.emit({ seq: this.isn, len: 1, syn: true, fin: false }, now));
        } else if (this.state === 'synReceived') {
          const synack = this.inflight.find((f) => f.syn);
          if (synack) out.push(this.segmentFor(synack));
        }
        return out;
      }
    }
    if (s.hasAck) this.onAck(s, now);
    if (this.state === 'synSent' && s.syn && s.hasAck && seqGt(this.sndUna, this.isn)) {
      this.state = 'established';
      out.push(this.ackOnly());
    } else if (this.state === 'synReceived' && seqGt(this.sndUna, this.isn)) {
      this.state = 'established';
    }
    if (this.irs !== undefined && !s.syn) {
      const dataLen = s.payload.length;
      if (dataLen > 0 || s.fin) {
        this.receive(s.seq, s.payload, s.fin);
        out.push(this.ackOnly());
      }
    }
    out.push(...this.pump(now));
    return out;
  }

  private onAck(s: Segment, now: number): void {
    void now;
    if (seqGt(s.ack, this.sndMax)) {
      this.violations.push(`ack ${s.ack} beyond what was sent (snd_max ${this.sndMax})`);
      return;
    }
    if (seqGt(s.ack, this.sndUna)) this.sndUna = s.ack;
    for (const [l, r] of s.sack) {
      if (seqGt(r, this.sndMax)) this.violations.push(`SACK block ${l}-${r} beyond what was sent (snd_max ${this.sndMax})`);
      for (const f of this.inflight) if (seqGeq(f.seq, l) && seqLeq(seqAdd(f.seq, f.len), r)) f.sacked = true;
    }
    for (let i = this.inflight.length - 1; i >= 0; i--) {
      const f = this.inflight[i]!;
      if (seqLeq(seqAdd(f.seq, f.len), this.sndUna)) this.inflight.splice(i, 1);
    }
  }

  private receive(seq: number, payload: Uint8Array, fin: boolean): void {
    if (fin) this.oooFin = seqAdd(seq, payload.length);
    if (payload.length > 0) {
      // keep the part at or beyond rcvNxt
      if (seqLt(seq, this.rcvNxt)) {
        const skip = seqSub(this.rcvNxt, seq);
        if (skip >= payload.length) payload = new Uint8Array(0);
        else {
          payload = payload.subarray(skip);
          seq = this.rcvNxt;
        }
      }
      if (payload.length > 0) {
        const have = this.ooo.get(seq);
        if (!have || have.length < payload.length) this.ooo.set(seq, payload.slice());
      }
    }
    // deliver what is now contiguous
    for (;;) {
      const next = this.ooo.get(this.rcvNxt);
      if (next) {
        this.ooo.delete(this.rcvNxt);
        this.chunks.push(next);
        this.deliveredBytes += next.length;
        this.rcvNxt = seqAdd(this.rcvNxt, next.length);
        continue;
      }
      // overlapping leftovers that start before rcvNxt
      let advanced = false;
      for (const [s, p] of this.ooo) {
        if (seqLt(s, this.rcvNxt)) {
          this.ooo.delete(s);
          const skip = seqSub(this.rcvNxt, s);
          if (skip < p.length) this.ooo.set(this.rcvNxt, p.subarray(skip));
          advanced = true;
          break;
        }
      }
      if (!advanced) break;
    }
    if (this.oooFin !== undefined && this.oooFin === this.rcvNxt && !this.finReceived) {
      this.finReceived = true;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
    }
  }

  /** Earliest retransmission deadline, if anything is in flight. */
  nextDeadline(): number | undefined {
    let d: number | undefined;
    for (const f of this.inflight) if (!f.sacked && (d === undefined || f.deadline < d)) d = f.deadline;
    return d;
  }

  /** Gave up after too many retransmissions of one segment, as TCP does. */
  aborted = false;

  onTimer(now: number): Segment[] {
    const out: Segment[] = [];
    if (this.aborted) return out;
    for (const f of this.inflight) {
      if (f.sacked || f.deadline > now) continue;
      if (++f.tries > MAX_RETRIES) {
        this.aborted = true;
        this.violations.push(`gave up after ${MAX_RETRIES} retransmissions of sequence ${f.seq}`);
        return [];
      }
      f.deadline = now + this.o.rto;
      f.sent = now;
      this.retransmissions++;
      out.push(this.segmentFor(f));
    }
    return out;
  }
}
