/**
 * Golden vectors: fixed tables and packets (golden-cases.ts) with their
 * expected outputs written down here. The reference must produce exactly
 * these bytes, and the compiled programs must agree with it (bytes, table
 * state, events, counters); rejected packets are dropped and counted.
 */
import { rmSync } from 'node:fs';
import { Rewriter, hex } from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';
import t from 'tap';
import { GOLDEN, REJECTED } from './golden-cases.js';
import { comparePrepared } from './harness.js';
import { privilegedSkipReason } from './privileged.js';

const EXPECTED: Record<string, string> = {
  'IPv4 egress, deltas, window, SACK and timestamps':
    '45000050000040004006269e0a0000010a00000aee48ee480000177000001f40b0180fa0ea8700000101080a000003ef000007c9050a00002134000021980000474554202f20485454502f312e310d0a',
  'IPv6 ingress, deltas':
    '600000000084064020010db800000000000000000000000220010db800000000000000000000000101bb9c4000001f4000000fb080101f401dfc00000101080a000003ef000007c9' + '61'.repeat(100),
  'IPv4 two paths: data, ack and SACK on the new path':
    '4500003e00004000400626af0a0000010a00000bee4aee4a00001194000032c8801001f4e50100000101050a00002cec000030d400000000000000000000',
  'IPv4 SYN steered at the originator':
    '4500005700004000400626970a0000010a00000afd3cfd3c0000006400000000a002faf07be00000020405b40402080a000003e8000007d001030307c45953430100001b040a0000010a0000029c40005001040a000002',
  'IPv4 SYN at a middlebox: metadata stripped, NAT tag inserted':
    '4500003400004000400626c20a0000010a0000029c40005000000064000000008002faf06e450000fd0844590d470f48020405b4',
  'IPv6 SYN at the last hop: metadata stripped':
    '600000000014064020010db800000000000000000000000120010db80000000000000000000000029c4001bb00000064000000005002faf0bb1d0000',
};

const skip = privilegedSkipReason();

t.test('the reference produces the golden bytes', async (t) => {
  for (const [name, c] of Object.entries(GOLDEN)) {
    const r = new Rewriter({ localAddresses: c.localAddresses, table: c.makeTable(), now: () => 0, ports: c.ports, seed: c.seed });
    const res = c.direction === 'egress' ? r.egress(c.packet) : r.ingress(c.packet);
    t.equal(res.verdict, 'rewrite', `${name}: rewritten`);
    t.same(res.packets.map(hex), [EXPECTED[name]], name);
  }
});

t.test('the compiled programs produce the golden bytes and reject the bad', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-golden-${process.pid}`;
  const dp = DataPlane.open({ pinRoot, maxSessions: 4096 });
  t.teardown(() => {
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  for (const [name, c] of Object.entries(GOLDEN)) {
    const programs = c.direction === 'egress' ? (['tcEgress'] as const) : (['tcIngress', 'xdpIngress'] as const);
    for (const prog of programs) t.same(comparePrepared(dp, c, prog), [], `${name} (${prog})`);
  }
  for (const [name, { prepared, counter }] of Object.entries(REJECTED)) {
    const programs = prepared.direction === 'egress' ? (['tcEgress'] as const) : (['tcIngress', 'xdpIngress'] as const);
    for (const prog of programs) {
      const before = dp.counters();
      const stats = { twoOutputs: 0, rewritten: 0, dropped: 0 };
      t.same(comparePrepared(dp, prepared, prog, stats), [], `${name} (${prog}): as the reference`);
      t.equal(stats.dropped, 1, `${name} (${prog}): dropped`);
      const after = dp.counters();
      t.equal(after[counter as keyof typeof after] - before[counter as keyof typeof before], 1n, `${name} (${prog}): counted as ${counter}`);
    }
  }
});
