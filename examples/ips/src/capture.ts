/**
 * Packet capture with libpcap, through the `cap` binding. The binding
 * copies each captured packet into one buffer and emits `packet`; the
 * segment handed on is only valid during the call.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Log } from './log.js';
import { type LinkType, type TcpSegment, decodeTcp } from './packet.js';

interface CapHandle extends EventEmitter {
  open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
  close(): void;
}
interface CapModule {
  Cap: {
    new (): CapHandle;
    findDevice(ip?: string): string | undefined;
    deviceList(): { name: string; addresses: { addr: string }[] }[];
  };
}

function loadCap(): CapModule {
  try {
    return createRequire(import.meta.url)('cap') as CapModule;
  } catch (e) {
    throw new Error(`cannot load the packet capture binding 'cap' (npm install; it needs libpcap-dev to build): ${(e as Error).message}`);
  }
}

export interface CaptureStats {
  /** Packets libpcap handed over. */
  packets: number;
  /** TCP segments decoded from them. */
  segments: number;
  /** Segments whose payload the capture cut short. */
  truncated: number;
}

export interface CaptureOptions {
  /** Interface name. */
  readonly device: string;
  /** A pcap-filter expression. */
  readonly filter: string;
  /** libpcap's buffer, in bytes. */
  readonly bufferBytes: number;
  readonly onSegment: (s: TcpSegment) => void;
}

const LINK_TYPES: readonly string[] = ['ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW'] satisfies LinkType[];

export class Capture {
  readonly stats: CaptureStats = { packets: 0, segments: 0, truncated: 0 };
  readonly linkType: LinkType;
  private readonly handle: CapHandle;
  private closed = false;

  private constructor(o: CaptureOptions) {
    const { Cap } = loadCap();
    const handle = new Cap();
    // libpcap's snapshot length is 65535: the buffer holds any packet it hands over
    const buffer = Buffer.alloc(65536);
    let link: string;
    try {
      link = handle.open(o.device, o.filter, o.bufferBytes, buffer);
    } catch (e) {
      throw new Error(`cannot capture on ${o.device}: ${(e as Error).message}`);
    }
    if (!LINK_TYPES.includes(link)) {
      handle.close();
      throw new Error(`cannot capture on ${o.device}: link type ${link} is not supported (${LINK_TYPES.join(', ')})`);
    }
    this.linkType = link as LinkType;
    this.handle = handle;
    handle.on('packet', (nbytes: number) => {
      this.stats.packets++;
      const seg = decodeTcp(buffer, nbytes, this.linkType);
      if (!seg) return;
      this.stats.segments++;
      if (seg.payload.length < seg.wireLength) this.stats.truncated++;
      o.onSegment(seg);
    });
  }

  static open(o: CaptureOptions): Capture {
    return new Capture(o);
  }

  /**
   * What a box's engine reads: the TCP packets arriving at the box's
   * `address` on `device` (the subsessions from both of its neighbours
   * carry that address as their destination), handed to
   * `engine.onSegment`. The binding calls from native code, where an
   * exception would end the process: one the engine throws is logged.
   */
  static forEngine(o: { device: string; address: string; bufferBytes: number; engine: { onSegment(s: TcpSegment): void }; log: Log }): Capture {
    return new Capture({
      device: o.device,
      filter: `tcp and dst host ${o.address}`,
      bufferBytes: o.bufferBytes,
      onSegment: (s) => {
        try {
          o.engine.onSegment(s);
        } catch (e) {
          o.log.error('internal error on a packet', { error: (e as Error).message, stack: (e as Error).stack });
        }
      },
    });
  }

  /** Why packets cannot be captured here (the binding does not load), or undefined when they can. */
  static unavailable(): string | undefined {
    try {
      loadCap();
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** The interface that holds `address`, if any. */
  static deviceOf(address: string): string | undefined {
    return loadCap().Cap.findDevice(address);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}
