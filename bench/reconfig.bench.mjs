// `npm run bench -- reconfig [--quick]`: how long live reconfigurations take
// on sessions that carry data, and whether a byte is lost.
//
// Bed: client, box1, box2, proxy and server on one segment, an agent on
// each (TC mode). The client's policies steer port 9000-9099 through box1,
// and port 9300 through the proxy.
//
// 1. Sequential: a paced bulk transfer both ways (the stream tool) through
//    box1, and at the client, one after the other: remove box1, insert it
//    again, replace it with box2, replace box2 with box1, as many cycles as
//    --cycles (default 100, --quick 10). The agent's own duration of each
//    (request to outcome at the requesting agent) gives p50 and p99. Every
//    transfer must end with every byte, hashes equal, no reset.
// 2. Proxy splice: a TypeScript proxy on the proxy host (the one of the
//    agent's tests, splice-proxy.js) relays each new session and splices
//    itself out after 150 ms; --splices runs (default 100, --quick 10), each
//    a fresh transfer checked the same way.
// 3. Concurrent: --sessions paced connections at once (default 64, --quick
//    16) through box1; all of them removed at the same time, then inserted,
//    replaced and replaced back, --rounds times (default 3, --quick 1):
//    reconfigurations completed per second, and every connection's bytes
//    checked at the end.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@dysco/agent/client';
import { STREAM_TOOL, Topology } from '@dysco/agent/topology';
import { AGENT_CONFIG } from './lib/beds.mjs';
import {
  BED_COMMANDS, BENCH_DIR, ROOT, atCleanup, ensureCommands, machine, onLines, option, percentile, printResult, quick, requireRoot, round, runMain, say, sleep, table, waitLine,
} from './lib/common.mjs';

const CYCLES = Number(option('cycles', quick ? 10 : 100));
const SPLICES = Number(option('splices', quick ? 10 : 100));
const SESSIONS = Number(option('sessions', quick ? 16 : 64));
const ROUNDS = Number(option('rounds', quick ? 1 : 3));
const RATE = Number(option('rate', quick ? 10e6 : 40e6)); // bytes/s each way, sequential part
const TRANSFER_S = quick ? 6 : 15; // seconds of one bulk transfer in the sequential part
const SPLICE_PROXY = join(ROOT, 'packages', 'agent', 'dist-test', 'splice-proxy.js');
const MANY = join(BENCH_DIR, 'tools', 'many.mjs');

/** Retries an operation the agent refuses because the session is still busy with the previous one. */
async function attempt(op, stats) {
  for (let i = 0; ; i++) {
    try {
      const o = await op();
      if (o.result === 'aborted' && (o.reason === 'busy' || o.reason === 'locked') && i < 50) {
        stats.retries++;
        await sleep(20);
        continue;
      }
      return o;
    } catch (e) {
      if (e.code === 'EBUSY' && i < 50) {
        stats.retries++;
        await sleep(20);
        continue;
      }
      throw e;
    }
  }
}

/** A stream-tool transfer between two hosts; resolves its reports. */
async function transfer(client, server, port, bytes, rate) {
  const srv = server.node(STREAM_TOOL, ['server', '--port', String(port), '--bytes', String(bytes), '--rate', String(rate)]);
  const reports = (p, what) => new Promise((resolve, reject) => {
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    onLines(p, (l) => l.startsWith('{') && resolve(JSON.parse(l)));
    p.once('exit', (code) => reject(new Error(`${what} exited (${code}) without a report: ${err}`)));
  });
  const sRep = reports(srv, 'stream server');
  await waitLine(srv, (l) => l === 'listening', 'stream server');
  const cli = client.node(STREAM_TOOL, ['client', '--host', server.address, '--port', String(port), '--bytes', String(bytes), '--rate', String(rate)]);
  const cRep = reports(cli, 'stream client');
  const local = (await waitLine(cli, (l) => l.startsWith('connected '), 'stream client')).replace('connected ', '');
  return { local, done: Promise.all([cRep, sRep]) };
}

/** Bytes lost or damaged in a finished transfer (0 when intact), and why. */
function check(c, s, bytes) {
  const problems = [];
  if (s.received !== bytes || s.receivedSha256 !== c.sentSha256) problems.push(`client to server: ${s.received}/${bytes} bytes${s.receivedSha256 !== c.sentSha256 ? ', hash differs' : ''}`);
  if (c.received !== bytes || c.receivedSha256 !== s.sentSha256) problems.push(`server to client: ${c.received}/${bytes} bytes${c.receivedSha256 !== s.sentSha256 ? ', hash differs' : ''}`);
  if (c.reset || s.reset) problems.push('reset');
  return { lost: 2 * bytes - (Math.min(bytes, s.received) + Math.min(bytes, c.received)), problems, maxGapMs: Math.max(c.maxGapMs, s.maxGapMs) };
}

