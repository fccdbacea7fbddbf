import t from 'tap';
import { join } from 'node:path';
import { rmSync, mkdirSync } from 'node:fs';
import { attachTc, attachXdp, BpfError, BpfMap, BpfObject, detachPinnedLink, mountBpffs, u32, u64 } from 'ebpf-ts-loader';
import { compileBpf, needsRoot, packageDir } from './helpers/env.js';
import { createVethPair, nodeInNetns, sendUdpFrom, type VethPair } from './helpers/netns.js';

const child = join(packageDir, 'dist-test', 'helpers', 'attach-child.js');

interface ChildReport {
  kind: string;
  progId: number;
  program: string;
  before: string;
  after: string;
  count: number;
  countAfterDetach: number;
}

t.test('attaching to an unknown interface names it', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('count'));
  t.teardown(() => obj.close());
  obj.load();
  const e = t.throws(() => attachXdp('nosuchdev0', obj.program('xdp_count'))) as BpfError;
  t.ok(e instanceof BpfError);
  t.equal(e.code, 'ENODEV');
  t.match(e.message, /nosuchdev0/);
  t.throws(() => attachTc('nosuchdev0', obj.program('tc_count_ingress'), { direction: 'ingress' }), /nosuchdev0/);
});

t.test('XDP and TC attach/detach on a veth pair between two namespaces', { skip: needsRoot }, async (t) => {
  const tag = `${process.pid % 100000}`;
  let pair: VethPair | undefined;
  t.teardown(() => pair?.destroy());
  pair = createVethPair(tag);
  const obj = compileBpf('count');
  const p = pair;

  const run = (scenario: string): ChildReport => {
    const r = nodeInNetns(p.nsA, child, [obj, scenario, p.devA, p.nsB, p.ipB, p.ipA]);
    if (r.status !== 0) throw new Error(`child ${scenario} exited ${r.status}:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as ChildReport;
  };

  for (const [scenario, kind] of [
    ['xdp-generic', 'xdp-generic'],
    ['xdp-native', 'xdp-native'],
    ['clsact-ingress', 'tc-clsact'],
    ['clsact-egress', 'tc-clsact'],
    ['tcx-ingress', 'tcx'],
    ['tcx-egress', 'tcx'],
    ['auto-ingress', 'tcx'],
  ] as const) {
    t.test(scenario, async (t) => {
      const r = run(scenario);
      t.equal(r.kind, kind);
      t.equal(r.count, 5, 'every probe packet went through the program');
      t.equal(r.countAfterDetach, 5, 'after detach the program sees nothing');
      if (scenario.startsWith('xdp')) {
        t.match(r.before, new RegExp(`mtu \\d+ ${scenario === 'xdp-generic' ? 'xdpgeneric' : 'xdp'} `), 'ip link shows the mode');
        t.match(r.before, new RegExp(`prog/xdp id ${r.progId} name xdp_count`), 'and the program');
        t.notMatch(r.after, /xdp/, 'and no XDP program after detach');
      } else if (scenario.startsWith('clsact')) {
        t.match(r.before, new RegExp(`bpf chain 0 handle 0x[0-9a-f]+ ${r.program.slice(0, 15)}:\\[${r.progId}\\]`), 'tc filter shows the program');
        t.notMatch(r.after, new RegExp(`\\[${r.progId}\\]`), 'and not after detach');
      }
    });
  }

  t.test('a pinned TCX link outlives the process that attached it', async (t) => {
    mountBpffs();
    const pinDir = `/sys/fs/bpf/ebpfts-attach-${tag}`;
    mkdirSync(pinDir, { recursive: true });
    t.teardown(() => {
      detachPinnedLink(`${pinDir}/link`);
      rmSync(pinDir, { recursive: true, force: true });
    });
    const r = nodeInNetns(p.nsA, child, [obj, 'tcx-pin-ingress', p.devA, p.nsB, p.ipB, p.ipA, pinDir]);
    t.equal(r.status, 0, r.stderr);
    const counters = BpfMap.fromPinned(`${pinDir}/counters`).typed({ key: u32, value: u64 });
    t.teardown(() => counters.raw.close());
    sendUdpFrom(p.nsB, p.ipA, 4242, 4);
    await new Promise((res) => setTimeout(res, 200));
    t.equal(counters.lookup(1), 4n, 'the link still counts after its process exited');
    t.equal(detachPinnedLink(`${pinDir}/link`), true);
    t.equal(detachPinnedLink(`${pinDir}/link`), false, 'nothing left to detach');
    sendUdpFrom(p.nsB, p.ipA, 4242, 2);
    await new Promise((res) => setTimeout(res, 200));
    t.equal(counters.lookup(1), 4n, 'detached');
  });
});
