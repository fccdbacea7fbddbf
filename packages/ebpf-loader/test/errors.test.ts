import t from 'tap';
import fc from 'fast-check';
import { BpfError, errnoName, ifindex, VERIFIER_LOG_MESSAGE_LINES } from 'ebpf-ts-loader';

t.test('BpfError carries errno, code, op and a readable message', async (t) => {
  const e = new BpfError({ errno: -2, op: 'open pinned BPF map /sys/fs/bpf/x', details: ['nothing is pinned there'] });
  t.equal(e.errno, 2);
  t.equal(e.code, 'ENOENT');
  t.equal(e.op, 'open pinned BPF map /sys/fs/bpf/x');
  t.match(e.message, /^open pinned BPF map \/sys\/fs\/bpf\/x failed: ENOENT \(No such file or directory\)\nnothing is pinned there$/);
  t.equal(e.verifierLog, undefined);
  t.ok(e instanceof Error);
});

t.test('verifier log: message keeps the last lines, property keeps all', async (t) => {
  const lines = Array.from({ length: 250 }, (_, i) => `line ${i}`);
  const e = new BpfError({ errno: 13, op: 'load BPF program p', verifierLog: `${lines.join('\n')}\n` });
  t.equal(e.verifierLog, `${lines.join('\n')}\n`);
  t.match(e.message, `last ${VERIFIER_LOG_MESSAGE_LINES} of 250 lines`);
  t.match(e.message, /line 249$/);
  t.notMatch(e.message, /line 149\n/);
  t.match(e.message, /line 150\n/);
});

t.test('errno names cover libbpf codes', async (t) => {
  t.equal(errnoName(13), 'EACCES');
  t.equal(errnoName(-22), 'EINVAL');
  t.equal(errnoName(524), 'ENOTSUPP');
  t.equal(errnoName(100000), 'E100000');
});

t.test('BpfError message always states op and code', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.string({ minLength: 1 }), (errno, op) => {
    const e = new BpfError({ errno, op });
    return e.message.startsWith(`${op} failed: `) && e.message.includes(e.code) && e.errno === errno;
  }));
});

t.test('ifindex resolves lo and names an unknown interface', async (t) => {
  t.equal(ifindex('lo'), 1);
  const err = t.throws(() => ifindex('nosuchif0')) as BpfError;
  t.equal(err.code, 'ENODEV');
  t.match(err.message, /nosuchif0/);
  t.throws(() => ifindex('x'.repeat(16)), /1-15 bytes/);
});
