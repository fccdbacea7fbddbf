import { readFileSync } from 'node:fs';
import {
  type Address,
  type AuthKey,
  AUTH_MIN_SECRET_BYTES,
  DEFAULT_PORT_HIGH,
  DEFAULT_PORT_LOW,
  type Policy,
  type Prefix,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
} from '@dysco/protocol';

/**
 * The agent's configuration file (JSON), its schema and its validation.
 * Every problem is reported with the path of the field and what is wrong
 * with it, all problems at once.
 */

export type AttachModeSetting = 'auto' | 'xdp' | 'tc';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A steering policy as the operator writes it. */
export interface PolicySpec {
  readonly id: number;
  /** TCP predicate, see {@link parseMatch}: `dst 10.0.0.0/24 dport 80`. */
  readonly match: string;
  /** Middleboxes in order (the destination is implicit). */
  readonly chain: readonly string[];
}

export interface AgentConfig {
  /** This agent's address: source of its subsessions and control messages. */
  readonly address: Address;
  /** Every address of this host that subsessions may reach (default: `address`). */
  readonly localAddresses: readonly Address[];
  /** Interfaces the programs are attached to. */
  readonly interfaces: readonly string[];
  readonly mode: AttachModeSetting;
  /** UDP port of control messages, the same on every agent. */
  readonly controlPort: number;
  /** Operator and library socket. */
  readonly socket: string;
  /** bpffs directory of the pinned maps. */
  readonly pinRoot: string;
  /** Directory of the agent's own state (protocol state kept across restarts). */
  readonly stateDir: string;
  /** host:port of the Prometheus endpoint, or undefined for none. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  readonly maxSessions: number;
  readonly ports: { readonly low: number; readonly high: number };
  readonly keys: readonly AuthKey[];
  readonly sendKeyId: number | undefined;
  readonly requireAuth: boolean;
  readonly policies: readonly Policy[];
  /** Seconds: an entry unused this long is reclaimed. */
  readonly idleTimeout: number;
  /** Seconds a closed or reset session's entries stay (late retransmissions, TIME_WAIT). */
  readonly closedLinger: number;
  /** Control-message retransmission timeout (ms) and its bound. */
  readonly rto: number;
  readonly maxRto: number;
  readonly logLevel: LogLevel;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? `invalid configuration: ${problems[0]}` : `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** A human-readable description of every field, printed by `dysco agent --help-config`. */
export const CONFIG_FIELDS: readonly (readonly [string, string])[] = [
  ['address', 'required: this agent\'s IPv4 or IPv6 address (its subsessions and control messages start here)'],
  ['localAddresses', 'list of addresses of this host subsessions may reach (default: [address])'],
  ['interfaces', 'required: list of interface names to attach to (at least one)'],
  ['mode', '"auto" (default: native XDP ingress on physical NICs that take it, TC on virtual devices and as the fallback), "tc" or "xdp"'],
  ['controlPort', 'UDP port of control messages, the same on every agent (default 7707)'],
  ['socket', 'path of the operator and library socket (default /run/dysco/agent.sock)'],
  ['pinRoot', 'bpffs directory of the pinned maps (default /sys/fs/bpf/dysco)'],
  ['stateDir', 'directory of the agent\'s state kept across restarts (default /var/lib/dysco)'],
  ['metrics', '"host:port" of the Prometheus endpoint, or null for none (default null)'],
  ['maxSessions', 'concurrent sessions the kernel maps hold, 16..16777216 (default 1048576, about 840 MB)'],
  ['ports', '{ "low", "high" }: port range of new subsessions (default 61000..65535)'],
  ['keys', 'list of { "id": 0..2^32-1, "secret": hex string of at least 16 bytes } authenticating control messages and SYN metadata'],
  ['sendKeyId', 'id of the key that signs (default: the first key)'],
  ['requireAuth', 'refuse unsigned control messages and metadata (default: true when there are keys)'],
  ['policies', 'list of { "id", "match": "src P dst P sport N[-M] dport N[-M]", "chain": [addresses] }'],
  ['idleTimeout', 'seconds after which an unused session is reclaimed (default 300)'],
  ['closedLinger', 'seconds a closed or reset session stays (default 30)'],
  ['rto', 'control-message retransmission timeout in ms (default 200; doubles up to maxRto, default 3200)'],
  ['logLevel', '"debug", "info" (default), "warn" or "error"'],
];

const KNOWN = new Set([...CONFIG_FIELDS.map(([k]) => k), 'maxRto', '$schema', 'comment']);

/** A policy's TCP predicate: `[tcp] [src PREFIX] [dst PREFIX] [sport N[-M]] [dport N[-M]]`, optionally joined by `and`. */
export function parseMatch(text: string): Omit<Policy, 'id' | 'chain'> {
  const words = text.trim().split(/\s+/).filter((w) => w !== '' && w !== 'and');
  if (words[0] === 'tcp') words.shift();
  const out: { src?: Prefix; dst?: Prefix; sport?: [number, number]; dport?: [number, number] } = {};
  const ports = (w: string | undefined, what: string): [number, number] => {
    const m = w === undefined ? null : /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(w);
    if (!m) throw new Error(`${what} needs a port or a range N-M, got ${JSON.stringify(w ?? '')}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > 65535 || hi > 65535 || lo > hi) throw new Error(`${what} ${w} is not a range within 0..65535`);
    return [lo, hi];
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const arg = words[i + 1];
    switch (w) {
      case 'src':
      case 'dst': {
        if (arg === undefined) throw new Error(`${w} needs a prefix`);
        if (out[w]) throw new Error(`${w} given twice`);
        out[w] = parsePrefix(arg);
        i++;
        break;
      }
      case 'sport':
      case 'dport':
        if (out[w]) throw new Error(`${w} given twice`);
        out[w] = ports(arg, w);
        i++;
        break;
      default:
        throw new Error(`unknown word ${JSON.stringify(w)} (expected src, dst, sport or dport)`);
    }
  }
  if (!out.src && !out.dst && !out.sport && !out.dport) throw new Error('an empty match would steer every TCP connection; say at least one of src, dst, sport, dport');
  return out;
}

