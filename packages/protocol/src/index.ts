export * from './errors.js';
export * from './address.js';
export * from './tuple.js';
export * from './seq.js';
export * from './checksum.js';
export * from './table.js';
export * from './messages.js';
export { ByteReader, ByteWriter, hex, fromHex } from './wire/bytes.js';
export * from './packet.js';
export * from './table-layout.js';
export {
  type AuthKey,
  type KeyRingOptions,
  KeyRing,
  ReplayWindow,
  ReplayCounter,
  AuthConfigError,
  AUTH_MIN_SECRET_BYTES,
  AUTH_MAC_BYTES,
  AUTH_MIN_TAG_BYTES,
  REPLAY_WINDOW_SIZE,
} from './wire/auth.js';
export {
  type SynMetadata,
  SYN_METADATA_MAGIC,
  SYN_METADATA_VERSION,
  SYN_METADATA_FLAG_AUTH,
  SYN_METADATA_MAX_CHAIN,
  SYN_METADATA_MAX_BYTES,
  SYN_METADATA_HEADER_BYTES,
  SYN_METADATA_TAG_BYTES,
  SYN_METADATA_AUTH_BYTES,
  encodeSynMetadata,
  decodeSynMetadata,
  isSynMetadataCandidate,
} from './wire/metadata.js';
export * from './wire/nat-tag.js';
export * from './rewriter.js';
export {
  type DecodedControl,
  CONTROL_MAGIC,
  CONTROL_VERSION,
  CONTROL_FLAG_AUTH,
  CONTROL_MAX_BYTES,
  CONTROL_MAX_CHAIN,
  CONTROL_MAX_WSCALE,
  CONTROL_FIXED_HEADER_BYTES,
  CONTROL_AUTH_BYTES,
  CONTROL_DELTAS_BYTES,
  controlHeaderBytes,
  encodeControl,
  decodeControl,
} from './wire/control.js';
export * from './reconfig/types.js';
export * from './reconfig/machines.js';
export * from './reconfig/session-protocol.js';
export * from './reconfig/dataplane.js';
export { Simulation, describeOp, type SimOptions, type SimResult, type ReconfigOp, type PlannedOp, type OutcomeRecord } from './sim/simulation.js';
export { DataSimulation, type DataSimOptions, type DataSimResult } from './sim/data-simulation.js';
export { scheduleFor, SIM_RETRY } from './sim/schedules.js';
