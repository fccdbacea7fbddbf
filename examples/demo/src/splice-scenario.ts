/**
 * The `splice` scenario: the web proxy example on the proxy host, its
 * origin server on the server host, curl on the client. The client's agent
 * steers the sessions for the server's port 80 through the proxy host,
 * where nftables redirects them to the proxy. curl fetches a cacheable
 * page twice (the second answer comes from the proxy's cache), a denied
 * URL (403 from the proxy), then a large object: the proxy forwards the
 * response's head and splices itself out with `dysco.splice()`, and the
 * body flows from the server to curl directly.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host } from '@dysco/agent/topology';
import { ORIGIN_COMMAND, PROXY_COMMAND, pattern } from '@dysco-example/web-proxy';
import { type Scenario, noteReconfiguration } from './context.js';
import { Meter, Program, type Rec, StreamHash, mb, mbit, runIn, within } from './lib.js';
import type { Mark } from './svg.js';

const PROXY_PORT = 8080;
const SPLICE_THRESHOLD = 1 << 20;

/** SHA-256 of the origin's /big?size=N: its 64 KiB block repeated. */
function bigSha256(size: number): string {
  const block = pattern(64 * 1024);
  const h = createHash('sha256');
  for (let off = 0; off < size; off += block.length) h.update(block.subarray(0, Math.min(block.length, size - off)));
  return h.digest('hex');
}

interface SessionView {
  session: string;
  right?: { agent: string };
}