/** The predicate of a policy, as `parseMatch` reads it. */
export function formatMatch(p: Omit<Policy, 'id' | 'chain'>): string {
  const parts: string[] = [];
  if (p.src) parts.push(`src ${formatPrefix(p.src)}`);
  if (p.dst) parts.push(`dst ${formatPrefix(p.dst)}`);
  const r = (x: readonly [number, number]) => (x[0] === x[1] ? `${x[0]}` : `${x[0]}-${x[1]}`);
  if (p.sport) parts.push(`sport ${r(p.sport)}`);
  if (p.dport) parts.push(`dport ${r(p.dport)}`);
  return parts.join(' ');
}

export function policyFromSpec(spec: PolicySpec): Policy {
  return { id: spec.id, ...parseMatch(spec.match), chain: spec.chain.map((a) => parseAddress(a)) };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a parsed configuration; throws a ConfigError listing every problem. */
export function validateConfig(raw: unknown, source = 'config'): AgentConfig {
  const problems: string[] = [];
  const bad = (path: string, msg: string) => problems.push(`${source}.${path}: ${msg}`);
  if (!isObj(raw)) throw new ConfigError([`${source}: must be a JSON object`]);
  for (const k of Object.keys(raw)) if (!KNOWN.has(k)) bad(k, `unknown field (known: ${[...KNOWN].filter((x) => !x.startsWith('$') && x !== 'comment').join(', ')})`);

  const addr = (v: unknown, path: string): Address | undefined => {
    if (typeof v !== 'string') {
      bad(path, `must be an IP address string, got ${JSON.stringify(v)}`);
      return undefined;
    }
    try {
      return parseAddress(v);
    } catch (e) {
      bad(path, (e as Error).message);
      return undefined;
    }
  };
  const int = (path: string, dflt: number, lo: number, hi: number): number => {
    const v = raw[path];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      bad(path, `must be an integer in ${lo}..${hi}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const num = (path: string, dflt: number, lo: number, hi: number): number => {
    const v = raw[path];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
      bad(path, `must be a number in ${lo}..${hi}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const str = (path: string, dflt: string): string => {
    const v = raw[path];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || v === '') {
      bad(path, `must be a non-empty string, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const oneOf = <T extends string>(path: string, dflt: T, allowed: readonly T[]): T => {
    const v = raw[path];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      bad(path, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v as T;
  };

  const address = raw.address === undefined ? (bad('address', 'is required'), undefined) : addr(raw.address, 'address');
  let localAddresses: Address[] = [];
  if (raw.localAddresses === undefined) localAddresses = address ? [address] : [];
  else if (!Array.isArray(raw.localAddresses)) bad('localAddresses', 'must be a list of addresses');
  else {
    raw.localAddresses.forEach((v, i) => {
      const a = addr(v, `localAddresses[${i}]`);
      if (a) localAddresses.push(a);
    });
    if (address && !localAddresses.some((a) => formatAddress(a) === formatAddress(address))) localAddresses.unshift(address);
  }
  if (localAddresses.length > 8) bad('localAddresses', `at most 8 addresses fit the data plane, got ${localAddresses.length}`);

  const interfaces: string[] = [];
  if (raw.interfaces === undefined) bad('interfaces', 'is required: a non-empty list of interface names');
  else if (!Array.isArray(raw.interfaces) || raw.interfaces.length === 0) bad('interfaces', `must be a non-empty list of interface names, got ${JSON.stringify(raw.interfaces)}`);
  else
    raw.interfaces.forEach((v, i) => {
      if (typeof v !== 'string' || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(v)) bad(`interfaces[${i}]`, `not an interface name: ${JSON.stringify(v)}`);
      else interfaces.push(v);
    });

  let metrics: AgentConfig['metrics'];
  if (raw.metrics !== undefined && raw.metrics !== null) {
    const m = typeof raw.metrics === 'string' ? /^(.*):(\d{1,5})$/.exec(raw.metrics) : null;
    if (!m || Number(m[2]) > 65535) bad('metrics', `must be "host:port" or null, got ${JSON.stringify(raw.metrics)}`);
    else metrics = { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
  }

  let ports = { low: DEFAULT_PORT_LOW, high: DEFAULT_PORT_HIGH };
  if (raw.ports !== undefined) {
    const p = raw.ports;
    if (!isObj(p) || !Number.isInteger(p.low) || !Number.isInteger(p.high) || (p.low as number) < 1 || (p.high as number) > 65535 || (p.low as number) > (p.high as number)) {
      bad('ports', `must be { "low": N, "high": M } with 1 <= N <= M <= 65535, got ${JSON.stringify(p)}`);
    } else ports = { low: p.low as number, high: p.high as number };
  }

  const keys: AuthKey[] = [];
  if (raw.keys !== undefined) {
    if (!Array.isArray(raw.keys)) bad('keys', 'must be a list of { "id", "secret" }');
    else
      raw.keys.forEach((k, i) => {
        if (!isObj(k)) return void bad(`keys[${i}]`, 'must be an object { "id", "secret" }');
        if (!Number.isInteger(k.id) || (k.id as number) < 0 || (k.id as number) > 0xffffffff) bad(`keys[${i}].id`, `must be an integer in 0..4294967295, got ${JSON.stringify(k.id)}`);
        if (typeof k.secret !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(k.secret)) return void bad(`keys[${i}].secret`, 'must be a hex string');
        const secret = Buffer.from(k.secret, 'hex');
        if (secret.length < AUTH_MIN_SECRET_BYTES) bad(`keys[${i}].secret`, `must be at least ${AUTH_MIN_SECRET_BYTES} bytes (${2 * AUTH_MIN_SECRET_BYTES} hex digits), got ${secret.length}`);
        else if (keys.some((x) => x.keyId === k.id)) bad(`keys[${i}].id`, `key id ${String(k.id)} given twice`);
        else if (Number.isInteger(k.id)) keys.push({ keyId: k.id as number, secret: new Uint8Array(secret) });
      });
  }
  if (keys.length > 64) bad('keys', `at most 64 keys fit the data plane, got ${keys.length}`);
  let sendKeyId: number | undefined = keys[0]?.keyId;
  if (raw.sendKeyId !== undefined) {
    if (!keys.some((k) => k.keyId === raw.sendKeyId)) bad('sendKeyId', `must be the id of one of the keys, got ${JSON.stringify(raw.sendKeyId)}`);
    else sendKeyId = raw.sendKeyId as number;
  }
  let requireAuth = keys.length > 0;
  if (raw.requireAuth !== undefined) {
    if (typeof raw.requireAuth !== 'boolean') bad('requireAuth', 'must be true or false');
    else requireAuth = raw.requireAuth;
    if (requireAuth && keys.length === 0) bad('requireAuth', 'needs keys');
  }

  const policies: Policy[] = [];
  if (raw.policies !== undefined) {
    if (!Array.isArray(raw.policies)) bad('policies', 'must be a list');
    else
      raw.policies.forEach((p, i) => {
        if (!isObj(p)) return void bad(`policies[${i}]`, 'must be an object { "id", "match", "chain" }');
        if (!Number.isInteger(p.id) || (p.id as number) < 1 || (p.id as number) > 0xffffffff) return void bad(`policies[${i}].id`, `must be an integer in 1..4294967295, got ${JSON.stringify(p.id)}`);
        if (policies.some((q) => q.id === p.id)) return void bad(`policies[${i}].id`, `policy id ${String(p.id)} given twice`);
        if (typeof p.match !== 'string') return void bad(`policies[${i}].match`, 'must be a string such as "dst 10.0.0.0/24 dport 80"');
        if (!Array.isArray(p.chain) || p.chain.length > 7) return void bad(`policies[${i}].chain`, 'must be a list of 0..7 middlebox addresses (none: a direct subsession to the destination, as a proxy needs for the connections it opens)');
        let match: Omit<Policy, 'id' | 'chain'>;
        try {
          match = parseMatch(p.match);
        } catch (e) {
          return void bad(`policies[${i}].match`, (e as Error).message);
        }
        const chain: Address[] = [];
        p.chain.forEach((c, j) => {
          const a = addr(c, `policies[${i}].chain[${j}]`);
          if (a) chain.push(a);
        });
        const fams = new Set([...chain, ...(match.src ? [match.src.address] : []), ...(match.dst ? [match.dst.address] : [])].map((a) => a.family));
        if (fams.size > 1) return void bad(`policies[${i}]`, 'mixes IPv4 and IPv6 addresses: it could never match');
        if (chain.length === p.chain.length) policies.push({ id: p.id as number, ...match, chain });
      });
  }

  const cfg: AgentConfig = {
    address: address ?? parseAddress('0.0.0.0'),
    localAddresses,
    interfaces,
    mode: oneOf('mode', 'auto', ['auto', 'xdp', 'tc'] as const),
    controlPort: int('controlPort', 7707, 1, 65535),
    socket: str('socket', '/run/dysco/agent.sock'),
    pinRoot: str('pinRoot', '/sys/fs/bpf/dysco'),
    stateDir: str('stateDir', '/var/lib/dysco'),
    metrics,
    maxSessions: int('maxSessions', 1 << 20, 16, 1 << 24),
    ports,
    keys,
    sendKeyId,
    requireAuth,
    policies,
    idleTimeout: num('idleTimeout', 300, 1, 86400 * 7),
    closedLinger: num('closedLinger', 30, 0, 3600),
    rto: int('rto', 200, 1, 60_000),
    maxRto: int('maxRto', 3200, 1, 600_000),
    logLevel: oneOf('logLevel', 'info', ['debug', 'info', 'warn', 'error'] as const),
  };
  if (cfg.maxRto < cfg.rto) bad('maxRto', `must be at least rto (${cfg.rto}), got ${cfg.maxRto}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** Reads and validates a configuration file. */
export function loadConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${path}: not valid JSON: ${(e as Error).message}`]);
  }
  return validateConfig(raw, path);
}
