/**
 * Blocking with nftables. On a Dysco middlebox the agent's ingress program
 * rewrites each arriving packet from its subsession tuple to the session's
 * own tuple, the kernel forwards it, and the egress program rewrites it to
 * the next subsession. So the `forward` hook sees every session by its own
 * tuple, whichever neighbours it has: blocking a session is adding its
 * tuple, both ways, to a set that a rule in a forward chain drops (or
 * rejects with a reset).
 *
 * The table also holds the blacklist, as interval sets the same chain
 * consults for every forwarded TCP packet: a blacklisted connection's SYN
 * is dropped before the connection exists.
 */
import { spawn } from 'node:child_process';
import { type FiveTuple, formatAddress } from '@dysco/protocol';
import type { Blacklist } from './blacklist.js';

/** What the IPS needs to act on a session (the nftables implementation, or a stand-in in tests). */
export interface Enforcer {
  block(t: FiveTuple): Promise<void>;
  unblock(t: FiveTuple): Promise<void>;
}

export class NftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NftError';
  }
}

/** Runs `nft -f -` with `script` on its standard input. */
export function nft(script: string, argv: readonly string[] = ['-f', '-']): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('nft', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', (e) => reject(new NftError(`cannot run nft: ${e.message} (is nftables installed?)`)));
    p.once('close', (code) => (code === 0 ? resolve(out) : reject(new NftError(`nft exited with ${code}: ${err.trim() || out.trim()}`))));
    p.stdin.end(script);
  });
}

export interface NftOptions {
  readonly table: string;
  readonly action: 'drop' | 'reset';
  /** Lifetime of a session's elements unless removed earlier. */
  readonly holdSeconds: number;
  readonly blacklist: Blacklist;
}

const elementOf = (t: FiveTuple) => `${formatAddress(t.src)} . ${t.sport} . ${formatAddress(t.dst)} . ${t.dport}`;

/** The nftables script that (re)creates the IPS's table. */
export function tableScript(o: NftOptions): string {
  const verdict = o.action === 'reset' ? 'reject with tcp reset' : 'drop';
  const v4 = o.blacklist.prefixes.filter((p) => p.address.family === 4).map((p) => p.text);
  const v6 = o.blacklist.prefixes.filter((p) => p.address.family === 6).map((p) => p.text);
  const ports = o.blacklist.ports.map((p) => p.text);
  const elements = (xs: string[]) => (xs.length > 0 ? ` elements = { ${xs.join(', ')} };` : '');
  const t = o.table;
  return [
    // creating then deleting makes the deletion valid whether or not a previous run left the table
    `table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  set sessions4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; timeout ${o.holdSeconds}s; }`,
    `  set sessions6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; timeout ${o.holdSeconds}s; }`,
    `  set blacklist4 { type ipv4_addr; flags interval; auto-merge;${elements(v4)} }`,
    `  set blacklist6 { type ipv6_addr; flags interval; auto-merge;${elements(v6)} }`,
    `  set blacklistports { type inet_service; flags interval; auto-merge;${elements(ports)} }`,
    `  chain forward {`,
    `    type filter hook forward priority -10; policy accept;`,
    `    ip saddr . tcp sport . ip daddr . tcp dport @sessions4 counter ${verdict} comment "blocked sessions"`,
    `    ip6 saddr . tcp sport . ip6 daddr . tcp dport @sessions6 counter ${verdict} comment "blocked sessions"`,
    `    meta l4proto tcp ip saddr @blacklist4 counter ${verdict} comment "blacklist"`,
    `    meta l4proto tcp ip daddr @blacklist4 counter ${verdict} comment "blacklist"`,
    `    meta l4proto tcp ip6 saddr @blacklist6 counter ${verdict} comment "blacklist"`,
    `    meta l4proto tcp ip6 daddr @blacklist6 counter ${verdict} comment "blacklist"`,
    `    tcp sport @blacklistports counter ${verdict} comment "blacklist"`,
    `    tcp dport @blacklistports counter ${verdict} comment "blacklist"`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

export class NftEnforcer implements Enforcer {
  /** nft runs one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly o: NftOptions) {}

  /** Creates the table (replacing one a previous run left). */
  static async create(o: NftOptions): Promise<NftEnforcer> {
    await nft(tableScript(o));
    return new NftEnforcer(o);
  }

  private run(script: string): Promise<string> {
    const p = this.queue.then(() => nft(script));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private set(t: FiveTuple): string {
    return t.src.family === 4 ? 'sessions4' : 'sessions6';
  }

  /** Drops the session's packets both ways from now on. */
  async block(t: FiveTuple): Promise<void> {
    const back: FiveTuple = { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
    await this.run(`add element inet ${this.o.table} ${this.set(t)} { ${elementOf(t)}, ${elementOf(back)} }\n`);
  }

  /** Forgets a blocked session (the agent has forgotten it too). */
  async unblock(t: FiveTuple): Promise<void> {
    const back: FiveTuple = { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
    for (const x of [t, back]) {
      // an element that timed out is gone already
      await this.run(`delete element inet ${this.o.table} ${this.set(x)} { ${elementOf(x)} }\n`).catch(() => undefined);
    }
  }

  /** Deletes the table: blocked sessions and the blacklist stop applying. */
  async close(): Promise<void> {
    await this.run(`delete table inet ${this.o.table}\n`).catch(() => undefined);
  }
}
