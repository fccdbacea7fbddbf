import t from 'tap';
import fc from 'fast-check';
import { BpfError, BpfMap, BpfObject, possibleCpus, u32, u64 } from 'ebpf-ts-loader';
import { compileBpf, needsRoot } from './helpers/env.js';

const key = (n: number): Buffer => u32.encode(n);
const val64 = (n: bigint): Buffer => u64.encode(n);

function loaded(t: { teardown(fn: () => void): void }): BpfObject {
  const obj = BpfObject.open(compileBpf('basic'));
  obj.load();
  t.teardown(() => obj.close());
  return obj;
}

t.test('hash map: lookup/update/delete with flags, iteration', { skip: needsRoot }, async (t) => {
  const m = loaded(t).map('hash_map');
  t.equal(m.lookup(key(1)), undefined);
  m.update(key(1), val64(10n));
  t.same(m.lookup(key(1)), val64(10n));
  t.throws(() => m.update(key(1), val64(11n), 'noexist'), { code: 'EEXIST' });
  t.throws(() => m.update(key(2), val64(11n), 'exist'), { code: 'ENOENT' });
  m.update(key(1), val64(12n), 'exist');
  m.update(key(2), val64(20n), 'noexist');
  t.same([...m.keys()].map((k) => u32.decode(k)).sort(), [1, 2]);
  t.same(new Map([...m.entries()].map(([k, v]) => [u32.decode(k), u64.decode(v)])), new Map([[1, 12n], [2, 20n]]));
  t.equal(m.delete(key(1)), true);
  t.equal(m.delete(key(1)), false);
  t.same([...m.keys()].map((k) => u32.decode(k)), [2]);
  t.throws(() => m.lookup(Buffer.alloc(3)), /key is 3 bytes, the map's keys are 4/);
  t.throws(() => m.update(key(3), Buffer.alloc(4)), /value is 4 bytes, expected 8/);
});

t.test('hash map behaves like a JS Map under random operations', { skip: needsRoot }, async (t) => {
  const m = loaded(t).map('hash_map').typed({ key: u32, value: u64 });
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), k: fc.integer({ min: 0, max: 40 }), v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
    fc.record({ kind: fc.constant('del' as const), k: fc.integer({ min: 0, max: 40 }) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    for (const k of [...m.keys()]) m.delete(k);
    const model = new Map<number, bigint>();
    for (const o of ops) {
      if (o.kind === 'set') {
        m.update(o.k, o.v);
        model.set(o.k, o.v);
      } else if (m.delete(o.k) !== model.delete(o.k)) return false;
    }
    const got = new Map(m.entries());
    const batch = new Map(m.lookupBatch());
    return got.size === model.size && [...model].every(([k, v]) => got.get(k) === v && batch.get(k) === v && m.lookup(k) === v) && batch.size === model.size;
  }), { numRuns: 60 });
  t.pass();
});

t.test('array map: fixed keys, delete refused with a clear error', { skip: needsRoot }, async (t) => {
  const m = loaded(t).map('array_map');
  t.equal([...m.keys()].length, 16, 'all indices exist');
  t.same(m.lookup(key(3)), val64(0n));
  m.update(key(3), val64(33n));
  t.same(m.lookup(key(3)), val64(33n));
  t.throws(() => m.update(key(16), val64(1n)), { code: 'E2BIG' });
  const e = t.throws(() => m.delete(key(3))) as BpfError;
  t.equal(e.code, 'EINVAL');
  t.match(e.message, /array maps cannot delete/);
  t.throws(() => m.update(key(3), val64(1n), 'noexist'), { code: 'EEXIST' });
});

t.test('batch operations: hash (kernel batch) and array (update/lookup batch, no delete batch)', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const h = obj.map('hash_map');
  const entries: Array<[Buffer, Buffer]> = Array.from({ length: 300 }, (_, i) => [key(i), val64(BigInt(i * 3))]);
  h.updateBatch(entries);
  t.equal(h.batchSupported, true, 'the kernel did the batch');
  const got = h.lookupBatch({ batchSize: 7 });
  t.equal(got.length, 300);
  t.same(new Map(got.map(([k, v]) => [u32.decode(k), u64.decode(v)])), new Map(entries.map(([k, v]) => [u32.decode(k), u64.decode(v)])));
  const ne = t.throws(() => h.updateBatch([[key(1000), val64(1n)], [key(1), val64(1n)]], 'noexist')) as BpfError;
  t.equal(ne.code, 'EEXIST');
  t.match(ne.message, /1 of 2 entries were written/);
  t.equal(h.delete(key(1000)), true, 'entries before the failing one were written');
  t.equal(h.deleteBatch([key(0), key(1), key(999), key(2)]), 3, 'absent keys are skipped');
  t.equal([...h.keys()].length, 297);
  t.equal(h.deleteBatch(got.map(([k]) => k)), 297);
  t.same(h.lookupBatch(), []);

  const a = obj.map('array_map');
  a.updateBatch([[key(0), val64(5n)], [key(15), val64(6n)]]);
  const arr = a.typed({ key: u32, value: u64 }).lookupBatch();
  t.equal(arr.length, 16);
  t.same(arr.filter(([, v]) => v !== 0n), [[0, 5n], [15, 6n]]);
  t.throws(() => a.deleteBatch([key(0)]), /array maps cannot delete/);
});

