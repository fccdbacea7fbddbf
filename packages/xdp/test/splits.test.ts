/**
 * Two outputs from one packet (a segment straddling the cutoff, data and
 * ack on different paths, an RST in two-path mode), compared with the
 * reference on real clones: see splits-child.ts. Runs: DYSCO_SPLIT_RUNS
 * (default 1000), seed DYSCO_SPLIT_SEED.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();
const runs = Number(process.env.DYSCO_SPLIT_RUNS ?? 1000);

t.test('two-output packets: the clone and the original equal the reference outputs', skip ? { skip } : {}, async (t) => {
  const ns = `dysco-split-${process.pid}`;
  const pinRoot = `/sys/fs/bpf/dysco-split-${process.pid}`;
  const mk = spawnSync('sh', ['-c', `ip netns add ${ns} && ip -n ${ns} link set lo up`], { encoding: 'utf8' });
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(pinRoot, { recursive: true, force: true });
  });
  t.equal(mk.status, 0, `namespace ${ns} with lo up ${mk.stderr}`);
  const child = fileURLToPath(new URL('./splits-child.js', import.meta.url));
  const args = [`--net=/run/netns/${ns}`, process.execPath, child, pinRoot, String(runs), ...(process.env.DYSCO_SPLIT_SEED ? [process.env.DYSCO_SPLIT_SEED] : [])];
  const r = spawnSync('nsenter', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let report: { twoOutputs: number; failure?: string } | undefined;
  try {
    report = JSON.parse(last) as { twoOutputs: number; failure?: string };
  } catch {
    t.fail(`the child printed no report (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    return;
  }
  t.notOk(report.failure, report.failure ?? 'no difference');
  t.ok(report.twoOutputs >= runs, `${report.twoOutputs} two-output packets compared, first and second output`);
  t.equal(r.status, 0, 'the child exited cleanly');
});
