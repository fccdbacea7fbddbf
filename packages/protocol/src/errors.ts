/**
 * Every error the protocol package throws is a DyscoError with a stable
 * `code`, so callers (the agent, tests, fuzzers) can tell a rejected input
 * from a bug without matching on message text.
 */
export class DyscoError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'DyscoError';
  }
}

/** Bytes that are not a valid encoding of the format being decoded. */
export class WireFormatError extends DyscoError {
  constructor(format: string, message: string) {
    super('ERR_WIRE_FORMAT', `${format}: ${message}`);
    this.name = 'WireFormatError';
  }
}

/** A control message or SYN metadata whose authentication failed. */
export class AuthenticationError extends DyscoError {
  readonly reason: 'unsigned' | 'unknown-key' | 'bad-tag' | 'replay';
  constructor(reason: AuthenticationError['reason'], message: string) {
    super('ERR_AUTHENTICATION', message);
    this.name = 'AuthenticationError';
    this.reason = reason;
  }
}

/** A textual address, prefix or tuple that does not parse. */
export class AddressError extends DyscoError {
  constructor(message: string) {
    super('ERR_ADDRESS', message);
    this.name = 'AddressError';
  }
}

/** A packet the reference rewriter cannot parse as IPv4/IPv6 TCP. */
export class PacketError extends DyscoError {
  constructor(message: string) {
    super('ERR_PACKET', message);
    this.name = 'PacketError';
  }
}
