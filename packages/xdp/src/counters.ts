/**
 * The data plane's per-CPU counters, in the order of `enum dysco_counter`
 * (bpf/include/layout.h). The first eleven are the reference rewriter's
 * counters, under the same names; the rest belong to the kernel data plane.
 */
export const COUNTER_NAMES = [
  'malformedPacket',
  'malformedMetadata',
  'authFailed',
  'chainTooLong',
  'noPortAvailable',
  'entryConflict',
  'tfoNotSteered',
  'natTagNoRoom',
  'noLocalAddress',
  'twoPathSplit',
  'synRetransmitted',
  /** Packets the programs looked at: computed from the others (see sumCounters), not counted per packet. */
  'packetsSeen',
  /** Packets rewritten. */
  'rewritten',
  /** Packets passed untouched. */
  'passed',
  /** Ring-buffer records lost because the buffer was full. */
  'eventsLost',
  /** A kernel helper failed while a packet was being rewritten (the packet was dropped). */
  'kernelError',
  /** A packet needed two outputs and they could not be produced (dropped). */
  'splitFailed',
  /**
   * Packets rewritten by the fast path (in place, a path that changes
   * addresses and ports only): counted apart in the kernel, and part of
   * `rewritten` here.
   */
  'fastPath',
  /** A rewritten packet's new destination had no route (sent on as the stack routed it). */
  'routeMiss',
  /** TCP packets of no known session (passed untouched; SYNs no policy steers included). */
  'unknownSession',
  /** Packets to a local subsession port this agent no longer has (stragglers of a removed path), dropped. */
  'staleSubsession',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];

export type Counters = Record<CounterName, bigint>;

/** Sums per-CPU u64 values of every counter. */
export function sumCounters(perCpu: (i: number) => Buffer[]): Counters {
  const out = {} as Counters;
  COUNTER_NAMES.forEach((name, i) => {
    let total = 0n;
    for (const v of perCpu(i)) total += v.readBigUInt64LE(0);
    out[name] = total;
  });
  out.rewritten += out.fastPath;
  // every packet ends rewritten, passed, or dropped with exactly one reason
  out.packetsSeen =
    out.rewritten + out.passed + out.malformedPacket + out.malformedMetadata + out.authFailed + out.chainTooLong +
    out.noPortAvailable + out.entryConflict + out.staleSubsession + out.kernelError + out.splitFailed;
  return out;
}
