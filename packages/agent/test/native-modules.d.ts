/**
 * The parts of the two native test dependencies the wire tests use: raw
 * sockets to put hand-made packets on the wire (raw-socket) and libpcap
 * captures to watch it (cap). Neither package ships type declarations.
 */

declare module 'raw-socket' {
  import type { EventEmitter } from 'node:events';

  export interface RawSocket extends EventEmitter {
    readonly recvPaused: boolean;
    readonly sendPaused: boolean;
    send(buffer: Buffer, offset: number, length: number, address: string, beforeCallback: (() => void) | undefined, afterCallback: (error: Error | null, bytes: number) => void): RawSocket;
    setOption(level: number, option: number, value: number): void;
    pauseRecv(): RawSocket;
    resumeRecv(): RawSocket;
    close(): RawSocket;
  }

  export interface CreateOptions {
    addressFamily?: number;
    protocol?: number;
    bufferSize?: number;
    generateChecksums?: boolean;
    checksumOffset?: number;
  }

  const raw: {
    createSocket(options?: CreateOptions): RawSocket;
    readonly AddressFamily: { readonly IPv4: number; readonly IPv6: number };
    readonly Protocol: { readonly None: number; readonly ICMP: number; readonly TCP: number; readonly UDP: number };
    readonly SocketLevel: { readonly SOL_SOCKET: number; readonly IPPROTO_IP: number; readonly IPPROTO_IPV6: number };
    readonly SocketOption: { readonly IP_HDRINCL: number; readonly SO_BINDTODEVICE: number; readonly SO_SNDBUF: number };
  };
  export default raw;
}

declare module 'cap' {
  import type { EventEmitter } from 'node:events';

  export interface CapSession extends EventEmitter {
    /** Returns the link type, e.g. 'ETHERNET'. */
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    close(): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
  }

  interface Decoded<I> {
    readonly info: I;
    readonly offset: number;
    readonly hdrlen?: number;
  }

  const cap: {
    readonly Cap: {
      new (): CapSession;
      findDevice(ip?: string): string | undefined;
      deviceList(): { name: string; addresses: { addr: string }[] }[];
    };
    readonly decoders: {
      Ethernet(b: Buffer, offset?: number): Decoded<{ dstmac: string; srcmac: string; type: number | undefined }>;
      IPV4(b: Buffer, offset?: number): Decoded<{ hdrlen: number; totallen: number; protocol: number; srcaddr: string; dstaddr: string; ttl: number }> & { hdrlen: number };
      TCP(b: Buffer, offset?: number): Decoded<{ srcport: number; dstport: number; seqno: number; ackno: number | undefined; flags: number; window: number }> & { hdrlen: number };
      readonly PROTOCOL: { readonly ETHERNET: Record<string, number>; readonly IP: Record<string, number> };
    };
  };
  export default cap;
}