export const splice: Scenario = {
  name: 'splice',
  summary: 'curl fetches from a web server through the web proxy: a cache hit, a denied URL, then a large download the proxy splices itself out of after the response head',
  agentConfig: (ctx, host) => {
    const S = ctx.h('server').address;
    // the client's sessions to the web server cross the proxy host; the proxy's own are direct sessions (an empty chain), which it can splice
    if (host === 'client') return { policies: [{ id: 20, match: `dst ${S}/32 dport 80`, chain: [ctx.h('proxy').address] }] };
    if (host === 'proxy') return { policies: [{ id: 21, match: `dst ${S}/32 dport 80`, chain: [] }] };
    return {};
  },
  async run(ctx) {
    const [client, proxy, server] = ['client', 'proxy', 'server'].map(ctx.h) as [Host, Host, Host];
    const S = server.address;
    const marks: Mark[] = [];
    proxy.run(`nft add table ip demo_webproxy && nft add chain ip demo_webproxy pre '{ type nat hook prerouting priority -100; }' && nft add rule ip demo_webproxy pre ip daddr ${S} tcp dport 80 redirect to :${PROXY_PORT}`);
    proxy.run('sysctl -qw net.ipv4.tcp_timestamps=0');
    const origin = new Program('the web server', server.node(ORIGIN_COMMAND, ['--port', '80']));
    const cfgFile = join(ctx.bed.dir, 'web-proxy.json');
    writeFileSync(cfgFile, JSON.stringify({ deny: { urlPrefixes: ['/private/'] }, splice: { enabled: true, threshold: SPLICE_THRESHOLD } }, null, 2));
    const px = new Program('the web proxy', proxy.node(PROXY_COMMAND, ['--socket', proxy.socket, '--listen', String(PROXY_PORT), '--config', cfgFile]));
    try {
      await origin.waitFor('the web server to listen', () => origin.text.find((l) => l === 'listening 80'));
      await px.record('the web proxy to listen', (r) => r.msg === 'listening');
      ctx.say(`  web server (node:http) on server:80; the web proxy on proxy:${PROXY_PORT}, where nftables redirects the client's sessions for ${S}:80`);
      ctx.say(`  the proxy caches, filters (deny /private/) and splices responses over ${mb(SPLICE_THRESHOLD)}; TCP timestamps are off on its host, as splicing needs`);
      const fromOrigin = (prefix: string) => origin.records.filter((r) => String(r.url).startsWith(prefix)).length;
      const proxyRecord = (path: string, n = 1) =>
        px.waitFor(`the proxy's log record for ${path}`, () => {
          const l = px.records.filter((r) => r.msg === 'request' && r.path === path);
          return l.length >= n ? l[n - 1] : undefined;
        });
      const get = async (path: string) => {
        const r = await runIn(client, ['curl', '-sS', '--max-time', '20', '-o', '/dev/null', '-D', '-', '-w', 'status=%{http_code}\n', `http://${S}${path}`]);
        const status = /status=(\d+)/.exec(r.stdout)?.[1] ?? `curl failed (${r.code}): ${r.stderr.trim()}`;
        const xcache = /^x-cache:\s*(\S+)/im.exec(r.stdout)?.[1];
        return { status, xcache };
      };

      // a cacheable page, twice
      const first = await get('/page');
      const rec1 = await proxyRecord('/page');
      ctx.say(`  curl GET /page: ${first.status}, X-Cache: ${first.xcache ?? '-'}: fetched from the server by the proxy${rec1.stored ? ', which stored it (max-age=300)' : ''}`);
      const second = await get('/page');
      const rec2 = await proxyRecord('/page', 2);
      const served = fromOrigin('/page');
      ctx.say(`  curl GET /page again: ${second.status}, X-Cache: ${second.xcache ?? '-'}: answered from the proxy's cache; the server saw ${served} request for it`);
      if (first.status !== '200' || second.status !== '200' || rec2.cache !== 'hit' || served !== 1) ctx.fail(`splice: the cached page: ${first.status}/${second.status}, second ${String(rec2.cache)}, ${served} request(s) at the server`);

      // a denied URL
      const denied = await get('/private/secret.txt');
      const rec3 = await proxyRecord('/private/secret.txt');
      ctx.say(`  curl GET /private/secret.txt: ${denied.status} from the proxy (rule ${String(rec3.rule)}); the server saw ${fromOrigin('/private')} requests for it`);
      if (denied.status !== '403' || rec3.cache !== 'denied' || fromOrigin('/private') !== 0) ctx.fail(`splice: the denied URL: ${denied.status}, ${String(rec3.cache)}`);

      // the large object: spliced
      const size = Math.max(4 * SPLICE_THRESHOLD, Math.round(ctx.rate * ctx.duration));
      const path = `/big?size=${size}&rate=${Math.round(ctx.rate)}`;
      ctx.say(`  curl GET /big: ${mb(size)} that the server sends at ${mbit(ctx.rate)}; curl writes it to a pipe the demo hashes`);
      const t0 = Date.now();
      const meter = new Meter(t0, (m) => ctx.say(`    ${m.toFixed(1)} Mbit/s download`));
      const hash = new StreamHash();
      const curl = client.spawn(['curl', '-sS', '--max-time', String(Math.round(ctx.duration * 5 + 30)), '-o', '-', '-w', '%{stderr}result %{http_code} %{local_port} %{size_download}\n', `http://${S}${path}`]);
      let curlErr = '';
      curl.stdout!.on('data', (d: Buffer) => {
        hash.update(d);
        meter.add(d.length);
      });
      curl.stderr!.on('data', (d: Buffer) => (curlErr += d.toString()));
      const exited = new Promise<number | null>((r) => curl.once('exit', (code) => r(code)));
      // the proxy logs the request once the splice is over, while the body still flows
      const spliced = px.record('the splice', (r) => r.msg === 'request' && r.path === path, ctx.duration * 5000 + 30_000).then((rec: Rec) => {
        const sp = rec.splice as { result: string; reason?: string; durationMs: number; relayedBytes: number } | undefined;
        if (!sp) {
          ctx.fail(`splice: the proxy did not splice the download (cache: ${String(rec.cache)})`);
          return;
        }
        noteReconfiguration(ctx, 'splice', marks, t0, 'proxy spliced out', sp.result, sp.durationMs, `${sp.reason ? `(${sp.reason}) ` : ''}after forwarding the response head; it relayed ${sp.relayedBytes} body bytes itself`);
      });
      spliced.catch(() => undefined); // awaited below, after the download
      let code: number | null;
      try {
        code = await within(ctx.duration * 5000 + 40_000, 'curl to finish the download', exited);
      } finally {
        meter.stop();
      }
      await spliced;
      const [status, localPort, got] = (/result (\d+) (\d+) (\d+)/.exec(curlErr)?.slice(1) ?? []).map(Number);
      const sha = hash.digest();
      if (code !== 0 || status !== 200 || hash.bytes !== size || sha !== bigSha256(size)) {
        ctx.fail(`splice: the download: curl exit ${code}, status ${status}, ${hash.bytes} of ${size} bytes${hash.bytes === size ? ', content differs' : ''} ${curlErr.trim()}`);
      } else {
        ctx.say(`  download complete: ${mb(got ?? hash.bytes)} in ${((Date.now() - t0) / 1000).toFixed(1)} s, SHA-256 matches the server's object; longest stall ${hash.maxGapMs} ms`);
      }
      if (localPort) {
        const r = await client.agent!.cliAsync('sessions', '--json');
        const mine = (JSON.parse(r.stdout || '[]') as SessionView[]).find((s) => s.session === `${client.address}:${localPort}>${S}:80`);
        const right = mine?.right?.agent;
        ctx.say(`  curl's session ${client.address}:${localPort}>${S}:80 at the client's agent: next hop ${right === S ? 'the server itself: the proxy is off the path' : (right ?? 'unknown')}`);
        if (right !== S) ctx.fail(`splice: the client's agent still sends the session to ${right ?? 'nobody'}`);
      }
      return { title: 'splice: the web proxy leaves the download after the response head', series: [{ label: 'download', points: meter.samples }], marks };
    } finally {
      await Promise.all([px.stop(), origin.stop()]);
      try {
        proxy.run('nft delete table ip demo_webproxy');
      } catch {
        // the namespace goes anyway
      }
    }
  },
};
