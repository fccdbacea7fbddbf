// `npm run bench -- all [--quick]`: runs every benchmark, one after the
// other, each in a process of its own (a failure does not stop the others),
// and writes docs/benchmarks.md with their tables, the targets and SVG plots
// (docs/benchmarks/*.svg) for the machine it ran on.
//
// Options: --only a,b (a subset, in this order), --out FILE (default
// docs/benchmarks.md; the plots go to a folder named after it), --merge
// (keep the results of the benchmarks not run now from the previous run's
// results.json in that folder, each shown with the time it ran: to run one
// benchmark again after a fix without running all of them).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { atCleanup, machine, option, quick, ROOT, runMain, say, spawnHere } from './lib/common.mjs';
import { barChart, lineChart } from './lib/svg.mjs';

const ORDER = ['dataplane', 'protocol', 'scale', 'throughput', 'latency', 'setup', 'reconfig'];
const only = option('only', ORDER.join(',')).split(',');
const OUT = resolve(option('out', join(ROOT, 'docs', 'benchmarks.md')));
const PLOTS = join(dirname(OUT), basename(OUT, '.md'));

let child;
atCleanup(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});

/** Runs one benchmark; resolves with its stdout, the parsed RESULT and its exit status. */
function runOne(name) {
  return new Promise((resolvePromise) => {
    const t0 = Date.now();
    child = spawnHere([process.execPath, join(ROOT, 'bench', 'run.mjs'), name, ...(quick ? ['--quick'] : [])], { cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-4000);
      process.stderr.write(d);
    });
    child.once('exit', (code, signal) => {
      const line = out.split('\n').reverse().find((l) => l.startsWith('RESULT '));
      let result;
      try {
        result = line ? JSON.parse(line.slice(7)) : undefined;
      } catch {
        result = undefined;
      }
      const text = out.split('\n').filter((l) => !l.startsWith('RESULT ')).join('\n').trim();
      resolvePromise({ name, code: code ?? (signal ? 128 : -1), text, errors: err.trim(), result, seconds: Math.round((Date.now() - t0) / 1000), ranAt: new Date(t0).toISOString() });
    });
  });
}

// ---- markdown ---------------------------------------------------------------------

