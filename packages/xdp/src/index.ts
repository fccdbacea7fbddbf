export { DataPlane, type DataPlaneOptions, type AttachMode, objectPath, MAP_NAMES, PROGRAMS } from './dataplane.js';
export { COUNTER_NAMES, type CounterName, type Counters, sumCounters } from './counters.js';
export { decodeEvent, EventRecordError, EVENT_RECORD_SIZE } from './events.js';
