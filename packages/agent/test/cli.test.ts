import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentEvent, ReconfigOutcome, SessionInfo } from '@dysco/agent';
import { main } from '../dist/cli.js';
import { CONFIG_FIELDS } from '../dist/config.js';

/*
 * The `dysco` CLI's own parsing and printing, without root and without an
 * agent. Where a command needs an agent to answer, FakeAgent stands in for
 * the agent's socket: it speaks the newline-delimited JSON protocol of
 * server.ts and answers with canned replies. It is a test double of the
 * socket only, so these tests check what the CLI sends and how it prints
 * what it gets back; what a real agent answers is the live tests' business.
 */

const BIN = fileURLToPath(new URL('../bin/dysco.js', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'dysco-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;

interface Request {
  readonly id: number;
  readonly method: string;
  readonly params: Record<string, unknown>;
}

type Reply = { result: unknown } | { error: { code: string; message: string } } | 'hangup';

class FakeAgent {
  readonly requests: Request[] = [];
  connections = 0;
  private readonly conns = new Set<Socket>();

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly answer: (r: Request) => Reply,
    private readonly events: readonly AgentEvent[],
  ) {}

  static async start(t: Test, answer: (r: Request) => Reply, events: readonly AgentEvent[] = []): Promise<FakeAgent> {
    const path = join(dir, `agent-${++sockets}.sock`);
    let fake!: FakeAgent;
    const server = createServer((s) => fake.onConnection(s));
    fake = new FakeAgent(path, server, answer, events);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    t.teardown(() => fake.close());
    return fake;
  }

  private onConnection(s: Socket): void {
    this.connections++;
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => undefined);
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const req = JSON.parse(buf.slice(0, nl)) as Request;
        buf = buf.slice(nl + 1);
        this.requests.push(req);
        if (req.method === 'subscribe') {
          s.write(`${JSON.stringify({ id: req.id, result: { subscribed: true } })}\n`);
          // a moment later, as an agent's events come: the answer and the events are read separately
          setTimeout(() => {
            for (const event of this.events) s.write(`${JSON.stringify({ event })}\n`);
          }, 50);
          continue;
        }
        const r = this.answer(req);
        if (r === 'hangup') s.destroy();
        else s.write(`${JSON.stringify({ id: req.id, ...r })}\n`);
      }
    });
  }

  close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An agent that answers every method from `table` (and fails the test on any other). */
function answers(t: Test, table: Record<string, unknown>): (r: Request) => Reply {
  return (r) => {
    if (r.method in table) return { result: table[r.method] };
    t.fail(`unexpected request ${r.method}`);
    return { error: { code: 'EINVAL', message: `unknown method ${JSON.stringify(r.method)}` } };
  };
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    argv,
    (s) => (out += s),
    (s) => (err += s),
  );
  return { code, out, err };
}

// ---------------------------------------------------------------------------
// usage

t.test('usage', async (t) => {
  const none = await run([]);
  t.equal(none.code, 2, 'no command: a usage error');
  t.match(none.out, /^usage: dysco <command> \[options\]\n/);
  for (const cmd of ['agent --config FILE', 'policy add --match PRED --chain', 'policy list | policy del ID', 'sessions ', 'reconfig SESSION --remove ADDR', 'cancel SESSION', 'stats ', 'watch ', 'shutdown [--keep]']) {
    t.ok(none.out.includes(cmd), `usage shows ${cmd.trim()}`);
  }
  for (const h of ['--help', '-h', 'help']) {
    const r = await run([h]);
    t.equal(r.code, 0, h);
    t.equal(r.out, none.out, `${h}: the usage`);
    t.equal(r.err, '');
  }
});

t.test('unknown commands and options need no agent', async (t) => {
  const fake = await FakeAgent.start(t, answers(t, {}));
  const r = await run(['frobnicate', '--socket', fake.path]);
  t.equal(r.code, 2);
  t.match(r.err, /^dysco frobnicate: unknown command "frobnicate"\n\nusage: dysco/);
  t.equal(r.out, '');
  const o = await run(['sessions', '--socket', fake.path, '--bogus']);
  t.equal(o.code, 2);
  t.match(o.err, /^dysco sessions: .*'--bogus'/);
  t.equal(fake.connections, 0, 'the agent was not contacted');
});

