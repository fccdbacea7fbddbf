/**
 * Differential test of the data plane: fast-check generates session tables
 * and packets; each goes through the reference rewriter and through the
 * compiled programs (TC egress; TC and XDP ingress) with BPF test runs.
 * Verdicts, output bytes, table state, events and counters must agree.
 *
 * Runs: DYSCO_DIFF_RUNS (default 10000). A failure prints fast-check's seed
 * and path (replay with DYSCO_DIFF_SEED and DYSCO_DIFF_PATH) and hex dumps.
 */
import { rmSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { DataPlane } from '@dysco/xdp';
import { diffCaseArb } from './cases.js';
import { compareCase, type DiffStats } from './harness.js';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();
const runs = Number(process.env.DYSCO_DIFF_RUNS ?? 10000);
const seed = process.env.DYSCO_DIFF_SEED === undefined ? undefined : Number(process.env.DYSCO_DIFF_SEED);
const path = process.env.DYSCO_DIFF_PATH;

t.test('reference rewriter and compiled programs agree', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-diff-${process.pid}`;
  const dp = DataPlane.open({ pinRoot, maxSessions: 4096 });
  t.teardown(() => {
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  let cases = 0;
  let ingressCases = 0;
  const stats: DiffStats = { twoOutputs: 0, rewritten: 0, dropped: 0 };
  fc.assert(
    fc.property(diffCaseArb({ fastPath: true }), (c) => {
      cases++;
      const programs = c.direction === 'egress' ? (['tcEgress'] as const) : (['tcIngress', 'xdpIngress'] as const);
      if (c.direction === 'ingress') ingressCases++;
      for (const prog of programs) {
        const problems = compareCase(dp, c, prog, stats);
        if (problems.length > 0) throw new Error(problems.join('\n'));
      }
    }),
    { numRuns: runs, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) },
  );
  t.ok(cases >= runs, `${cases} cases compared (${ingressCases} ingress through TC and XDP)`);
  t.comment(`program runs: ${stats.rewritten} rewritten, ${stats.dropped} dropped, ${stats.twoOutputs} needing two outputs`);
  t.ok(stats.rewritten > runs / 4, 'a good share of the cases is rewritten, not passed');
  t.comment(`${stats.fastPath ?? 0} program runs took the fast path`);
  t.ok((stats.fastPath ?? 0) > runs / 20, 'a good share of the runs takes the fast path, which must agree with the reference too');
  t.comment(`old paths reported done: ${stats.doneByOwnAck ?? 0} by an ack sent, ${stats.doneByPeerAck ?? 0} by an ack received`);
  if (runs >= 1000) {
    t.ok((stats.doneByOwnAck ?? 0) > 0, 'the receiving half completes an old path in some cases (an ack the stack sent)');
    t.ok((stats.doneByPeerAck ?? 0) > 0, 'the sending half completes an old path in some cases (an ack the peer sent)');
  }
});
