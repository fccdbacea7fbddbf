import { type Address, formatAddress } from '../address.js';
import { Rng } from './rng.js';
import { EventQueue } from './queue.js';

/** Link behaviour: every transmission is one hop between two agents. */
export interface LinkModel {
  /** Probability that a transmission is lost. */
  readonly loss: number;
  /** Probability that it is delivered twice. */
  readonly duplicate: number;
  /** Base one-way delay and random extra delay (ms); the jitter reorders. */
  readonly delay: number;
  readonly jitter: number;
}

export const PERFECT_LINK: LinkModel = { loss: 0, duplicate: 0, delay: 1, jitter: 0 };

/**
 * The simulated clock and the network: delivers payloads between addresses
 * after a delay, losing, duplicating and reordering them as the link model
 * says, all from one seeded random stream.
 */
export class Network<M> {
  readonly queue = new EventQueue<() => void>();
  now = 0;
  readonly rng: Rng;
  sent = 0;
  lost = 0;
  duplicated = 0;
  /** Addresses that receive nothing (a box that is down). */
  readonly down = new Set<string>();

  constructor(
    seed: number,
    public link: LinkModel,
    private readonly deliver: (to: Address, m: M) => void,
  ) {
    this.rng = new Rng(seed);
  }

  at(delay: number, f: () => void): void {
    this.queue.push(this.now + delay, f);
  }

  /**
   * In manual mode transmissions wait in `inflight` until a test delivers,
   * drops or duplicates them (adversarial schedules); timers still run from
   * the queue.
   */
  manual = false;
  readonly inflight: { to: Address; m: M }[] = [];

  deliverInflight(i: number): void {
    const [x] = this.inflight.splice(i, 1);
    if (x && !this.down.has(formatAddress(x.to))) this.deliver(x.to, x.m);
  }

  /** Leaves manual mode: what is in flight is delivered in order, one hop later. */
  release(): void {
    this.manual = false;
    for (const x of this.inflight.splice(0)) {
      this.at(this.link.delay, () => {
        if (!this.down.has(formatAddress(x.to))) this.deliver(x.to, x.m);
      });
    }
  }

  send(to: Address, m: M, link: LinkModel = this.link): void {
    this.sent++;
    if (this.manual) {
      this.inflight.push({ to, m });
      return;
    }
    if (this.rng.chance(link.loss)) {
      this.lost++;
      return;
    }
    const copies = this.rng.chance(link.duplicate) ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let i = 0; i < copies; i++) {
      const d = link.delay + this.rng.next() * link.jitter;
      this.at(d, () => {
        if (!this.down.has(formatAddress(to))) this.deliver(to, m);
      });
    }
  }

  /** Runs events until none is left or the clock passes `until`. Returns the number run. */
  /** Runs the next queued event (a timer, a scheduled operation); false when there is none. */
  step(): boolean {
    const e = this.queue.pop();
    if (!e) return false;
    this.now = Math.max(this.now, e.t);
    e.v();
    return true;
  }

  run(until = Infinity, maxEvents = Infinity): number {
    let n = 0;
    for (;;) {
      if (n >= maxEvents) break;
      const e = this.queue.pop();
      if (!e) break;
      if (e.t > until) {
        this.queue.push(e.t, e.v); // not yet: put it back
        break;
      }
      this.now = e.t;
      e.v();
      n++;
    }
    return n;
  }
}
