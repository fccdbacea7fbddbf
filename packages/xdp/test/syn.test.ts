/**
 * SYNs in the kernel against the reference: steering where a session starts
 * (policies, local addresses, port allocation), at middleboxes (pending
 * entries, NAT tags, adoption of a NAT's tuple), at the last hop, and
 * retransmitted SYNs; with conflicts, bogus and oversized metadata.
 * Runs: DYSCO_SYN_RUNS per direction (default 3000), seed DYSCO_SYN_SEED.
 */
import { rmSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { DataPlane } from '@dysco/xdp';
import { comparePrepared } from './harness.js';
import { privilegedSkipReason } from './privileged.js';
import { egressSynArb, ingressSynArb } from './syn-cases.js';

const skip = privilegedSkipReason();
const runs = Number(process.env.DYSCO_SYN_RUNS ?? 3000);
const seed = process.env.DYSCO_SYN_SEED === undefined ? undefined : Number(process.env.DYSCO_SYN_SEED);

t.test('SYNs: reference rewriter and compiled programs agree', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-syn-${process.pid}`;
  const dp = DataPlane.open({ pinRoot, maxSessions: 4096 });
  t.teardown(() => {
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  for (const [name, arb, programs] of [
    ['egress', egressSynArb(), ['tcEgress']],
    ['ingress', ingressSynArb(), ['tcIngress', 'xdpIngress']],
  ] as const) {
    const stats = { twoOutputs: 0, rewritten: 0, dropped: 0 };
    fc.assert(
      fc.property(arb, (c) => {
        for (const prog of programs) {
          const problems = comparePrepared(dp, c, prog, stats);
          if (problems.length > 0) throw new Error(problems.join('\n'));
        }
      }),
      { numRuns: runs, ...(seed === undefined ? {} : { seed }) },
    );
    t.comment(`${name}: ${stats.rewritten} rewritten, ${stats.dropped} dropped`);
    t.ok(stats.rewritten > runs / 3, `${name}: most SYNs are steered or stripped, not passed`);
  }
  // every outcome of the SYN path was reached (the counters add up over all cases)
  const c = dp.counters();
  for (const name of [
    'authFailed',
    'malformedMetadata',
    'chainTooLong',
    'entryConflict',
    'noPortAvailable',
    'tfoNotSteered',
    'noLocalAddress',
    'natTagNoRoom',
    'synRetransmitted',
  ] as const) {
    t.ok(c[name] > 0n, `${name} reached (${c[name]})`);
  }
});
