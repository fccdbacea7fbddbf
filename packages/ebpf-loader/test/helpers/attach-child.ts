/**
 * Runs inside network namespace A (see netns.ts): loads count.bpf.o, attaches one program to the veth as
 * the scenario says, checks the attachment with iproute2, sends probe packets across the veth, reads the
 * counter, detaches, sends again, and prints one JSON line with what it saw.
 *
 * argv: OBJ SCENARIO DEV PEER_NS PEER_IP OWN_IP [PIN_DIR]
 */
import { createSocket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfObject, attachTc, attachXdp, u32, u64, type Attachment } from 'ebpf-ts-loader';
import { sendUdpFrom } from './netns.js';

const [obj, scenario, dev, peerNs, peerIp, ownIp, pinDir] = process.argv.slice(2);
if (!obj || !scenario || !dev || !peerNs || !peerIp || !ownIp) throw new Error('usage: attach-child OBJ SCENARIO DEV PEER_NS PEER_IP OWN_IP [PIN_DIR]');

const PORT = 4242;

async function sendOut(count: number): Promise<void> {
  const s = createSocket('udp4');
  for (let i = 0; i < count; i++) {
    await new Promise<void>((res, rej) => s.send('probe', PORT, peerIp, (e) => (e ? rej(e) : res())));
    await sleep(20);
  }
  s.close();
}

/** What iproute2 reports on the device for this hook. */
function shown(): string {
  if (scenario!.startsWith('xdp')) return execFileSync('ip', ['link', 'show', 'dev', dev!], { encoding: 'utf8' });
  const dir = scenario!.endsWith('egress') ? 'egress' : 'ingress';
  try {
    return execFileSync('tc', ['filter', 'show', 'dev', dev!, dir], { encoding: 'utf8' });
  } catch {
    return ''; // no clsact qdisc at all
  }
}

const o = BpfObject.open(obj);
o.load();
const counters = o.map('counters').typed({ key: u32, value: u64 });
const egress = scenario.endsWith('egress');
let att: Attachment;
let slot: number;
switch (scenario) {
  case 'xdp-generic':
  case 'xdp-native':
    att = attachXdp(dev, o.program('xdp_count'), { mode: scenario === 'xdp-native' ? 'native' : 'generic' });
    slot = 0;
    break;
  case 'clsact-ingress':
  case 'tcx-ingress':
  case 'auto-ingress':
  case 'tcx-pin-ingress':
    att = attachTc(dev, o.program('tc_count_ingress'), { direction: 'ingress', kind: scenario.startsWith('clsact') ? 'clsact' : scenario.startsWith('auto') ? 'auto' : 'tcx' });
    slot = 1;
    break;
  case 'clsact-egress':
  case 'tcx-egress':
    att = attachTc(dev, o.program('tc_count_egress'), { direction: 'egress', kind: scenario.startsWith('clsact') ? 'clsact' : 'tcx' });
    slot = 2;
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}

if (scenario === 'tcx-pin-ingress') {
  // Leave the attachment behind: pin the link and the counters, then exit without detaching.
  if (!att.pin || !pinDir) throw new Error('tcx attachment without pin()');
  att.pin(`${pinDir}/link`);
  counters.raw.pin(`${pinDir}/counters`);
  process.stdout.write(`${JSON.stringify({ kind: att.kind, progId: att.progId })}\n`);
  process.exit(0);
}

const send = async (n: number): Promise<void> => {
  if (egress) await sendOut(n);
  else sendUdpFrom(peerNs, ownIp, PORT, n);
  await sleep(200);
};

const before = shown();
await send(5);
const count = counters.lookup(slot) ?? -1n;
att.detach();
att.detach(); // idempotent
const after = shown();
await send(3);
const countAfterDetach = counters.lookup(slot) ?? -1n;
o.close();
process.stdout.write(`${JSON.stringify({ kind: att.kind, progId: att.progId, program: att.program, before, after, count: Number(count), countAfterDetach: Number(countAfterDetach) })}\n`);
