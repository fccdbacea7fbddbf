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
import { ConfigError, ConfigReader, REQUIRED, readConfigFile, shown } from './config-reader.js';

/**
 * The agent's configuration file (JSON), its schema and its validation.
 * Every problem is reported with the path of the field and what is wrong
 * with it, all problems at once (see config-reader.ts).
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

export { ConfigError };

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

const KNOWN = [...CONFIG_FIELDS.map(([k]) => k), 'maxRto'];

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

/** Validates a parsed configuration; throws a ConfigError listing every problem. */
export function validateConfig(raw: unknown, source = 'config'): AgentConfig {
  const r = ConfigReader.read(raw, source);
  r.known(KNOWN);
  const addr = (at: ConfigReader): Address | undefined => at.parse('an IP address string', parseAddress);

  const address = r.has('address') ? addr(r.at('address')) : r.at('address').problem('is required');
  const localAddresses = r.has('localAddresses') ? r.list('localAddresses', 'a list of addresses', addr) : [];
  if (address && !localAddresses.some((a) => formatAddress(a) === formatAddress(address))) localAddresses.unshift(address);
  if (localAddresses.length > 8) r.at('localAddresses').problem(`at most 8 addresses fit the data plane, got ${localAddresses.length}`);

  const ifname = (i: ConfigReader): string | undefined => (typeof i.value === 'string' && /^[A-Za-z0-9_.:@-]{1,15}$/.test(i.value) ? i.value : i.problem(`not an interface name: ${shown(i.value)}`));
  if (!r.has('interfaces')) r.at('interfaces').problem('is required: a non-empty list of interface names');
  const interfaces = r.list('interfaces', 'a non-empty list of interface names', ifname, 1);

  let metrics: AgentConfig['metrics'];
  const m = r.at('metrics');
  if (m.value !== undefined && m.value !== null) {
    const hp = typeof m.value === 'string' ? /^(.*):(\d{1,5})$/.exec(m.value) : null;
    if (!hp || Number(hp[2]) > 65535) m.problem(`must be "host:port" or null, got ${shown(m.value)}`);
    else metrics = { host: hp[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(hp[2]) };
  }

  let ports = { low: DEFAULT_PORT_LOW, high: DEFAULT_PORT_HIGH };
  const pr = r.at('ports');
  if (pr.value !== undefined) {
    const low = pr.at('low').value;
    const high = pr.at('high').value;
    // the range is shown whole: its two ends are checked together
    if (typeof low !== 'number' || typeof high !== 'number' || !Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65535 || low > high) {
      pr.problem(`must be { "low": N, "high": M } with 1 <= N <= M <= 65535, got ${JSON.stringify(pr.value)}`);
    } else ports = { low, high };
  }

  const keys: AuthKey[] = [];
  r.list('keys', 'a list of { "id", "secret" }', (k) => {
    if (!k.isObject) return k.problem('must be an object { "id", "secret" }');
    const id = k.int('id', REQUIRED, 0, 0xffffffff);
    // the secret is never repeated in a problem
    const s = k.at('secret');
    if (typeof s.value !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(s.value)) return s.problem('must be a hex string');
    const secret = Buffer.from(s.value, 'hex');
    if (secret.length < AUTH_MIN_SECRET_BYTES) s.problem(`must be at least ${AUTH_MIN_SECRET_BYTES} bytes (${2 * AUTH_MIN_SECRET_BYTES} hex digits), got ${secret.length}`);
    else if (id !== undefined && keys.some((x) => x.keyId === id)) k.at('id').problem(`key id ${id} given twice`);
    else if (id !== undefined) keys.push({ keyId: id, secret: new Uint8Array(secret) });
  });
  if (keys.length > 64) r.at('keys').problem(`at most 64 keys fit the data plane, got ${keys.length}`);
  let sendKeyId: number | undefined = keys[0]?.keyId;
  const sk = r.at('sendKeyId');
  if (sk.value !== undefined) {
    const key = keys.find((k) => k.keyId === sk.value);
    if (!key) sk.problem(`must be the id of one of the keys, got ${shown(sk.value)}`);
    else sendKeyId = key.keyId;
  }
  let requireAuth = keys.length > 0;
  if (r.has('requireAuth')) {
    requireAuth = r.boolean('requireAuth', requireAuth);
    if (requireAuth && keys.length === 0) r.at('requireAuth').problem('needs keys');
  }

  const policies: Policy[] = [];
  r.list('policies', 'a list', (p) => {
    if (!p.isObject) return p.problem('must be an object { "id", "match", "chain" }');
    const id = p.int('id', REQUIRED, 1, 0xffffffff);
    if (id === undefined) return;
    if (policies.some((q) => q.id === id)) return p.at('id').problem(`policy id ${id} given twice`);
    const text = p.at('match').value;
    if (typeof text !== 'string') return p.at('match').problem('must be a string such as "dst 10.0.0.0/24 dport 80"');
    const c = p.at('chain');
    if (!Array.isArray(c.value) || c.value.length > 7) return c.problem('must be a list of 0..7 middlebox addresses (none: a direct subsession to the destination, as a proxy needs for the connections it opens)');
    const match = p.at('match').attempt(() => parseMatch(text));
    if (!match) return;
    const chain = c.value.map((_, j) => addr(c.at(j))).filter((a) => a !== undefined);
    const fams = new Set([...chain, ...(match.src ? [match.src.address] : []), ...(match.dst ? [match.dst.address] : [])].map((a) => a.family));
    if (fams.size > 1) return p.problem('mixes IPv4 and IPv6 addresses: it could never match');
    if (chain.length === c.value.length) policies.push({ id, ...match, chain });
  });

  const cfg: AgentConfig = {
    address: address ?? parseAddress('0.0.0.0'),
    localAddresses,
    interfaces,
    mode: r.oneOf('mode', ['auto', 'xdp', 'tc'], 'auto'),
    controlPort: r.int('controlPort', 7707, 1, 65535),
    socket: r.string('socket', '/run/dysco/agent.sock'),
    pinRoot: r.string('pinRoot', '/sys/fs/bpf/dysco'),
    stateDir: r.string('stateDir', '/var/lib/dysco'),
    metrics,
    maxSessions: r.int('maxSessions', 1 << 20, 16, 1 << 24),
    ports,
    keys,
    sendKeyId,
    requireAuth,
    policies,
    idleTimeout: r.number('idleTimeout', 300, 1, 86400 * 7),
    closedLinger: r.number('closedLinger', 30, 0, 3600),
    rto: r.int('rto', 200, 1, 60_000),
    maxRto: r.int('maxRto', 3200, 1, 600_000),
    logLevel: r.oneOf('logLevel', ['debug', 'info', 'warn', 'error'], 'info'),
  };
  if (cfg.maxRto < cfg.rto) r.at('maxRto').problem(`must be at least rto (${cfg.rto}), got ${cfg.maxRto}`);
  return r.done(cfg);
}

/** Reads and validates a configuration file. */
export function loadConfig(path: string): AgentConfig {
  return readConfigFile(path, validateConfig);
}
