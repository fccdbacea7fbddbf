import koffi from 'koffi';

/**
 * What splicing needs to know of a proxy's own TCP sockets, read from the
 * kernel with getsockopt and ioctl on the socket's descriptor: the send
 * sequence (everything written), the receive sequence (everything the
 * application read), the window scale each side announced, and whether
 * timestamps are on. The sequence numbers are only readable in repair mode
 * (CAP_NET_ADMIN), which this module enters and leaves around the reads;
 * `closeSilently` closes a socket in repair mode, so that it sends nothing.
 */

const libc = koffi.load('libc.so.6');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)') as (fd: number, level: number, name: number, value: Buffer, len: number) => number;
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)') as (fd: number, level: number, name: number, value: Buffer, len: number[]) => number;
const ioctl = libc.func('int ioctl(int fd, unsigned long request, _Out_ int *value)') as (fd: number, request: number, value: number[]) => number;
const strerror = libc.func('const char *strerror(int errnum)') as (e: number) => string;

const SOL_TCP = 6;
const TCP_INFO = 11;
const TCP_REPAIR = 19;
const TCP_REPAIR_QUEUE = 20;
const TCP_QUEUE_SEQ = 21;
const TCP_RECV_QUEUE = 1;
const TCP_SEND_QUEUE = 2;
const TCP_REPAIR_OFF_NO_WP = -1;
const FIONREAD = 0x541b;
const TCPI_OPT_TIMESTAMPS = 1;
const TCPI_OPT_WSCALE = 4;

export class TcpStateError extends Error {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
    this.name = 'TcpStateError';
  }
}

export interface TcpState {
  /** Sequence number of the next byte the application writes (write_seq). */
  readonly writeSeq: number;
  /** Sequence number of the next byte the application reads (rcv_nxt minus what waits unread). */
  readonly readSeq: number;
  /** Window scale the peer announced (its windows are shifted by it) and the one this end announced. */
  readonly peerWscale: number;
  readonly ownWscale: number;
  readonly timestamps: boolean;
}

function fail(what: string): never {
  const e = koffi.errno();
  throw new TcpStateError(`${what} failed: ${strerror(e)}${e === 1 ? ' (needs CAP_NET_ADMIN)' : ''}`, e);
}

function setInt(fd: number, name: number, v: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  if (setsockopt(fd, SOL_TCP, name, b, 4) !== 0) fail(what);
}

function getU32(fd: number, name: number, what: string): number {
  const b = Buffer.alloc(4);
  if (getsockopt(fd, SOL_TCP, name, b, [4]) !== 0) fail(what);
  return b.readUInt32LE(0);
}

/** The descriptor of a connected net.Socket. */
export function socketFd(sock: unknown): number {
  const fd = (sock as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new TcpStateError('the socket has no descriptor (not connected, or already closed)');
  return fd;
}

/** Reads a socket's state (see {@link TcpState}). Repair mode is on only for the duration of the call. */
export function readTcpState(fd: number): TcpState {
  const info = Buffer.alloc(232);
  if (getsockopt(fd, SOL_TCP, TCP_INFO, info, [info.length]) !== 0) fail('TCP_INFO');
  if (info[0] !== 1) throw new TcpStateError(`the connection is not established (state ${info[0]})`);
  const options = info[5]!;
  const wscale = info[6]!; // low nibble: snd_wscale (the peer's), high nibble: rcv_wscale (ours)
  const hasWscale = (options & TCPI_OPT_WSCALE) !== 0;
  setInt(fd, TCP_REPAIR, 1, 'entering TCP repair mode');
  try {
    // read until two rounds agree: a segment arriving in between moves both numbers
    for (let i = 0; i < 16; i++) {
      const inq1: number[] = [0];
      if (ioctl(fd, FIONREAD, inq1) !== 0) fail('FIONREAD');
      setInt(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, 'selecting the receive queue');
      const rcvNxt = getU32(fd, TCP_QUEUE_SEQ, 'reading the receive sequence');
      setInt(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, 'selecting the send queue');
      const writeSeq = getU32(fd, TCP_QUEUE_SEQ, 'reading the send sequence');
      const inq2: number[] = [0];
      if (ioctl(fd, FIONREAD, inq2) !== 0) fail('FIONREAD');
      const rcvNxt2 = (setInt(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, 'selecting the receive queue'), getU32(fd, TCP_QUEUE_SEQ, 'reading the receive sequence'));
      if (inq1[0] === inq2[0] && rcvNxt === rcvNxt2) {
        return {
          writeSeq,
          readSeq: (rcvNxt - inq1[0]!) >>> 0,
          peerWscale: hasWscale ? wscale & 0x0f : 0,
          ownWscale: hasWscale ? wscale >> 4 : 0,
          timestamps: (options & TCPI_OPT_TIMESTAMPS) !== 0,
        };
      }
    }
    throw new TcpStateError('the connection kept receiving while its state was read');
  } finally {
    setInt(fd, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, 'leaving TCP repair mode');
  }
}

/** Bytes written by the application that the peer has not acknowledged yet (SIOCOUTQ). */
export function unacknowledged(fd: number): number {
  const v: number[] = [0];
  if (ioctl(fd, 0x5411 /* SIOCOUTQ */, v) !== 0) fail('SIOCOUTQ');
  return v[0]!;
}

/** Puts the socket into repair mode so that closing it sends neither FIN nor RST. */
export function quiesce(fd: number): void {
  setInt(fd, TCP_REPAIR, 1, 'entering TCP repair mode');
}