/** A markdown table; columns whose cells all start with a digit are right-aligned. */
function md(columns, rows) {
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => /^(\d|-$|$)/.test(String(r[i] ?? ''))));
  return [`| ${columns.join(' | ')} |`, `|${numeric.map((n) => (n ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
const f2 = (x) => (x === null || x === undefined ? '-' : Number(x).toFixed(2));
const x2 = (x) => (x === null || x === undefined ? '-' : `${Number(x).toFixed(2)}×`);
const yes = (b) => (b ? '**met**' : '**missed**');

/** Writes a chart (a bar chart unless told) into the plots' folder; returns the markdown that shows it. */
function plot(file, spec, chart = barChart) {
  mkdirSync(PLOTS, { recursive: true });
  writeFileSync(join(PLOTS, file), chart(spec));
  return `![${spec.title}](${relative(dirname(OUT), join(PLOTS, file))})`;
}

/** The scale benchmark's agent part: memory and adoption time of a `dysco agent` holding N sessions. */
function scaleAgent(a) {
  const mib = (b) => (b / 1048576).toFixed(0);
  const gib = (b) => (b / 2 ** 30).toFixed(1);
  const ref = a.rows.filter((x) => x.heapPerSession > 0).at(-1);
  const heap = (x) => (x.error ? x.error : x.defaultHeap === 'ok' ? 'ok' : `${x.defaultHeap}; figures with \`--max-old-space-size=${x.heapLimitMiB}\``);
  return [
    'The agent\'s memory: a real `dysco agent` (TC mode, in a namespace of its own) adopts N sessions at start, as after a restart — the benchmark writes them into pinned maps sized for N and a matching `sessions.json` into its state directory — against the same agent adopting none (maps of the same size). Memory 1 s after it is ready, after a full garbage collection (a probe preloaded into the agent, `bench/tools/mem-probe.cjs`); *adopt*: the time from the process\'s start to its `adopted sessions` log line, less the same for 0 sessions.',
    '',
    md(['sessions', 'RSS MiB', 'with 0', 'RSS bytes/session', 'heap MiB', 'with 0', 'heap bytes/session', 'adopt s', 'µs/session', 'Node\'s default heap limit'],
      a.rows.map((x) => (x.error ? [x.sessions, '-', '-', '-', '-', '-', '-', '-', '-', heap(x)] : [x.sessions, mib(x.rssBytes), mib(x.rssEmptyBytes), x.rssPerSession, mib(x.heapUsedBytes), mib(x.heapUsedEmptyBytes), x.heapPerSession, (x.adoptMs / 1000).toFixed(1), x.adoptUsPerSession, heap(x)]))),
    '',
    `One session's protocol state alone (its \`SessionProtocol\`: the lock and anchor state machines, measured in the benchmark's own process) takes ${a.protocolBytesPerSession} bytes of heap${ref ? `, ${Math.round((100 * a.protocolBytesPerSession) / ref.heapPerSession)}% of the agent's heap per session at ${ref.sessions} sessions` : ''}. Node's default heap limit on this machine, ${gib(a.defaultHeapLimitBytes)} GiB, holds about ${Math.floor(a.defaultHeapLimitBytes / Math.max(1, ref?.heapPerSession ?? a.protocolBytesPerSession) / 1000)}k sessions at that rate.`,
  ].join('\n');
}

const RENDER = {
  throughput(r) {
    const fs = r.figures;
    const labels = [...new Set(fs.map((f) => f.label))];
    const combos = [...new Set(fs.map((f) => `${f.boxes}/${f.streams}`))];
    const groups = combos.map((c) => {
      const [boxes, streams] = c.split('/').map(Number);
      const g = fs.filter((f) => f.boxes === boxes && f.streams === streams);
      const plain = g.find((f) => f.kind === 'plain');
      return {
        label: `${boxes} box${boxes > 1 ? 'es' : ''}, ${streams} stream${streams > 1 ? 's' : ''}`,
        bars: g.map((f) => ({ series: f.label, value: f.gbps, min: f.min, max: f.max })),
        ...(plain ? { reference: { value: 0.95 * plain.gbps, label: '0.95 × plain routing' } } : {}),
      };
    });
    return [
      `iperf3, client → box(es) → server, ${r.runs} interleaved rounds of ${r.seconds} s runs; median (min–max).`,
      '',
      md(['boxes', 'streams', 'configuration', 'Gbit/s', 'min–max', 'x plain'], fs.map((f) => [f.boxes, f.streams, f.label, f2(f.gbps), `${f2(f.min)}–${f2(f.max)}`, x2(f.ratio)])),
      '',
      plot('throughput.svg', { title: 'Throughput (iperf3), median with min–max', unit: 'Gbit/s', groups, series: labels }),
      '',
      `Target: Dysco (TC) ≥ 0.95× plain routing in every case: ${yes(r.target.met)} (lowest ratio ${f2(r.target.lowestRatio)}).`,
    ].join('\n');
  },
  latency(r) {
    const fs = r.figures;
    const labels = [...new Set(fs.map((f) => f.label))];
    const groups = [...new Set(fs.filter((f) => f.placement === 'same').map((f) => f.boxes))].map((boxes) => {
      const g = fs.filter((f) => f.placement === 'same' && f.boxes === boxes);
      const plain = g.find((f) => f.kind === 'plain');
      return { label: `${boxes} box${boxes > 1 ? 'es' : ''}`, bars: g.map((f) => ({ series: f.label, value: f.p50us, min: f.p50min, max: f.p50max })), ...(plain ? { reference: { value: 1.1 * plain.p50us, label: '1.1 × plain routing' } } : {}) };
    });
    return [
      `One-byte request and reply on an open connection (C client and server, \`bench/tools/rr.c\`), ${r.count} round trips per run, ${r.runs} interleaved rounds; medians (min–max) of each run's p50 and p99, in µs. *one CPU*: client and server pinned to the same CPU (the path's own cost); *two CPUs*: pinned to different CPUs (each direction also pays a cross-CPU wakeup, which in this virtual machine costs tens of µs and varies a lot).`,
      '',
      md(['CPUs', 'boxes', 'configuration', 'p50 µs', 'min–max', 'x plain', 'p99 µs', 'x plain'], fs.map((f) => [f.placement === 'same' ? 'one' : 'two', f.boxes, f.label, f2(f.p50us), `${f2(f.p50min)}–${f2(f.p50max)}`, x2(f.p50ratio), f2(f.p99us), x2(f.p99ratio)])),
      '',
      plot('latency.svg', { title: 'Round-trip time, client and server on one CPU: median p50 with min–max', unit: 'µs', groups, series: labels }),
      '',
      `Target: Dysco (TC) p50 ≤ 1.10× plain routing: ${yes(r.target.met)} on one CPU (highest ratio ${f2(r.target.highestP50Ratio)}); on two CPUs the ratio is ${f2(r.target.highestP50RatioSplit)}.`,
    ].join('\n');
  },
  setup(r) {
    const fs = r.figures;
    const labels = [...new Set(fs.map((f) => f.label))];
    const combos = [...new Set(fs.map((f) => `${f.load}/${f.boxes}`))];
    const groups = combos.map((c) => {
      const [load, boxes] = c.split('/');
      const g = fs.filter((f) => f.load === load && f.boxes === Number(boxes));
      const plain = g.find((f) => f.kind === 'plain');
      return { label: `${load}, ${boxes} box${boxes === '1' ? '' : 'es'}`, bars: g.map((f) => ({ series: f.label, value: f.perSecond / 1000, min: f.min / 1000, max: f.max / 1000 })), ...(plain ? { reference: { value: (0.8 * plain.perSecond) / 1000, label: '0.8 × plain routing' } } : {}) };
    });
    const counters = Object.entries(r.dataplaneCounters ?? {}).map(([k, c]) => `${k}: ${Object.entries(c).map(([n, v]) => `${n} ${v}`).join(', ')}`);
    return [
      `New connections per second: connect, one-byte request, one-byte reply, close (server first); C client and server; ${r.runs} interleaved rounds of ${r.seconds} s runs; median (min–max). *agents CPU*: CPU the four agents of the bed used during a run (cores), and per connection.`,
      '',
      md(['load', 'boxes', 'configuration', 'conn/s', 'min–max', 'x plain', 'conn p50 µs', 'conn p99 µs', 'agents CPU', 'agent µs/conn'],
        fs.map((f) => [f.load, f.boxes, f.label, f.perSecond, `${f.min}–${f.max}`, x2(f.ratio), f.connectionP50us?.toFixed(0), f.connectionP99us?.toFixed(0), f.agentCores === undefined ? '' : f2(f.agentCores), f.agentCpuUsPerConnection ?? ''])),
      '',
      plot('setup.svg', { title: 'Connections per second (thousands), median with min–max', unit: 'k conn/s', groups, series: labels }),
      '',
      `Data-plane counters over all the Dysco runs (all hosts): ${counters.join('; ') || '-'}. Failed connections: ${r.failedConnections}. Agent settings of the beds: closedLinger ${r.agentSettings?.closedLinger} s, idleTimeout ${r.agentSettings?.idleTimeout} s.`,
      '',
      `Target: Dysco (TC) ≥ 0.8× plain routing in every case: ${yes(r.target.met)} (lowest ratio ${f2(r.target.lowestRatio)}).`,
    ].join('\n');
  },
  reconfig(r) {
    const d = r.durationsMs;
    const ops = Object.entries(d).filter(([, v]) => v.n > 0);
    const name = (k) => (k === 'splice' ? 'proxy splice' : k);
    const out = [
      `Durations at the requesting agent, request to outcome, on sessions carrying a paced transfer both ways (${(r.sequential.rateBytesPerSecond / 1e6).toFixed(0)} MB/s each way${r.impact ? `, one operation every ${r.impact.gapMs} ms` : ''}; the proxy splices ${((r.splice.bytesEach ?? 2e6) / 1e6).toFixed(0)} MB transfers at ${((r.splice.rateBytesPerSecond ?? 4e6) / 1e6).toFixed(0)} MB/s).`,
      '',
      md(['operation', 'runs', 'p50 ms', 'p99 ms', 'min ms', 'max ms'], ops.map(([k, v]) => [name(k), v.n, f2(v.p50), f2(v.p99), f2(v.min), f2(v.max)])),
      '',
      plot('reconfig.svg', { title: 'Reconfiguration duration, p50 and p99', unit: 'ms', groups: ops.map(([k, v]) => ({ label: name(k), bars: [{ series: 'p50', value: v.p50 }, { series: 'p99', value: v.p99 }] })), series: ['p50', 'p99'] }),
      '',
    ];
    if (r.durationTargets) {
      const t = r.durationTargets;
      out.push(`Targets: p50 ≤ 1 ms for every operation: ${yes(t.p50.met)} (highest ${f2(t.p50.highestMs)} ms, ${name(t.p50.kind)}); p99 ≤ 5 ms: ${yes(t.p99.met)} (highest ${f2(t.p99.highestMs)} ms, ${name(t.p99.kind)}).`, '');
    }
    if (r.impact) {
      const im = r.impact;
      const label = { remove: 'remove', insert: 'insert', replace: 'replace', none: 'none: same transfers, no reconfiguration', splice: 'proxy splice', relayed: 'none: proxy relaying, no splice' };
      const tf = im.transfers;
      out.push(
        `What one reconfiguration does to the transfer it carries, from ${im.windowMs.before} ms before the request to ${im.windowMs.after} ms after the outcome, in the worse direction. Each end reports the bytes it has received every ${im.intervalMs} ms. *Dip*: the lowest throughput of one interval, over the median interval throughput of the whole transfer (1 = no dip, 0 = an interval without a byte); *dip ${im.smoothMs} ms*: the same over ${im.smoothMs} ms; *stall*: the longest run of intervals without a byte. The rows *none* are windows at the same places on transfers that are not reconfigured: what the bed does by itself. *Retransmitted*: both end sockets' TCP_INFO (\`ss -ti\`: retransmitted segments, \`bytes_retrans\`) from the previous window's end (${im.gapMs} ms before) to this one's; for the splice, from the start of the transfer.`,
        '',
        md(['operation', 'runs', 'dip p50', `dip ${im.smoothMs} ms p50`, 'p10', 'stall p50 ms', 'p90', 'max', 'segments retransmitted', 'bytes retransmitted', 'segments per run', 'bytes per run', 'runs with any'],
          Object.entries(im.kinds).map(([k, f]) => [label[k] ?? k, f.runs, f2(f.dipP50), f2(f.dipSmoothP50), f2(f.dipSmoothP10), f.stallP50Ms ?? '-', f.stallP90Ms ?? '-', f.stallMaxMs ?? '-', f.retransSegs, f.retransBytes, f.retransSegsPerRun, f.retransBytesPerRun, f.runsWithRetrans])),
        '',
        `Segments retransmitted by the TCP stacks of the hosts a transfer crosses (RetransSegs in each namespace's /proc/net/snmp, before and after each transfer): ${tf.sequential.perTransfer} per ${tf.sequential.seconds} s transfer with reconfigurations (${tf.sequential.transfers} transfers), ${tf.baseline.perTransfer} without (${tf.baseline.transfers}); ${tf.splice.perTransfer} per spliced ${tf.splice.seconds} s transfer (${tf.splice.transfers}), ${tf.relayed.perTransfer} relayed without splicing (${tf.relayed.transfers}).`,
        '',
      );
    }
    const shown = Object.entries(r.plots ?? {}).filter(([, p]) => p);
    if (shown.length) {
      out.push(`Throughput around one reconfiguration of each kind (the run whose ${r.impact.smoothMs} ms dip is the median of its kind), per ${r.impact.intervalMs} ms interval, both directions; time from the request:`, '');
      out.push(shown.map(([k, p]) => plot(`reconfig-${k}.svg`, {
        title: `${name(k)}${p.durationMs !== null && p.durationMs !== undefined ? ` (${f2(p.durationMs)} ms)` : ''}: ${r.impact.smoothMs} ms dip ${f2(p.dipSmooth)}, stall ${p.stallMs} ms`,
        xUnit: 'ms from the request',
        unit: 'MB/s',
        series: [{ name: 'client → server', points: p.up }, { name: 'server → client', points: p.down }],
        markers: [{ x: 0, label: 'request' }, { x: p.doneMs, label: 'outcome' }],
        reference: { value: p.typicalMBps, label: 'median' },
        xMin: -200,
        xMax: 400,
      }, lineChart)).join(' '), '');
    }
    out.push(
      `Sequential: ${r.sequential.transfers} transfers, ${(r.sequential.bytes / 1e6).toFixed(0)} MB, **${r.sequential.bytesLost} bytes lost**, longest stall ${r.sequential.maxStallMs} ms, ${r.sequential.busyRetries} requests retried as busy, ${r.sequential.aborted.length} aborted${r.sequential.problems.length ? `; problems: ${r.sequential.problems.join('; ')}` : ''}.`,
      `Splice: ${r.splice.runs} transfers, **${r.splice.bytesLost} bytes lost**, longest stall ${r.splice.maxStallMs} ms, ${r.splice.notSpliced.length} not spliced${r.splice.problems.length ? `; problems: ${r.splice.problems.join('; ')}` : ''}.`,
      '',
      `Concurrent: ${r.concurrent.sessions} sessions (64 KiB/s each way), each batch reconfigures all of them at once:`,
      '',
      md(['batch', 'completed', 'wall ms', 'per second', 'p50 ms', 'p99 ms'], r.concurrent.batches.map((b) => [b.kind, `${b.completed}/${b.sessions}`, b.wallMs.toFixed(0), b.perSecond.toFixed(0), f2(b.p50Ms), f2(b.p99Ms)])),
      '',
      `Median ${r.concurrent.medianPerSecond} reconfigurations completed per second; **${r.concurrent.bytesLost} bytes lost** of ${(r.concurrent.bytes / 1e6).toFixed(1)} MB; ${r.concurrent.busyRetries} retried as busy; ${r.concurrent.aborted.length} aborted${r.concurrent.problems.length ? `; problems: ${r.concurrent.problems.join('; ')}` : ''}.`,
      '',
      `Target: no byte lost: ${yes(r.target.met)}.`,
    );
    return out.join('\n');
  },
  scale(r) {
    const fs = r.figures;
    const mib = (b) => (b / 1048576).toFixed(1);
    const ref = fs[0]?.sessions;
    return [
      'Sessions installed into one data plane (`maxSessions` = N) as an originating host holds them: an egress and an ingress entry each, written with the loader\'s batch updates.',
      '',
      md(['sessions', 'memlock MiB', 'bytes/session', 'kernel MiB at load', 'kernel MiB at install', 'install s', 'installs/s', 'delete s', 'deletes/s'],
        fs.map((f) => [f.sessions, mib(f.memlockBytes), f.memlockPerSession, (f.kernelKiBAtLoad / 1024).toFixed(1), (f.kernelKiBAtInstall / 1024).toFixed(1), (f.installMs / 1000).toFixed(2), f.installPerSecond, (f.deleteMs / 1000).toFixed(2), f.deletePerSecond])),
      '',
      '*memlock*: what `bpftool map show` reports for all the maps of the data plane, sized for N sessions (the hash maps are preallocated: this is the cost of capacity, paid at load). *kernel MiB*: growth of vmalloc, slab and per-CPU memory in /proc/meminfo when the data plane is loaded and when the sessions are installed. *install*, *delete*: the batch syscalls for N egress and N ingress entries.',
      '',
      `Rewrite cost, ns per packet (BPF test runs, 1400-byte payload; the sizes are all loaded at once and measured in turn over ${r.runs} rounds). *hot*: one session, ${r.repeat} repeats per run, median of ${r.runs} runs; *warm*: single runs over 64 sessions in turn; *spread*: single runs on sessions picked at random from the whole table (${r.singleRuns} each). Ratios against ${ref} sessions.`,
      '',
      md(['sessions', 'hot egress', 'x', 'warm egress', 'warm ingress', 'x', 'spread egress', 'spread ingress', 'x', 'do-nothing (single run)'],
        fs.map((f) => [f.sessions, f.hotNs, x2(f.hotRatio), f.warmEgressNs, f.warmIngressNs, `${x2(f.warmEgressRatio)} ${x2(f.warmIngressRatio)}`, f.spreadEgressNs, f.spreadIngressNs, `${x2(f.spreadEgressRatio)} ${x2(f.spreadIngressRatio)}`, f.spreadBaselineNs])),
      '',
      plot('scale.svg', {
        title: 'Rewrite cost per packet as the table grows',
        unit: 'ns per packet',
        groups: fs.map((f) => ({ label: `${f.sessions.toLocaleString('en')} sessions`, bars: [{ series: 'hot egress', value: f.hotNs }, { series: 'warm egress', value: f.warmEgressNs }, { series: 'warm ingress', value: f.warmIngressNs }, { series: 'spread egress', value: f.spreadEgressNs }, { series: 'spread ingress', value: f.spreadIngressNs }] })),
        series: ['hot egress', 'warm egress', 'warm ingress', 'spread egress', 'spread ingress'],
      }),
      '',
      `Target: 1M sessions with the packet cost flat within 20%: ${yes(r.target.met)} for the per-packet cost as dataplane.bench.mjs measures it (hot; highest ratio ${f2(r.target.highestRatio)}). Single runs grow with the table: warm up to ${x2(r.target.warmHighestRatio)}, spread up to ${x2(r.target.spreadHighestRatio)} — entries spread over a larger table are less often in the CPU caches and TLB, which a repeated run on one session never shows.`,
      ...(r.agent ? ['', scaleAgent(r.agent)] : []),
    ].join('\n');
  },
};

