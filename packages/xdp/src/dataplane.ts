import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Address, type AuthKey, DEFAULT_PORT_HIGH, DEFAULT_PORT_LOW, type DataPlaneEvent, type TableMapsBytes } from '@dysco/protocol';
import {
  type Attachment,
  BpfMap,
  BpfObject,
  type BpfProgram,
  RingBuffer,
  attachTc,
  attachXdp,
  mountBpffs,
} from 'ebpf-ts-loader';
import { COUNTER_NAMES, type Counters, sumCounters } from './counters.js';
import { decodeEvent } from './events.js';
import { hmacKeyStates } from './hmac-key.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the compiled programs are (build output of `build.mjs`). */
export function objectPath(name = 'dysco'): string {
  return join(packageRoot, 'build', `${name}.bpf.o`);
}

/** The maps of the data plane, by their names in the C program. */
export const MAP_NAMES = {
  egress: 'dysco_egress',
  ingress: 'dysco_ingress',
  pending: 'dysco_pending',
  natTags: 'dysco_nattag',
  synPayloads: 'dysco_synpayload',
  policies: 'dysco_policy',
  counters: 'dysco_counters',
  events: 'dysco_events',
  config: 'dysco_config',
  policyOrder: 'dysco_policy_order',
  keys: 'dysco_keys',
} as const;

/** Keys of the maps' `dysco_keys` (the kernel holds up to this many). */
export const MAX_KEYS = 64;

/** The key ring of SYN metadata authentication, as the protocol's KeyRing takes it. */
export interface DataPlaneAuth {
  readonly keys: readonly AuthKey[];
  /** Key that signs new metadata; default the first. */
  readonly sendKeyId?: number;
  /** Refuse unsigned metadata; default true when there are keys. */
  readonly requireAuth?: boolean;
}

/** Size of `struct dysco_config` (bpf/include/steer.h). */
export const CONFIG_SIZE = 200;
/** Local addresses the kernel holds (`DYSCO_MAX_LOCALS`). */
export const MAX_LOCAL_ADDRESSES = 8;
/** Policies the kernel matches in order (`DYSCO_MAX_POLICIES`). */
export const MAX_POLICIES = 1024;

/** What the SYN path in the kernel needs from the agent. */
export interface DataPlaneConfig {
  /** This agent's addresses (new subsessions start from them; SYNs to them are decoded). */
  readonly localAddresses: readonly Address[];
  /** Port range of new subsessions; default 61000..65535. */
  readonly ports?: { readonly low?: number; readonly high?: number; readonly seed?: number };
  /** Seed of the NAT-tag generator (the reference rewriter's `seed`). */
  readonly seed?: number;
  /**
   * Route rewritten packets at TC egress by their new destination (FIB
   * lookup and neighbour redirect): the stack routed them for the session's
   * destination. Default true; off only in test runs.
   */
  readonly route?: boolean;
  /**
   * SYN metadata authentication (the same keys as the protocol's KeyRing):
   * signed on the way out, verified on the way in. The kernel holds only
   * the HMAC states derived from each secret, never the secret itself.
   */
  readonly auth?: DataPlaneAuth;
}

/** The entry programs. */
export const PROGRAMS = {
  xdpIngress: 'dysco_xdp_ingress',
  tcIngress: 'dysco_tc_ingress',
  tcEgress: 'dysco_tc_egress',
  passXdp: 'dysco_pass_xdp',
  passTc: 'dysco_pass_tc',
  clock: 'dysco_clock',
} as const;

export interface DataPlaneOptions {
  /**
   * Directory (on bpffs) where the maps are pinned by name. A data plane
   * opened on the same directory finds the maps, and so the sessions, of
   * the previous one. Default: /sys/fs/bpf/dysco.
   */
  readonly pinRoot?: string;
  /** The compiled object; default: this package's build output. */
  readonly object?: string;
  /**
   * Concurrent sessions the maps are sized for (default 1,048,576: about
   * 840 MB of kernel memory, preallocated). The egress map holds two
   * entries per session, the ingress map three, the SYN maps a sixteenth.
   * Maps already pinned keep the size they were created with; opening them
   * with another size fails.
   */
  readonly maxSessions?: number;
}

