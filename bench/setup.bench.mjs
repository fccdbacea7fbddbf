// `npm run bench -- setup [--quick]`: new TCP connections per second through
// one and two router boxes: connect, a one-byte request and its one-byte
// reply, close (the server closes first). Plain routing is the baseline;
// Dysco (TC and XDP modes) and nftables DNAT are compared with it. Every
// Dysco connection is a new session: a SYN steered by the client's policy,
// entries set at every hop, `sessionCreated` events for each agent, and
// the entries removed again 2 s after the close (the beds' `closedLinger`).
//
// At these rates the agents do not keep up with the data plane's events:
// the event ring buffer overflows (`eventsLost`), and the sessions whose
// events were lost keep their kernel entries until the idle timeout. A new
// connection that reuses such a session's tuple (the client's port range
// wraps within seconds) is then refused at the box (`entryConflict`) and
// its connect times out. So the agents here reclaim idle entries after 3 s
// (`idleTimeout`), each Dysco run starts once the previous sessions are
// gone, and the counters are reported with the figures.
//
// Client and server are the C tool (bench/tools/rr.c) in two placements:
//   1 client, one CPU   one connection at a time, client and server pinned
//                       to one CPU (the agents have the other)
//   4 clients, free     four client threads at once, nothing pinned
// Each run lasts --seconds (default 2); rounds (--runs, default 7, --quick 3)
// go over the configurations in turn.
import { KINDS, KIND_LABEL, agentCpuSeconds, agentStats, createBeds, steeredPackets } from './lib/beds.mjs';
import { BED_COMMANDS, ensureCommands, machine, option, printResult, quick, requireRoot, rotate, round, runMain, say, sleep, summary, table } from './lib/common.mjs';
import { rr, startRrServers } from './lib/rr.mjs';

const RUNS = Number(option('runs', quick ? 3 : 7));
const SECONDS = Number(option('seconds', 2));
const IDLE_TIMEOUT = 3;
const WATCHED = ['eventsLost', 'entryConflict', 'synRetransmitted', 'noPortAvailable'];
const kinds = option('kinds', KINDS.join(',')).split(',');
const CHAINS = [1, 2];
const LOADS = [
  { name: '1 client, one CPU', placement: 'same', concurrency: 1 },
  { name: '4 clients, free', placement: 'free', concurrency: 4 },
];

/** Kernel entries the agents of a Dysco bed hold, and the watched counters summed over its hosts. */
async function bedState(b) {
  const st = await agentStats(b);
  const counters = Object.fromEntries(WATCHED.map((c) => [c, 0]));
  let entries = 0;
  for (const s of Object.values(st)) {
    entries += (s.table.egress ?? 0) + (s.table.ingress ?? 0) + (s.table.pending ?? 0);
    for (const c of WATCHED) counters[c] += s.dataplane[c] ?? 0;
  }
  return { entries, counters };
}

/** Waits (at most `ms`) until a Dysco bed's kernel tables hold no session; returns what is left. */
async function drained(b, ms) {
  const until = Date.now() + ms;
  let st = await bedState(b);
  while (st.entries > 0 && Date.now() < until) {
    await sleep(250);
    st = await bedState(b);
  }
  return st.entries;
}