const TITLES = {
  dataplane: 'Data plane: ns per packet (BPF test runs)',
  protocol: 'Protocol: reference rewriter and state machine on one core',
  scale: 'Scale: 10k, 100k and 1M sessions in one data plane and in the agent',
  throughput: 'Throughput through one and two boxes',
  latency: 'Latency: one-byte round trips',
  setup: 'Connection setup rate',
  reconfig: 'Live reconfiguration',
};

function summaryRows(results) {
  const rows = [];
  const by = Object.fromEntries(results.map((x) => [x.name, x.result]));
  if (by.dataplane?.target) {
    const t = by.dataplane.target;
    rows.push(['dataplane', 'established-session rewrite ≤ 2.5× the do-nothing program', `highest ${x2(t.highestEstablishedRatio)}; the session lookup alone ${x2(t.floorTc)} (TC), ${x2(t.floorXdp)} (XDP)`, yes(t.met)]);
  }
  if (by.throughput) rows.push(['throughput', 'Dysco (TC) ≥ 0.95× plain routing', `lowest ${x2(by.throughput.target.lowestRatio)}`, yes(by.throughput.target.met)]);
  if (by.latency) rows.push(['latency', 'Dysco (TC) p50 ≤ 1.10× plain routing', `highest ${x2(by.latency.target.highestP50Ratio)} (one CPU), ${x2(by.latency.target.highestP50RatioSplit)} (two CPUs)`, yes(by.latency.target.met)]);
  if (by.setup) rows.push(['setup', 'Dysco (TC) ≥ 0.8× plain routing', `lowest ${x2(by.setup.target.lowestRatio)}`, yes(by.setup.target.met)]);
  if (by.reconfig) rows.push(['reconfig', 'no byte lost', `${by.reconfig.target.bytesLost} bytes lost`, yes(by.reconfig.target.met)]);
  if (by.reconfig?.durationTargets) {
    const t = by.reconfig.durationTargets;
    const op = (k) => (k === 'splice' ? 'proxy splice' : k);
    rows.push(['reconfig', 'p50 ≤ 1 ms (every operation)', `highest ${f2(t.p50.highestMs)} ms (${op(t.p50.kind)})`, yes(t.p50.met)]);
    rows.push(['reconfig', 'p99 ≤ 5 ms (every operation)', `highest ${f2(t.p99.highestMs)} ms (${op(t.p99.kind)})`, yes(t.p99.met)]);
  }
  if (by.scale) rows.push(['scale', '1M sessions, packet cost within 20%', `highest ${x2(by.scale.target.highestRatio)} (repeated runs); single runs up to ${x2(by.scale.target.warmHighestRatio)} (64 sessions), ${x2(by.scale.target.spreadHighestRatio)} (random sessions)`, yes(by.scale.target.met)]);
  return rows;
}

