/**
 * The IPS engine fed with synthetic segments, with stand-ins for the agent
 * and for nftables (the namespace test, ips.test.ts, runs it for real).
 */
import t from 'tap';
import type { ReconfigOutcome, SessionInfo } from '@dysco/agent';
import { type FiveTuple, formatTuple, parseTuple } from '@dysco/protocol';
import { type IpsConfig, parseConfig } from '../dist/config.js';
import { type AgentApi, Ips } from '../dist/ips.js';
import { Log } from '../dist/log.js';
import type { Enforcer } from '../dist/nft.js';
import type { TcpSegment } from '../dist/packet.js';

const CLIENT = '10.0.0.1';
const IPS = '10.0.0.2';
const SERVER = '10.0.0.3';
const SESSION = `${CLIENT}:40000>${SERVER}:9000`;
/** Subsessions as packets arrive at the IPS: from the client's side, and from the server's. */
const FROM_LEFT = `${CLIENT}:61000>${IPS}:61000`;
const FROM_RIGHT = `${SERVER}:62000>${IPS}:62000`;

function info(o: { id?: number; role?: SessionInfo['role']; left?: boolean; right?: boolean; departed?: boolean; session?: string } = {}): SessionInfo {
  return {
    id: o.id ?? 1,
    session: o.session ?? SESSION,
    role: o.role ?? 'middlebox',
    // as the agent lists them: the left hop's subsession from the left agent, the right hop's toward the right agent
    left: o.left === false ? undefined : { agent: CLIENT, subsession: FROM_LEFT },
    right: o.right === false ? undefined : { agent: SERVER, subsession: `${IPS}:62000>${SERVER}:62000` },
    downstream: [SERVER],
    state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: o.departed ?? false },
    packets: 0,
    bytes: 0,
    ended: undefined,
    createdAt: new Date().toISOString(),
  };
}

function seg(tuple: string, seq: number, payload: string | Uint8Array = '', flags: { syn?: boolean; fin?: boolean; rst?: boolean } = {}): TcpSegment {
  const p = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return { tuple: parseTuple(tuple), seq: seq >>> 0, ack: 0, syn: !!flags.syn, fin: !!flags.fin, rst: !!flags.rst, payload: p, wireLength: p.length };
}

class StandInAgent implements AgentApi {
  list: SessionInfo[] = [];
  readonly removals: [number, string][] = [];
  /** Outcomes of the next removals; completed when empty. */
  readonly outcomes: Partial<ReconfigOutcome>[] = [];
  cancelled: number[] = [];
  async sessions(): Promise<SessionInfo[]> {
    return this.list;
  }
  async remove(session: number, box: string): Promise<ReconfigOutcome> {
    this.removals.push([session, box]);
    return { reconfigId: 7, session, result: 'completed', durationMs: 3.21, ...this.outcomes.shift() };
  }
  async cancel(session: number): Promise<void> {
    this.cancelled.push(session);
  }
}

class StandInEnforcer implements Enforcer {
  readonly blocked: string[] = [];
  readonly unblocked: string[] = [];
  async block(t: FiveTuple): Promise<void> {
    this.blocked.push(formatTuple(t));
  }
  async unblock(t: FiveTuple): Promise<void> {
    this.unblocked.push(formatTuple(t));
  }
}

