/**
 * The data plane on real interfaces: attach and detach on a veth pair in a
 * network namespace this test creates (TC for both directions, or native XDP
 * for ingress), and a restart that finds the sessions in the pinned maps.
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  Rewriter,
  SessionTable,
  TCP_ACK,
  buildTcpPacket,
  encodeTableMaps,
  encodeTupleKey,
  plainRewrite,
  reverseTuple,
  tuple,
} from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';
import t from 'tap';
import { ethFor } from './harness.js';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();
const ns = `dysco-attach-${process.pid}`;
const child = fileURLToPath(new URL('./netns-child.js', import.meta.url));

function sh(cmd: string): { status: number; out: string } {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  return { status: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

/**
 * Names of the programs that bpf links (TCX, among others) currently run,
 * among the given program ids. Links are not per namespace: other tests
 * running alongside have theirs, so only this test's programs count.
 */
function linkedPrograms(ours: readonly number[]): Set<string> {
  const links = JSON.parse(must('bpftool -j link show')) as { prog_id: number }[];
  const progs = JSON.parse(must('bpftool -j prog show')) as { id: number; name: string }[];
  const byId = new Map(progs.map((p) => [p.id, p.name]));
  return new Set(links.filter((l) => ours.includes(l.prog_id)).map((l) => byId.get(l.prog_id) ?? `program ${l.prog_id}`));
}

function must(cmd: string): string {
  const r = sh(cmd);
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.out}`);
  return r.out;
}

t.test('attach and detach on a veth in a namespace', skip ? { skip } : {}, async (t) => {
  must(`ip netns add ${ns}`);
  const pinRoot = `/sys/fs/bpf/dysco-attach-${process.pid}`;
  t.teardown(() => {
    sh(`ip netns del ${ns}`);
    rmSync(pinRoot, { recursive: true, force: true });
  });
  must(`ip -n ${ns} link add dy0 type veth peer name dy1 && ip -n ${ns} link set dy0 up && ip -n ${ns} link set dy1 up`);

  for (const mode of ['tc', 'xdp'] as const) {
    // nsenter, not `ip netns exec`: the latter remounts /sys and hides the bpffs pins.
    const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, child, 'dy0', mode, pinRoot], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    const made = JSON.parse(String(first.value)) as { kind: string; progId: number }[];
    const kinds = made.map((a) => a.kind);
    const ours = made.map((a) => a.progId);
    if (mode === 'tc') {
      t.equal(kinds.length, 2, 'tc: ingress and egress attached');
      t.ok(kinds.every((k) => k === 'tcx' || k === 'tc-clsact'), `tc attachments: ${kinds.join(', ')}`);
      const linked = linkedPrograms(ours);
      t.ok(linked.has('dysco_tc_ingress'), 'a TC link runs the ingress program');
      t.ok(linked.has('dysco_tc_egress'), 'a TC link runs the egress program');
    } else {
      t.same(kinds[0], 'xdp-native', 'xdp: native XDP on the veth');
      t.match(sh(`ip -n ${ns} link show dy0`).out, /prog\/xdp id \d+/, 'ip link shows the XDP program');
    }
    proc.stdin!.end('go\n');
    const second = await lines.next();
    t.equal(second.value, 'detached', `${mode}: detached on request`);
    t.equal(await exited, 0, `${mode}: the child exited cleanly`);
    const left = [...linkedPrograms(ours)];
    t.same(left, [], `${mode}: no link of ours left`);
    t.notMatch(sh(`ip -n ${ns} link show dy0`).out, /prog\/xdp/, `${mode}: no XDP program left`);
  }
});

t.test('a restarted data plane finds its sessions in the pinned maps', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-restart-${process.pid}`;
  t.teardown(() => rmSync(pinRoot, { recursive: true, force: true }));
  const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
  const sub = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
  const table = new SessionTable();
  table.installEgress({ key: session, old: plainRewrite(sub), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0 });
  table.installIngress({ key: reverseTuple(sub), rewrite: plainRewrite(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });

  const first = DataPlane.open({ pinRoot });
  first.install(encodeTableMaps(table));
  first.close();

  const second = DataPlane.open({ pinRoot });
  t.teardown(() => second.close());
  t.equal(second.map('egress').maxEntries, 2 * 1048576, 'sized for a million sessions by default');
  t.equal(second.map('ingress').maxEntries, 3 * 1048576);
  t.ok(second.map('egress').lookup(Buffer.from(encodeTupleKey(session))), 'the egress entry survived the restart');
  const pkt = buildTcpPacket({ tuple: session, seq: 1, ack: 2, flags: TCP_ACK, window: 100, payload: new Uint8Array(10) });
  const want = new Rewriter({ localAddresses: [], table }).egress(pkt);
  const run = second.program('tcEgress').testRun({ data: ethFor(pkt) });
  t.equal(run.retval, 0, 'TC_ACT_OK');
  t.same(run.data.subarray(14), Buffer.from(want.packets[0]!), 'the restarted data plane rewrites with the old entries');
});
