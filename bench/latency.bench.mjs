// `npm run bench -- latency [--quick]`: round-trip time of a one-byte
// request and its one-byte reply on an open TCP connection, client -> one or
// two router boxes -> server, for plain routing (the baseline), Dysco (TC and
// XDP modes) and nftables DNAT, and plain routing with a do-nothing TC
// program where the agents attach theirs (the floor of a TC data plane). The client and server are a small C program
// (bench/tools/rr.c): a Node round trip costs about as much as the path
// itself and would blur the differences.
//
// The two ends are pinned to CPUs (bench/lib/rr.mjs): `same` (client and
// server on one CPU: the path's own cost, the figure the target is judged
// on) and `split` (two CPUs: each direction also pays a cross-CPU wakeup,
// which in a virtual machine dominates and dilutes any path cost).
//
// Each run is one connection with --count round trips (default 20000,
// --quick 5000) after 1000 unmeasured ones; its p50 and p99 are taken, and
// the figures are the medians (with min/max) of those over the interleaved
// rounds (--runs, default 7, --quick 3).
import { KINDS_WITH_FLOOR, KIND_LABEL, createBeds, steeredPackets } from './lib/beds.mjs';
import { BED_COMMANDS, ensureCommands, machine, option, printResult, quick, requireRoot, rotate, round, runMain, say, summary, table } from './lib/common.mjs';
import { PLACEMENTS, rr, startRrServers } from './lib/rr.mjs';

const RUNS = Number(option('runs', quick ? 3 : 7));
const COUNT = Number(option('count', quick ? 5000 : 20000));
const kinds = option('kinds', KINDS_WITH_FLOOR.join(',')).split(',');
const CHAINS = [1, 2];

async function main() {
  requireRoot('latency');
  ensureCommands(BED_COMMANDS);
  say(`latency: ${kinds.join(', ')}; ${RUNS} rounds of ${COUNT} round trips`);
  const beds = await createBeds(kinds, { tag: 'l' });
  const bin = await startRrServers(beds, CHAINS);
  const samples = new Map();
  const add = (k, v) => (samples.has(k) ? samples.get(k).push(v) : samples.set(k, [v]));
  for (let r = 0; r < RUNS; r++) {
    for (const placement of PLACEMENTS) {
      for (const boxes of CHAINS) {
        for (const k of rotate(kinds, r)) {
          const j = await rr(bin, beds[k], boxes, 'latency', [COUNT, 1000], placement);
          add(`${placement}/${k}/${boxes}/p50`, j.p50);
          add(`${placement}/${k}/${boxes}/p99`, j.p99);
          add(`${placement}/${k}/${boxes}/mean`, j.mean);
        }
      }
    }
    say(`round ${r + 1}/${RUNS} done`);
  }
  for (const b of Object.values(beds)) {
    if (b.kind.startsWith('dysco') && !(steeredPackets(b).box1 > 0)) throw new Error(`${b.kind}: box1 rewrote no packet, the sessions were not steered`);
  }
  const figures = [];
  for (const placement of PLACEMENTS) for (const boxes of CHAINS) {
    const b50 = summary(samples.get(`${placement}/plain/${boxes}/p50`) ?? [NaN]).median;
    const b99 = summary(samples.get(`${placement}/plain/${boxes}/p99`) ?? [NaN]).median;
    for (const k of kinds) {
      const p50 = summary(samples.get(`${placement}/${k}/${boxes}/p50`));
      const p99 = summary(samples.get(`${placement}/${k}/${boxes}/p99`));
      const mean = summary(samples.get(`${placement}/${k}/${boxes}/mean`));
      figures.push({
        placement, kind: k, label: KIND_LABEL[k], boxes,
        p50us: round(p50.median, 1), p50min: round(p50.min, 1), p50max: round(p50.max, 1),
        p99us: round(p99.median, 1), p99min: round(p99.min, 1), p99max: round(p99.max, 1),
        meanUs: round(mean.median, 1),
        p50ratio: round(p50.median / b50), p99ratio: round(p99.median / b99),
      });
    }
  }
  console.log(`latency: one-byte round trips in microseconds, median (min-max) over ${RUNS} interleaved runs of ${COUNT} round trips (C client and server)\n`);
  console.log(table(
    [{ title: 'CPUs', align: 'l' }, { title: 'boxes', align: 'r' }, { title: 'configuration', align: 'l' }, { title: 'p50 us', align: 'r' }, { title: 'min-max', align: 'r' }, { title: 'x plain', align: 'r' }, { title: 'p99 us', align: 'r' }, { title: 'min-max', align: 'r' }, { title: 'x plain', align: 'r' }],
    figures.map((f) => [f.placement, `${f.boxes}`, f.label, f.p50us.toFixed(1), `${f.p50min.toFixed(1)}-${f.p50max.toFixed(1)}`, `${f.p50ratio.toFixed(2)}x`, f.p99us.toFixed(1), `${f.p99min.toFixed(1)}-${f.p99max.toFixed(1)}`, `${f.p99ratio.toFixed(2)}x`]),
  ));
  console.log('(CPUs: same = client and server pinned to one CPU; split = on two CPUs, with cross-CPU wakeups)');
  const dysco = figures.filter((f) => f.kind === 'dysco' && f.placement === 'same');
  const worst = dysco.length ? Math.max(...dysco.map((f) => f.p50ratio)) : NaN;
  const split = figures.filter((f) => f.kind === 'dysco' && f.placement === 'split');
  const worstSplit = split.length ? Math.max(...split.map((f) => f.p50ratio)) : NaN;
  console.log(`\ntarget: Dysco (TC) p50 overhead <= 10%: ${worst <= 1.1 ? 'met' : 'missed'} on one CPU (highest p50 ratio ${worst.toFixed(3)}), ${worstSplit <= 1.1 ? 'met' : 'missed'} on two (${worstSplit.toFixed(3)})`);
  printResult({
    benchmark: 'latency',
    tool: 'bench/tools/rr.c (C, TCP_NODELAY, one connection per run)',
    runs: RUNS,
    count: COUNT,
    machine: machine(),
    figures,
    target: { what: 'Dysco (TC) p50 <= 1.10x plain routing (ends on one CPU)', highestP50Ratio: round(worst), met: worst <= 1.1, highestP50RatioSplit: round(worstSplit), metSplit: worstSplit <= 1.1 },
  });
}

runMain(main);
