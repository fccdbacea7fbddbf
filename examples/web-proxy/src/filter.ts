/**
 * URL rules: the deny list and the classifier's list of suspicious URLs.
 * Pure.
 *
 * A rule set has three kinds of rules:
 * - `hosts`: `example.com` matches that host; `.example.com` matches it and
 *   every subdomain;
 * - `urlPrefixes`: `http://example.com/private/` matches the URLs starting
 *   with it; a prefix starting with `/` matches the path of any host;
 * - `urlPatterns`: regular expressions (JavaScript syntax) tested against the
 *   whole URL, `http://host[:port]/path?query`.
 *
 * URLs are normalized before matching, so that an encoding cannot slip
 * past a rule: host lowercased, default port dropped, percent-encoded
 * unreserved characters decoded and other escapes uppercased, `.` and `..`
 * segments resolved, repeated slashes collapsed.
 */

export interface UrlRules {
  readonly hosts?: readonly string[];
  readonly urlPrefixes?: readonly string[];
  readonly urlPatterns?: readonly string[];
}

export interface UrlParts {
  readonly host: string;
  readonly port: number;
  /** The request target in origin form: path and query. */
  readonly path: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalizeEscapes(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : `%${hex.toUpperCase()}`;
  });
}

/** RFC 3986 section 5.2.4, on a path that starts with `/`. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segs = path.split('/').slice(1);
  segs.forEach((seg, i) => {
    const last = i === segs.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(seg);
  });
  return `/${out.join('/')}`;
}

export function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/** The normalized URL used for matching. */
export function normalizeUrl(u: UrlParts): string {
  const host = normalizeHost(u.host);
  const q = u.path.indexOf('?');
  let path = q < 0 ? u.path : u.path.slice(0, q);
  const query = q < 0 ? '' : u.path.slice(q);
  if (!path.startsWith('/')) path = `/${path}`;
  path = removeDotSegments(normalizeEscapes(path).replace(/\/{2,}/g, '/'));
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${u.port === 80 ? h : `${h}:${u.port}`}${path}${normalizeEscapes(query)}`;
}

export class UrlMatcher {
  private readonly exactHosts = new Set<string>();
  private readonly domains: string[] = [];
  private readonly prefixes: { full: boolean; text: string; rule: string }[] = [];
  private readonly patterns: { re: RegExp; rule: string }[] = [];

  constructor(rules: UrlRules = {}) {
    for (const h of rules.hosts ?? []) {
      if (h.startsWith('.')) this.domains.push(normalizeHost(h.slice(1)));
      else this.exactHosts.add(normalizeHost(h));
    }
    for (const p of rules.urlPrefixes ?? []) {
      if (p.startsWith('/')) this.prefixes.push({ full: false, text: normalizeUrl({ host: 'x', port: 80, path: p }).slice('http://x'.length), rule: p });
      else {
        const m = /^http:\/\/([^/?#]+)(.*)$/i.exec(p);
        if (!m) throw new Error(`URL prefix ${JSON.stringify(p)}: must start with http:// or /`);
        const [host, port] = splitHostPort(m[1]!);
        // a prefix ending in the host name alone means every path of that host
        const path = m[2] === '' ? '/' : m[2]!;
        this.prefixes.push({ full: true, text: normalizeUrl({ host, port, path }), rule: p });
      }
    }
    for (const r of rules.urlPatterns ?? []) this.patterns.push({ re: new RegExp(r), rule: r });
  }

  get empty(): boolean {
    return this.exactHosts.size === 0 && this.domains.length === 0 && this.prefixes.length === 0 && this.patterns.length === 0;
  }

  /** The rule the URL matches (as written in the configuration), or undefined. */
  match(u: UrlParts): string | undefined {
    const host = normalizeHost(u.host);
    if (this.exactHosts.has(host)) return `host ${host}`;
    for (const d of this.domains) if (host === d || host.endsWith(`.${d}`)) return `host .${d}`;
    const url = normalizeUrl(u);
    const path = url.slice(url.indexOf('/', 'http://'.length));
    for (const p of this.prefixes) if ((p.full ? url : path).startsWith(p.text)) return `prefix ${p.rule}`;
    for (const p of this.patterns) if (p.re.test(url)) return `pattern ${p.rule}`;
    return undefined;
  }
}

/** `host[:port]` (an IPv6 literal in brackets) into its parts; port 80 by default. Throws on a malformed authority. */
export function splitHostPort(authority: string): [host: string, port: number] {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]@/\s]+)(?::(\d{0,5}))?$/.exec(authority);
  if (!m) throw new Error(`bad host ${JSON.stringify(authority)}`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = m[2] === undefined || m[2] === '' ? 80 : Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`bad port in ${JSON.stringify(authority)}`);
  return [host, port];
}
