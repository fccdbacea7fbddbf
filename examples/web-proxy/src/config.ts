/**
 * The proxy's configuration file: a JSON object, every field optional.
 * Every problem is reported at once, each with its field's path.
 */
import type { UrlRules } from './filter.js';
import { UrlMatcher, splitHostPort } from './filter.js';

export interface ProxyConfig {
  /** Port to listen on (the command line's --listen wins). */
  readonly listen?: number;
  /** Address to listen on (default: every address). */
  readonly listenAddress?: string;
  /** Name in the Via header and the logs. */
  readonly name: string;
  readonly upstream: {
    /** Host names (as in the Host header) mapped to `address[:port]`; other hosts are resolved by DNS. */
    readonly hosts: Readonly<Record<string, string>>;
    readonly connectTimeoutMs: number;
    /** No response bytes for this long: 504 (or the connection is cut if the response had started). */
    readonly timeoutMs: number;
  };
  readonly deny: UrlRules;
  readonly cache: {
    readonly enabled: boolean;
    readonly maxBytes: number;
    readonly maxEntryBytes: number;
    readonly maxEntries: number;
  };
  readonly splice: {
    readonly enabled: boolean;
    /** Responses whose Content-Length is above this are spliced. */
    readonly threshold: number;
    /**
     * `handover`: the rest of the client's connection belongs to the server
     * (later requests on it go to the server directly, unfiltered and
     * uncached); `final`: splice only when no other request can follow
     * (`Connection: close` on the request or the response).
     */
    readonly keepAlive: 'handover' | 'final';
  };
  /** The classifier: requests matching these rules go to the server through `via`. */
  readonly inspect: UrlRules & { readonly via: readonly string[] };
  /** An idle client connection is closed after this long. */
  readonly clientIdleMs: number;
}

