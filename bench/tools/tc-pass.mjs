#!/usr/bin/env node
// Attaches the data plane's do-nothing TC program (`dysco_pass_tc`) to an
// interface of the namespace it runs in, ingress and egress, where an agent
// attaches the real programs: the floor of what any TC data plane costs
// there. Prints `ready`, detaches on SIGTERM or SIGINT.
//
//   node tc-pass.mjs IFNAME PIN_ROOT
import { rmSync } from 'node:fs';
import { DataPlane } from '@dysco/xdp';
import { attachTc } from 'ebpf-ts-loader';

const [ifname = 'eth0', pinRoot] = process.argv.slice(2);
if (!pinRoot) {
  process.stderr.write('usage: tc-pass.mjs IFNAME PIN_ROOT\n');
  process.exit(2);
}
const dp = DataPlane.open({ pinRoot, maxSessions: 1024 });
const pass = dp.program('passTc');
const links = [attachTc(ifname, pass, { direction: 'ingress', kind: 'auto' }), attachTc(ifname, pass, { direction: 'egress', kind: 'auto' })];
const stop = () => {
  for (const l of links.reverse()) l.detach();
  dp.close();
  rmSync(pinRoot, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write('ready\n');
setInterval(() => undefined, 1 << 30);