const pctl = (xs) => ({ n: xs.length, p50: round(percentile(xs, 50), 2), p99: round(percentile(xs, 99), 2), min: round(Math.min(...xs), 2), max: round(Math.max(...xs), 2) });

async function main() {
  requireRoot('reconfig');
  ensureCommands(BED_COMMANDS);
  if (!existsSync(SPLICE_PROXY)) throw new Error(`${SPLICE_PROXY} is missing (the agent package's tests are not built: npm run build)`);
  const bed = Topology.create({ hosts: ['client', { name: 'box1', router: true }, { name: 'box2', router: true }, 'proxy', 'server'], tag: `r${process.pid % 100000}` });
  atCleanup(() => bed.destroy());
  const h = Object.fromEntries(['client', 'box1', 'box2', 'proxy', 'server'].map((n) => [n, bed.host(n)]));
  const A = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.address]));
  // the proxy takes sessions for server:9300 (nftables redirect to its port 8000), opens its own to the server, and needs timestamps off to splice
  h.proxy.run(`nft add table ip px && nft add chain ip px pre '{ type nat hook prerouting priority -100; }' && nft add rule ip px pre ip daddr ${A.server} tcp dport 9300 redirect to :8000`);
  h.proxy.run('sysctl -qw net.ipv4.tcp_timestamps=0');
  const policies = {
    client: [{ id: 1, match: `dst ${A.server}/32 dport 9000-9099`, chain: [A.box1] }, { id: 2, match: `dst ${A.server}/32 dport 9300`, chain: [A.proxy] }],
    proxy: [{ id: 1, match: `dst ${A.server}/32 dport 9300`, chain: [] }],
  };
  await Promise.all(Object.entries(h).map(([n, host]) => host.startAgent({ config: { ...AGENT_CONFIG, mode: 'tc', ...(policies[n] ? { policies: policies[n] } : {}) } })));
  const dysco = await connect({ socket: h.client.socket });
  atCleanup(() => dysco.close());
  const sessionId = async (tuple) => {
    for (let i = 0; i < 50; i++) {
      const s = (await dysco.sessions()).find((x) => x.session === tuple);
      if (s) return s.id;
      await sleep(100);
    }
    throw new Error(`the client agent has no session ${tuple}`);
  };

  // ---- 1. sequential, on bulk transfers ----------------------------------------
  say(`sequential: ${CYCLES} cycles of remove, insert, replace, replace back on ${(RATE / 1e6).toFixed(0)} MB/s transfers both ways`);
  const durations = { remove: [], insert: [], replace: [] };
  const seq = { retries: 0, aborted: [], transfers: 0, lost: 0, problems: [], maxGapMs: 0, bytes: 0 };
  let cycles = 0;
  let port = 9000;
  while (cycles < CYCLES) {
    const bytes = Math.round(RATE * TRANSFER_S);
    const t0 = Date.now();
    const p = port;
    port = port === 9049 ? 9000 : port + 1; // a fresh server port each time: the previous one may still be in TIME_WAIT
    const tr = await transfer(h.client, h.server, p, bytes, RATE);
    const id = await sessionId(`${tr.local}>${A.server}:${p}`);
    await sleep(300);
    const ops = [
      ['remove', () => dysco.remove(id, A.box1)],
      ['insert', () => dysco.insert(id, A.box1, A.client)],
      ['replace', () => dysco.replace(id, A.box1, A.box2)],
      ['replace', () => dysco.replace(id, A.box2, A.box1)],
    ];
    // whole cycles while the transfer has at least two seconds left
    while (cycles < CYCLES && Date.now() - t0 < (TRANSFER_S - 2) * 1000) {
      for (const [kind, op] of ops) {
        const o = await attempt(op, seq);
        if (o.result === 'completed') durations[kind].push(o.durationMs);
        else seq.aborted.push(`${kind}: ${o.reason}`);
      }
      cycles++;
    }
    const [c, s] = await tr.done;
    const k = check(c, s, bytes);
    seq.transfers++;
    seq.bytes += 2 * bytes;
    seq.lost += k.lost;
    seq.maxGapMs = Math.max(seq.maxGapMs, k.maxGapMs);
    if (k.problems.length) seq.problems.push(...k.problems);
    say(`  transfer ${seq.transfers}: ${cycles}/${CYCLES} cycles, ${k.problems.length ? k.problems.join('; ') : 'intact'}`);
  }

  // ---- 2. proxy splice --------------------------------------------------------
  say(`splice: ${SPLICES} sessions spliced out of the proxy 150 ms after they start`);
  const app = h.proxy.node(SPLICE_PROXY, [h.proxy.socket, '8000', A.server, '9300', '150']);
  const spliced = [];
  onLines(app, (l) => l.startsWith('{') && spliced.push(JSON.parse(l)));
  await waitLine(app, (l) => l === 'ready', 'splice proxy');
  const sp = { durations: [], aborted: [], lost: 0, problems: [], maxGapMs: 0, bytes: 0 };
  const spliceBytes = 2_000_000;
  for (let i = 0; i < SPLICES; i++) {
    const before = spliced.length;
    const tr = await transfer(h.client, h.server, 9300, spliceBytes, 4_000_000);
    const [c, s] = await tr.done;
    for (let j = 0; j < 50 && spliced.length === before; j++) await sleep(50);
    const r = spliced[before];
    if (r?.outcome?.result === 'completed') sp.durations.push(r.outcome.durationMs);
    else sp.aborted.push(r ? (r.error ?? r.outcome?.reason ?? 'aborted') : 'no outcome');
    const k = check(c, s, spliceBytes);
    sp.bytes += 2 * spliceBytes;
    sp.lost += k.lost;
    sp.maxGapMs = Math.max(sp.maxGapMs, k.maxGapMs);
    if (k.problems.length) sp.problems.push(...k.problems);
  }
  app.kill('SIGTERM');

  // ---- 3. concurrent, across many sessions -------------------------------------
  say(`concurrent: ${SESSIONS} sessions, ${ROUNDS} round(s) of remove, insert, replace, replace back, each over all sessions at once`);
  const perConn = 64 * 1024;
  const srv = h.server.node(MANY, ['server', '--port', '9050', '--rate', String(perConn)]);
  const srvReports = [];
  onLines(srv, (l) => l.startsWith('{') && srvReports.push(JSON.parse(l)));
  await waitLine(srv, (l) => l === 'listening', 'many server');
  const cli = h.client.node(MANY, ['client', '--host', A.server, '--port', '9050', '--count', String(SESSIONS), '--rate', String(perConn)]);
  const cliReports = [];
  onLines(cli, (l) => l.startsWith('{') && cliReports.push(JSON.parse(l)));
  await waitLine(cli, (l) => l === 'ready', 'many client', 30000);
  await sleep(500);
  const ids = (await dysco.sessions()).filter((s) => s.session.endsWith(`>${A.server}:9050`)).map((s) => s.id);
  if (ids.length !== SESSIONS) throw new Error(`the client agent has ${ids.length} of the ${SESSIONS} sessions`);
  const conc = { batches: [], retries: 0, aborted: [] };
  const batch = async (kind, op) => {
    const t0 = performance.now();
    const outs = await Promise.all(ids.map((id) => attempt(() => op(id), conc).catch((e) => ({ result: 'aborted', reason: e.message }))));
    const wall = performance.now() - t0;
    const done = outs.filter((o) => o.result === 'completed');
    for (const o of outs) if (o.result !== 'completed') conc.aborted.push(`${kind}: ${o.reason}`);
    conc.batches.push({ kind, sessions: ids.length, completed: done.length, wallMs: round(wall, 1), perSecond: round((done.length * 1000) / wall, 1), p50Ms: round(percentile(done.map((o) => o.durationMs), 50), 2), p99Ms: round(percentile(done.map((o) => o.durationMs), 99), 2) });
    await sleep(300);
  };
  for (let r = 0; r < ROUNDS; r++) {
    await batch('remove', (id) => dysco.remove(id, A.box1));
    await batch('insert', (id) => dysco.insert(id, A.box1, A.client));
    await batch('replace', (id) => dysco.replace(id, A.box1, A.box2));
    await batch('replace', (id) => dysco.replace(id, A.box2, A.box1));
  }
  cli.kill('SIGUSR2');
  for (let i = 0; i < 200 && (cliReports.length < SESSIONS || srvReports.length < SESSIONS); i++) await sleep(100);
  const byTuple = new Map(srvReports.map((x) => [x.remote, x]));
  let concLost = 0;
  const concProblems = [];
  let concBytes = 0;
  for (const c of cliReports) {
    const s = byTuple.get(c.local);
    if (!s) {
      concProblems.push(`no server report for ${c.local}`);
      continue;
    }
    concBytes += c.sent + s.sent;
    if (s.received !== c.sent || s.receivedSha256 !== c.sentSha256) concProblems.push(`${c.local} client to server: ${s.received}/${c.sent}`);
    if (c.received !== s.sent || c.receivedSha256 !== s.sentSha256) concProblems.push(`${c.local} server to client: ${c.received}/${s.sent}`);
    if (c.reset || s.reset) concProblems.push(`${c.local} reset`);
    concLost += Math.max(0, c.sent - s.received) + Math.max(0, s.sent - c.received);
  }
  if (cliReports.length < SESSIONS) concProblems.push(`${SESSIONS - cliReports.length} connections did not report`);

  // ---- report -----------------------------------------------------------------
  const figures = {
    remove: pctl(durations.remove),
    insert: pctl(durations.insert),
    replace: pctl(durations.replace),
    splice: sp.durations.length ? pctl(sp.durations) : { n: 0 },
  };
  console.log(`reconfig: durations in ms at the requesting agent (request to outcome), on sessions carrying data both ways\n`);
  console.log(table(
    [{ title: 'operation', align: 'l' }, { title: 'runs', align: 'r' }, { title: 'p50 ms', align: 'r' }, { title: 'p99 ms', align: 'r' }, { title: 'min', align: 'r' }, { title: 'max', align: 'r' }],
    Object.entries(figures).map(([k, f]) => [k === 'splice' ? 'proxy splice' : k, `${f.n}`, f.n ? f.p50.toFixed(2) : '-', f.n ? f.p99.toFixed(2) : '-', f.n ? f.min.toFixed(2) : '-', f.n ? f.max.toFixed(2) : '-']),
  ));
  console.log(`\nsequential: ${seq.transfers} transfers at ${(RATE / 1e6).toFixed(0)} MB/s each way, ${(seq.bytes / 1e6).toFixed(0)} MB, bytes lost ${seq.lost}, longest stall ${seq.maxGapMs} ms, retried as busy ${seq.retries}, aborted ${seq.aborted.length}${seq.problems.length ? `, PROBLEMS: ${seq.problems.join('; ')}` : ''}`);
  console.log(`splice: ${SPLICES} transfers of 2 MB each way, bytes lost ${sp.lost}, longest stall ${sp.maxGapMs} ms, not spliced ${sp.aborted.length}${sp.aborted.length ? ` (${[...new Set(sp.aborted)].join(', ')})` : ''}${sp.problems.length ? `, PROBLEMS: ${sp.problems.join('; ')}` : ''}`);
  console.log(`\nconcurrent: ${SESSIONS} sessions at ${perConn / 1024} KiB/s each way, every session reconfigured at once\n`);
  console.log(table(
    [{ title: 'batch', align: 'l' }, { title: 'completed', align: 'r' }, { title: 'wall ms', align: 'r' }, { title: 'per second', align: 'r' }, { title: 'p50 ms', align: 'r' }, { title: 'p99 ms', align: 'r' }],
    conc.batches.map((b) => [b.kind, `${b.completed}/${b.sessions}`, b.wallMs.toFixed(0), b.perSecond.toFixed(0), `${b.p50Ms}`, `${b.p99Ms}`]),
  ));
  const concRate = conc.batches.map((b) => b.perSecond).sort((a, b) => a - b)[conc.batches.length >> 1];
  console.log(`median ${concRate} reconfigurations completed per second; bytes lost ${concLost} of ${(concBytes / 1e6).toFixed(1)} MB; retried as busy ${conc.retries}; aborted ${conc.aborted.length}${concProblems.length ? `; PROBLEMS: ${concProblems.slice(0, 5).join('; ')}` : ''}`);
  const lost = seq.lost + sp.lost + concLost;
  const intact = lost === 0 && seq.problems.length === 0 && sp.problems.length === 0 && concProblems.length === 0;
  console.log(`\ntarget: no byte lost: ${intact ? 'met' : 'MISSED'}`);
  printResult({
    benchmark: 'reconfig',
    machine: machine(),
    cycles: CYCLES,
    durationsMs: figures,
    sequential: { transfers: seq.transfers, rateBytesPerSecond: RATE, bytes: seq.bytes, bytesLost: seq.lost, maxStallMs: seq.maxGapMs, busyRetries: seq.retries, aborted: seq.aborted, problems: seq.problems },
    splice: { runs: SPLICES, bytes: sp.bytes, bytesLost: sp.lost, maxStallMs: sp.maxGapMs, notSpliced: sp.aborted, problems: sp.problems },
    concurrent: { sessions: SESSIONS, rounds: ROUNDS, batches: conc.batches, medianPerSecond: concRate, bytes: concBytes, bytesLost: concLost, busyRetries: conc.retries, aborted: conc.aborted.slice(0, 20), problems: concProblems.slice(0, 20) },
    target: { what: 'no byte lost or damaged, no reset', bytesLost: lost, met: intact },
  });
  if (!intact) process.exitCode = 1;
}

runMain(main);
