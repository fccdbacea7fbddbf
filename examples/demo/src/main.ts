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
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Topology } from '@dysco/agent/topology';
import { say } from './lib.js';
import { type Panel, chart } from './svg.js';
import { type Reconfiguration, SCENARIOS, type Scenario, type ScenarioContext } from './scenarios.js';

/** `text` in lines of at most `width` characters, each after `indent`. */
function wrap(text: string, indent: string, width = 78): string {
  const out: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line && indent.length + line.length + 1 + w.length > width) {
      out.push(indent + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(indent + line);
  return out.join('\n');
}

const HELP = `usage: npm run demo -- [options]
       node examples/demo/dist/main.js [options]

Builds a client, a web proxy, an IPS, router boxes and a server in network
namespaces, an agent on each, and changes the chains of live sessions while
real applications use them. Prints a timeline with per-second throughput
and the duration of every reconfiguration, and writes an SVG plot.

  --scenarios LIST   which scenarios, comma-separated, in this order
                     (default: ${SCENARIOS.map((s) => s.name).join(',')}):
${SCENARIOS.map((s) => `${`                       ${s.name}`.padEnd(32)}${wrap(s.summary, ' '.repeat(32)).trimStart()}`).join('\n')}
  --duration S       seconds of traffic per scenario (default 8; --quick: 3;
                     the ips scenario takes at least 4)
  --rate MBPS        pace of each transfer direction in Mbit/s (default 200;
                     the ips scenario paces at 32 at most, so that the
                     packet captures keep up)
  --boxes N          router boxes in the topology, 2..4 (default 2)
  --quick            short run (what CI runs)
  --out FILE         where to write the plot (default dysco-demo.svg)
  --keep             after the scenarios, leave everything up until Ctrl-C
                     (for poking around with ip netns exec and dysco)
  --simulated        instead: the protocol simulator's timeline (no root, no kernel)
  --help             this text

Needs root (namespaces, BPF, nftables, packet capture). Every namespace,
agent, pin, nftables table and process the demo creates is removed when it
ends, also on Ctrl-C or failure. Exit status: 0 when every scenario
completed as expected, 1 otherwise, 2 for usage errors.
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
        simulated: { type: 'boolean' },
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
  if (v.simulated) {
    // the protocol package's simulator: the same kind of timeline, without namespaces or the kernel
    const sim = fileURLToPath(new URL('./sim/demo.js', import.meta.resolve('@dysco/protocol')));
    return spawnSync(process.execPath, [sim], { stdio: 'inherit' }).status ?? 1;
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
    say('removing everything the demo created');
    await bed.destroy();
  };
  /** With --keep, ends the wait after the scenarios. */
  let endKeep: (() => void) | undefined;
  const onSignal = (signal: string, code: number) => {
    if (endKeep) return endKeep();
    // a second signal during the cleanup exits at once: the bed's exit handler removes what is left
    if (cleaning) process.exit(code);
    say(`${signal}: stopping`);
    void cleanup().then(() => process.exit(code));
  };
  process.on('SIGINT', () => onSignal('interrupted', 130));
  process.on('SIGTERM', () => onSignal('terminated', 143));

  const panels: Panel[] = [];
  const failures: string[] = [];
  const reconfigurations: Reconfiguration[] = [];
  try {
    const h = (n: string) => bed.host(n);
    for (const x of bed.hosts.values()) say(`  ${x.name.padEnd(7)} ${x.address}`);
    const ctx: ScenarioContext = { bed, h, say, duration, rate: (rateMbps * 1e6) / 8, fail: (m) => failures.push(m), reconfigurations };
    say('starting an agent on every host');
    // each scenario's fields for a host's agent; their policies are put together
    const perHost = (name: string): Record<string, unknown> => {
      const cfg: Record<string, unknown> = {};
      const policies: unknown[] = [];
      for (const s of chosen) {
        const { policies: p, ...rest } = s.agentConfig?.(ctx, name) ?? {};
        if (Array.isArray(p)) policies.push(...(p as unknown[]));
        Object.assign(cfg, rest);
      }
      return policies.length > 0 ? { ...cfg, policies } : cfg;
    };
    for (const x of bed.hosts.values()) {
      const cfg = perHost(x.name);
      const started = Date.now();
      await x.startAgent({ config: { logLevel: 'info', ...cfg } });
      const n = Array.isArray(cfg.policies) ? cfg.policies.length : 0;
      say(`  agent on ${x.name} ready in ${((Date.now() - started) / 1000).toFixed(1)} s${n > 0 ? ` (${n} steering ${n === 1 ? 'policy' : 'policies'})` : ''}`);
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
    if (reconfigurations.length > 0) {
      say('reconfigurations of live sessions:');
      const w = Math.max(...reconfigurations.map((r) => r.what.length));
      for (const r of reconfigurations) say(`  ${r.scenario.padEnd(8)} ${r.what.padEnd(w)}  ${r.result.padEnd(9)} ${r.durationMs !== undefined ? `${r.durationMs.toFixed(1).padStart(7)} ms` : ''}`);
    }
    if (panels.length > 0) {
      const out = resolve(v.out ?? 'dysco-demo.svg');
      writeFileSync(out, chart(panels, 'Dysco: throughput of live sessions while their chains change'));
      say(`plot written: ${out}`);
    }
  } finally {
    if (v.keep) {
      say(`left up (--keep): namespaces ${[...bed.hosts.values()].map((x) => x.ns).join(' ')}; agents' sockets under ${bed.dir}; Ctrl-C removes everything`);
      await new Promise<void>((r) => (endKeep = r));
      endKeep = undefined;
    }
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
