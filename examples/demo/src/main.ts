#!/usr/bin/env node
/**
 * `npm run demo`: builds a default topology in network namespaces (client,
 * web proxy, IPS, two router boxes, server; an agent on each), runs real
 * applications over it, and changes chains on live sessions, printing a
 * timeline with per-second throughput and the measured duration of every
 * reconfiguration, and writing an SVG plot of throughput over time with the
 * reconfigurations marked. Everything it creates is removed on exit, on
 * Ctrl-C and on failure.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology } from '@dysco/agent/topology';
import { say } from './lib.js';
import { type Panel, chart } from './svg.js';
import { SCENARIOS, type Scenario, type ScenarioContext } from './scenarios.js';

const HELP = `usage: npm run demo -- [options]

  --scenarios LIST   which scenarios, in order (default: ${SCENARIOS.map((s) => s.name).join(',')})
                     ${SCENARIOS.map((s) => `${s.name}: ${s.summary}`).join('\n                     ')}
  --duration S       seconds of traffic per scenario (default 8; --quick: 3)
  --rate MBPS        pace of each transfer direction in Mbit/s (default 200)
  --boxes N          router boxes in the topology, 2..4 (default 2)
  --quick            short run (what CI runs)
  --out FILE         where to write the plot (default dysco-demo.svg)
  --keep             leave the namespaces up after the run (for poking around)
  --simulated        instead: the protocol simulator's timeline (no root, no kernel)
  --help             this text

Needs root (namespaces, BPF). Every namespace, agent, pin and process the
demo creates is removed when it ends, also on Ctrl-C or failure.
`;


async function main(): Promise<number> {
  let v;
  try {
    v = parseArgs({
      options: {
        scenarios: { type: 'string' },
        duration: { type: 'string' },
        rate: { type: 'string' },
        boxes: { type: 'string' },
        quick: { type: 'boolean' },
        out: { type: 'string' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const names = (v.scenarios ?? SCENARIOS.map((s) => s.name).join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const chosen: Scenario[] = [];
  for (const n of names) {
    const s = SCENARIOS.find((x) => x.name === n);
    if (!s) {
      process.stderr.write(`demo: unknown scenario ${JSON.stringify(n)} (known: ${SCENARIOS.map((x) => x.name).join(', ')})\n`);
      return 2;
    }
    chosen.push(s);
  }
  const duration = Number(v.duration ?? (v.quick ? 3 : 8));
  const rateMbps = Number(v.rate ?? 200);
  const boxes = Number(v.boxes ?? 2);
  if (!(duration >= 1 && duration <= 600) || !(rateMbps > 0 && rateMbps <= 20000) || !(Number.isInteger(boxes) && boxes >= 2 && boxes <= 4)) {
    process.stderr.write(`demo: --duration 1..600, --rate 0..20000 and --boxes 2..4\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: needs root: it creates network namespaces and loads BPF programs (run it with sudo)\n');
    return 1;
  }

  say(`building the topology: client, web proxy, IPS, ${boxes} router boxes and a server on one Ethernet segment, each in its own network namespace`);
  const hosts = ['client', 'proxy', { name: 'ips', router: true }, ...Array.from({ length: boxes }, (_, i) => ({ name: `box${i + 1}`, router: true })), 'server'];
  const bed = Topology.create({ hosts, tag: `demo${process.pid}` });
  let cleaning = false;
  const cleanup = async () => {
    if (cleaning) return;
    cleaning = true;
    if (v.keep) {
      say(`left running (--keep): namespaces ${[...bed.hosts.values()].map((h) => h.ns).join(' ')}`);
      return;
    }
    say('removing everything the demo created');
    await bed.destroy();
  };
  process.once('SIGINT', () => {
    say('interrupted');
    void cleanup().then(() => process.exit(130));
  });
  process.once('SIGTERM', () => void cleanup().then(() => process.exit(143)));

  const panels: Panel[] = [];
  const failures: string[] = [];
  try {
    const h = (n: string) => bed.host(n);
    for (const x of bed.hosts.values()) say(`  ${x.name.padEnd(7)} ${x.address}`);
    const ctx: ScenarioContext = { bed, h, say, duration, rate: (rateMbps * 1e6) / 8, fail: (m) => failures.push(m) };
    say('starting an agent on every host');
    const perHost = (name: string): Record<string, unknown> => chosen.reduce((cfg, s) => ({ ...cfg, ...s.agentConfig?.(ctx, name) }), {});
    for (const x of bed.hosts.values()) {
      const cfg = perHost(x.name);
      await x.startAgent({ config: { logLevel: 'info', ...cfg } });
    }
    for (const s of chosen) {
      say(`── ${s.name}: ${s.summary}`);
      const before = failures.length;
      try {
        panels.push(await s.run(ctx));
      } catch (e) {
        failures.push(`${s.name}: ${(e as Error).message}`);
      }
      say(failures.length === before ? `── ${s.name}: done` : `── ${s.name}: FAILED: ${failures.slice(before).join('; ')}`);
    }
    if (panels.length > 0) {
      const out = resolve(v.out ?? 'dysco-demo.svg');
      writeFileSync(out, chart(panels, 'Dysco: throughput of live sessions while their chains change'));
      say(`plot written: ${out}`);
    }
  } finally {
    await cleanup();
  }
  if (failures.length > 0) {
    say(`${failures.length} problem(s):\n  ${failures.join('\n  ')}`);
    return 1;
  }
  say('all scenarios completed');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`demo: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