t.test('LRU hash evicts instead of failing when full', { skip: needsRoot }, async (t) => {
  const m = loaded(t).map('lru_map').typed({ key: u32, value: u32 });
  for (let i = 0; i < 100; i++) m.update(i, i * 2);
  const keys = [...m.keys()];
  t.ok(keys.length > 0 && keys.length <= 8 + possibleCpus() * 8, `holds a bounded number of entries (${keys.length})`);
  t.equal(m.lookup(99), 198, 'the newest entry is there');
  t.ok(m.delete(99));
  t.equal(m.lookup(99), undefined);
});

t.test('per-CPU maps: one value per possible CPU, padded to 8 bytes in the kernel layout', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const ncpu = possibleCpus();
  const ph = obj.map('percpu_hash');
  t.equal(ph.isPerCpu, true);
  t.equal(ph.valueSize, 4);
  t.equal(ph.perCpuStride, 8);
  t.equal(ph.valueBufferSize, 8 * ncpu);
  ph.updatePerCpu(key(1), Array.from({ length: ncpu }, (_, i) => u32.encode(100 + i)));
  t.same(ph.lookupPerCpu(key(1)).map((b) => u32.decode(b)), Array.from({ length: ncpu }, (_, i) => 100 + i));
  t.equal(ph.lookup(key(1))?.length, 8 * ncpu, 'raw lookup returns the kernel layout');
  t.throws(() => ph.lookupPerCpu(key(2)), { code: 'ENOENT' });
  t.throws(() => ph.update(key(2), Buffer.alloc(4)), /see updatePerCpu/);
  const typed = ph.typed({ key: u32, value: u32 });
  typed.update(5, 77);
  t.same(typed.lookupPerCpu(5), Array.from({ length: ncpu }, () => 77));
  t.same(new Map(ph.lookupBatch().map(([k, v]) => [u32.decode(k), v.length])), new Map([[1, 8 * ncpu], [5, 8 * ncpu]]));
  t.throws(() => obj.map('hash_map').lookupPerCpu(key(1)), /not a per-CPU map/);

  // A program run increments its CPU's slot: the per-CPU sum counts every run.
  const pa = obj.map('percpu_counts').typed({ key: u32, value: u64 });
  const prog = obj.program('xdp_pass');
  for (let i = 0; i < 5; i++) prog.testRun({ data: Buffer.alloc(64) });
  prog.testRun({ data: Buffer.alloc(64), repeat: 10 });
  t.equal(pa.lookupPerCpu(0).reduce((a, b) => a + b, 0n), 15n);
});

t.test('typed() checks codec sizes against the map', { skip: needsRoot }, async (t) => {
  const m = loaded(t).map('hash_map');
  t.throws(() => m.typed({ key: u64, value: u64 }), /key codec is 8 bytes/);
  t.throws(() => m.typed({ key: u32, value: u32 }), /value codec is 4 bytes/);
});

t.test('pin, reopen with fromPinned, unpin', { skip: needsRoot }, async (t) => {
  const { mountBpffs } = await import('ebpf-ts-loader');
  mountBpffs();
  const path = `/sys/fs/bpf/ebpfts-maptest-${process.pid}`;
  t.teardown(() => {
    try {
      BpfMap.fromPinned(path).unpin(path);
    } catch {
      // not pinned (any more)
    }
  });
  const obj = loaded(t);
  const m = obj.map('hash_map');
  m.update(key(42), val64(4242n));
  m.pin(path);
  t.equal(m.pinPath, path);
  const again = BpfMap.fromPinned(path);
  t.teardown(() => again.close());
  t.same([again.name, again.type, again.keySize, again.valueSize, again.maxEntries], ['hash_map', m.type, 4, 8, 1024]);
  t.same(again.lookup(key(42)), val64(4242n), 'same kernel map');
  again.update(key(43), val64(1n));
  t.same(m.lookup(key(43)), val64(1n));
  m.pin(path); // libbpf: pinning again at the same path is a no-op
  t.throws(() => again.pin(path), { code: 'EEXIST' });
  m.unpin();
  t.throws(() => BpfMap.fromPinned(path), /open pinned BPF map .* ENOENT/);
  t.same(again.lookup(key(42)), val64(4242n), 'an open fd keeps the map after unpinning');
  again.close();
  t.throws(() => again.lookup(key(42)), /closed/);
});

t.test('resize: a map takes the capacity set before load, and refuses it after', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('basic'));
  t.teardown(() => obj.close());
  const m = obj.map('hash_map');
  t.equal(m.maxEntries, 1024, 'the size the C definition declares');
  t.throws(() => m.resize(0), /not a positive u32/);
  m.resize(3);
  obj.load();
  t.equal(m.maxEntries, 3);
  for (let i = 0; i < 3; i++) m.update(key(i), val64(BigInt(i)));
  t.throws(() => m.update(key(3), val64(3n)), { code: 'E2BIG' }, 'the kernel map holds 3 entries');
  t.throws(() => m.resize(10), /resize before load/);
});