t.test('no agent at the socket', async (t) => {
  const path = join(dir, 'nobody-here.sock');
  const r = await run(['sessions', '--socket', path]);
  t.equal(r.code, 1);
  t.equal(r.err, `dysco: cannot reach the agent at ${path}: no agent is running there (start one with: dysco agent --config FILE)\n`);
  t.equal(r.out, '');
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, '');
  const f = await run(['stats', '--socket', file]);
  t.equal(f.code, 1);
  t.match(f.err, `dysco: cannot reach the agent at ${file}: `);
});

t.test('the socket comes from $DYSCO_SOCKET when --socket is not given', async (t) => {
  const fake = await FakeAgent.start(t, answers(t, { sessions: [] }));
  const saved = process.env.DYSCO_SOCKET;
  process.env.DYSCO_SOCKET = fake.path;
  t.teardown(() => {
    if (saved === undefined) delete process.env.DYSCO_SOCKET;
    else process.env.DYSCO_SOCKET = saved;
  });
  const r = await run(['sessions']);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, 'no sessions\n');
  t.same(fake.requests.map((q) => q.method), ['sessions']);
});

t.test('argument errors are usage errors, found before connecting', async (t) => {
  const fake = await FakeAgent.start(t, answers(t, {}));
  const cases: [string[], string][] = [
    [['reconfig', '7'], 'reconfig needs exactly one of --remove, --insert, --replace'],
    [['reconfig', '7', '--remove', '10.0.0.2', '--insert', '10.0.0.3', '--after', '10.0.0.1'], 'reconfig needs exactly one of --remove, --insert, --replace'],
    [['reconfig', '7', '--remove', '10.0.0.2', '--replace', '10.0.0.2', '--with', '10.0.0.3'], 'reconfig needs exactly one of --remove, --insert, --replace'],
    [['reconfig', '--remove', '10.0.0.2'], 'which session? (an id from "dysco sessions", or src:port>dst:port)'],
    [['reconfig', '7', '--insert', '10.0.0.3'], '--insert needs --after ADDR'],
    [['reconfig', '7', '--replace', '10.0.0.2'], '--replace needs --with ADDR'],
    [['cancel'], 'which session? (an id from "dysco sessions", or src:port>dst:port)'],
    [['policy', 'add', '--match', 'dport 80'], "policy add needs --match and --chain (--chain '' for a direct session)"],
    [['policy', 'add', '--chain', '10.0.0.2'], "policy add needs --match and --chain (--chain '' for a direct session)"],
    [['policy', 'add', '--match', 'dport 80', '--chain', '10.0.0.2', '--id', 'x'], '--id must be a number, got "x"'],
    [['policy', 'del'], 'policy id must be a number, got ""'],
    [['policy', 'del', 'one'], 'policy id must be a number, got "one"'],
    [['policy', 'frob'], 'unknown policy subcommand "frob" (add, list, del)'],
  ];
  for (const [argv, message] of cases) {
    const r = await run([...argv, '--socket', fake.path]);
    t.equal(r.code, 2, argv.join(' '));
    t.ok(r.err.startsWith(`dysco ${argv[0]}: ${message}\n\nusage: dysco <command>`), `${argv.join(' ')}: ${r.err.split('\n')[0]}`);
    t.equal(r.out, '');
  }
  t.equal(fake.connections, 0, 'the agent was never contacted');
  // and so they are usage errors with no agent at all
  const r = await run(['reconfig', '7', '--socket', join(dir, 'nobody.sock')]);
  t.equal(r.code, 2);
});

// ---------------------------------------------------------------------------
// what the commands send and print