export const DEFAULTS: ProxyConfig = {
  name: 'dysco-web-proxy',
  upstream: { hosts: {}, connectTimeoutMs: 5000, timeoutMs: 30000 },
  deny: { hosts: [], urlPrefixes: [], urlPatterns: [] },
  cache: { enabled: true, maxBytes: 64 * 1024 * 1024, maxEntryBytes: 1024 * 1024, maxEntries: 10000 },
  splice: { enabled: true, threshold: 1024 * 1024, keepAlive: 'handover' },
  inspect: { via: [], hosts: [], urlPrefixes: [], urlPatterns: [] },
  clientIdleMs: 60000,
};

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Checks and completes a parsed configuration file; `where` prefixes the field paths in errors. */
export function parseConfig(raw: unknown, where = 'config'): ProxyConfig {
  const problems: string[] = [];
  const bad = (path: string, msg: string) => problems.push(`${where}${path}: ${msg}`);
  if (!isObj(raw)) throw new ConfigError([`${where}: must be a JSON object`]);

  const known = (o: Obj, path: string, fields: readonly string[]) => {
    for (const k of Object.keys(o)) if (!fields.includes(k) && k !== 'comment' && k !== '$schema') bad(`${path}.${k}`, `unknown field (known: ${fields.join(', ')})`);
  };
  const section = (name: string): Obj => {
    const v = raw[name];
    if (v === undefined) return {};
    if (!isObj(v)) {
      bad(`.${name}`, 'must be an object');
      return {};
    }
    return v;
  };
  const int = (o: Obj, path: string, k: string, dflt: number, min: number, max: number): number => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad(`${path}.${k}`, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const bool = (o: Obj, path: string, k: string, dflt: boolean): boolean => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      bad(`${path}.${k}`, `must be true or false, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const strings = (o: Obj, path: string, k: string): string[] => {
    const v = o[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0)) {
      bad(`${path}.${k}`, 'must be a list of non-empty strings');
      return [];
    }
    return v as string[];
  };
  const rules = (o: Obj, path: string): { hosts: string[]; urlPrefixes: string[]; urlPatterns: string[] } => {
    const r = { hosts: strings(o, path, 'hosts'), urlPrefixes: strings(o, path, 'urlPrefixes'), urlPatterns: strings(o, path, 'urlPatterns') };
    r.urlPatterns.forEach((p, i) => {
      try {
        new RegExp(p);
      } catch (e) {
        bad(`${path}.urlPatterns[${i}]`, `not a regular expression: ${(e as Error).message}`);
      }
    });
    r.urlPrefixes.forEach((p, i) => {
      try {
        new UrlMatcher({ urlPrefixes: [p] });
      } catch (e) {
        bad(`${path}.urlPrefixes[${i}]`, (e as Error).message);
      }
    });
    return r;
  };

  known(raw, '', ['listen', 'listenAddress', 'name', 'upstream', 'deny', 'cache', 'splice', 'inspect', 'clientIdleMs']);
  const listen = raw.listen === undefined ? undefined : int(raw, '', 'listen', 0, 1, 65535);
  let listenAddress: string | undefined;
  if (raw.listenAddress !== undefined) {
    if (typeof raw.listenAddress !== 'string') bad('.listenAddress', 'must be an address');
    else listenAddress = raw.listenAddress;
  }
  let name = DEFAULTS.name;
  if (raw.name !== undefined) {
    if (typeof raw.name !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(raw.name)) bad('.name', 'must be a token (letters, digits, -._~ and the like)');
    else name = raw.name;
  }

  const up = section('upstream');
  known(up, '.upstream', ['hosts', 'connectTimeoutMs', 'timeoutMs']);
  const hosts: Record<string, string> = {};
  if (up.hosts !== undefined) {
    if (!isObj(up.hosts)) bad('.upstream.hosts', 'must be an object of host names to "address[:port]"');
    else
      for (const [h, a] of Object.entries(up.hosts)) {
        try {
          if (typeof a !== 'string') throw new Error('must be "address[:port]"');
          splitHostPort(a);
          hosts[h.toLowerCase()] = a;
        } catch (e) {
          bad(`.upstream.hosts.${h}`, (e as Error).message);
        }
      }
  }
  const upstream = {
    hosts,
    connectTimeoutMs: int(up, '.upstream', 'connectTimeoutMs', DEFAULTS.upstream.connectTimeoutMs, 1, 600_000),
    timeoutMs: int(up, '.upstream', 'timeoutMs', DEFAULTS.upstream.timeoutMs, 1, 3_600_000),
  };

  const d = section('deny');
  known(d, '.deny', ['hosts', 'urlPrefixes', 'urlPatterns']);
  const deny = rules(d, '.deny');

  const c = section('cache');
  known(c, '.cache', ['enabled', 'maxBytes', 'maxEntryBytes', 'maxEntries']);
  const cache = {
    enabled: bool(c, '.cache', 'enabled', DEFAULTS.cache.enabled),
    maxBytes: int(c, '.cache', 'maxBytes', DEFAULTS.cache.maxBytes, 0, 2 ** 40),
    maxEntryBytes: int(c, '.cache', 'maxEntryBytes', DEFAULTS.cache.maxEntryBytes, 0, 2 ** 40),
    maxEntries: int(c, '.cache', 'maxEntries', DEFAULTS.cache.maxEntries, 1, 10_000_000),
  };

  const s = section('splice');
  known(s, '.splice', ['enabled', 'threshold', 'keepAlive']);
  let keepAlive: 'handover' | 'final' = DEFAULTS.splice.keepAlive;
  if (s.keepAlive !== undefined) {
    if (s.keepAlive !== 'handover' && s.keepAlive !== 'final') bad('.splice.keepAlive', `must be "handover" or "final", got ${JSON.stringify(s.keepAlive)}`);
    else keepAlive = s.keepAlive;
  }
  const splice = {
    enabled: bool(s, '.splice', 'enabled', DEFAULTS.splice.enabled),
    threshold: int(s, '.splice', 'threshold', DEFAULTS.splice.threshold, 0, Number.MAX_SAFE_INTEGER),
    keepAlive,
  };

  const i = section('inspect');
  known(i, '.inspect', ['via', 'hosts', 'urlPrefixes', 'urlPatterns']);
  const via = strings(i, '.inspect', 'via');
  via.forEach((a, k) => {
    const m = IPV4.exec(a);
    if (!(m && m.slice(1).every((o) => Number(o) <= 255)) && !/^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*$/.test(a)) bad(`.inspect.via[${k}]`, `must be an IP address, got ${JSON.stringify(a)}`);
  });
  const inspect = { via, ...rules(i, '.inspect') };
  if (via.length === 0 && (inspect.hosts.length + inspect.urlPrefixes.length + inspect.urlPatterns.length) > 0) bad('.inspect.via', 'is required with inspection rules: the boxes suspicious requests go through');
  if (via.length > 7) bad('.inspect.via', 'at most 7 boxes');

  const clientIdleMs = int(raw, '', 'clientIdleMs', DEFAULTS.clientIdleMs, 1, 3_600_000);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...(listen !== undefined ? { listen } : {}),
    ...(listenAddress !== undefined ? { listenAddress } : {}),
    name,
    upstream,
    deny,
    cache,
    splice,
    inspect,
    clientIdleMs,
  };
}