/** Default of {@link DataPlaneOptions.maxSessions}. */
export const DEFAULT_MAX_SESSIONS = 1 << 20;

export type AttachMode = 'auto' | 'xdp' | 'tc';

/**
 * The kernel data plane of one agent: the loaded programs, their maps, the
 * event ring buffer and the counters, over the layout of @dysco/protocol.
 */
export class DataPlane {
  readonly obj: BpfObject;
  readonly pinRoot: string;
  private readonly maps: Record<keyof typeof MAP_NAMES, BpfMap>;
  private ring: RingBuffer | undefined;
  private readonly queued: DataPlaneEvent[] = [];
  private readonly attachments: Attachment[] = [];

  private constructor(obj: BpfObject, pinRoot: string) {
    this.obj = obj;
    this.pinRoot = pinRoot;
    const m = {} as Record<keyof typeof MAP_NAMES, BpfMap>;
    for (const [k, name] of Object.entries(MAP_NAMES)) m[k as keyof typeof MAP_NAMES] = obj.map(name);
    this.maps = m;
  }

  /** Loads the programs, reusing the maps pinned under `pinRoot` if there are any. */
  static open(opts: DataPlaneOptions = {}): DataPlane {
    const file = opts.object ?? objectPath();
    if (!existsSync(file)) {
      throw new Error(`the data plane is not built: ${file} is missing (run: node packages/xdp/build.mjs)`);
    }
    const pinRoot = opts.pinRoot ?? '/sys/fs/bpf/dysco';
    mountBpffs();
    // a load that fails leaves nothing behind: the pin directory goes too if this call made it
    const fresh = !existsSync(pinRoot);
    const obj = BpfObject.open(file, { pinRoot });
    try {
      DataPlane.load(obj, opts);
    } catch (e) {
      obj.close();
      if (fresh) rmSync(pinRoot, { recursive: true, force: true });
      throw incompatiblePin(e, pinRoot) ?? e;
    }
    const dp = new DataPlane(obj, pinRoot);
    dp.calibrateClock();
    return dp;
  }

  private static load(obj: BpfObject, opts: DataPlaneOptions): void {
    const sessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    if (!Number.isInteger(sessions) || sessions < 16 || sessions > 1 << 24) {
      throw new Error(`maxSessions must be an integer in 16..${1 << 24}, got ${sessions}`);
    }
    const side = Math.max(1024, Math.ceil(sessions / 16));
    const sizes: [string, number][] = [
      [MAP_NAMES.egress, 2 * sessions],
      [MAP_NAMES.ingress, 3 * sessions],
      [MAP_NAMES.pending, side],
      [MAP_NAMES.natTags, side],
      [MAP_NAMES.synPayloads, side],
    ];
    for (const [name, n] of sizes) obj.map(name).resize(n);
    obj.load();
  }

  program(name: keyof typeof PROGRAMS): BpfProgram {
    return this.obj.program(PROGRAMS[name]);
  }

  map(name: keyof typeof MAP_NAMES): BpfMap {
    return this.maps[name];
  }

  /** Writes table entries (from `encodeTableMaps`) into the maps. */
  install(t: TableMapsBytes): void {
    const put = (m: BpfMap, entries: readonly { key: Uint8Array; value: Uint8Array }[]) => {
      for (const e of entries) m.update(Buffer.from(e.key), Buffer.from(e.value));
    };
    put(this.maps.egress, t.egress);
    put(this.maps.ingress, t.ingress);
    put(this.maps.pending, t.pending);
    put(this.maps.natTags, t.natTags);
    put(this.maps.synPayloads, t.synPayloads);
    put(this.maps.policies, t.policies);
    if (t.policies.length > 0) {
      const ids = t.policies.map((p) => Buffer.from(p.key).readUInt32LE(0)).sort((a, b) => a - b);
      this.setPolicyOrder(ids);
    }
  }