const SESSIONS: SessionInfo[] = [
  {
    id: 1,
    session: '10.0.0.1:40000>10.0.0.3:80',
    role: 'originator',
    left: undefined,
    right: { agent: '10.0.0.2', subsession: '10.0.0.1:61000>10.0.0.2:61000' },
    downstream: ['10.0.0.2', '10.0.0.3'],
    state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: false },
    packets: 120,
    bytes: 95000,
    ended: undefined,
    createdAt: '2026-01-01T00:00:00.000Z',
  },
  {
    id: 2,
    session: '10.0.0.1:40001>10.0.0.3:80',
    role: 'middlebox',
    left: { agent: '10.0.0.1', subsession: '10.0.0.1:61001>10.0.0.2:61001' },
    right: { agent: '10.0.0.3', subsession: '10.0.0.2:61002>10.0.0.3:61002' },
    downstream: ['10.0.0.3'],
    state: { lock: 'lockPending', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: false },
    packets: 7,
    bytes: 420,
    ended: undefined,
    createdAt: '2026-01-01T00:00:01.000Z',
  },
  {
    id: 13,
    session: '[fd00::1]:40002>[fd00::3]:443',
    role: 'relay',
    left: { agent: 'fd00::1', subsession: '[fd00::1]:61003>[fd00::4]:61003' },
    right: undefined,
    downstream: [],
    state: { lock: 'locked', leftAnchor: 'TwoPaths', rightAnchor: 'OnePath', departed: false },
    packets: 0,
    bytes: 0,
    ended: undefined,
    createdAt: '2026-01-01T00:00:02.000Z',
  },
  {
    id: 14,
    session: '10.0.0.1:40003>10.0.0.3:80',
    role: 'lastHop',
    left: { agent: '10.0.0.2', subsession: '10.0.0.2:61004>10.0.0.3:61004' },
    right: undefined,
    downstream: [],
    state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'OnePath', departed: false },
    packets: 3,
    bytes: 180,
    ended: 'fin',
    createdAt: '2026-01-01T00:00:03.000Z',
  },
  {
    id: 15,
    session: '10.0.0.1:40004>10.0.0.3:80',
    role: 'middlebox',
    left: { agent: '10.0.0.1', subsession: '10.0.0.1:61005>10.0.0.2:61005' },
    right: { agent: '10.0.0.3', subsession: '10.0.0.2:61006>10.0.0.3:61006' },
    downstream: ['10.0.0.3'],
    state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'Waiting', departed: true },
    packets: 1,
    bytes: 60,
    ended: undefined,
    createdAt: '2026-01-01T00:00:04.000Z',
  },
  {
    id: 16,
    session: '10.0.0.1:40005>10.0.0.3:80',
    role: 'middlebox',
    left: { agent: '10.0.0.1', subsession: '10.0.0.1:61007>10.0.0.2:61007' },
    right: { agent: '10.0.0.3', subsession: '10.0.0.2:61008>10.0.0.3:61008' },
    downstream: ['10.0.0.3'],
    state: { lock: 'unlocked', leftAnchor: 'OnePath', rightAnchor: 'TwoPaths', departed: false },
    packets: 2,
    bytes: 120,
    ended: undefined,
    createdAt: '2026-01-01T00:00:05.000Z',
  },
];

t.test('sessions', async (t) => {
  const fake = await FakeAgent.start(t, answers(t, { sessions: SESSIONS }));
  const r = await run(['sessions', '--socket', fake.path]);
  t.equal(r.code, 0, r.err);
  t.equal(
    r.out,
    [
      'ID  SESSION                        ROLE        LEFT      RIGHT     STATE                   PACKETS  BYTES',
      '1   10.0.0.1:40000>10.0.0.3:80     originator  -         10.0.0.2  established             120      95000',
      '2   10.0.0.1:40001>10.0.0.3:80     middlebox   10.0.0.1  10.0.0.3  lockPending             7        420',
      '13  [fd00::1]:40002>[fd00::3]:443  relay       fd00::1   -         left anchor: TwoPaths   0        0',
      '14  10.0.0.1:40003>10.0.0.3:80     lastHop     10.0.0.2  -         ended (fin)             3        180',
      '15  10.0.0.1:40004>10.0.0.3:80     middlebox   10.0.0.1  10.0.0.3  departed                1        60',
      '16  10.0.0.1:40005>10.0.0.3:80     middlebox   10.0.0.1  10.0.0.3  right anchor: TwoPaths  2        120',
      '',
    ].join('\n'),
  );
  t.equal(r.err, '');
  const j = await run(['sessions', '--json', '--socket', fake.path]);
  t.equal(j.code, 0);
  t.same(JSON.parse(j.out), JSON.parse(JSON.stringify(SESSIONS)), '--json: what the agent answered');
  t.same(fake.requests.map((q) => [q.method, q.params]), [
    ['sessions', {}],
    ['sessions', {}],
  ]);

  const empty = await FakeAgent.start(t, answers(t, { sessions: [] }));
  const e = await run(['sessions', '--socket', empty.path]);
  t.equal(e.code, 0);
  t.equal(e.out, 'no sessions\n');
  const ej = await run(['sessions', '--socket', empty.path, '--json']);
  t.equal(ej.out, '[]\n');
});