async function main() {
  requireRoot('setup');
  ensureCommands(BED_COMMANDS);
  say(`setup: ${kinds.join(', ')}; ${RUNS} rounds of ${SECONDS} s runs`);
  const beds = await createBeds(kinds, { tag: 's', agentConfig: { idleTimeout: IDLE_TIMEOUT } });
  const bin = await startRrServers(beds, CHAINS);
  const dyscoBeds = Object.values(beds).filter((b) => b.kind.startsWith('dysco'));
  const before = {};
  for (const b of dyscoBeds) before[b.kind] = (await bedState(b)).counters;
  let leftOver = 0;
  const samples = new Map();
  const add = (k, v) => (samples.has(k) ? samples.get(k).push(v) : samples.set(k, [v]));
  let errors = 0;
  for (let r = 0; r < RUNS; r++) {
    for (const load of LOADS) {
      for (const boxes of CHAINS) {
        for (const k of rotate(kinds, r)) {
          const b = beds[k];
          // the previous sessions are gone first (2 s linger, or the idle timeout for those whose events were lost)
          if (b.kind.startsWith('dysco')) leftOver += await drained(b, (IDLE_TIMEOUT + 3) * 1000);
          const cpu0 = agentCpuSeconds(b);
          const j = await rr(bin, b, boxes, 'setup', [SECONDS, load.concurrency], load.placement);
          if (b.kind.startsWith('dysco')) {
            const cpu = agentCpuSeconds(b) - cpu0;
            add(`${load.placement}/${k}/${boxes}/agentCores`, cpu / j.seconds);
            add(`${load.placement}/${k}/${boxes}/agentUsPerConn`, (cpu * 1e6) / Math.max(1, j.connections));
          }
          if (j.errors > 0) say(`${k}, ${boxes} box(es), ${load.name}: ${j.errors} failed connections (${j.lastError})`);
          errors += j.errors;
          add(`${load.placement}/${k}/${boxes}/cps`, j.perSecond);
          add(`${load.placement}/${k}/${boxes}/p50`, j.p50);
          add(`${load.placement}/${k}/${boxes}/p99`, j.p99);
        }
      }
    }
    say(`round ${r + 1}/${RUNS} done`);
  }
  const counters = {};
  for (const b of dyscoBeds) {
    if (!(steeredPackets(b).box1 > 0)) throw new Error(`${b.kind}: box1 rewrote no packet, the sessions were not steered`);
    const now = (await bedState(b)).counters;
    counters[b.kind] = Object.fromEntries(WATCHED.map((c) => [c, now[c] - before[b.kind][c]]));
  }
  const figures = [];
  for (const load of LOADS) for (const boxes of CHAINS) {
    const base = summary(samples.get(`${load.placement}/plain/${boxes}/cps`) ?? [NaN]).median;
    for (const k of kinds) {
      const s = summary(samples.get(`${load.placement}/${k}/${boxes}/cps`));
      const p50 = summary(samples.get(`${load.placement}/${k}/${boxes}/p50`)).median;
      const p99 = summary(samples.get(`${load.placement}/${k}/${boxes}/p99`)).median;
      const cores = samples.get(`${load.placement}/${k}/${boxes}/agentCores`);
      const perConn = samples.get(`${load.placement}/${k}/${boxes}/agentUsPerConn`);
      figures.push({
        load: load.name, concurrency: load.concurrency, kind: k, label: KIND_LABEL[k], boxes,
        perSecond: round(s.median, 0), min: round(s.min, 0), max: round(s.max, 0), ratio: round(s.median / base),
        connectionP50us: round(p50, 1), connectionP99us: round(p99, 1),
        ...(cores ? { agentCores: round(summary(cores).median, 2), agentCpuUsPerConnection: round(summary(perConn).median, 0) } : {}),
      });
    }
  }
  console.log(`setup: connections per second (connect, 1-byte request, 1-byte reply, close), median (min-max) of ${RUNS} interleaved runs of ${SECONDS} s\n`);
  console.log(table(
    [{ title: 'load', align: 'l' }, { title: 'boxes', align: 'r' }, { title: 'configuration', align: 'l' }, { title: 'conn/s', align: 'r' }, { title: 'min-max', align: 'r' }, { title: 'x plain', align: 'r' }, { title: 'p50 us', align: 'r' }, { title: 'p99 us', align: 'r' }, { title: 'agents CPU', align: 'r' }, { title: 'us/conn', align: 'r' }],
    figures.map((f) => [f.load, `${f.boxes}`, f.label, `${f.perSecond}`, `${f.min}-${f.max}`, `${f.ratio.toFixed(2)}x`, f.connectionP50us.toFixed(0), f.connectionP99us.toFixed(0),
      f.agentCores === undefined ? '' : `${f.agentCores.toFixed(2)}`, f.agentCpuUsPerConnection === undefined ? '' : `${f.agentCpuUsPerConnection}`]),
  ));
  console.log('(p50/p99: duration of one connection, connect to close; agents CPU: cores the four agents used during the run, and their CPU time per connection)');
  const dysco = figures.filter((f) => f.kind === 'dysco');
  const worst = dysco.length ? Math.min(...dysco.map((f) => f.ratio)) : NaN;
  console.log(`failed connections (all configurations): ${errors}`);
  for (const [k, c] of Object.entries(counters)) console.log(`${KIND_LABEL[k]}, data-plane counters over all runs (all hosts): ${WATCHED.map((w) => `${w} ${c[w]}`).join(', ')}`);
  if (leftOver > 0) console.log(`kernel entries still held when a Dysco run started (summed): ${leftOver}`);
  console.log(`\ntarget: Dysco (TC) >= 0.8x plain routing: ${worst >= 0.8 ? 'met' : 'missed'} (lowest ratio ${worst.toFixed(3)})`);
  printResult({
    benchmark: 'setup',
    runs: RUNS,
    seconds: SECONDS,
    machine: machine(),
    failedConnections: errors,
    agentSettings: { closedLinger: 2, idleTimeout: IDLE_TIMEOUT },
    dataplaneCounters: counters,
    entriesLeftAtRunStart: leftOver,
    figures,
    target: { what: 'Dysco (TC) >= 0.8x plain routing, every case', lowestRatio: round(worst), met: worst >= 0.8 },
  });
}

runMain(main);
