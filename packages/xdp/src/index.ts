export {
  DataPlane,
  type DataPlaneOptions,
  type DataPlaneConfig,
  type DataPlaneAuth,
  DEFAULT_MAX_SESSIONS,
  MAX_KEYS,
  type AttachMode,
  objectPath,
  MAP_NAMES,
  PROGRAMS,
  CONFIG_SIZE,
  MAX_LOCAL_ADDRESSES,
  MAX_POLICIES,
} from './dataplane.js';
export { COUNTER_NAMES, type CounterName, type Counters, sumCounters } from './counters.js';
export { decodeEvent, EventRecordError, EVENT_RECORD_SIZE } from './events.js';
export { hmacKeyStates, hmacTag, sha256Compress, SHA256_IV, HMAC_KEY_SIZE, HMAC_TAG_SIZE, HMAC_MSG_MAX } from './hmac-key.js';
