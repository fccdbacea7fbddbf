import t from 'tap';
import { formatTuple } from '@dysco/protocol';
import { decodeTcp } from '../dist/packet.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** A TCP header (20 bytes + options) with the given fields. */
function tcp(o: { sport: number; dport: number; seq: number; flags: number; options?: number[] }): number[] {
  const opts = o.options ?? [];
  const doff = (20 + opts.length) / 4;
  const h = [o.sport >> 8, o.sport & 0xff, o.dport >> 8, o.dport & 0xff, (o.seq >>> 24) & 0xff, (o.seq >>> 16) & 0xff, (o.seq >>> 8) & 0xff, o.seq & 0xff, 0, 0, 0, 1, doff << 4, o.flags, 0xff, 0xff, 0, 0, 0, 0];
  return [...h, ...opts];
}

function ipv4(src: number[], dst: number[], l4: number[], payload: Uint8Array, o: { proto?: number; frag?: number } = {}): number[] {
  const total = 20 + l4.length + payload.length;
  return [0x45, 0, total >> 8, total & 0xff, 0, 1, (o.frag ?? 0x4000) >> 8, (o.frag ?? 0x4000) & 0xff, 64, o.proto ?? 6, 0, 0, ...src, ...dst, ...l4, ...payload];
}

const eth = (type: number, body: number[], vlan = false) => Uint8Array.from([...Array(12).fill(0xaa), ...(vlan ? [0x81, 0x00, 0, 5] : []), type >> 8, type & 0xff, ...body]);

t.test('Ethernet, IPv4, TCP with options; Ethernet padding is not payload', async (t) => {
  const payload = enc('hi');
  // a 60-byte minimum frame: 12 bytes of padding after the packet
  const frame = new Uint8Array([...eth(0x0800, ipv4([10, 0, 0, 1], [10, 0, 0, 2], tcp({ sport: 40000, dport: 80, seq: 0xfffffff0, flags: 0x18, options: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2] }), payload)), ...Array(12).fill(0)]);
  const s = decodeTcp(frame, frame.length, 'ETHERNET')!;
  t.equal(formatTuple(s.tuple), '10.0.0.1:40000>10.0.0.2:80');
  t.equal(s.seq, 0xfffffff0);
  t.same({ syn: s.syn, fin: s.fin, rst: s.rst }, { syn: false, fin: false, rst: false });
  t.equal(new TextDecoder().decode(s.payload), 'hi');
  t.equal(s.wireLength, 2);
});

t.test('802.1Q tag, SYN and FIN flags', async (t) => {
  const frame = eth(0x0800, ipv4([10, 0, 0, 1], [10, 0, 0, 2], tcp({ sport: 1, dport: 2, seq: 7, flags: 0x03 }), new Uint8Array(0)), true);
  const s = decodeTcp(frame, frame.length, 'ETHERNET')!;
  t.ok(s.syn && s.fin);
  t.equal(s.payload.length, 0);
});

t.test('a capture cut short: the wire length says how much is missing', async (t) => {
  const frame = eth(0x0800, ipv4([10, 0, 0, 1], [10, 0, 0, 2], tcp({ sport: 1, dport: 2, seq: 7, flags: 0x10 }), enc('0123456789')));
  const s = decodeTcp(frame, frame.length - 4, 'ETHERNET')!;
  t.equal(s.payload.length, 6);
  t.equal(s.wireLength, 10);
  t.equal(decodeTcp(frame, 14 + 20 + 10, 'ETHERNET'), undefined, 'a TCP header cut short is not decoded');
});

t.test('IPv6, through a hop-by-hop options header', async (t) => {
  const l4 = tcp({ sport: 5000, dport: 443, seq: 1, flags: 0x10 });
  const payload = enc('abc');
  const hbh = [6, 0, 1, 4, 0, 0, 0, 0]; // next: TCP, 8 bytes, PadN
  const plen = hbh.length + l4.length + payload.length;
  const src = [0xfd, 0, ...Array(13).fill(0), 1];
  const dst = [0xfd, 0, ...Array(13).fill(0), 2];
  const body = [0x60, 0, 0, 0, plen >> 8, plen & 0xff, 0, 64, ...src, ...dst, ...hbh, ...l4, ...payload];
  const s = decodeTcp(eth(0x86dd, body), 14 + body.length, 'ETHERNET')!;
  t.equal(formatTuple(s.tuple), '[fd00::1]:5000>[fd00::2]:443');
  t.equal(new TextDecoder().decode(s.payload), 'abc');
});

t.test('raw IP and Linux cooked captures', async (t) => {
  const pkt = ipv4([10, 0, 0, 1], [10, 0, 0, 2], tcp({ sport: 1, dport: 2, seq: 3, flags: 0x10 }), enc('x'));
  t.equal(decodeTcp(Uint8Array.from(pkt), pkt.length, 'RAW')?.payload.length, 1);
  const sll = Uint8Array.from([0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00, ...pkt]);
  t.equal(decodeTcp(sll, sll.length, 'LINKTYPE_LINUX_SLL')?.seq, 3);
});

t.test('not decoded: other protocols, later fragments, ARP', async (t) => {
  const udp = eth(0x0800, ipv4([10, 0, 0, 1], [10, 0, 0, 2], [0, 1, 0, 2, 0, 8, 0, 0], new Uint8Array(0), { proto: 17 }));
  t.equal(decodeTcp(udp, udp.length, 'ETHERNET'), undefined);
  const frag = eth(0x0800, ipv4([10, 0, 0, 1], [10, 0, 0, 2], tcp({ sport: 1, dport: 2, seq: 3, flags: 0x10 }), enc('x'), { frag: 0x0010 }));
  t.equal(decodeTcp(frag, frag.length, 'ETHERNET'), undefined);
  const arp = eth(0x0806, Array(28).fill(0));
  t.equal(decodeTcp(arp, arp.length, 'ETHERNET'), undefined);
});
