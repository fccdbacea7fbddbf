/**
 * The web proxy on a namespace test bed: client, proxy, an inspection box
 * and the server, each with an agent. The client's sessions to the server's
 * port 80 go through the proxy host, where nftables redirects them to the
 * proxy; the proxy's own connections to the server are direct sessions (an
 * empty chain), so it can splice itself out. The client is curl, the server
 * a small node:http origin.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { type Host, Topology, eachLine } from '@dysco/agent/topology';
import { CHUNKED_BODY, PAGE, pattern } from '../dist/origin.js';

const ORIGIN = fileURLToPath(new URL('../dist/origin.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const BIG = 20 * 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs curl in a host's namespace without blocking the test's event loop. */
function curl(h: Host, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = h.spawn(['curl', '-sS', '--max-time', '60', ...args]);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => p.once('exit', (code) => resolve({ code, stdout, stderr })));
}

interface SessionView {
  session: string;
  left?: { agent: string };
  right?: { agent: string };
}

const skip = await Topology.unavailable([
  ['curl', 'curl'],
  ['nft', 'nftables'],
]);

t.test('the web proxy on live sessions: cache, filter, chunked relay, classifier, splice', skip ? { skip } : {}, async (t) => {
  const bed = Topology.create({ hosts: ['client', 'proxy', { name: 'box', router: true }, 'server'] });
  t.teardown(() => bed.destroy());
  const [client, proxy, box, server] = (['client', 'proxy', 'box', 'server'] as const).map((n) => bed.host(n)) as [Host, Host, Host, Host];
  const S = server.address;
  proxy.run(
    `nft add table ip wp && nft add chain ip wp pre '{ type nat hook prerouting priority -100; }' && nft add rule ip wp pre ip daddr ${S} tcp dport 80 redirect to :8080`,
  );
  proxy.run('sysctl -qw net.ipv4.tcp_timestamps=0');
  await client.startAgent({ config: { policies: [{ id: 1, match: `dst ${S}/32 dport 80`, chain: [proxy.address] }] } });
  await proxy.startAgent({ config: { policies: [{ id: 1, match: `dst ${S}/32 dport 80`, chain: [] }] } });
  await box.startAgent();
  await server.startAgent();

  const originLines: string[] = [];
  const origin = server.node(ORIGIN, ['--port', '80']);
  eachLine(origin, (l) => originLines.push(l));
  await until('the origin server', () => originLines.includes('listening 80'));
  const originCount = (prefix: string) =>
    originLines.filter((l) => l.startsWith('{') && (JSON.parse(l) as { url: string }).url.startsWith(prefix)).length;

  const cfgFile = join(bed.dir, 'web-proxy.json');
  writeFileSync(
    cfgFile,
    JSON.stringify({
      deny: { urlPrefixes: ['/private/'], hosts: ['.blocked.test'] },
      splice: { threshold: 1024 * 1024, keepAlive: 'handover' },
      inspect: { via: [box.address], urlPatterns: ['/suspicious/'] },
    }),
  );
  const proxyLines: string[] = [];
  let proxyErr = '';
  const app = proxy.node(MAIN, ['--socket', proxy.socket, '--listen', '8080', '--config', cfgFile]);
  eachLine(app, (l) => proxyLines.push(l));
  app.stderr!.on('data', (d: Buffer) => (proxyErr += d.toString()));
  const logs = () => proxyLines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const records = () => logs().filter((r) => r.msg === 'request');
  await until('the proxy', () => logs().some((r) => r.msg === 'listening')).catch((e: Error) => {
    throw new Error(`${e.message}: ${proxyErr}`);
  });
  /** The proxy's records for a path, once there are `n` of them (its log lines can arrive after curl exits). */
  const recordsFor = async (path: string, n = 1) => {
    await until(`${n} log record(s) for ${path}`, () => records().filter((r) => r.path === path).length >= n);
    return records().filter((r) => r.path === path);
  };
  const sessionsAt = (h: Host) => JSON.parse(h.agent!.cli('sessions', '--json').stdout) as SessionView[];
  const file = (name: string) => join(bed.dir, name);

  await t.test('a cacheable page: the second request is served by the proxy', async (t) => {
    const a = await curl(client, ['-o', file('page1'), '-w', '%{http_code}', `http://${S}/page`]);
    const b = await curl(client, ['-o', file('page2'), '-D', file('page2.h'), '-w', '%{http_code}', `http://${S}/page`]);
    t.equal(a.stdout, '200', a.stderr);
    t.equal(b.stdout, '200', b.stderr);
    t.equal(readFileSync(file('page1'), 'utf8'), PAGE);
    t.equal(readFileSync(file('page2'), 'utf8'), PAGE);
    t.match(readFileSync(file('page2.h'), 'utf8'), /^x-cache: HIT\r?$/im, 'answered from the cache');
    t.equal(originCount('/page'), 1, "the origin's request count did not increase");
    t.same((await recordsFor('/page', 2)).map((r) => r.cache), ['miss', 'hit']);
  });

  await t.test('a denied URL: 403, the origin never contacted', async (t) => {
    const r = await curl(client, ['-o', '/dev/null', '-w', '%{http_code}', `http://${S}/private/secret.txt`]);
    t.equal(r.stdout, '403');
    t.equal(originCount('/private'), 0);
    const [rec] = await recordsFor('/private/secret.txt');
    t.match(rec, { method: 'GET', host: S, status: 403, cache: 'denied', rule: 'prefix /private/' }, 'logged');
  });

  await t.test('a chunked response relayed intact, trailer included', async (t) => {
    const r = await curl(client, ['-o', file('chunked'), '-D', file('chunked.h'), '-w', '%{http_code}', `http://${S}/chunked`]);
    t.equal(r.stdout, '200', r.stderr);
    t.equal(readFileSync(file('chunked'), 'utf8'), CHUNKED_BODY);
    const h = readFileSync(file('chunked.h'), 'utf8');
    t.match(h, /^transfer-encoding: chunked\r?$/im);
    t.match(h, new RegExp(`^x-digest: ${createHash('sha256').update(CHUNKED_BODY).digest('hex')}\\r?$`, 'im'), 'the trailer');
  });

  await t.test('a suspicious URL goes to the server through the inspection box', async (t) => {
    const r = await curl(client, ['-o', file('susp'), '-w', '%{http_code}', `http://${S}/suspicious/x`]);
    t.equal(r.stdout, '200', r.stderr);
    t.equal(readFileSync(file('susp'), 'utf8'), 'GET /suspicious/x\n');
    const atBox = sessionsAt(box);
    t.ok(atBox.some((s) => s.left?.agent === proxy.address && s.right?.agent === S), "the proxy's upstream session crossed the box");
    t.match((await recordsFor('/suspicious/x'))[0], { via: [box.address], cache: 'miss' });
  });

  await t.test('a large response: the proxy splices itself out; every byte arrives', async (t) => {
    const r = await curl(client, ['-o', file('big'), '-w', '%{http_code} %{local_port} %{size_download}', `http://${S}/big?rate=10000000`]);
    const [code, localPort, size] = r.stdout.split(' ');
    t.equal(code, '200', r.stderr);
    t.equal(Number(size), BIG);
    const got = client.run(`sha256sum ${file('big')}`).split(' ')[0];
    t.equal(got, createHash('sha256').update(pattern(BIG)).digest('hex'), "SHA-256 matches the origin's");
    await until('the splice record', () => records().some((x) => x.cache === 'spliced'), 15_000);
    const rec = records().find((x) => x.cache === 'spliced')!;
    const sp = rec.splice as { result: string; durationMs: number; relayedBytes: number };
    t.match(rec, { method: 'GET', path: '/big?rate=10000000', status: 200, bytes: BIG });
    t.equal(sp.result, 'completed', `spliced in ${sp.durationMs} ms`);
    t.comment(`proxy log: ${JSON.stringify(rec)}`);
    t.ok(sp.relayedBytes < BIG, `the proxy relayed ${sp.relayedBytes} of ${BIG} body bytes itself`);
    const mine = sessionsAt(client).find((s) => s.session === `${client.address}:${localPort}>${S}:80`);
    t.ok(mine, "curl's session is at the client agent");
    t.equal(mine?.right?.agent, S, "the client agent's session now has the server as its right neighbour");
    t.ok(sessionsAt(server).some((s) => s.left?.agent === client.address), 'and the server agent hears from the client');
  });

  await t.test('handover: after a splice, the next request on the connection goes to the server directly', async (t) => {
    const before = records().length;
    const r = await curl(client, ['-o', file('big2'), '-o', file('after'), '-w', '%{http_code} %{num_connects}\\n', `http://${S}/big?size=4000000&rate=8000000`, `http://${S}/after-splice`]);
    t.equal(r.stdout, '200 1\n200 0\n', `both answered, on one connection ${r.stderr}`);
    t.equal(readFileSync(file('big2')).length, 4_000_000);
    t.equal(readFileSync(file('after'), 'utf8'), 'GET /after-splice\n');
    await until('the splice record', () => records().length > before, 15_000);
    t.equal(originCount('/after-splice'), 1, 'the origin answered');
    t.notOk(records().some((x) => x.path === '/after-splice'), 'without the proxy seeing it');
  });

  app.kill('SIGTERM');
  origin.kill('SIGTERM');
});
