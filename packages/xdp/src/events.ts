import { type DataPlaneEvent, decodeTupleKey } from '@dysco/protocol';

/** Size of one ring-buffer record (`struct dysco_event`). */
export const EVENT_RECORD_SIZE = 128;

const ROLES = { 1: 'originator', 2: 'middlebox', 3: 'lastHop' } as const;
const SIDES = { 1: 'left', 2: 'right' } as const;
const REASONS = { 1: 'fin', 2: 'rst' } as const;

/** Thrown for a record the data plane should never write. */
export class EventRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventRecordError';
  }
}

/**
 * Decodes one ring-buffer record into the reference rewriter's event type:
 * the agent handles the kernel's events and the simulator's alike.
 */
export function decodeEvent(record: Uint8Array): DataPlaneEvent {
  // A plain copy: addresses come out as Uint8Array, never as views of a Buffer.
  const b = new Uint8Array(record);
  if (b.length < EVENT_RECORD_SIZE) throw new EventRecordError(`event record of ${b.length} bytes, expected ${EVENT_RECORD_SIZE}`);
  const type = b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
  const tuple = (at: number) => decodeTupleKey(b.subarray(at, at + 40));
  switch (type) {
    case 1: {
      const role = ROLES[b[4] as keyof typeof ROLES];
      const side = SIDES[b[5] as keyof typeof SIDES];
      if (!role || !side) throw new EventRecordError(`sessionCreated with role ${b[4]} side ${b[5]}`);
      return {
        type: 'sessionCreated',
        role,
        side,
        session: tuple(8),
        subsession: tuple(48),
        natAdoptedFrom: b[7] ? tuple(88) : undefined,
      };
    }
    case 2: {
      const reason = REASONS[b[6] as keyof typeof REASONS];
      if (!reason) throw new EventRecordError(`sessionEnded with reason ${b[6]}`);
      return { type: 'sessionEnded', key: tuple(8), reason };
    }
    case 3:
      return { type: 'oldPathDrained', egressKey: tuple(8) };
    default:
      throw new EventRecordError(`unknown event type ${type}`);
  }
}