t.test('policy list, add, del', async (t) => {
  const policies = [
    { id: 1, match: 'dst 10.0.0.0/24 dport 80', chain: ['10.0.0.2'] },
    { id: 12, match: 'src fd00::/64', chain: ['fd00::2', 'fd00::5'] },
  ];
  const fake = await FakeAgent.start(t, (r) => {
    if (r.method === 'policies') return { result: policies };
    if (r.method === 'policy.add') return { result: { id: (r.params.id as number | undefined) ?? 13 } };
    if (r.method === 'policy.del') return { result: { id: r.params.id } };
    return { error: { code: 'EINVAL', message: 'unexpected' } };
  });
  const s = ['--socket', fake.path];
  const list = ['ID  MATCH                     CHAIN', '1   dst 10.0.0.0/24 dport 80  10.0.0.2', '12  src fd00::/64             fd00::2,fd00::5', ''].join('\n');
  t.same(await run(['policy', 'list', ...s]), { code: 0, out: list, err: '' });
  t.same(await run(['policy', ...s]), { code: 0, out: list, err: '' }, '"list" is the default');
  const j = await run(['policy', 'list', '--json', ...s]);
  t.same(JSON.parse(j.out), policies);

  t.same(await run(['policy', 'add', '--match', 'dport 443', '--chain', '10.0.0.2, 10.0.0.4,', ...s]), { code: 0, out: 'policy 13 added\n', err: '' });
  t.same(await run(['policy', 'add', '--match', 'dport 443', '--chain', '10.0.0.2', '--id', '40', '--json', ...s]), { code: 0, out: '{\n  "id": 40\n}\n', err: '' });
  for (const del of ['del', 'delete', 'rm']) t.same(await run(['policy', del, '12', ...s]), { code: 0, out: 'policy 12 deleted\n', err: '' }, del);
  t.same(
    fake.requests.map((q) => [q.method, q.params]),
    [
      ['policies', {}],
      ['policies', {}],
      ['policies', {}],
      ['policy.add', { match: 'dport 443', chain: ['10.0.0.2', '10.0.0.4'] }],
      ['policy.add', { match: 'dport 443', chain: ['10.0.0.2'], id: 40 }],
      ['policy.del', { id: 12 }],
      ['policy.del', { id: 12 }],
      ['policy.del', { id: 12 }],
    ],
    'the chain split on commas and trimmed, ids as numbers',
  );

  const empty = await FakeAgent.start(t, answers(t, { policies: [] }));
  t.same(await run(['policy', 'list', '--socket', empty.path]), { code: 0, out: 'no policies\n', err: '' });
});

