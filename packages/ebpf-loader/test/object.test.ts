import t from 'tap';
import { BpfError, BpfObject, ProgType, MapType } from 'ebpf-ts-loader';
import { compileBpf, needsRoot } from './helpers/env.js';

t.test('open lists programs and maps before load; fds need load()', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('basic'));
  t.teardown(() => obj.close());
  t.same(obj.programs().map((p) => p.name).sort(), ['tc_rewrite', 'xdp_emit', 'xdp_pass', 'xdp_swap_mac']);
  t.equal(obj.program('xdp_pass').type, ProgType.XDP);
  t.equal(obj.program('tc_rewrite').type, ProgType.SCHED_CLS);
  t.equal(obj.program('tc_rewrite').sectionName, 'tc');
  const hash = obj.map('hash_map');
  t.same([hash.type, hash.keySize, hash.valueSize, hash.maxEntries], [MapType.HASH, 4, 8, 1024]);
  t.equal(obj.loaded, false);
  t.throws(() => obj.program('xdp_pass').fd, /not loaded yet: call load\(\) first/);
  t.throws(() => hash.fd, /not loaded yet/);
  obj.load();
  t.equal(obj.loaded, true);
  t.ok(obj.program('xdp_pass').fd > 0);
  t.ok(hash.fd > 0);
});

t.test('unknown program and map names give errors listing what exists', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('basic'));
  t.teardown(() => obj.close());
  const pe = t.throws(() => obj.program('xdp_nope')) as BpfError;
  t.ok(pe instanceof BpfError);
  t.equal(pe.code, 'ENOENT');
  t.match(pe.message, /find program 'xdp_nope' in .*basic\.bpf\.o failed: no such program/);
  t.match(pe.message, /available programs: .*xdp_pass \(xdp\).*tc_rewrite \(tc\)/);
  const me = t.throws(() => obj.map('nope_map')) as BpfError;
  t.match(me.message, /available maps: .*hash_map.*lru_map/);
});

t.test('a missing object file is a BpfError naming the path', { skip: needsRoot }, async (t) => {
  const e = t.throws(() => BpfObject.open('/nonexistent/x.bpf.o')) as BpfError;
  t.ok(e instanceof BpfError);
  t.equal(e.code, 'ENOENT');
  t.match(e.message, /open BPF object \/nonexistent\/x\.bpf\.o failed: ENOENT/);
  t.match(e.message, /libbpf/);
});

t.test('a program the verifier rejects: BpfError naming it, with the verifier log', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('bad'));
  t.teardown(() => obj.close());
  const e = t.throws(() => obj.load()) as BpfError;
  t.ok(e instanceof BpfError, 'BpfError');
  t.equal(e.code, 'EACCES');
  t.equal(e.errno, 13);
  t.match(e.op, /load BPF program 'xdp_unchecked' \(section xdp\)/);
  t.match(e.message, /the verifier rejected it/);
  t.type(e.verifierLog, 'string');
  t.match(e.verifierLog ?? '', /invalid access to packet/);
  t.match(e.message, /invalid access to packet/, 'message quotes the log');
  t.notMatch(e.message, /xdp_fine/, 'the accepted program is not blamed');
  t.throws(() => obj.program('xdp_fine').fd, /not loaded/, 'nothing stays loaded');
});

t.test('logLevel keeps each program\'s verifier log on success', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('basic'));
  t.teardown(() => obj.close());
  obj.load({ logLevel: 1 });
  t.match(obj.program('xdp_pass').verifierLog ?? '', /processed \d+ insns/);
  t.match(obj.program('tc_rewrite').verifierLog ?? '', /processed \d+ insns/);
});

t.test('close() invalidates programs and maps and is idempotent', { skip: needsRoot }, async (t) => {
  const obj = BpfObject.open(compileBpf('basic'));
  obj.load();
  const prog = obj.program('xdp_pass');
  const map = obj.map('hash_map');
  obj.close();
  obj.close();
  t.throws(() => prog.fd, /was closed/);
  t.throws(() => map.lookup(Buffer.alloc(4)), /was closed/);
  t.throws(() => obj.load(), /closed/);
});