function setup(cfg: Record<string, unknown> = {}) {
  const config: IpsConfig = parseConfig({ terms: ['/etc/passwd', { text: 'DROP TABLE', name: 'sql drop' }], releaseAfterBytes: 1000, ...cfg });
  const agent = new StandInAgent();
  const enforcer = new StandInEnforcer();
  const records: Record<string, unknown>[] = [];
  const log = new Log((l) => void records.push(JSON.parse(l) as Record<string, unknown>), 'debug');
  const ips = new Ips({ config, self: IPS, agent, enforcer, log });
  const verdicts = () => records.filter((r) => r.msg === 'verdict');
  return { ips, agent, enforcer, records, verdicts };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('a term split across two segments, the second arriving first: blocked', async (t) => {
  const { ips, enforcer, verdicts } = setup();
  ips.onEvent({ type: 'sessionCreated', session: info({ right: false }) });
  ips.onSegment(seg(FROM_LEFT, 1000, '', { syn: true }));
  ips.onEvent({ type: 'sessionCreated', session: info() });
  ips.onSegment(seg(FROM_RIGHT, 5000, '', { syn: true }));
  ips.onSegment(seg(FROM_LEFT, 1001, 'GET / HTTP/1.1\r\n'));
  ips.onSegment(seg(FROM_RIGHT, 5001, 'HTTP/1.1 200 OK\r\n'));
  const head = 'GET /../../etc/pa';
  ips.onSegment(seg(FROM_LEFT, 1001 + 16 + head.length, 'sswd HTTP/1.1\r\n'));
  t.same(enforcer.blocked, [], 'the first half is still missing');
  ips.onSegment(seg(FROM_LEFT, 1001 + 16, head));
  await tick();
  t.same(enforcer.blocked, [SESSION], 'blocked by the session tuple');
  const v = verdicts();
  t.equal(v.length, 1);
  t.match(v[0], { verdict: 'block', reason: 'term', term: '/etc/passwd', direction: 'clientToServer', offset: 16 + 'GET /../..'.length, protocol: 'tcp', src: CLIENT, sport: 40000, dst: SERVER, dport: 9000, session: 1, role: 'middlebox' });
  t.same(v[0]!.bytes, { clientToServer: 16 + 'GET /../../etc/passwd'.length, serverToClient: 17 });
  t.type(v[0]!.connectedAt, 'string', 'a middlebox joined at the SYN: the time of connection');
  ips.onSegment(seg(FROM_LEFT, 2000, 'DROP TABLE x'));
  t.equal(ips.stats.ignoredSegments, 1, 'a blocked session is not scanned any more');
  ips.close();
});

t.test('a box inserted mid-stream: packets before the session is known are kept, then scanned; enough seen: it removes itself', async (t) => {
  const { ips, agent, verdicts, records } = setup();
  const chunk = 'x'.repeat(600);
  // the first packets arrive before the agent lists the relay
  ips.onSegment(seg(FROM_LEFT, 0xfffffe00, chunk));
  ips.onSegment(seg(FROM_RIGHT, 77, chunk));
  t.equal(ips.stats.stashedSegments, 2);
  agent.list = [info({ role: 'relay' })];
  await ips.refresh();
  t.match(records.find((r) => r.msg === 'watching'), { session: 1, role: 'relay' });
  t.same(ips.watching()[0]?.scanned, { clientToServer: 600, serverToClient: 600 }, 'kept packets scanned, from the first sequence number seen');
  ips.onSegment(seg(FROM_LEFT, 0xfffffe00 + 600, chunk)); // wraps
  t.same(agent.removals, [], 'only one direction has had enough');
  ips.onSegment(seg(FROM_RIGHT, 77 + 600, chunk));
  t.same(agent.removals, [[1, IPS]], 'self-removal: the session, this box');
  await tick();
  const v = verdicts();
  t.match(v[0], { verdict: 'release', reason: 'seenEnough', role: 'relay', bytes: { clientToServer: 1200, serverToClient: 1200 }, removal: { result: 'completed', durationMs: 3.21, attempts: 1 } });
  t.notOk('connectedAt' in v[0]!, "an inserted box does not know when the connection started, only when it joined");
  t.type(v[0]!.joinedAt, 'string');
  ips.onSegment(seg(FROM_LEFT, 0xfffffe00 + 1200, 'late /etc/passwd on the old path'));
  t.equal(v.length, 1, 'late packets of a released session are ignored');
  agent.list = [{ ...info({ role: 'relay' }), state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: true } }];
  await ips.refresh();
  t.equal(ips.watching().length, 0, 'not watched again');
  ips.close();
});

t.test('a refused release is asked again, and scanning goes on meanwhile', async (t) => {
  const { ips, agent, verdicts, records } = setup();
  agent.outcomes.push({ result: 'aborted', reason: 'locked' });
  agent.list = [info()];
  await ips.refresh();
  ips.onSegment(seg(FROM_LEFT, 1, 'a'.repeat(1000)));
  ips.onSegment(seg(FROM_RIGHT, 1, 'b'.repeat(1000)));
  await tick();
  t.equal(agent.removals.length, 1);
  t.match(records.find((r) => r.msg === 'release not done; asking again'), { outcome: 'aborted (locked)' });
  await new Promise((r) => setTimeout(r, 300));
  t.equal(agent.removals.length, 2, 'asked again');
  await tick();
  t.match(verdicts()[0], { verdict: 'release', removal: { attempts: 2 } });
  ips.close();
});