t.test('stats', async (t) => {
  const stats = {
    dataplane: { malformedPacket: 0, packetsSeen: 1500, rewritten: 1400, passed: 100, routeMiss: 2, unknownSession: 0 },
    agent: {
      dysco_sessions: 2,
      'dysco_control_messages_sent_total{type="syn"}': 4,
      'dysco_dataplane_packets_total{counter="rewritten"}': 1400,
    },
    table: { egress: 4, ingress: 6, pending: 1, policies: 2, total: 13 },
  };
  const fake = await FakeAgent.start(t, answers(t, { stats }));
  const r = await run(['stats', '--socket', fake.path]);
  t.equal(r.code, 0, r.err);
  t.equal(
    r.out,
    [
      'table: 4 egress, 6 ingress, 1 pending entries, 2 policies',
      'data plane:',
      '  packetsSeen 1500',
      '  rewritten 1400',
      '  passed 100',
      '  routeMiss 2',
      'agent:',
      '  dysco_sessions 2',
      '  dysco_control_messages_sent_total{type="syn"} 4',
      '',
    ].join('\n'),
    'zero counters and the data-plane copies among the metrics left out',
  );
  t.same(JSON.parse((await run(['stats', '--json', '--socket', fake.path])).out), stats);
});

t.test('reconfig: what is asked, and the outcome as the exit status', async (t) => {
  const outcomes: ReconfigOutcome[] = [
    { reconfigId: 42, session: 7, result: 'completed', durationMs: 12.3456 },
    { reconfigId: 43, session: 7, result: 'aborted', reason: 'contention', durationMs: 3 },
    { reconfigId: 44, session: 7, result: 'aborted', durationMs: 0.5 },
    { reconfigId: 45, session: 9, result: 'completed', durationMs: 1 },
    { reconfigId: 46, session: 9, result: 'completed', durationMs: 2 },
  ];
  let next = 0;
  const fake = await FakeAgent.start(t, (r) => (r.method === 'reconfig' ? { result: outcomes[next++] } : { error: { code: 'EINVAL', message: 'unexpected' } }));
  const s = ['--socket', fake.path];
  t.same(await run(['reconfig', '7', '--remove', '10.0.0.2', ...s]), { code: 0, out: 'completed in 12.35 ms (reconfiguration 42)\n', err: '' }, 'completed: 0');
  t.same(await run(['reconfig', '7', '--remove', '10.0.0.2', ...s]), { code: 3, out: 'aborted: contention after 3.00 ms\n', err: '' }, 'aborted: 3');
  const j = await run(['reconfig', '7', '--remove', '10.0.0.2', '--json', ...s]);
  t.equal(j.code, 3, 'aborted with --json: 3 as well');
  t.same(JSON.parse(j.out), outcomes[2]);
  t.same(await run(['reconfig', '10.0.0.1:40000>10.0.0.3:80', '--insert', '10.0.0.5', '--after', '10.0.0.2', ...s]), { code: 0, out: 'completed in 1.00 ms (reconfiguration 45)\n', err: '' });
  t.same(await run(['reconfig', '9', '--replace', '10.0.0.2', '--with', '10.0.0.6', ...s]), { code: 0, out: 'completed in 2.00 ms (reconfiguration 46)\n', err: '' });
  t.same(
    fake.requests.map((q) => q.params),
    [
      { session: 7, kind: 'remove', box: '10.0.0.2' },
      { session: 7, kind: 'remove', box: '10.0.0.2' },
      { session: 7, kind: 'remove', box: '10.0.0.2' },
      { session: '10.0.0.1:40000>10.0.0.3:80', kind: 'insert', box: '10.0.0.5', after: '10.0.0.2' },
      { session: 9, kind: 'replace', box: '10.0.0.2', with: '10.0.0.6' },
    ],
    'ids as numbers, tuples as strings',
  );

  const noReason = await FakeAgent.start(t, answers(t, { reconfig: { reconfigId: 1, session: 1, result: 'aborted', durationMs: 0 } }));
  t.same(await run(['reconfig', '1', '--remove', '10.0.0.2', '--socket', noReason.path]), { code: 3, out: 'aborted: unknown reason after 0.00 ms\n', err: '' });
});

