/**
 * Captures the TCP packets one interface of the namespace it runs in sends
 * and receives (libpcap, through cap), and prints their IPv4 and TCP
 * headers as JSON lines while it runs.
 *
 *   node capture-child.js IFNAME [SECONDS]
 *
 * Prints `ready` once the capture is open, then one line per packet:
 * `{"t": ms since the epoch, "out": sent by this interface, "src", "sport",
 * "dst", "dport", "flags": TCP flags, "seq", "ack", "len": TCP payload
 * bytes, "head": the first 4 payload bytes in hex (SYNs only)}`. Stops after SECONDS, or at
 * SIGTERM or SIGINT, and prints `done N`.
 *
 * Only frames to or from the interface's own MAC address are kept: the
 * capture is promiscuous, and a bridge may flood another host's frame to
 * every port before it has learnt where that host is.
 */
import { networkInterfaces } from 'node:os';
import cap from 'cap';

const ifname = process.argv[2] ?? 'eth0';
const seconds = Number(process.argv[3] ?? 0);
const mac = networkInterfaces()[ifname]?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac;
if (!mac) {
  process.stderr.write(`no MAC address on ${ifname}\n`);
  process.exit(1);
}

const c = new cap.Cap();
const buf = Buffer.alloc(70_000);
const linkType = c.open(ifname, `tcp and ether host ${mac}`, 16 * 1024 * 1024, buf);
if (linkType !== 'ETHERNET') {
  process.stderr.write(`${ifname}: link type ${linkType}, not Ethernet\n`);
  process.exit(1);
}

const { decoders } = cap;
let n = 0;
c.on('packet', (nbytes: number) => {
  const eth = decoders.Ethernet(buf);
  if (eth.info.type !== decoders.PROTOCOL.ETHERNET.IPV4) return;
  const ip = decoders.IPV4(buf, eth.offset);
  if (ip.info.protocol !== decoders.PROTOCOL.IP.TCP) return;
  const tcp = decoders.TCP(buf, ip.offset);
  const len = ip.info.totallen - ip.hdrlen - tcp.hdrlen;
  const syn = (tcp.info.flags & 0x02) !== 0;
  const headEnd = Math.min(tcp.offset + 4, nbytes);
  n++;
  process.stdout.write(
    `${JSON.stringify({
      t: Date.now(),
      out: eth.info.srcmac === mac,
      src: ip.info.srcaddr,
      sport: tcp.info.srcport,
      dst: ip.info.dstaddr,
      dport: tcp.info.dstport,
      flags: tcp.info.flags,
      seq: tcp.info.seqno,
      ack: tcp.info.ackno ?? 0,
      len,
      ...(syn && len > 0 ? { head: buf.toString('hex', tcp.offset, headEnd) } : {}),
    })}\n`,
  );
});

const stop = () => {
  c.close();
  process.stdout.write(`done ${n}\n`);
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
if (seconds > 0) setTimeout(stop, seconds * 1000);
process.stdout.write('ready\n');