  /**
   * Writes the SYN path's configuration. The generators start where the
   * reference rewriter's do for the same seeds, so both allocate the same
   * ports and NAT tags.
   */
  configure(c: DataPlaneConfig): void {
    if (c.localAddresses.length > MAX_LOCAL_ADDRESSES) {
      throw new Error(`at most ${MAX_LOCAL_ADDRESSES} local addresses fit the data plane, got ${c.localAddresses.length}`);
    }
    const low = c.ports?.low ?? DEFAULT_PORT_LOW;
    const high = c.ports?.high ?? DEFAULT_PORT_HIGH;
    if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 0xffff || low > high) {
      throw new Error(`bad port range ${low}..${high}`);
    }
    const b = Buffer.from(this.configBytes());
    b.writeUInt32LE((c.ports?.seed ?? 1) >>> 0, 0);
    b.writeUInt32LE(((c.seed ?? 1) ^ 0x5eed7a65) >>> 0, 4);
    b.writeUInt16LE(low, 8);
    b.writeUInt16LE(high, 10);
    b.writeUInt32LE(c.localAddresses.length, 16);
    const auth = c.auth;
    if (auth && auth.keys.length > MAX_KEYS) throw new Error(`at most ${MAX_KEYS} keys fit the data plane`);
    const sendKeyId = auth ? (auth.sendKeyId ?? auth.keys[0]?.keyId) : undefined;
    if (auth && sendKeyId !== undefined && !auth.keys.some((k) => k.keyId === sendKeyId)) {
      throw new Error(`the send key ${sendKeyId} is not among the keys`);
    }
    const requireAuth = auth ? (auth.requireAuth ?? auth.keys.length > 0) : false;
    let flags = c.route === false ? 0 : 1;
    if (auth) flags |= 2;
    if (requireAuth) flags |= 4;
    if (sendKeyId !== undefined) flags |= 8;
    b.writeUInt32LE(flags >>> 0, 20);
    b.fill(0, 24, 188); // not the clock (188..199): calibrateClock's
    c.localAddresses.forEach((a, i) => {
      b.set(a.bytes, 24 + 20 * i);
      b[24 + 20 * i + 16] = a.family;
    });
    b.writeUInt32LE((sendKeyId ?? 0) >>> 0, 184);
    // keys first, so that no moment has the flags without their keys
    for (const k of [...this.maps.keys.keys()]) this.maps.keys.delete(k);
    for (const k of auth?.keys ?? []) {
      const id = Buffer.alloc(4);
      id.writeUInt32LE(k.keyId >>> 0);
      this.maps.keys.update(id, hmacKeyStates(k.secret));
    }
    this.maps.config.update(Buffer.alloc(4), b);
  }

  /**
   * Sets the clock of the entries' `lastSeen` (CLOCK_MONOTONIC in ns, at
   * jiffy resolution), which the programs derive from jiffies once it is
   * calibrated: \`open\` does it, and an agent again before each idle scan,
   * so that the monotonic clock's slewing never adds up. False when the
   * kernel's tick is unknown (no kernel configuration to read): the
   * programs then read the coarse clock on every packet, which costs more.
   */
  calibrateClock(): boolean {
    return this.program('clock').testRun({ data: Buffer.alloc(64) }).retval === 1;
  }

  private configBytes(): Buffer {
    const v = this.maps.config.lookup(Buffer.alloc(4));
    if (!v || v.length !== CONFIG_SIZE) throw new Error(`dysco_config is not ${CONFIG_SIZE} bytes`);
    return v;
  }

  /**
   * Policy ids in the order the kernel tries them (id order, as the
   * reference); `install` sets it from the policies it writes.
   */
  setPolicyOrder(ids: readonly number[]): void {
    if (ids.length > MAX_POLICIES) throw new Error(`at most ${MAX_POLICIES} policies fit the data plane`);
    ids.forEach((id, i) => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(i);
      const v = Buffer.alloc(4);
      v.writeUInt32LE(id >>> 0);
      this.maps.policyOrder.update(k, v);
    });
    const b = Buffer.from(this.configBytes());
    b.writeUInt32LE(ids.length, 12);
    this.maps.config.update(Buffer.alloc(4), b);
  }

  /** Removes every entry of the session and policy maps. */
  clear(): void {
    for (const m of [this.maps.egress, this.maps.ingress, this.maps.pending, this.maps.natTags, this.maps.synPayloads, this.maps.policies]) {
      for (const k of [...m.keys()]) m.delete(k);
    }
    this.setPolicyOrder([]);
  }

  /** The counters summed over CPUs. */
  counters(): Counters {
    return sumCounters((i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      return this.maps.counters.lookupPerCpu(key);
    });
  }

  /** Zeroes every counter. */
  resetCounters(): void {
    const cpus = this.maps.counters.lookupPerCpu(Buffer.alloc(4)).length;
    COUNTER_NAMES.forEach((_, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      this.maps.counters.update(key, Buffer.alloc(8 * cpus));
    });
  }

  /**
   * Delivers events as they arrive, on the JS thread (the ring buffer's
   * epoll descriptor is watched by the event loop), until the returned
   * function is called. A record that does not decode goes to `onError`.
   */
  watchEvents(onEvent: (e: DataPlaneEvent) => void, onError: (err: unknown) => void): () => void {
    this.ring?.close();
    this.ring = new RingBuffer(
      this.maps.events,
      (data) => {
        let e: DataPlaneEvent;
        try {
          e = decodeEvent(data);
        } catch (err) {
          onError(err);
          return;
        }
        onEvent(e);
      },
      { onError },
    );
    this.ring.start();
    return () => {
      this.ring?.close();
      this.ring = undefined;
    };
  }

  /** Events waiting in the ring buffer, decoded, oldest first. */
  events(): DataPlaneEvent[] {
    if (!this.ring) this.ring = new RingBuffer(this.maps.events, (data) => this.queued.push(decodeEvent(data)));
    this.ring.consume();
    return this.queued.splice(0);
  }

  /**
   * Attaches the ingress and egress programs to an interface. `auto`: TC
   * (keeps GSO/GRO on virtual devices such as veth); `xdp`: native XDP for
   * ingress (physical NICs with driver support) and TC for egress.
   */
  attach(ifname: string, mode: AttachMode = 'auto'): Attachment[] {
    const made: Attachment[] = [];
    if (mode === 'xdp') made.push(attachXdp(ifname, this.program('xdpIngress'), { mode: 'native' }));
    else made.push(attachTc(ifname, this.program('tcIngress'), { direction: 'ingress', kind: 'auto' }));
    made.push(attachTc(ifname, this.program('tcEgress'), { direction: 'egress', kind: 'auto' }));
    this.attachments.push(...made);
    return made;
  }

  /** Detaches every program this data plane attached. */
  detachAll(): void {
    for (const a of this.attachments.splice(0).reverse()) a.detach();
  }

  /** Closes the object (pinned maps stay, with their sessions). */
  close(): void {
    this.ring?.close();
    this.ring = undefined;
    this.obj.close();
  }
}

/**
 * A load refused because a map pinned under `pinRoot` has another shape
 * than this build's (an older build's record layout, another maxSessions):
 * an error that says so and what to do, or undefined for any other failure.
 */
function incompatiblePin(e: unknown, pinRoot: string): Error | undefined {
  const m = e instanceof Error ? /couldn't reuse pinned map at '([^']+)'/.exec(e.message) : null;
  if (!m) return undefined;
  return Object.assign(
    new Error(
      `the map pinned at ${m[1]} does not fit this build of the data plane (its key or value size, or its number of entries, differ: ` +
        `an agent of another version, or one started with another maxSessions, left it). Its sessions cannot be adopted. ` +
        `Stop that agent with a clean shutdown, or remove ${pinRoot} (sessions it carries lose their rewriting), then start again.`,
    ),
    { cause: e },
  );
}