t.test('cancel and shutdown', async (t) => {
  const fake = await FakeAgent.start(t, (r) => (r.method === 'cancel' ? { result: {} } : { result: { stopping: true, keepDataPlane: r.params.keepDataPlane } }));
  const s = ['--socket', fake.path];
  t.same(await run(['cancel', '7', ...s]), { code: 0, out: 'cancel requested\n', err: '' });
  t.same(await run(['shutdown', ...s]), { code: 0, out: 'agent stopping\n', err: '' });
  t.same(await run(['shutdown', '--keep', ...s]), { code: 0, out: 'agent stopping (data plane left running)\n', err: '' });
  t.same(JSON.parse((await run(['shutdown', '--keep', '--json', ...s])).out), { stopping: true, keepDataPlane: true });
  t.same(
    fake.requests.map((q) => [q.method, q.params]),
    [
      ['cancel', { session: 7 }],
      ['shutdown', { keepDataPlane: false }],
      ['shutdown', { keepDataPlane: true }],
      ['shutdown', { keepDataPlane: true }],
    ],
  );
});

t.test('errors from the agent are printed with their code, exit 1', async (t) => {
  const fake = await FakeAgent.start(t, (r) => {
    switch (r.method) {
      case 'reconfig':
        return { error: { code: 'ENOSESSION', message: 'no session 9 at this agent (see: dysco sessions)' } };
      case 'policy.add':
        return { error: { code: 'EINVAL', message: 'match: unknown word "port" (expected src, dst, sport or dport)' } };
      case 'stats':
        return 'hangup';
      default:
        return { error: { code: 'EFAIL', message: 'the map is gone' } };
    }
  });
  const s = ['--socket', fake.path];
  t.same(await run(['reconfig', '9', '--remove', '10.0.0.2', ...s]), { code: 1, out: '', err: 'dysco reconfig: no session 9 at this agent (see: dysco sessions) [ENOSESSION]\n' });
  t.same(await run(['policy', 'add', '--match', 'port 80', '--chain', '10.0.0.2', ...s]), { code: 1, out: '', err: 'dysco policy: match: unknown word "port" (expected src, dst, sport or dport) [EINVAL]\n' });
  t.same(await run(['sessions', '--json', ...s]), { code: 1, out: '', err: 'dysco sessions: the map is gone [EFAIL]\n' }, '--json does not change how errors print');
  t.same(await run(['stats', ...s]), { code: 1, out: '', err: 'dysco stats: the agent closed the connection [ECLOSED]\n' }, 'an agent that hangs up');
});

t.test('watch prints events until interrupted', async (t) => {
  const events: AgentEvent[] = [
    { type: 'sessionCreated', session: SESSIONS[0]! },
    { type: 'reconfigured', outcome: { reconfigId: 42, session: 1, result: 'completed', durationMs: 8.5 }, sessionTuple: '10.0.0.1:40000>10.0.0.3:80' },
    { type: 'reconfigured', outcome: { reconfigId: 43, session: 1, result: 'aborted', reason: 'timeout', durationMs: 3200 }, sessionTuple: '10.0.0.1:40000>10.0.0.3:80' },
    { type: 'sessionEnded', id: 1, session: '10.0.0.1:40000>10.0.0.3:80', reason: 'fin' },
  ];
  const fake = await FakeAgent.start(t, answers(t, {}), events);
  // a child process: watch waits for SIGINT, which this process must not get
  const watch = (json: boolean) =>
    new Promise<{ code: number | null; lines: string[] }>((resolve, reject) => {
      const p = spawn(process.execPath, [BIN, 'watch', '--socket', fake.path, ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`watch printed ${JSON.stringify(out)} and no more`));
      }, 20_000);
      p.stdout.setEncoding('utf8');
      p.stdout.on('data', (d: string) => {
        out += d;
        // watch installs its SIGINT handler after subscribing, in the same turn as it
        // prints what arrived with the answer: give it that turn before interrupting
        if (out.split('\n').length > events.length) setTimeout(() => p.kill('SIGINT'), 300);
      });
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, lines: out.split('\n').slice(0, -1) });
      });
    });
  const text = await watch(false);
  t.equal(text.code, 0, 'SIGINT ends it with status 0');
  const ts = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;
  t.ok(
    text.lines.every((l) => ts.test(l)),
    'each line starts with the time',
  );
  t.same(
    text.lines.map((l) => l.replace(ts, '')),
    [
      'session 1 10.0.0.1:40000>10.0.0.3:80 joined as originator',
      'session 1 10.0.0.1:40000>10.0.0.3:80: reconfiguration 42 completed in 8.50 ms',
      'session 1 10.0.0.1:40000>10.0.0.3:80: reconfiguration 43 aborted (timeout) in 3200.00 ms',
      'session 1 10.0.0.1:40000>10.0.0.3:80 ended (fin)',
    ],
  );
  const json = await watch(true);
  t.equal(json.code, 0);
  t.same(
    json.lines.map((l) => JSON.parse(l) as unknown),
    JSON.parse(JSON.stringify(events)),
    '--json: one event a line',
  );
  t.same(fake.requests.map((q) => q.method), ['subscribe', 'subscribe']);
});

