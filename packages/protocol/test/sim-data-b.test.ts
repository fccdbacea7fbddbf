// The second half of the 10,000 data-plane schedules, in its own process.
process.env.DYSCO_SIM_RANGE ??= '5001-10000';
await import('./sim-data.test.js');
