/**
 * The clock of the entries' lastSeen: CLOCK_MONOTONIC in ns (what the agent
 * compares it with when it reclaims idle entries), whether the programs
 * derive it from jiffies after calibration or read the coarse clock before.
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionTable, TCP_ACK, buildTcpPacket, decodeEgressEntry, encodeTableMaps, encodeTupleKey, plainRewrite, tuple } from '@dysco/protocol';
import { CONFIG_SIZE, DataPlane } from '@dysco/xdp';
import t from 'tap';
import { privilegedSkipReason } from './privileged.js';

const skip = privilegedSkipReason();
const monoNs = () => Number(process.hrtime.bigint());
/** Two jiffies at the lowest usual tick rate (100 Hz), and some scheduling. */
const SLACK_NS = 25e6;

t.test('lastSeen is the monotonic clock, calibrated or not', skip ? { skip } : {}, async (t) => {
  const pinRoot = `/sys/fs/bpf/dysco-clock-${process.pid}`;
  const dp = DataPlane.open({ pinRoot, maxSessions: 1024 });
  t.teardown(() => {
    dp.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });
  const session = tuple('10.0.0.1', 40000, '10.0.0.2', 80);
  const table = new SessionTable();
  table.installEgress({ key: session, old: plainRewrite(tuple('10.0.0.1', 61000, '10.0.0.10', 61000)), twoPath: undefined, sndHigh: undefined, packets: 0, bytes: 0, lastSeen: 0 });
  dp.install(encodeTableMaps(table));
  const pkt = buildTcpPacket({ tuple: session, seq: 1, ack: 1, flags: TCP_ACK, window: 1000, payload: new Uint8Array(10) });
  const frame = Buffer.alloc(14 + pkt.length);
  frame.writeUInt16BE(0x0800, 12);
  frame.set(pkt, 14);
  const key = Buffer.from(encodeTupleKey(session));
  const lastSeen = () => {
    const r = dp.program('tcEgress').testRun({ data: frame, repeat: 1 });
    t.equal(r.retval, 0, 'the packet is rewritten');
    return decodeEgressEntry(key, dp.map('egress').lookup(key)!).lastSeen;
  };
  const clockBytes = () => dp.map('config').lookup(Buffer.alloc(4))!.subarray(188, CONFIG_SIZE);

  t.ok(dp.calibrateClock(), 'calibrated (the kernel tick is known)');
  t.not(clockBytes().readUInt32LE(0), 0, 'the tick is set');
  // configure rewrites the configuration, not the clock
  dp.configure({ localAddresses: [] });
  t.not(clockBytes().readUInt32LE(0), 0, 'configure keeps the calibration');

  const a = lastSeen();
  t.ok(Math.abs(a - monoNs()) < SLACK_NS, `calibrated: lastSeen ${a} is the monotonic clock (now ${monoNs()})`);
  await sleep(300);
  const b = lastSeen();
  t.ok(Math.abs(b - a - 300e6) < SLACK_NS + 20e6, `300 ms later it has moved by ${(b - a) / 1e6} ms`);

  // uncalibrated: the coarse clock, on the same scale
  const cfg = dp.map('config').lookup(Buffer.alloc(4))!;
  cfg.fill(0, 188, CONFIG_SIZE);
  dp.map('config').update(Buffer.alloc(4), cfg);
  const c = lastSeen();
  t.ok(Math.abs(c - monoNs()) < SLACK_NS, `uncalibrated: lastSeen ${c} is the monotonic clock (now ${monoNs()})`);
  t.ok(dp.calibrateClock(), 'calibrated again');
  const d = lastSeen();
  t.ok(d >= c && d - c < SLACK_NS, 'no jump when the calibration comes back');
});
