import t from 'tap';
import { ConfigError, DEFAULTS, parseConfig } from '../dist/config.js';
import { UrlMatcher, normalizeUrl, splitHostPort } from '../dist/filter.js';

t.test('URL normalization', async (t) => {
  const n = (host: string, port: number, path: string) => normalizeUrl({ host, port, path });
  t.equal(n('Example.COM.', 80, '/a/b'), 'http://example.com/a/b');
  t.equal(n('h', 8080, '/'), 'http://h:8080/');
  t.equal(n('h', 80, '/%70rivate/%2f%7e'), 'http://h/private/%2F~', 'unreserved escapes decoded, others uppercased');
  t.equal(n('h', 80, '/a/./b/../../c/.'), 'http://h/c/');
  t.equal(n('h', 80, '//a///b'), 'http://h/a/b');
  t.equal(n('h', 80, '/a?x=%7e&y=/../'), 'http://h/a?x=~&y=/../', 'the query is not a path');
  t.equal(n('::1', 80, '/'), 'http://[::1]/');
});

t.test('deny rules: hosts, prefixes, patterns; encodings do not slip past them', async (t) => {
  const m = new UrlMatcher({
    hosts: ['ads.example', '.tracker.example'],
    urlPrefixes: ['/private/', 'http://site.example/admin', 'http://other.example'],
    urlPatterns: ['\\.exe$', '^http://[^/]+/cgi-bin/'],
  });
  const at = (host: string, path: string, port = 80) => m.match({ host, port, path });
  t.equal(at('ADS.example', '/'), 'host ads.example');
  t.equal(at('sub.ads.example', '/'), undefined, 'a plain host name is exact');
  t.equal(at('tracker.example', '/'), 'host .tracker.example');
  t.equal(at('a.b.tracker.example', '/x'), 'host .tracker.example');
  t.equal(at('nottracker.example', '/'), undefined);
  t.equal(at('h', '/private/x'), 'prefix /private/');
  t.equal(at('h', '/%70rivate/x'), 'prefix /private/');
  t.equal(at('h', '/public/../private/x'), 'prefix /private/');
  t.equal(at('h', '//private/x'), 'prefix /private/');
  t.equal(at('h', '/privatex'), undefined);
  t.equal(at('site.example', '/admin/users'), 'prefix http://site.example/admin');
  t.equal(at('site.example', '/admin', 8080), undefined, 'another port is another site');
  t.equal(at('other.example', '/anything'), 'prefix http://other.example');
  t.equal(at('h', '/download/setup.exe'), 'pattern \\.exe$');
  t.equal(at('h', '/cgi-bin/x'), 'pattern ^http://[^/]+/cgi-bin/');
  t.equal(at('h', '/fine'), undefined);
  t.ok(new UrlMatcher({}).empty);
  t.throws(() => new UrlMatcher({ urlPrefixes: ['https://x/'] }));
});

t.test('host and port', async (t) => {
  t.same(splitHostPort('h'), ['h', 80]);
  t.same(splitHostPort('h:8080'), ['h', 8080]);
  t.same(splitHostPort('h:'), ['h', 80]);
  t.same(splitHostPort('[fd00::1]:81'), ['fd00::1', 81]);
  t.throws(() => splitHostPort('h:99999'));
  t.throws(() => splitHostPort('user@h'));
  t.throws(() => splitHostPort('a b'));
});

t.test('configuration: defaults, and every problem named by its path', async (t) => {
  t.same(parseConfig({}), DEFAULTS);
  const c = parseConfig({ listen: 8080, deny: { urlPrefixes: ['/x/'] }, splice: { threshold: 10, keepAlive: 'final' }, inspect: { via: ['10.0.0.7'], urlPatterns: ['evil'] }, upstream: { hosts: { 'A.test': '10.0.0.9:8080' } } });
  t.equal(c.listen, 8080);
  t.equal(c.splice.threshold, 10);
  t.equal(c.splice.keepAlive, 'final');
  t.same(c.upstream.hosts, { 'a.test': '10.0.0.9:8080' });
  try {
    parseConfig({ lissten: 1, cache: { maxBytes: -1 }, splice: { keepAlive: 'sometimes' }, deny: { urlPatterns: ['('], urlPrefixes: ['ftp://x'] }, inspect: { urlPatterns: ['x'], via: ['box'] }, upstream: { hosts: { a: 'b c' } } }, 'f.json');
    t.fail('no error');
  } catch (e) {
    t.ok(e instanceof ConfigError);
    const p = (e as ConfigError).problems.join('\n');
    for (const path of ['f.json.lissten', 'f.json.cache.maxBytes', 'f.json.splice.keepAlive', 'f.json.deny.urlPatterns[0]', 'f.json.deny.urlPrefixes[0]', 'f.json.inspect.via[0]', 'f.json.upstream.hosts.a']) t.match(p, path);
  }
  t.throws(() => parseConfig({ inspect: { urlPatterns: ['x'] } }), ConfigError, 'inspection rules need boxes');
  t.throws(() => parseConfig([]), ConfigError);
});
