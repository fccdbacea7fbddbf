/**
 * A data plane whose load fails (here: the data plane's own source with one
 * more program that the verifier rejects) reports the verifier's reason and
 * leaves nothing behind: no pinned map, no pin directory it made.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DataPlane } from '@dysco/xdp';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();

/** Reads far past the end of a map value: the verifier must refuse it. */
const REJECTED = `
SEC("xdp")
int dysco_test_rejected(struct xdp_md *ctx)
{
	__u32 zero = 0;
	volatile char *v = bpf_map_lookup_elem(&dysco_split, &zero);
	return v ? v[100000] : XDP_PASS;
}
`;

t.test('a load the verifier refuses leaves no pin directory behind', skip ? { skip } : {}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dysco-reject-'));
  const pinRoot = `/sys/fs/bpf/dysco-reject-${process.pid}`;
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  });
  const bpfDir = fileURLToPath(new URL('../bpf/', import.meta.url));
  const src = join(dir, 'rejected.bpf.c');
  writeFileSync(src, `${readFileSync(join(bpfDir, 'dysco.bpf.c'), 'utf8')}\n${REJECTED}`);
  const obj = join(dir, 'rejected.bpf.o');
  const cc = spawnSync('clang', ['-O2', '-g', '-target', 'bpfel', '-mcpu=v3', '-I/usr/include/x86_64-linux-gnu', `-I${join(bpfDir, 'include')}`, `-I${bpfDir}`, '-c', src, '-o', obj], { encoding: 'utf8' });
  t.equal(cc.status, 0, `the rejected variant compiles ${cc.stderr}`);
  t.notOk(existsSync(pinRoot), 'no pin directory before');
  t.throws(() => DataPlane.open({ pinRoot, object: obj, maxSessions: 4096 }), /dysco_test_rejected[\s\S]*verifier rejected it/, 'the load fails and names the program the verifier refused');
  t.notOk(existsSync(pinRoot), 'and leaves no pin directory behind');
});

t.test('maps pinned by another build are refused with an explanation, and left in place', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-oldpin-${process.pid}`;
  t.teardown(() => rmSync(pinRoot, { recursive: true, force: true }));
  // an egress map of an older record layout (168-byte values), as an agent of that build left it
  const old = spawnSync('sh', ['-c', `mkdir -p ${pinRoot} && bpftool map create ${pinRoot}/dysco_egress type lru_hash key 40 value 168 entries 32 name dysco_egress`], { encoding: 'utf8' });
  t.equal(old.status, 0, `an old-layout map is pinned ${old.stderr}`);
  t.throws(() => DataPlane.open({ pinRoot, maxSessions: 16 }), /the map pinned at .*dysco_egress does not fit this build of the data plane.*Stop that agent with a clean shutdown, or remove/s, 'the error names the map and what to do');
  t.ok(existsSync(`${pinRoot}/dysco_egress`), 'the pinned map (and the sessions it may hold) is left alone');
});
