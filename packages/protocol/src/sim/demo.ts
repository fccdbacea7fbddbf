#!/usr/bin/env node
/**
 * `npm run demo`: one TCP session through a chain of two middleboxes in the
 * deterministic simulator, with the first middlebox removed while data
 * flows both ways, printed as a timeline.
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DataSimulation } from './data-simulation.js';
import { SIM_RETRY } from './schedules.js';

const HELP = `Usage: npm run demo -- [options]

Runs a TCP session client -> m1 -> m2 -> server in the simulator, removes
m1 from the chain while both directions transfer, and prints the timeline.

Options:
  --bytes N      bytes sent in each direction (default 200000)
  --loss P       loss probability on every link, 0..0.3 (default 0)
  --remove-at T  when the operator removes m1, ms (default 40)
  --seed N       random seed (default 1)
  --verbose      print every control message
  --help         this text
`;

function main(): number {
  let args;
  try {
    args = parseArgs({
      options: {
        bytes: { type: 'string', default: '200000' },
        loss: { type: 'string', default: '0' },
        'remove-at': { type: 'string', default: '40' },
        seed: { type: 'string', default: '1' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const bytes = Number(args.bytes);
  const loss = Number(args.loss);
  const removeAt = Number(args['remove-at']);
  const seed = Number(args.seed);
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 50_000_000) return usage('--bytes must be a whole number from 1 to 50000000');
  if (!(loss >= 0 && loss <= 0.3)) return usage('--loss must be between 0 and 0.3');
  if (!(removeAt >= 0)) return usage('--remove-at must be a time in ms');
  if (!Number.isInteger(seed)) return usage('--seed must be a whole number');

  const sim = new DataSimulation({
    seed,
    boxes: 2,
    spares: 0,
    link: { loss, duplicate: 0, delay: 2, jitter: 1 },
    retry: SIM_RETRY,
    bytes: [bytes, bytes],
    mss: 1400,
    window: 16,
    rto: 60,
    secret: new Uint8Array(32).fill(0x44),
    trace: true,
    ops: [{ at: removeAt, op: { kind: 'remove', box: 'm1', style: 'left' } }],
  });
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out('Dysco simulator: one TCP session through client -> m1 -> m2 -> server; m1 is removed mid-transfer.');
  out(`Links: 2-3 ms one way, loss ${loss * 100}%. Control messages are HMAC-signed. ${bytes} bytes each way.\n`);
  const r = sim.run();

  // the timeline, with throughput every 10 ms of simulated time
  const explain = (s: string) =>
    s
      .replace(/: prepareNewPath \((left|right)\)$/, ': ready to receive on the new path')
      .replace(/: enterTwoPaths \((left|right)\)$/, ': two paths: new data on the new path, the rest of the old on the old path')
      .replace(/: completeTwoPaths \((left|right)\)$/, ': old path drained both ways and torn down')
      .replace(/: removeRelay$/, ': removes its session state')
      .replace(/ <- /, ' <- ');
  const lines: { t: number; text: string }[] = [];
  const quiet = /session closed|session reset/;
  for (const e of r.timeline) {
    if (!args.verbose && quiet.test(e.text)) continue;
    const prev = lines[lines.length - 1];
    if (prev && prev.text === explain(e.text)) continue;
    lines.push({ t: e.t, text: explain(e.text) });
  }
  let last = 0;
  let lastBytes = 0;
  let done = false;
  for (const [t, total] of r.progress) {
    if (done) break;
    done = total === 2 * bytes;
    if (t - last >= 10 || done) {
      const mbps = ((total - lastBytes) * 8) / ((t - last) / 1000) / 1e6;
      lines.push({ t, text: `  transfer: ${total} of ${2 * bytes} bytes delivered (${mbps.toFixed(0)} Mbit/s simulated)` });
      last = t;
      lastBytes = total;
    }
  }
  lines.sort((a, b) => a.t - b.t);
  for (const l of lines) out(`${l.t.toFixed(1).padStart(8)} ms  ${l.text}`);

  out('');
  for (const o of r.outcomes) {
    out(`Reconfiguration #${o.reconfigId} (remove m1): ${o.result}${o.reason ? ` (${o.reason})` : ''} in ${(o.at - o.requestedAt).toFixed(1)} ms from request to completion at the left anchor.`);
  }
  const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);
  out(`Client -> server: ${sim.serverStream.deliveredLength} bytes, sha256 ${hash(sim.serverStream.delivered)}… ${r.delivered.clientToServer ? 'matches what was sent' : 'DOES NOT MATCH'}.`);
  out(`Server -> client: ${sim.clientStream.deliveredLength} bytes, sha256 ${hash(sim.clientStream.delivered)}… ${r.delivered.serverToClient ? 'matches what was sent' : 'DOES NOT MATCH'}.`);
  out(`Segments retransmitted by the end hosts: ${r.retransmissions}. Path now: ${r.path.join(' -> ')}.`);
  if (r.violations.length > 0) {
    out(`\nPROBLEMS:\n  ${r.violations.join('\n  ')}`);
    return 1;
  }
  return 0;
}

function usage(msg: string): number {
  process.stderr.write(`${msg}\n\n${HELP}`);
  return 2;
}

// a reader that stops early (`| head`) is not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
process.exitCode = main();
