import t from 'tap';
import { rmSync } from 'node:fs';
import { BpfObject, BpfMap, BpfError, mountBpffs, isBpffs, u32, u64 } from 'ebpf-ts-loader';
import { compileBpf, needsRoot } from './helpers/env.js';

t.test('mountBpffs is idempotent', { skip: needsRoot }, async (t) => {
  mountBpffs();
  mountBpffs();
  t.ok(isBpffs('/sys/fs/bpf'));
  t.notOk(isBpffs('/tmp'));
});

t.test('a restarted loader reuses the map pinned under pinRoot, contents intact', { skip: needsRoot }, async (t) => {
  mountBpffs();
  const pinRoot = `/sys/fs/bpf/ebpfts-pinroot-${process.pid}`;
  t.teardown(() => rmSync(pinRoot, { recursive: true, force: true }));
  const objPath = compileBpf('pinned');

  // First "process": the map is created and pinned at pinRoot/persistent; the program counts into it.
  const first = BpfObject.open(objPath, { pinRoot });
  first.load();
  const m1 = first.map('persistent').typed({ key: u32, value: u64 });
  t.equal(first.map('persistent').pinPath, `${pinRoot}/persistent`);
  m1.update(1, 111n);
  for (let i = 0; i < 3; i++) first.program('xdp_bump').testRun({ data: Buffer.alloc(64) });
  t.equal(m1.lookup(7), 3n);
  first.map('scratch').typed({ key: u32, value: u64 }).update(0, 5n);
  first.close();

  // The pin keeps the map alive with nobody holding it.
  const peek = BpfMap.fromPinned(`${pinRoot}/persistent`);
  t.equal(peek.typed({ key: u32, value: u64 }).lookup(1), 111n);
  peek.close();

  // Second "process": the same object reuses the pinned map instead of creating a fresh one.
  const second = BpfObject.open(objPath, { pinRoot });
  t.teardown(() => second.close());
  second.load();
  const m2 = second.map('persistent').typed({ key: u32, value: u64 });
  t.equal(m2.lookup(1), 111n, 'user-space entry survived');
  t.equal(m2.lookup(7), 3n, 'program-written entry survived');
  second.program('xdp_bump').testRun({ data: Buffer.alloc(64) });
  t.equal(m2.lookup(7), 4n, 'the new program writes to the reused map');
  t.equal(second.map('scratch').typed({ key: u32, value: u64 }).lookup(0), 0n, 'unpinned maps start empty');
});

t.test('pinRoot that is not a bpffs: load fails and says so', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('pinned'), { pinRoot: `/tmp/ebpfts-not-bpffs-${process.pid}` });
  t.teardown(() => {
    obj.close();
    rmSync(`/tmp/ebpfts-not-bpffs-${process.pid}`, { recursive: true, force: true });
  });
  const e = t.throws(() => obj.load()) as BpfError;
  t.ok(e instanceof BpfError);
  t.match(e.message, /not on a bpffs/);
});
