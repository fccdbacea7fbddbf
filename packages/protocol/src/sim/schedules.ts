import { DEFAULT_RETRY, type RetryPolicy } from '../reconfig/types.js';
import type { DataSimOptions } from './data-simulation.js';

/**
 * The random schedules the simulator properties run: everything about a
 * schedule is derived from its seed, so a failing seed printed by a test is
 * all it takes to replay it (`new DataSimulation(scheduleFor(seed)).run()`).
 */

/** Retransmission timing scaled to the simulator's millisecond links. */
export const SIM_RETRY: RetryPolicy = {
  ...DEFAULT_RETRY,
  rto: 20,
  maxRto: 320,
  tombstoneMs: 30_000,
  limits: { ...DEFAULT_RETRY.limits, requestLock: 8, syn: 8, synAck: 40, teardown: 40, rightRequest: 8 },
};

/**
 * Up to five middleboxes and three spares (one of them possibly down), IPv4
 * or IPv6, links losing up to 30% with 5% duplication and reordering
 * jitter, one to three reconfigurations (delete, insert, replace, by the
 * left neighbour or by the box itself) requested close together so that
 * their segments overlap, during a transfer in both directions.
 */
export function scheduleFor(seed: number): DataSimOptions {
  const r = Math.imul(seed, 2654435761) >>> 0;
  return {
    seed,
    boxes: r % 6,
    spares: 3,
    downSpares: (r >>> 4) % 2,
    family: (r >>> 20) % 4 === 0 ? 6 : 4,
    link: { loss: ((r >>> 8) % 31) / 100, duplicate: 0.05, delay: 1, jitter: 3 },
    ops: 1 + ((r >>> 12) % 3),
    opsStart: 5,
    opsSpread: 60,
    retry: SIM_RETRY,
    bytes: [1000 + (r % 4000), 1000 + ((r >>> 3) % 4000)],
    mss: 200,
    window: 3,
    secret: new Uint8Array(32).fill(0x5a),
  };
}
