/**
 * The IPS's configuration file: a JSON object. Every problem is reported at
 * once, each with its field's path.
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
import { Blacklist, BlacklistError } from './blacklist.js';

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

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_TERM_BYTES = 4096;

/** Checks and completes a parsed configuration file; `where` prefixes the field paths in errors. */
export function parseConfig(raw: unknown, where = 'config'): IpsConfig {
  const problems: string[] = [];
  const bad = (path: string, msg: string) => problems.push(`${where}${path}: ${msg}`);
  if (!isObj(raw)) throw new ConfigError([`${where}: must be a JSON object`]);
  const known = (o: Obj, path: string, fields: readonly string[]) => {
    for (const k of Object.keys(o)) if (!fields.includes(k) && k !== 'comment' && k !== '$schema') bad(`${path}.${k}`, `unknown field (known: ${fields.join(', ')})`);
  };
  known(raw, '', ['interface', 'terms', 'caseInsensitive', 'blacklist', 'releaseAfterBytes', 'reassembly', 'block', 'nftTable', 'pollMs', 'captureBufferBytes']);
  const section = (o: Obj, name: string, path: string): Obj => {
    const v = o[name];
    if (v === undefined) return {};
    if (!isObj(v)) {
      bad(`${path}.${name}`, 'must be an object');
      return {};
    }
    return v;
  };
  const int = (o: Obj, name: string, path: string, dflt: number, min: number, max: number): number => {
    const v = o[name];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad(`${path}.${name}`, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const oneOf = <T extends string>(o: Obj, name: string, path: string, values: readonly T[], dflt: T): T => {
    const v = o[name];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      bad(`${path}.${name}`, `must be ${values.map((x) => JSON.stringify(x)).join(' or ')}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v as T;
  };

  let iface: string | undefined;
  if (raw.interface !== undefined) {
    if (typeof raw.interface !== 'string' || !/^[\w.:@-]{1,15}$/.test(raw.interface)) bad('.interface', `must be an interface name, got ${JSON.stringify(raw.interface)}`);
    else iface = raw.interface;
  }

  const terms: Term[] = [];
  if (raw.terms !== undefined && !Array.isArray(raw.terms)) bad('.terms', 'must be a list of strings or { "text" | "hex", "name"? } objects');
  else {
    const list = (raw.terms ?? []) as unknown[];
    list.forEach((t, i) => {
      const path = `.terms[${i}]`;
      let bytes: Uint8Array | undefined;
      let name: string | undefined;
      if (typeof t === 'string') {
        bytes = new TextEncoder().encode(t);
        name = t;
      } else if (isObj(t)) {
        known(t, path, ['text', 'hex', 'name']);
        if ((t.text === undefined) === (t.hex === undefined)) bad(path, 'needs exactly one of "text" and "hex"');
        else if (t.text !== undefined) {
          if (typeof t.text !== 'string') bad(`${path}.text`, 'must be a string');
          else bytes = new TextEncoder().encode(t.text);
        } else if (typeof t.hex !== 'string' || !/^([0-9a-fA-F]{2}\s*)+$/.test(t.hex)) bad(`${path}.hex`, `must be pairs of hex digits, got ${JSON.stringify(t.hex)}`);
        else bytes = Uint8Array.from(Buffer.from(t.hex.replace(/\s+/g, ''), 'hex'));
        if (t.name !== undefined && typeof t.name !== 'string') bad(`${path}.name`, 'must be a string');
        name = typeof t.name === 'string' ? t.name : typeof t.text === 'string' ? t.text : typeof t.hex === 'string' ? `hex:${t.hex.replace(/\s+/g, '')}` : undefined;
      } else bad(path, `must be a string or an object, got ${JSON.stringify(t)}`);
      if (!bytes || name === undefined) return;
      if (bytes.length === 0) bad(path, 'must not be empty');
      else if (bytes.length > MAX_TERM_BYTES) bad(path, `must be at most ${MAX_TERM_BYTES} bytes, got ${bytes.length}`);
      else terms.push({ name, bytes });
    });
  }

  let caseInsensitive = DEFAULTS.caseInsensitive;
  if (raw.caseInsensitive !== undefined) {
    if (typeof raw.caseInsensitive !== 'boolean') bad('.caseInsensitive', 'must be true or false');
    else caseInsensitive = raw.caseInsensitive;
  }

  let blacklist = DEFAULTS.blacklist;
  const bl = section(raw, 'blacklist', '');
  known(bl, '.blacklist', ['addresses', 'ports']);
  const addresses: string[] = [];
  const ports: (number | string)[] = [];
  if (bl.addresses !== undefined && !Array.isArray(bl.addresses)) bad('.blacklist.addresses', 'must be a list of addresses and prefixes');
  else
    ((bl.addresses ?? []) as unknown[]).forEach((a, i) => {
      if (typeof a !== 'string') return bad(`.blacklist.addresses[${i}]`, `must be a string, got ${JSON.stringify(a)}`);
      try {
        new Blacklist({ addresses: [a] });
        addresses.push(a);
      } catch (e) {
        bad(`.blacklist.addresses[${i}]`, (e as BlacklistError).message);
      }
    });
  if (bl.ports !== undefined && !Array.isArray(bl.ports)) bad('.blacklist.ports', 'must be a list of ports and "low-high" ranges');
  else
    ((bl.ports ?? []) as unknown[]).forEach((p, i) => {
      if (typeof p !== 'string' && typeof p !== 'number') return bad(`.blacklist.ports[${i}]`, `must be a port or a "low-high" range, got ${JSON.stringify(p)}`);
      try {
        new Blacklist({ ports: [p] });
        ports.push(p);
      } catch (e) {
        bad(`.blacklist.ports[${i}]`, (e as BlacklistError).message);
      }
    });
  blacklist = new Blacklist({ addresses, ports });

  const releaseAfterBytes = int(raw, 'releaseAfterBytes', '', DEFAULTS.releaseAfterBytes, 0, Number.MAX_SAFE_INTEGER);

  const ra = section(raw, 'reassembly', '');
  known(ra, '.reassembly', ['maxBufferedBytes', 'maxSegments', 'onGap']);
  const reassembly = {
    maxBufferedBytes: int(ra, 'maxBufferedBytes', '.reassembly', DEFAULTS.reassembly.maxBufferedBytes, 1024, 1 << 30),
    maxSegments: int(ra, 'maxSegments', '.reassembly', DEFAULTS.reassembly.maxSegments, 1, 1 << 20),
    onGap: oneOf(ra, 'onGap', '.reassembly', ['block', 'continue'] as const, DEFAULTS.reassembly.onGap),
  };

  const bk = section(raw, 'block', '');
  known(bk, '.block', ['action', 'holdSeconds']);
  const block = {
    action: oneOf(bk, 'action', '.block', ['drop', 'reset'] as const, DEFAULTS.block.action),
    holdSeconds: int(bk, 'holdSeconds', '.block', DEFAULTS.block.holdSeconds, 1, 365 * 86400),
  };

  let nftTable = DEFAULTS.nftTable;
  if (raw.nftTable !== undefined) {
    if (typeof raw.nftTable !== 'string' || !/^[A-Za-z][\w]{0,31}$/.test(raw.nftTable)) bad('.nftTable', `must be a table name (letters, digits, _; at most 32), got ${JSON.stringify(raw.nftTable)}`);
    else nftTable = raw.nftTable;
  }
  const pollMs = int(raw, 'pollMs', '', DEFAULTS.pollMs, 50, 60_000);
  const captureBufferBytes = int(raw, 'captureBufferBytes', '', DEFAULTS.captureBufferBytes, 1 << 16, 1 << 30);

  if (terms.length === 0 && blacklist.empty && problems.length === 0) bad('', 'has neither "terms" nor a "blacklist": the IPS would block nothing');
  if (problems.length > 0) throw new ConfigError(problems);
  return { interface: iface, terms, caseInsensitive, blacklist, releaseAfterBytes, reassembly, block, nftTable, pollMs, captureBufferBytes };
}
