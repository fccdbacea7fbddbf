/**
 * The IPS's configuration file: a JSON object. Every problem is reported at
 * once, each with its field's path (the agent's ConfigReader does that).
 *
 * ```json
 * {
 *   "terms": ["/etc/passwd", { "text": "cmd.exe", "name": "windows shell" }, { "hex": "90909090", "name": "nop sled" }],
 *   "caseInsensitive": true,
 *   "blacklist": { "addresses": ["192.0.2.0/24"], "ports": [23, "6660-6669"] },
 *   "releaseAfterBytes": 1048576,
 *   "reassembly": { "maxBufferedBytes": 1048576, "maxSegments": 1024, "onGap": "block" },
 *   "block": { "action": "drop", "holdSeconds": 3600 }
 * }
 * ```
 */
import { ConfigError, ConfigReader, shown } from '@dysco/agent/config-reader';
import { Blacklist } from './blacklist.js';

export interface Term {
  /** For the logs: the term as written, or its `name`. */
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface IpsConfig {
  /** Capture interface (default: the interface holding the IPS's address). */
  readonly interface: string | undefined;
  readonly terms: readonly Term[];
  /** Terms match ASCII letters in either case. */
  readonly caseInsensitive: boolean;
  readonly blacklist: Blacklist;
  /**
   * Bytes to scan in each direction without a match before the IPS takes
   * itself out of the session (a direction its sender has closed counts as
   * seen). 0: never leave.
   */
  readonly releaseAfterBytes: number;
  readonly reassembly: {
    readonly maxBufferedBytes: number;
    readonly maxSegments: number;
    /** What a stream the IPS cannot reconstruct gets: blocked (fail closed, the default) or scanned on past the gap. */
    readonly onGap: 'block' | 'continue';
  };
  readonly block: {
    /** `drop`: the session's packets are dropped here; `reset`: both ends also get a TCP reset for each packet they send. */
    readonly action: 'drop' | 'reset';
    /** How long a blocked session's rules stay if the agent never reports the session's end. */
    readonly holdSeconds: number;
  };
  /** The nftables table the IPS owns (created at start, deleted at exit). */
  readonly nftTable: string;
  /** How often the agent's session list is read (inserted boxes learn of sessions this way). */
  readonly pollMs: number;
  /** libpcap's buffer. */
  readonly captureBufferBytes: number;
}

export const DEFAULTS: IpsConfig = {
  interface: undefined,
  terms: [],
  caseInsensitive: false,
  blacklist: new Blacklist(),
  releaseAfterBytes: 1 << 20,
  reassembly: { maxBufferedBytes: 1 << 20, maxSegments: 1024, onGap: 'block' },
  block: { action: 'drop', holdSeconds: 3600 },
  nftTable: 'dysco_ips',
  pollMs: 1000,
  captureBufferBytes: 32 << 20,
};

export { ConfigError };

const MAX_TERM_BYTES = 4096;

/** Checks and completes a parsed configuration file; `where` (the file's name) starts the field paths in errors. */
export function parseConfig(raw: unknown, where = 'config'): IpsConfig {
  const r = ConfigReader.read(raw, where);
  r.known(['interface', 'terms', 'caseInsensitive', 'blacklist', 'releaseAfterBytes', 'reassembly', 'block', 'nftTable', 'pollMs', 'captureBufferBytes']);

  const iface = r.string('interface', DEFAULTS.interface, /^[\w.:@-]{1,15}$/, 'an interface name');

  const terms = r.list('terms', 'a list of strings or { "text" | "hex", "name"? } objects', (t): Term | undefined => {
    let bytes: Uint8Array | undefined;
    let name: string | undefined;
    if (typeof t.value === 'string') {
      bytes = new TextEncoder().encode(t.value);
      name = t.value;
    } else if (t.isObject) {
      t.known(['text', 'hex', 'name']);
      const text = t.at('text').value;
      const hex = t.at('hex').value;
      if ((text === undefined) === (hex === undefined)) t.problem('needs exactly one of "text" and "hex"');
      else if (text !== undefined) {
        if (typeof text !== 'string') t.at('text').problem('must be a string');
        else bytes = new TextEncoder().encode(text);
      } else if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2}\s*)+$/.test(hex)) t.at('hex').problem(`must be pairs of hex digits, got ${shown(hex)}`);
      else bytes = Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
      name = t.string('name', undefined) ?? (typeof text === 'string' ? text : typeof hex === 'string' ? `hex:${hex.replace(/\s+/g, '')}` : undefined);
    } else t.problem(`must be a string or an object, got ${shown(t.value)}`);
    if (!bytes || name === undefined) return undefined;
    if (bytes.length === 0) return t.problem('must not be empty');
    if (bytes.length > MAX_TERM_BYTES) return t.problem(`must be at most ${MAX_TERM_BYTES} bytes, got ${bytes.length}`);
    return { name, bytes };
  });

  const caseInsensitive = r.boolean('caseInsensitive', DEFAULTS.caseInsensitive);

  // each address and port is checked alone, so that a problem names its element
  const bl = r.section('blacklist');
  bl.known(['addresses', 'ports']);
  const addresses = bl.list('addresses', 'a list of addresses and prefixes', (a) =>
    a.parse('a string', (text) => {
      new Blacklist({ addresses: [text] });
      return text;
    }),
  );
  const ports = bl.list('ports', 'a list of ports and "low-high" ranges', (p) => {
    const v = p.value;
    if (typeof v !== 'string' && typeof v !== 'number') return p.problem(`must be a port or a "low-high" range, got ${shown(v)}`);
    return p.attempt(() => {
      new Blacklist({ ports: [v] });
      return v;
    });
  });
  const blacklist = new Blacklist({ addresses, ports });

  const releaseAfterBytes = r.int('releaseAfterBytes', DEFAULTS.releaseAfterBytes, 0, Number.MAX_SAFE_INTEGER);

  const ra = r.section('reassembly');
  ra.known(['maxBufferedBytes', 'maxSegments', 'onGap']);
  const reassembly = {
    maxBufferedBytes: ra.int('maxBufferedBytes', DEFAULTS.reassembly.maxBufferedBytes, 1024, 1 << 30),
    maxSegments: ra.int('maxSegments', DEFAULTS.reassembly.maxSegments, 1, 1 << 20),
    onGap: ra.oneOf('onGap', ['block', 'continue'], DEFAULTS.reassembly.onGap),
  };

  const bk = r.section('block');
  bk.known(['action', 'holdSeconds']);
  const block = {
    action: bk.oneOf('action', ['drop', 'reset'], DEFAULTS.block.action),
    holdSeconds: bk.int('holdSeconds', DEFAULTS.block.holdSeconds, 1, 365 * 86400),
  };

  const nftTable = r.string('nftTable', DEFAULTS.nftTable, /^[A-Za-z][\w]{0,31}$/, 'a table name (letters, digits, _; at most 32)');
  const pollMs = r.int('pollMs', DEFAULTS.pollMs, 50, 60_000);
  const captureBufferBytes = r.int('captureBufferBytes', DEFAULTS.captureBufferBytes, 1 << 16, 1 << 30);

  if (terms.length === 0 && blacklist.empty && r.ok) r.problem('has neither "terms" nor a "blacklist": the IPS would block nothing');
  return r.done({ interface: iface, terms, caseInsensitive, blacklist, releaseAfterBytes, reassembly, block, nftTable, pollMs, captureBufferBytes });
}
