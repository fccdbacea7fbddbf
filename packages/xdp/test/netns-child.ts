/**
 * Runs inside a network namespace (started by attach.test.ts through `ip
 * netns exec`): attaches the data plane to a veth in the mode given, prints
 * what it attached as JSON (kind and kernel program id of each attachment), waits for a line on stdin, detaches and exits.
 */
import { DataPlane, type AttachMode } from '@dysco/xdp';

const [ifname, mode, pinRoot] = process.argv.slice(2) as [string, AttachMode, string];
const dp = DataPlane.open({ pinRoot, maxSessions: 4096 });
try {
  const made = dp.attach(ifname, mode);
  process.stdout.write(`${JSON.stringify(made.map((a) => ({ kind: a.kind, progId: a.progId })))}\n`);
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.destroy();
  dp.detachAll();
  process.stdout.write('detached\n');
} finally {
  dp.close();
}