function document(results, m) {
  const parts = [];
  parts.push('# Benchmarks');
  parts.push('');
  parts.push(`Written by \`npm run bench -- all${quick ? ' --quick' : ''}\` on ${m.date.slice(0, 10)}: ${m.cpu || 'unknown CPU'}, ${m.cores} cores, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}.${quick ? ' **Quick mode**: fewer and shorter runs than the defaults.' : ''} Each benchmark also runs alone: \`npm run bench -- <name> [--quick]\` (sources in \`bench/\`).`);
  parts.push('');
  parts.push('The network benchmarks run in network namespaces on one machine: client, boxes and server are namespaces joined by veths and a bridge, and every one of them (the agents, the traffic generators, the forwarding) shares the same cores. Figures from one run are compared as ratios between configurations measured in turn (A B C D, B C D A, …), never across runs; the machine may be shared with other work, which the min–max ranges show.');
  parts.push('');
  parts.push('Configurations of the network benchmarks (`bench/lib/beds.mjs`), each in its own bed of four namespaces (client, box1, box2, server): **plain routing** (the baseline: no agents, the hosts route through the boxes), **TC do-nothing** (plain routing with the data plane\'s do-nothing TC program attached where the agents attach theirs: the floor of any TC data plane; throughput and latency only), **Dysco (TC)** (an agent on every host in TC mode, the default on veths; a policy at the client steers the sessions through the boxes), **Dysco (XDP)** (the same with native XDP ingress), **nftables DNAT** (no agents; the client connects to box1, which DNATs and masquerades to the server or to box2).');
  parts.push('');
  const rows = summaryRows(results);
  if (rows.length) {
    parts.push('## Targets');
    parts.push('');
    parts.push(md(['benchmark', 'target', 'measured', 'result'], rows));
    parts.push('');
  }
  for (const r of results) {
    parts.push(`## ${TITLES[r.name] ?? r.name}`);
    parts.push('');
    if (r.code !== 0 && !r.result) {
      parts.push(`The benchmark failed (exit ${r.code}) after ${r.seconds} s.`);
      parts.push('');
      if (r.text) parts.push(['```', r.text.slice(-3000), '```'].join('\n'));
      if (r.errors) parts.push('', 'Its error output ended with:', '', ['```', r.errors.slice(-1500), '```'].join('\n'));
      parts.push('');
      continue;
    }
    if (RENDER[r.name] && r.result) parts.push(RENDER[r.name](r.result));
    else parts.push(['```', r.text, '```'].join('\n'));
    parts.push('');
    parts.push(`<sub>\`npm run bench -- ${r.name}${quick ? ' --quick' : ''}\`: ${r.seconds} s${r.code !== 0 ? `, exit ${r.code}` : ''}${r.ranAt ? `, started ${r.ranAt.slice(0, 16).replace('T', ' ')} UTC` : ''}</sub>`);
    parts.push('');
  }
  return `${parts.join('\n').replace(/\n{3,}/g, '\n\n').trim()}\n`;
}

