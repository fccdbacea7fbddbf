/**
 * Puts hand-made IPv4 packets on the wire of the namespace it runs in,
 * through a raw socket that takes the IP header from the packet (so the
 * source address and every header field are whatever the test built).
 *
 *   node inject-child.js PACKETS.json
 *
 * PACKETS.json: `{ "gapMs": N, "packets": [{ "label": "...", "to": "10.77.0.2", "hex": "4500..." }] }`.
 * Sends them in order, `gapMs` apart, prints one line `sent LABEL BYTES` per
 * packet and `done N` at the end; exits 1 on the first error.
 */
import { readFileSync } from 'node:fs';
import raw from 'raw-socket';

interface Spec {
  readonly gapMs?: number;
  readonly packets: readonly { readonly label: string; readonly to: string; readonly hex: string }[];
}

const IPPROTO_RAW = 255;

const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Spec;
// IPPROTO_RAW sends only (it receives nothing) and implies a header supplied by the caller; said explicitly anyway
const sock = raw.createSocket({ protocol: IPPROTO_RAW });
sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
sock.on('error', (e: Error) => {
  process.stderr.write(`raw socket: ${e.message}\n`);
  process.exit(1);
});

const send = (b: Buffer, to: string) =>
  new Promise<number>((resolve, reject) => sock.send(b, 0, b.length, to, undefined, (err, bytes) => (err ? reject(err) : resolve(bytes))));

let n = 0;
for (const p of spec.packets) {
  const b = Buffer.from(p.hex, 'hex');
  const bytes = await send(b, p.to);
  if (bytes !== b.length) throw new Error(`${p.label}: sent ${bytes} of ${b.length} bytes`);
  process.stdout.write(`sent ${p.label} ${bytes}\n`);
  n++;
  if (spec.gapMs) await new Promise((r) => setTimeout(r, spec.gapMs));
}
sock.close();
process.stdout.write(`done ${n}\n`);
