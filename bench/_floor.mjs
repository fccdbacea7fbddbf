import { BpfObject } from 'ebpf-ts-loader';
const obj = BpfObject.open('/tmp/floor/floor.bpf.o'); obj.load();
const pkt = Buffer.alloc(14 + 20 + 32 + 1400); pkt.writeUInt16BE(0x0800, 12);
pkt[14] = 0x45; pkt[14 + 9] = 6; pkt.writeUInt16BE(20 + 32 + 1400, 16);
pkt.writeUInt32BE(0x0a000001, 26); pkt.writeUInt32BE(0x0a000002, 30); pkt.writeUInt16BE(40000, 34); pkt.writeUInt16BE(80, 36); pkt[34+12] = 0x80;
const k40 = Buffer.alloc(40); pkt.copy(k40, 0, 26, 30); pkt.copy(k40, 16, 30, 34); pkt.copy(k40, 32, 34, 38); k40.writeUInt32LE(4, 36);
const k12 = Buffer.alloc(12); pkt.copy(k12, 0, 26, 34); pkt.copy(k12, 8, 34, 38);
const v = Buffer.alloc(176);
obj.map('m40').update(k40, v); obj.map('h40').update(k40, v); obj.map('m12').update(k12, v);
const names = ['pass', 'parseonly', 'coarse', 'jiffies', 'lookup12', 'lookup40', 'hash40'];
const s = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < 9; r++) for (const n of names) { const x = obj.program(n).testRun({ data: pkt, repeat: 200000 }); if (x.retval !== 0) throw new Error(n + ' ' + x.retval); s[n].push(x.durationNs); }
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const n of names) console.log(n.padEnd(12), med(s[n]), (med(s[n]) / med(s.pass)).toFixed(2));