async function main() {
  const names = only.filter((n) => ORDER.includes(n));
  const unknown = only.filter((n) => !ORDER.includes(n));
  if (unknown.length) throw new Error(`unknown benchmarks: ${unknown.join(', ')} (known: ${ORDER.join(', ')})`);
  const m = machine();
  const ran = [];
  for (const name of names) {
    say(`=== ${name}${quick ? ' --quick' : ''}`);
    const r = await runOne(name);
    say(`=== ${name}: exit ${r.code} after ${r.seconds} s`);
    ran.push(r);
  }
  const saved = join(PLOTS, 'results.json');
  let kept = [];
  if (process.argv.includes('--merge') && existsSync(saved)) {
    kept = JSON.parse(readFileSync(saved, 'utf8')).filter((r) => !names.includes(r.name));
    say(`kept from the previous run: ${kept.map((r) => r.name).join(', ') || 'nothing'}`);
  }
  const results = [...kept, ...ran].sort((a, b) => ORDER.indexOf(a.name) - ORDER.indexOf(b.name));
  mkdirSync(PLOTS, { recursive: true });
  writeFileSync(saved, `${JSON.stringify(results, null, 1)}\n`);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, document(results, m));
  say(`written: ${relative(process.cwd(), OUT) || OUT}`);
  const failed = ran.filter((r) => r.code !== 0 && !r.result);
  if (failed.length) {
    say(`failed: ${failed.map((r) => r.name).join(', ')}`);
    process.exitCode = 1;
  }
  process.stdout.write(`RESULT ${JSON.stringify({ benchmark: 'all', quick, out: OUT, results: results.map((r) => ({ name: r.name, exit: r.code, seconds: r.seconds, target: r.result?.target })) })}\n`);
}

runMain(main);
