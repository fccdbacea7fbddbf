// `npm run bench -- throughput [--quick]`: iperf3 throughput, one stream and
// four (-P 4), from a client through one router box and through two to a
// server, for plain routing (the baseline), Dysco in TC mode (the agents'
// default on veths), Dysco in XDP mode and nftables DNAT steering, and plain
// routing with a do-nothing TC program where the agents attach theirs (the
// floor of any TC data plane on this path). Each
// configuration has its own namespace bed (bench/lib/beds.mjs); runs go
// round-robin over the configurations (A B C D, B C D A, ...) and the figures
// are medians with min/max over the rounds, and ratios to plain routing.
//
// Options: --runs N (rounds, default 5, --quick 3), --seconds S (per run,
// default 5, --quick 2), --kinds plain,tc-pass,dysco,dysco-xdp,nft (default all).
import { KINDS_WITH_FLOOR, KIND_LABEL, PORT_BASE, createBeds, steeredPackets } from './lib/beds.mjs';
import {
  BED_COMMANDS, ensureCommands, execIn, lastJson, machine, option, printResult, quick, requireRoot, rotate, round, runMain, say, sleep, summary, table,
} from './lib/common.mjs';

const RUNS = Number(option('runs', quick ? 3 : 5));
const SECONDS = Number(option('seconds', quick ? 2 : 5));
const OMIT = quick ? 0 : 1;
const kinds = option('kinds', KINDS_WITH_FLOOR.join(',')).split(',');
const CHAINS = [1, 2];
const STREAMS = [1, 4];

async function iperf(b, boxes, streams) {
  const port = PORT_BASE[boxes] + 1;
  const argv = ['iperf3', '-c', b.target(boxes), '-p', String(port), '-t', String(SECONDS), '-P', String(streams), '-J'];
  if (OMIT) argv.push('-O', String(OMIT));
  for (let attempt = 0; ; attempt++) {
    const r = await execIn(b.h.client, argv, (SECONDS + OMIT + 30) * 1000);
    const j = lastJsonBlock(r.stdout);
    const bps = j?.end?.sum_received?.bits_per_second;
    if (r.code === 0 && bps > 0) return bps / 1e9;
    // the server may still be busy with the previous test's teardown
    if (attempt < 2) {
      await sleep(1000);
      continue;
    }
    throw new Error(`iperf3 in ${b.kind}, ${boxes} box(es), -P ${streams}: exit ${r.code}: ${j?.error ?? r.stderr.trim() ?? r.stdout.slice(-300)}`);
  }
}

/** iperf3 -J prints one multi-line JSON document. */
function lastJsonBlock(text) {
  const i = text.indexOf('{');
  if (i < 0) return undefined;
  try {
    return JSON.parse(text.slice(i));
  } catch {
    return lastJson(text);
  }
}

async function main() {
  requireRoot('throughput');
  ensureCommands([...BED_COMMANDS, ['iperf3', 'iperf3']]);
  say(`throughput: ${kinds.join(', ')}; ${RUNS} rounds of ${SECONDS} s runs${OMIT ? ` (+${OMIT} s omitted)` : ''}`);
  const beds = await createBeds(kinds, { tag: 't' });
  for (const b of Object.values(beds)) {
    for (const boxes of CHAINS) {
      b.h.server.spawn(['iperf3', '-s', '-p', String(PORT_BASE[boxes] + 1)]);
    }
  }
  await sleep(500);

  const combos = CHAINS.flatMap((boxes) => STREAMS.map((streams) => ({ boxes, streams })));
  const samples = new Map(); // `${kind}/${boxes}/${streams}` -> Gbit/s[]
  const key = (k, c) => `${k}/${c.boxes}/${c.streams}`;
  for (let r = 0; r < RUNS; r++) {
    for (const c of combos) {
      for (const k of rotate(kinds, r)) {
        const g = await iperf(beds[k], c.boxes, c.streams);
        if (!samples.has(key(k, c))) samples.set(key(k, c), []);
        samples.get(key(k, c)).push(g);
      }
    }
    say(`round ${r + 1}/${RUNS} done`);
  }
  // the Dysco beds really steered: their boxes rewrote packets
  const steered = Object.fromEntries(Object.values(beds).filter((b) => b.kind.startsWith('dysco')).map((b) => [b.kind, steeredPackets(b)]));
  for (const [k, s] of Object.entries(steered)) if (!(s.box1 > 0)) throw new Error(`${k}: box1 rewrote no packet, the sessions were not steered (${JSON.stringify(s)})`);

  const figures = [];
  for (const c of combos) {
    const base = summary(samples.get(key('plain', c)) ?? [NaN]);
    for (const k of kinds) {
      const s = summary(samples.get(key(k, c)));
      figures.push({ kind: k, label: KIND_LABEL[k], boxes: c.boxes, streams: c.streams, gbps: round(s.median, 2), min: round(s.min, 2), max: round(s.max, 2), runs: s.n, ratio: round(s.median / base.median) });
    }
  }
  const rows = figures.map((f) => [`${f.boxes}`, `${f.streams}`, f.label, f.gbps.toFixed(2), `${f.min.toFixed(2)}-${f.max.toFixed(2)}`, f.ratio === null ? '-' : `${f.ratio.toFixed(2)}x`]);
  console.log(`throughput: iperf3 Gbit/s, median (min-max) of ${RUNS} interleaved runs of ${SECONDS} s\n`);
  console.log(table(
    [{ title: 'boxes', align: 'r' }, { title: 'streams', align: 'r' }, { title: 'configuration', align: 'l' }, { title: 'Gbit/s', align: 'r' }, { title: 'min-max', align: 'r' }, { title: 'x plain', align: 'r' }],
    rows,
  ));
  const dysco = figures.filter((f) => f.kind === 'dysco');
  const worst = dysco.length ? Math.min(...dysco.map((f) => f.ratio)) : NaN;
  console.log(`\ntarget: Dysco (TC) >= 0.95x plain routing: ${worst >= 0.95 ? 'met' : 'missed'} (lowest ratio ${worst.toFixed(3)})`);
  printResult({
    benchmark: 'throughput',
    runs: RUNS,
    seconds: SECONDS,
    machine: machine(),
    figures,
    target: { what: 'Dysco (TC) >= 0.95x plain routing, every case', lowestRatio: round(worst), met: worst >= 0.95 },
  });
}

runMain(main);
