/**
 * The proxy's configuration file: a JSON object, every field optional.
 * Every problem is reported at once, each with its field's path (the
 * agent's ConfigReader does that).
 */
import { ConfigError, ConfigReader, shown } from '@dysco/agent/config-reader';
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

export { ConfigError };

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Checks and completes a parsed configuration file; `where` (the file's name) starts the field paths in errors. */
export function parseConfig(raw: unknown, where = 'config'): ProxyConfig {
  const r = ConfigReader.read(raw, where);

  /** A deny list or the classifier's rules: each pattern and prefix is checked alone, so that a problem names it. */
  const rules = (s: ConfigReader): { hosts: string[]; urlPrefixes: string[]; urlPatterns: string[] } => {
    const out = { hosts: s.strings('hosts'), urlPrefixes: s.strings('urlPrefixes'), urlPatterns: s.strings('urlPatterns') };
    out.urlPatterns.forEach((p, i) => s.at('urlPatterns').at(i).attempt(() => new RegExp(p)));
    out.urlPrefixes.forEach((p, i) => s.at('urlPrefixes').at(i).attempt(() => new UrlMatcher({ urlPrefixes: [p] })));
    return out;
  };

  r.known(['listen', 'listenAddress', 'name', 'upstream', 'deny', 'cache', 'splice', 'inspect', 'clientIdleMs']);
  const listen = r.int('listen', undefined, 1, 65535);
  const listenAddress = r.string('listenAddress', undefined, undefined, 'an address');
  const name = r.string('name', DEFAULTS.name, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'a token (letters, digits, -._~ and the like)');

  const up = r.section('upstream');
  up.known(['hosts', 'connectTimeoutMs', 'timeoutMs']);
  const hosts: Record<string, string> = {};
  const h = up.at('hosts');
  if (h.value !== undefined && !h.isObject) h.problem('must be an object of host names to "address[:port]"');
  for (const [host, a] of h.entries()) {
    const target = a.parse('"address[:port]"', (text) => {
      splitHostPort(text);
      return text;
    });
    if (target !== undefined) hosts[host.toLowerCase()] = target;
  }
  const upstream = {
    hosts,
    connectTimeoutMs: up.int('connectTimeoutMs', DEFAULTS.upstream.connectTimeoutMs, 1, 600_000),
    timeoutMs: up.int('timeoutMs', DEFAULTS.upstream.timeoutMs, 1, 3_600_000),
  };

  const d = r.section('deny');
  d.known(['hosts', 'urlPrefixes', 'urlPatterns']);
  const deny = rules(d);

  const c = r.section('cache');
  c.known(['enabled', 'maxBytes', 'maxEntryBytes', 'maxEntries']);
  const cache = {
    enabled: c.boolean('enabled', DEFAULTS.cache.enabled),
    maxBytes: c.int('maxBytes', DEFAULTS.cache.maxBytes, 0, 2 ** 40),
    maxEntryBytes: c.int('maxEntryBytes', DEFAULTS.cache.maxEntryBytes, 0, 2 ** 40),
    maxEntries: c.int('maxEntries', DEFAULTS.cache.maxEntries, 1, 10_000_000),
  };

  const s = r.section('splice');
  s.known(['enabled', 'threshold', 'keepAlive']);
  const splice = {
    enabled: s.boolean('enabled', DEFAULTS.splice.enabled),
    threshold: s.int('threshold', DEFAULTS.splice.threshold, 0, Number.MAX_SAFE_INTEGER),
    keepAlive: s.oneOf('keepAlive', ['handover', 'final'], DEFAULTS.splice.keepAlive),
  };

  const i = r.section('inspect');
  i.known(['via', 'hosts', 'urlPrefixes', 'urlPatterns']);
  const via = i.strings('via');
  via.forEach((a, k) => {
    const m = IPV4.exec(a);
    if (!(m && m.slice(1).every((o) => Number(o) <= 255)) && !/^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*$/.test(a)) i.at('via').at(k).problem(`must be an IP address, got ${shown(a)}`);
  });
  const inspect = { via, ...rules(i) };
  if (via.length === 0 && inspect.hosts.length + inspect.urlPrefixes.length + inspect.urlPatterns.length > 0) i.at('via').problem('is required with inspection rules: the boxes suspicious requests go through');
  if (via.length > 7) i.at('via').problem('at most 7 boxes');

  const clientIdleMs = r.int('clientIdleMs', DEFAULTS.clientIdleMs, 1, 3_600_000);
  return r.done({
    ...(listen !== undefined ? { listen } : {}),
    ...(listenAddress !== undefined ? { listenAddress } : {}),
    name,
    upstream,
    deny,
    cache,
    splice,
    inspect,
    clientIdleMs,
  });
}