t.test('a blacklisted end: blocked as soon as the session is known; the block lifted when the agent forgets it', async (t) => {
  const { ips, enforcer, verdicts } = setup({ blacklist: { addresses: ['10.0.0.0/30'] } });
  ips.onEvent({ type: 'sessionCreated', session: info({ right: false }) });
  await tick();
  t.same(enforcer.blocked, [SESSION]);
  t.match(verdicts()[0], { verdict: 'block', reason: 'blacklist', blacklist: { entry: '10.0.0.0/30', kind: 'address', end: 'source' } });
  ips.onEvent({ type: 'sessionEnded', id: 1, session: SESSION, reason: 'idle' });
  t.same(enforcer.unblocked, [SESSION]);
  ips.close();
});

t.test('a gap the IPS cannot fill: blocked (fail closed), or scanned past when configured', async (t) => {
  const closed = setup({ reassembly: { maxBufferedBytes: 1024, maxSegments: 4, onGap: 'block' } });
  closed.agent.list = [info()];
  await closed.ips.refresh();
  closed.ips.onSegment(seg(FROM_LEFT, 100, 'abc'));
  for (let i = 0; i < 5; i++) closed.ips.onSegment(seg(FROM_LEFT, 200 + i * 10, 'zz')); // bytes 103..200 never come
  await tick();
  t.match(closed.verdicts()[0], { verdict: 'block', reason: 'gap', direction: 'clientToServer', offset: 3, missingBytes: 97, cause: 'overflow' });
  closed.ips.close();

  const open = setup({ reassembly: { maxBufferedBytes: 1024, maxSegments: 1, onGap: 'continue' } });
  open.agent.list = [info()];
  await open.ips.refresh();
  open.ips.onSegment(seg(FROM_LEFT, 100, '/etc/pa'));
  open.ips.onSegment(seg(FROM_LEFT, 200, 'sswd'));
  open.ips.onSegment(seg(FROM_LEFT, 300, 'x'));
  await tick();
  t.same(open.enforcer.blocked, [], 'no match across the gap');
  t.match(open.records.find((r) => r.msg === 'gap in a stream: matches cannot span it'), { offset: 7, bytes: 93 });
  open.ips.close();
});

t.test('a connection that ends before enough was seen: allowed', async (t) => {
  const { ips, agent, verdicts } = setup();
  agent.list = [info()];
  await ips.refresh();
  ips.onSegment(seg(FROM_LEFT, 10, 'hello', { fin: true }));
  ips.onSegment(seg(FROM_RIGHT, 20, 'world'));
  t.same(verdicts(), []);
  ips.onSegment(seg(FROM_RIGHT, 25, '', { fin: true }));
  t.match(verdicts()[0], { verdict: 'allow', reason: 'closed', detail: 'both ends closed the connection', bytes: { clientToServer: 5, serverToClient: 5 } });
  t.same(agent.removals, []);
  ips.close();
});

t.test('the agent reports the end first: the verdict waits for the last captured packets', async (t) => {
  const { ips, agent, verdicts } = setup();
  agent.list = [info()];
  await ips.refresh();
  agent.list = [{ ...info(), ended: 'fin' }];
  await ips.refresh();
  ips.onSegment(seg(FROM_LEFT, 10, 'last words: DROP TABLE users'));
  await tick();
  t.match(verdicts()[0], { verdict: 'block', reason: 'term', term: 'sql drop' }, 'a term in the last segments still counts');
  await new Promise((r) => setTimeout(r, 600));
  t.equal(verdicts().length, 1, 'and the block stands');
  t.same(ips.watching().map((w) => w.status), ['blocked']);
  const quiet = setup();
  quiet.agent.list = [info()];
  await quiet.ips.refresh();
  quiet.agent.list = [{ ...info(), ended: 'fin' }];
  await quiet.ips.refresh();
  t.same(quiet.verdicts(), [], 'not yet');
  await new Promise((r) => setTimeout(r, 600));
  t.match(quiet.verdicts()[0], { verdict: 'allow', reason: 'closed', detail: 'the session ended (fin)' });
  ips.close();
  quiet.ips.close();
});

t.test('taken out by someone else while watching: allowed, and no longer watched', async (t) => {
  const { ips, agent, verdicts } = setup();
  agent.list = [info()];
  await ips.refresh();
  agent.list = [info({ departed: true })];
  await ips.refresh();
  t.match(verdicts()[0], { verdict: 'allow', reason: 'closed', detail: 'this box left the session' });
  t.equal(ips.watching().length, 0);
  ips.close();
});

t.test("this host's own connections are not inspected", async (t) => {
  const { ips, agent } = setup();
  agent.list = [info({ role: 'originator', left: false }), info({ id: 2, role: 'lastHop', right: false })];
  await ips.refresh();
  t.equal(ips.watching().length, 0);
  ips.close();
});
