import t from 'tap';
import { DataSimulation } from '../dist/sim/data-simulation.js';
import { scheduleFor } from '../dist/sim/schedules.js';

// The data-plane simulation over seeded random schedules: real TCP packets
// through reference rewriters, signed control messages, lossy links.
// DYSCO_SIM_RANGE=from-to picks the seeds (the suite splits 10,000 of them
// over two files so they run in parallel).

const [from, to] = (process.env.DYSCO_SIM_RANGE ?? process.argv[2] ?? '1-5000').split('-').map(Number) as [number, number];

t.test(`data-plane simulation, seeds ${from} to ${to}`, async (t) => {
  let failures = 0;
  let completed = 0;
  let aborted = 0;
  let splits = 0;
  for (let seed = from; seed <= to; seed++) {
    const r = new DataSimulation(scheduleFor(seed)).run();
    for (const o of r.outcomes) o.result === 'completed' ? completed++ : aborted++;
    for (const [k, v] of Object.entries(r.counters)) if (k.endsWith('twoPathSplit')) splits += v;
    if (r.violations.length > 0 || !r.delivered.clientToServer || !r.delivered.serverToClient) {
      failures++;
      if (failures <= 5) t.fail(`seed ${seed}: ${r.violations.join('; ')}\n  replay: new DataSimulation(scheduleFor(${seed})).run()`);
    }
  }
  t.equal(failures, 0, `every schedule delivered both streams exactly once and ended clean (${to - from + 1} schedules)`);
  // the properties must have been exercised, not vacuously true
  t.ok(completed > (to - from) / 4, `reconfigurations completed: ${completed}`);
  t.ok(aborted > (to - from) / 10, `reconfigurations aborted: ${aborted}`);
  t.ok(splits > 0, `segments split between the two paths: ${splits}`);
});
