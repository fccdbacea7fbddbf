// Preloaded into a `dysco agent` by the scale benchmark (node --require):
// on SIGUSR2 the agent reports its memory as one JSON line on stderr, among
// its own log records, once as it is and once after a full garbage
// collection (what it really holds, not what it has not collected yet).
// It changes nothing else in the agent.
'use strict';
const { readFileSync } = require('node:fs');
const v8 = require('node:v8');
const vm = require('node:vm');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** VmRSS and VmHWM of this process, in bytes. */
function status() {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peakRss: kb('VmHWM') };
}

function sample() {
  const m = process.memoryUsage();
  return { ...status(), heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

process.on('SIGUSR2', () => {
  const before = sample();
  gc();
  gc();
  const after = sample();
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), msg: 'memory probe', before, after })}\n`);
});
