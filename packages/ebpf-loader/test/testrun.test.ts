import t from 'tap';
import { BpfObject, RingBuffer, TcAction, XdpAction, TestRunFlags, u32 } from 'ebpf-ts-loader';
import { compileBpf, needsRoot } from './helpers/env.js';

function frame(len = 64): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = i;
  return b;
}

function loaded(t: { teardown(fn: () => void): void }): BpfObject {
  const obj = BpfObject.open(compileBpf('basic'));
  obj.load();
  t.teardown(() => obj.close());
  return obj;
}

t.test('XDP test run: verdict and rewritten bytes', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const swap = obj.program('xdp_swap_mac');
  const input = frame();
  const r = swap.testRun({ data: input });
  t.equal(r.retval, XdpAction.TX);
  t.same([...r.data.subarray(0, 12)], [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5], 'MACs swapped');
  t.same(r.data.subarray(12), input.subarray(12), 'rest untouched');
  t.same(input, frame(), 'input buffer not modified');
  t.type(r.durationNs, 'number');
  const runt = t.throws(() => swap.testRun({ data: frame(10) })) as Error;
  t.match(runt, { code: 'EINVAL' });
  t.match(runt.message, /at least an Ethernet header/, 'the kernel refuses runts; the error says why');
  t.equal(obj.program('xdp_pass').testRun({ data: frame() }).retval, XdpAction.PASS);
  const e = t.throws(() => swap.testRun({ data: frame(), dataOutSize: 8 }));
  t.match(e, { code: 'ENOSPC' });
  t.match((e as Error).message, /packet out 64 bytes \(dataOutSize 8\)/);
});

t.test('XDP context in/out (struct xdp_md)', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const ctx = Buffer.alloc(24); // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  ctx.writeUInt32LE(64, 4); // data_end = packet length
  const r = obj.program('xdp_pass').testRun({ data: frame(), ctxIn: ctx });
  t.equal(r.retval, XdpAction.PASS);
  t.equal(r.ctxOut?.length, 24);
  t.equal(r.ctxOut?.readUInt32LE(4), 64);
});

t.test('TC test run: verdicts and rewritten bytes', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const prog = obj.program('tc_rewrite');
  const ok = prog.testRun({ data: frame() });
  t.equal(ok.retval, TcAction.OK);
  t.equal(ok.data[13], 0xab, 'byte 13 rewritten');
  t.same(ok.data.subarray(14), frame().subarray(14));
  const shot = Buffer.from(frame());
  shot[0] = 0xff;
  t.equal(prog.testRun({ data: shot }).retval, TcAction.SHOT);
  const cs = prog.testRun({ data: frame(), flags: TestRunFlags.SKB_CHECKSUM_COMPLETE });
  t.equal(cs.retval, TcAction.OK, 'checksum-complete flag accepted');
  const skb = prog.testRun({ data: frame(), ctxIn: Buffer.alloc(192) });
  t.equal(skb.ctxOut?.length, 192, 'struct __sk_buff comes back');
});

t.test('ring buffer: records from test runs, consumed with consume() and poll()', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const got: Buffer[] = [];
  const rb = new RingBuffer(obj.map('events'), (d) => got.push(d));
  t.teardown(() => rb.close());
  t.ok(rb.epollFd() > 0);
  t.equal(rb.consume(), 0, 'empty at first');
  const emit = obj.program('xdp_emit');
  for (let i = 0; i < 3; i++) t.equal(emit.testRun({ data: frame(20 + i) }).retval, XdpAction.PASS);
  t.equal(rb.consume(), 3);
  t.same(got.map((b) => [b.length, b.readUInt32LE(0), b.readUInt32LE(4), [...b.subarray(8)]]), [
    [16, 20, 0, [0, 1, 2, 3, 4, 5, 6, 7]],
    [16, 21, 1, [0, 1, 2, 3, 4, 5, 6, 7]],
    [16, 22, 2, [0, 1, 2, 3, 4, 5, 6, 7]],
  ]);
  emit.testRun({ data: frame(30) });
  t.equal(rb.poll(100), 1);
  t.equal(got.at(-1)?.readUInt32LE(0), 30);
  t.equal(rb.poll(0), 0, 'nothing left');
  t.throws(() => new RingBuffer(obj.map('hash_map'), () => {}), /not RINGBUF/);
});

t.test('ring buffer: an exception in the callback stops consumption and propagates', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  let calls = 0;
  const rb = new RingBuffer(obj.map('events'), () => {
    calls++;
    if (calls === 1) throw new Error('boom');
  });
  t.teardown(() => rb.close());
  const emit = obj.program('xdp_emit');
  emit.testRun({ data: frame(20) });
  emit.testRun({ data: frame(20) });
  t.throws(() => rb.consume(), /boom/);
  t.equal(rb.consume(), 1, 'the record after the failing one is still delivered');
  t.equal(calls, 2);
  rb.close();
  t.throws(() => rb.consume(), /closed/);
});

t.test('ring buffer: start() delivers records from the event loop (epoll readiness and timer)', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const emit = obj.program('xdp_emit');
  for (const interval of [undefined, 5]) {
    const lens: number[] = [];
    let wake: () => void = () => {};
    const rb = new RingBuffer(obj.map('events'), (d) => {
      lens.push(d.readUInt32LE(0));
      if (lens.length === 2) wake();
    });
    const done = new Promise<void>((res) => { wake = res; });
    rb.start(interval);
    setTimeout(() => {
      emit.testRun({ data: frame(40) });
      emit.testRun({ data: frame(41) });
    }, 10);
    const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 3000).unref());
    t.not(await Promise.race([done, timeout]), 'timeout', `records arrived (${interval === undefined ? 'epoll' : 'timer'})`);
    t.same(lens, [40, 41]);
    rb.stop();
    rb.close();
  }
});

t.test('cost of a test run from JS (printed, not asserted)', { skip: needsRoot }, async (t) => {
  const obj = loaded(t);
  const prog = obj.program('xdp_pass');
  const data = frame();
  for (let i = 0; i < 1000; i++) prog.testRun({ data });
  const n = 20000;
  const t0 = process.hrtime.bigint();
  let kernelNs = 0;
  for (let i = 0; i < n; i++) kernelNs += prog.testRun({ data }).durationNs;
  const perCall = Number(process.hrtime.bigint() - t0) / n;
  const one = prog.testRun({ data, repeat: 100000 }).durationNs;
  const m = obj.map('hash_map');
  const k = u32.encode(1);
  const v = Buffer.alloc(8);
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) m.update(k, v);
  const perUpdate = Number(process.hrtime.bigint() - t1) / n;
  const t2 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) m.lookup(k);
  const perLookup = Number(process.hrtime.bigint() - t2) / n;
  t.comment(`testRun(repeat=1) from JS: ${perCall.toFixed(0)} ns per call (kernel-reported ${(kernelNs / n).toFixed(0)} ns); in-kernel per run with repeat=100000: ${one} ns`);
  t.comment(`map update: ${perUpdate.toFixed(0)} ns, lookup: ${perLookup.toFixed(0)} ns per call from JS`);
  t.ok(perCall > 0);
});