// ---------------------------------------------------------------------------
// dysco agent: only what fails before an agent starts (starting one needs root)

t.test('agent --help and --help-config', async (t) => {
  const h = await run(['agent', '--help']);
  t.equal(h.code, 0);
  t.match(h.out, /^usage: dysco agent --config FILE /);
  const r = await run(['agent', '--help-config']);
  t.equal(r.code, 0);
  t.equal(r.err, '');
  const lines = r.out.split('\n');
  t.equal(lines[0], 'The configuration file is a JSON object with these fields:');
  for (const [k, d] of CONFIG_FIELDS) t.ok(lines.includes(`  ${k.padEnd(15)} ${d}`), `lists ${k}`);
  t.equal(lines.filter((l) => l.startsWith('  ')).length, CONFIG_FIELDS.length, 'and nothing else');
});

t.test('agent: configuration errors exit 2 before anything starts', async (t) => {
  const none = await run(['agent']);
  t.same(none, { code: 2, out: '', err: 'dysco agent: --config FILE is required (dysco agent --help-config describes it)\n' });

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ address: '10.0.0.300', interfaces: [], controlPort: 0, keys: [{ id: 1, secret: 'abc' }], policies: [{ id: 1, match: 'dport 80 dport 81', chain: ['10.0.0.2'] }], colour: 'blue' }));
  const r = await run(['agent', '--config', bad]);
  t.equal(r.code, 2);
  t.equal(r.out, '');
  t.equal(
    r.err,
    [
      'dysco agent: invalid configuration:',
      `  ${bad}.colour: unknown field (known: address, localAddresses, interfaces, mode, controlPort, socket, pinRoot, stateDir, metrics, maxSessions, ports, keys, sendKeyId, requireAuth, policies, idleTimeout, closedLinger, rto, logLevel, maxRto)`,
      `  ${bad}.address: not an IPv4 or IPv6 address: "10.0.0.300"`,
      `  ${bad}.interfaces: must be a non-empty list of interface names, got []`,
      `  ${bad}.keys[0].secret: must be a hex string`,
      `  ${bad}.policies[0].match: dport given twice`,
      `  ${bad}.controlPort: must be an integer in 1..65535, got 0`,
      '',
    ].join('\n'),
    'every problem, one a line',
  );

  const missing = join(dir, 'missing.json');
  const m = await run(['agent', '-c', missing]);
  t.equal(m.code, 2);
  t.match(m.err, `dysco agent: invalid configuration: ${missing}: cannot read: ENOENT`);

  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ address: '10.0.0.1', interfaces: ['eth0'] }));
  t.same(await run(['agent', '--config', good, '--mode', 'turbo']), { code: 2, out: '', err: 'dysco agent: invalid configuration: --mode must be auto, tc or xdp, got "turbo"\n' });
  t.same(await run(['agent', '--config', good, '--log-level', 'loud']), { code: 2, out: '', err: 'dysco agent: invalid configuration: --log-level must be debug, info, warn or error\n' });
  const u = await run(['agent', '--config', good, '--colour']);
  t.equal(u.code, 2);
  t.match(u.err, /^dysco agent: .*'--colour'/);
  const v = await run(['agent', '--config']);
  t.equal(v.code, 2, '--config without a file');
  t.match(v.err, /^dysco agent: .*argument missing/);
});
