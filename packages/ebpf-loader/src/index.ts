/**
 * ebpf-ts-loader: load, attach and drive eBPF programs and maps from TypeScript through the system's
 * libbpf (libbpf.so.1, called with koffi).
 */
export { BpfError, errnoName, VERIFIER_LOG_MESSAGE_LINES } from './errors.js';
export { mountBpffs, isBpffs } from './bpffs.js';
export { ifindex } from './netif.js';
export { BpfObject, type OpenOptions, type LoadOptions } from './object.js';
export { BpfProgram, type TestRunOptions, type TestRunResult } from './program.js';
export { BpfMap, type UpdateFlag, type LookupBatchOptions } from './map.js';
export { TypedMap } from './typed-map.js';
export { type Codec, type StructField, u8, u16, u32, i32, u64, i64, u16be, u32be, ipv4, bytes, struct } from './codec.js';
export { possibleCpus } from './cpus.js';
export { attachXdp, type XdpAttachOptions } from './xdp.js';
export { attachTc, type TcAttachOptions } from './tc.js';
export { detachPinnedLink, type Attachment, type AttachmentKind } from './attachment.js';
export { RingBuffer, type RingBufferOptions } from './ringbuf.js';
export { setLibbpfLogger, type LibbpfLogger, type LibbpfLogLevel } from './libbpf-log.js';
export { MapType, ProgType, AttachType, XdpAction, TcAction, XdpFlags, TestRunFlags, mapTypeName, progTypeName } from './constants.js';
