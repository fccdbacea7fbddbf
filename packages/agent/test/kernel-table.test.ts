/**
 * The kernel table's two-path steps write the ingress entries that feed two
 * paths before the egress entry enters them, and stop them feeding only
 * after it left them: in between, an ack arriving on the old path would
 * otherwise go unseen by the egress entry (and its old path never drain).
 */
import { rmSync } from 'node:fs';
import t from 'tap';
import { KernelTable } from '@dysco/agent';
import { INGRESS_OFFSETS, TCP_ACK, buildTcpPacket, decodeTupleKey, formatTuple, plainRewrite, reverseTuple, tuple } from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';
import { privilegedSkipReason } from './helpers.js';

const skip = privilegedSkipReason();

t.test('two-path steps: feeding ingress entries before the egress entry, and after it when leaving', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-ktable-${process.pid}`;
  const dp = DataPlane.open({ pinRoot, maxSessions: 1024 });
  t.teardown(() => {
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  const table = new KernelTable(dp);
  const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
  const oldSub = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
  const newSub = tuple('10.0.0.1', 61001, '10.0.0.11', 61001);
  table.installEgress({ key: session, old: plainRewrite(oldSub), twoPath: undefined, sndHigh: 1000, packets: 0, bytes: 0, lastSeen: 0 });
  for (const [sub, path] of [[oldSub, 'old'], [newSub, 'new']] as const) {
    table.installIngress({ key: reverseTuple(sub), rewrite: plainRewrite(reverseTuple(session)), path, egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
  }

  // record the order of the writes to the two maps
  const writes: string[] = [];
  for (const kind of ['egress', 'ingress'] as const) {
    const m = dp.map(kind);
    const update = m.update.bind(m);
    m.update = (key, value, flags) => {
      const what = kind === 'ingress' ? `ingress ${formatTuple(decodeTupleKey(key))} feeds=${value[INGRESS_OFFSETS.feedsTwoPath]}` : 'egress';
      writes.push(what);
      update(key, value, flags);
    };
  }
  const ing = (sub: typeof oldSub, feeds: number) => `ingress ${formatTuple(reverseTuple(sub))} feeds=${feeds}`;

  table.prepareTwoPath(session, plainRewrite(newSub));
  t.same(writes, [ing(oldSub, 1), ing(newSub, 1), 'egress'], 'entering: both ingress entries feed before the egress entry has two paths');
  t.same([table.getIngress(reverseTuple(oldSub))?.feedsTwoPath, table.getIngress(reverseTuple(newSub))?.feedsTwoPath], [true, true], 'in the kernel');

  writes.length = 0;
  const tp = table.enterTwoPath(session, plainRewrite(newSub));
  t.same(writes, ['egress'], 'the cutover of a prepared entry writes the egress entry only: its ingress entries feed it already');
  t.same([table.getIngress(reverseTuple(oldSub))?.feedsTwoPath, table.getIngress(reverseTuple(newSub))?.feedsTwoPath], [true, true], 'and still do');
  t.notOk(tp.drained, 'sndHigh 1000 is not acknowledged yet');

  // the kernel's ingress program feeds the two paths through the flag the table set
  const ack = buildTcpPacket({ tuple: reverseTuple(oldSub), seq: 5000, ack: 1000, flags: TCP_ACK, window: 1000 });
  const frame = Buffer.alloc(14 + ack.length);
  frame.writeUInt16BE(0x0800, 12);
  frame.set(ack, 14);
  t.equal(dp.program('tcIngress').testRun({ data: frame, repeat: 1 }).retval, 0, 'the peer acks everything on the old path');
  t.same([table.getEgress(session)?.twoPath?.peerAckHigh, table.getEgress(session)?.twoPath?.drained], [1000, true], 'the egress entry saw it: drained');

  writes.length = 0;
  table.leaveTwoPath(session, 'new');
  const egressAt = writes.indexOf('egress');
  t.ok(egressAt >= 0 && writes.slice(egressAt + 1).includes(ing(newSub, 0)), `leaving: the egress entry first, then the entry that stops feeding (${writes.join(', ')})`);
  t.notOk(writes.slice(0, egressAt).some((w) => w.endsWith('feeds=0')), 'no entry stops feeding before the egress entry left the two paths');
  t.equal(table.getIngress(reverseTuple(newSub))?.feedsTwoPath, undefined, 'the path that stays no longer feeds');
});
