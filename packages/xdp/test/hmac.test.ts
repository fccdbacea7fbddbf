/**
 * HMAC-SHA256 in the kernel (bpf/include/hmac.h) against node:crypto: a test
 * program (test/bpf/hmac-test.bpf.c), compiled here into a temp dir, takes
 * the key states from src/hmac-key.ts and a message, and returns the first
 * 16 bytes of the tag. RFC 4231's vectors, every length 0..512, and
 * generated secrets and messages. Runs: DYSCO_HMAC_RUNS (default 1000),
 * seed DYSCO_HMAC_SEED. The kernel part needs root and clang.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import t from 'tap';
import { HMAC_KEY_SIZE, HMAC_MSG_MAX, SHA256_IV, hmacKeyStates, hmacTag, sha256Compress } from '@dysco/xdp';
import { BpfObject } from 'ebpf-ts-loader';

const runs = Number(process.env.DYSCO_HMAC_RUNS ?? 1000);
const seed = process.env.DYSCO_HMAC_SEED === undefined ? undefined : Number(process.env.DYSCO_HMAC_SEED);

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** RFC 4231 section 4: keys, data and HMAC-SHA-256 (test case 5 gives only the first 128 bits). */
const RFC4231: Array<{ name: string; key: Buffer; data: Buffer; mac: string }> = [
  { name: '4.2', key: Buffer.alloc(20, 0x0b), data: Buffer.from('Hi There'),
    mac: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  { name: '4.3', key: Buffer.from('Jefe'), data: Buffer.from('what do ya want for nothing?'),
    mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' },
  { name: '4.4', key: Buffer.alloc(20, 0xaa), data: Buffer.alloc(50, 0xdd),
    mac: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe' },
  { name: '4.5', key: hex('0102030405060708090a0b0c0d0e0f10111213141516171819'), data: Buffer.alloc(50, 0xcd),
    mac: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b' },
  { name: '4.6', key: Buffer.alloc(20, 0x0c), data: Buffer.from('Test With Truncation'),
    mac: 'a3b6167473100ee06e0c796c2955552b' },
  { name: '4.7', key: Buffer.alloc(131, 0xaa), data: Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'),
    mac: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54' },
  { name: '4.8', key: Buffer.alloc(131, 0xaa),
    data: Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. ' +
      'The key needs to be hashed before being used by the HMAC algorithm.'),
    mac: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2' },
];

/** The tag from the key states alone, in TypeScript, the way the kernel computes it (checks the states). */
function tagFromStates(states: Buffer, msg: Buffer): Buffer {
  const words = (at: number) => Array.from({ length: 8 }, (_, i) => states.readUInt32LE(at + 4 * i));
  const finish = (state: ArrayLike<number>, data: Buffer): Uint32Array => {
    const total = 64 + data.length;
    const padded = Buffer.alloc(Math.ceil((data.length + 9) / 64) * 64);
    data.copy(padded);
    padded[data.length] = 0x80;
    padded.writeBigUInt64BE(BigInt(total * 8), padded.length - 8);
    let s: Uint32Array = Uint32Array.from(state);
    for (let o = 0; o < padded.length; o += 64) s = sha256Compress(s, padded.subarray(o, o + 64));
    return s;
  };
  const inner = Buffer.alloc(32);
  finish(words(0), msg).forEach((v, i) => inner.writeUInt32BE(v, 4 * i));
  const outer = Buffer.alloc(32);
  finish(words(32), inner).forEach((v, i) => outer.writeUInt32BE(v, 4 * i));
  return outer.subarray(0, 16);
}

const boundaryLengths = [0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 121, 127, 128, 129, 183, 184, 191, 192, 340];
const messageArb = fc.oneof(
  fc.constantFrom(...boundaryLengths).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  fc.uint8Array({ minLength: 0, maxLength: 340 }),
);
const secretArb = fc.uint8Array({ minLength: 16, maxLength: 100 });

t.test('user space: the compression function and the key states', async (t) => {
  const abc = Buffer.alloc(64);
  abc.write('abc');
  abc[3] = 0x80;
  abc[63] = 24;
  const digest = Buffer.alloc(32);
  sha256Compress(SHA256_IV, abc).forEach((v, i) => digest.writeUInt32BE(v, 4 * i));
  t.equal(digest.toString('hex'), createHash('sha256').update('abc').digest('hex'), 'SHA-256("abc") in one compression');
  for (const v of RFC4231) {
    t.equal(hmacTag(v.key, v.data).toString('hex'), v.mac.slice(0, 32), `RFC 4231 ${v.name} (node:crypto)`);
    t.equal(tagFromStates(hmacKeyStates(v.key), v.data).toString('hex'), v.mac.slice(0, 32), `RFC 4231 ${v.name} from the key states`);
  }
  t.equal(hmacKeyStates('Jefe').length, HMAC_KEY_SIZE);
  t.same(hmacKeyStates('Jefe'), hmacKeyStates(Buffer.from('Jefe')), 'a string secret is its UTF-8 bytes');
  fc.assert(
    fc.property(secretArb, messageArb, (secret, msg) => {
      const want = createHmac('sha256', secret).update(msg).digest().subarray(0, 16);
      if (!tagFromStates(hmacKeyStates(secret), Buffer.from(msg)).equals(want)) throw new Error('tag from the states differs');
    }),
    { numRuns: 200, ...(seed === undefined ? {} : { seed }) },
  );
});

function kernelSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (BPF test runs and maps)';
  if (spawnSync('sh', ['-c', 'command -v clang'], { stdio: 'ignore' }).status !== 0) return 'clang is not installed';
  return undefined;
}
const skip = kernelSkipReason();

// struct hmac_in and struct hmac_out of hmac-test.bpf.c
const IN = { key: 0, len: 64, mode: 68, msgOff: 72, expect: 80, msg: 96, size: 616 } as const;
const MODE = { tag: 0, verify: 1, none: 2, direct: 3 } as const;

t.test('kernel: hmac.h against node:crypto', skip ? { skip } : {}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-hmac-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = fileURLToPath(new URL('../test/bpf/hmac-test.bpf.c', import.meta.url));
  const objPath = join(dir, 'hmac-test.bpf.o');
  const arch = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout?.trim() || 'x86_64-linux-gnu';
  const cc = spawnSync('clang', ['-O2', '-g', '-target', 'bpfel', '-mcpu=v3', '-Wall', '-Werror', '-Wno-unused-function',
    `-I/usr/include/${arch}`, '-c', src, '-o', objPath], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`clang failed on hmac-test.bpf.c: ${cc.stderr}`);
  const obj = BpfObject.open(objPath);
  obj.load();
  t.teardown(() => obj.close());
  const prog = obj.program('hmac_test');
  const inMap = obj.map('hmac_in');
  const outMap = obj.map('hmac_out');
  t.equal(inMap.valueSize, IN.size, 'struct hmac_in as laid out here');
  const zero = Buffer.alloc(4);
  const packet = Buffer.alloc(64);
  const junk = Buffer.from(Array.from({ length: IN.size - IN.msg }, (_, i) => (i * 151 + 89) & 0xff));

  const run = (states: Buffer, msg: Uint8Array, opts: { mode?: number; msgOff?: number; expect?: Buffer; len?: number; repeat?: number } = {}) => {
    const v = Buffer.alloc(IN.size);
    states.copy(v, IN.key);
    v.writeUInt32LE(opts.len ?? msg.length, IN.len);
    v.writeUInt32LE(opts.mode ?? MODE.tag, IN.mode);
    v.writeUInt32LE(opts.msgOff ?? 0, IN.msgOff);
    opts.expect?.copy(v, IN.expect);
    junk.copy(v, IN.msg); // bytes around the message must not matter
    Buffer.from(msg).copy(v, IN.msg + (opts.msgOff ?? 0));
    inMap.update(zero, v);
    const r = prog.testRun({ data: packet, ...(opts.repeat ? { repeat: opts.repeat } : {}) });
    if (r.retval !== 2) throw new Error(`the test program returned ${r.retval}, not XDP_PASS`);
    const out = outMap.lookup(zero)!;
    return { rc: out.readInt32LE(0), tag: Buffer.from(out.subarray(8, 24)), ns: r.durationNs };
  };

  t.test('RFC 4231 test vectors', async (t) => {
    for (const v of RFC4231) {
      const r = run(hmacKeyStates(v.key), v.data);
      t.equal(r.rc, 0);
      t.equal(r.tag.toString('hex'), v.mac.slice(0, 32), `RFC 4231 ${v.name}`);
      const direct = run(hmacKeyStates(v.key), v.data, { mode: MODE.direct });
      t.equal(direct.tag.toString('hex'), v.mac.slice(0, 32), `RFC 4231 ${v.name}, message in place in an array map, tag on the stack`);
    }
  });

  t.test('every message length 0..512, keys of 20 and 131 bytes, message at offsets 0 and 8', async (t) => {
    const bytes = createHash('sha512').update('messages').digest();
    const long = Buffer.alloc(HMAC_MSG_MAX);
    for (let i = 0; i < long.length; i++) long[i] = bytes[i % 64]! ^ (i * 7);
    const bad: string[] = [];
    for (const secret of [Buffer.alloc(20, 0x0b), Buffer.alloc(131, 0xaa)]) {
      const states = hmacKeyStates(secret);
      for (let n = 0; n <= HMAC_MSG_MAX; n++) {
        const msg = long.subarray(0, n);
        const off = n % 2 === 0 ? 0 : 8;
        const r = run(states, msg, { msgOff: off });
        const want = hmacTag(secret, msg);
        if (r.rc !== 0 || !r.tag.equals(want)) bad.push(`key ${secret.length} len ${n} off ${off}: rc ${r.rc} ${r.tag.toString('hex')} != ${want.toString('hex')}`);
      }
    }
    t.same(bad.slice(0, 10), [], 'all 2 x 513 tags equal node:crypto');
  });

  t.test('generated secrets (16..100 bytes) and messages (0..340 bytes)', async (t) => {
    let cases = 0;
    fc.assert(
      fc.property(secretArb, messageArb, fc.constantFrom(0, 8), (secret, msg, off) => {
        const r = run(hmacKeyStates(secret), msg, { msgOff: off });
        const want = createHmac('sha256', secret).update(msg).digest().subarray(0, 16);
        cases++;
        if (r.rc !== 0) throw new Error(`rc ${r.rc}`);
        if (!r.tag.equals(want)) throw new Error(`kernel ${r.tag.toString('hex')} != node ${want.toString('hex')}`);
      }),
      { numRuns: runs, ...(seed === undefined ? {} : { seed }) },
    );
    t.ok(cases >= runs, `${cases} cases agree`);
  });

  t.test('verify: constant-time comparison of an expected tag', async (t) => {
    const secret = Buffer.from('a secret of more than sixteen bytes');
    const states = hmacKeyStates(secret);
    fc.assert(
      fc.property(messageArb, fc.nat(15), fc.integer({ min: 1, max: 255 }), (msg, at, flip) => {
        const good = hmacTag(secret, msg);
        const ok = run(states, msg, { mode: MODE.verify, expect: good });
        if (ok.rc !== 0 || !ok.tag.equals(good)) throw new Error(`the right tag was refused: rc ${ok.rc}`);
        const wrong = Buffer.from(good);
        wrong[at]! ^= flip;
        const no = run(states, msg, { mode: MODE.verify, expect: wrong });
        if (no.rc !== 1) throw new Error(`a wrong tag (byte ${at} ^ ${flip}) gave rc ${no.rc}`);
      }),
      { numRuns: 200, ...(seed === undefined ? {} : { seed }) },
    );
    t.pass('right tags accepted, tags wrong in any one byte refused');
  });

  t.test('a message longer than HMAC_MSG_MAX is refused', async (t) => {
    const states = hmacKeyStates('k');
    t.equal(run(states, Buffer.alloc(0), { len: HMAC_MSG_MAX + 1 }).rc, -1, 'tag: HMAC_EINVAL');
    t.equal(run(states, Buffer.alloc(0), { len: 0xffffffff, mode: MODE.verify }).rc, -1, 'verify: HMAC_EINVAL');
  });

  t.test('cost (not asserted)', async (t) => {
    const secret = Buffer.from('timing key');
    const states = hmacKeyStates(secret);
    const best = (msg: Buffer, mode: number) => {
      let ns = Infinity;
      for (let i = 0; i < 5; i++) ns = Math.min(ns, run(states, msg, { mode, repeat: 20000 }).ns);
      return ns;
    };
    const base = best(Buffer.alloc(100, 1), MODE.none);
    const lines: string[] = [];
    for (const n of [0, 55, 100, 340, 512]) {
      const ns = best(Buffer.alloc(n, 1), MODE.tag);
      lines.push(`${n} bytes (${Math.ceil((n + 9) / 64) + 1} compressions): ${ns} ns per program run, ${ns - base} ns per tag`);
    }
    t.comment(`test program without HMAC: ${base} ns per run (map lookups only); the tag adds a 520-byte copy`);
    for (const l of lines) t.comment(l);
    t.pass();
  });
});
