import { Rewriter, SessionTable, TCP_ACK, buildTcpPacket, encodeTableMaps, plainRewrite, tuple, reverseTuple } from '@dysco/protocol';
import { DataPlane } from '@dysco/xdp';
import { rmSync } from 'node:fs';
const which = process.argv[2] || 'egress';
const pinRoot = `/sys/fs/bpf/dysco-prof-${process.pid}`;
const dp = DataPlane.open({ pinRoot });
process.on('exit', () => { dp.close(); rmSync(pinRoot, { recursive: true, force: true }); });
const eth = (pkt) => { const b = Buffer.alloc(14 + pkt.length); b.writeUInt16BE(0x0800, 12); b.set(pkt, 14); return b; };
const entry = (key, rw) => ({ key, old: rw, sndHigh: 1000, packets: 0, bytes: 0, lastSeen: 0 });
const ts = [{ kind: 'timestamps', tsval: 1, tsecr: 2 }];
const payload = new Uint8Array(1400).fill(7);
const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
const sub = tuple('10.0.0.1', 61000, '10.0.0.10', 61000);
const t = new SessionTable();
t.installEgress(entry(session, plainRewrite(sub)));
t.installEgress(entry(sub, plainRewrite(session)));
t.installIngress({ key: reverseTuple(sub), rewrite: plainRewrite(reverseTuple(session)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
t.installIngress({ key: reverseTuple(session), rewrite: plainRewrite(reverseTuple(sub)), path: 'old', egressKey: session, packets: 0, bytes: 0, lastSeen: 0 });
dp.install(encodeTableMaps(t));
const pkt = which === 'egress' ? buildTcpPacket({ tuple: session, seq: 2000, ack: 4000, flags: TCP_ACK, window: 1000, options: ts, payload })
  : buildTcpPacket({ tuple: reverseTuple(sub), seq: 4000, ack: 2000, flags: TCP_ACK, window: 1000, options: ts, payload });
const prog = dp.program(which === 'egress' ? 'tcEgress' : which === 'pass' ? 'passTc' : 'tcIngress');
const end = Date.now() + Number(process.argv[3] || 6000);
let n = 0, tot = 0;
while (Date.now() < end) { const r = prog.testRun({ data: eth(pkt), repeat: 1000000 }); tot += r.durationNs; n++; }
console.log(which, 'ns', tot / n);
