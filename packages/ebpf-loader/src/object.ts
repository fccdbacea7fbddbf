import { existsSync } from 'node:fs';
import { BpfError, errnoMessage } from './errors.js';
import { addressOf, allocC, cString, freeC, lastErrno as koffiErrno, lib, type ObjPtr, type Ptr } from './native.js';
import { withLibbpfLog } from './libbpf-log.js';
import { BpfProgram } from './program.js';
import { BpfMap } from './map.js';
import { isBpffs } from './bpffs.js';
import type { OwnerState } from './owner.js';

/** Options of {@link BpfObject.open}. */
export interface OpenOptions {
  /**
   * Directory (in a bpffs) where maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned under
   * their name: a map already pinned there with a compatible definition is reused instead of created, so
   * its contents survive loader restarts. Default (libbpf's): `/sys/fs/bpf`.
   */
  pinRoot?: string;
  /** Overrides the object name (libbpf uses it as a prefix of internal map names such as `.rodata`). */
  objectName?: string;
}

/** Options of {@link BpfObject.load}. */
export interface LoadOptions {
  /**
   * Verifier log level for every program: 0 (default) asks for no log on success and, when a program is
   * rejected, reloads it with level 1 to explain why; 1 or 2 keep the log of every program in
   * {@link BpfProgram.verifierLog}.
   */
  logLevel?: number;
  /** Bytes of verifier log kept per program (default 16 MiB, libbpf's own maximum). The kernel keeps the log's tail when it overflows. */
  logSize?: number;
}

/** sizeof(struct bpf_object_open_opts) in libbpf 1.1 on 64-bit; pin_root_path sits at offset 24. */
const OPEN_OPTS_SIZE = 80;
const DEFAULT_LOG_SIZE = 16 * 1024 * 1024;

/**
 * An ELF object file of BPF programs and maps, opened and loaded through libbpf.
 *
 * ```ts
 * const obj = BpfObject.open('prog.bpf.o');
 * obj.load();
 * const { retval } = obj.program('xdp_pass').testRun({ data: Buffer.alloc(64) });
 * obj.close();
 * ```
 */
export class BpfObject {
  /** The object file path. */
  readonly path: string;
  /** libbpf's object name (the file name without `.o` unless overridden). */
  readonly name: string;
  #ptr: ObjPtr;
  readonly #owner: OwnerState;
  readonly #programs: BpfProgram[] = [];
  readonly #maps: BpfMap[] = [];
  readonly #pinRoot: string | undefined;

  private constructor(path: string, ptr: ObjPtr, pinRoot: string | undefined) {
    this.path = path;
    this.#ptr = ptr;
    this.#pinRoot = pinRoot;
    this.name = lib.bpf_object__name(ptr) ?? path;
    this.#owner = { closed: false, loaded: false, label: `BPF object ${path}` };
    for (let p = lib.bpf_object__next_program(ptr, null); p !== null; p = lib.bpf_object__next_program(ptr, p)) {
      this.#programs.push(new BpfProgram(p, this.#owner));
    }
    for (let m = lib.bpf_object__next_map(ptr, null); m !== null; m = lib.bpf_object__next_map(ptr, m)) {
      this.#maps.push(BpfMap.fromObjectMap(m, this.#owner));
    }
  }

  /** Parses the object file (no kernel objects yet; call {@link BpfObject.load}). */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    const o = Buffer.alloc(OPEN_OPTS_SIZE);
    o.writeBigUInt64LE(BigInt(OPEN_OPTS_SIZE), 0);
    const objectName = opts.objectName === undefined ? undefined : Buffer.from(`${opts.objectName}\0`);
    const pinRoot = opts.pinRoot === undefined ? undefined : Buffer.from(`${opts.pinRoot}\0`);
    if (objectName) o.writeBigUInt64LE(addressOf(objectName), 8);
    if (pinRoot) o.writeBigUInt64LE(addressOf(pinRoot), 24);
    return withLibbpfLog((log) => {
      const ptr = lib.bpf_object__open_file(path, o);
      void [objectName, pinRoot]; // referenced until libbpf has copied them
      if (ptr === null) {
        const errno = lastErrnoOr(existsSync(path) ? 22 : 2);
        throw new BpfError({ errno, op: `open BPF object ${path}`, details: log.slice(-20) });
      }
      return new BpfObject(path, ptr, opts.pinRoot);
    });
  }

  /** Whether {@link BpfObject.load} succeeded. */
  get loaded(): boolean {
    return this.#owner.loaded;
  }

  #live(op: string): ObjPtr {
    if (this.#owner.closed) throw new BpfError({ errno: 9, op: `${op} of ${this.path}`, details: ['the object was closed'] });
    return this.#ptr;
  }

  /**
   * Creates the maps (or reuses pinned ones), then verifies and loads every program into the kernel.
   * When the verifier rejects a program, throws a {@link BpfError} naming it, with its verifier log
   * (captured per program through `bpf_program__set_log_buf`, so the log is the rejected program's own).
   */
  load(opts: LoadOptions = {}): void {
    const obj = this.#live('load');
    const logLevel = opts.logLevel ?? 0;
    const logSize = opts.logSize ?? DEFAULT_LOG_SIZE;
    const bufs = new Map<BpfProgram, Ptr>();
    try {
      for (const p of this.#programs) {
        if (!p.autoload) continue;
        const buf = allocC(logSize);
        bufs.set(p, buf);
        lib.bpf_program__set_log_buf(p.ptr, buf, logSize);
        if (logLevel > 0) lib.bpf_program__set_log_level(p.ptr, logLevel);
      }
      withLibbpfLog((log) => {
        const r = lib.bpf_object__load(obj);
        const logs = new Map<BpfProgram, string>();
        for (const [p, buf] of bufs) {
          const text = cString(buf, logSize);
          if (text) logs.set(p, text);
        }
        if (r === 0) {
          this.#owner.loaded = true;
          if (logLevel > 0) for (const p of this.#programs) p.verifierLog = logs.get(p);
          return;
        }
        throw this.#loadError(-r, log, logs);
      });
    } finally {
      for (const [p, buf] of bufs) {
        lib.bpf_program__set_log_buf(p.ptr, null, 0);
        freeC(buf);
      }
    }
  }

  #loadError(errno: number, libbpfLog: readonly string[], logs: Map<BpfProgram, string>): BpfError {
    // libbpf stops at the first program the kernel rejects: it says so by name, and it is the last one with a log.
    let rejected: BpfProgram | undefined;
    for (const line of libbpfLog) {
      const m = /prog '([^']+)': (?:BPF program )?load failed/.exec(line);
      if (m) rejected = this.#programs.find((p) => p.name === m[1]) ?? rejected;
    }
    if (!rejected) for (const p of this.#programs) if (logs.has(p)) rejected = p;
    const details = libbpfLog.filter((l) => !/-- (BEGIN|END) PROG LOAD LOG --/.test(l)).slice(-15).map((l) => `  ${l}`);
    if (details.length) details.unshift('libbpf said:');
    if (this.#pinRoot !== undefined && !isBpffs(this.#pinRoot)) details.push(`pinRoot ${this.#pinRoot} is not on a bpffs (mount one with mountBpffs())`);
    if (errno === 1) details.push('loading BPF programs needs root (CAP_BPF and CAP_NET_ADMIN)');
    if (rejected) {
      const verifierLog = logs.get(rejected);
      return new BpfError({
        errno,
        op: `load BPF program '${rejected.name}' (section ${rejected.sectionName}) of ${this.path}`,
        ...(verifierLog === undefined ? {} : { reason: `the verifier rejected it: ${errnoMessage(errno)}`, verifierLog }),
        details,
      });
    }
    return new BpfError({ errno, op: `load BPF object ${this.path}`, details });
  }

  /** The program whose C function is `name` (section names are accepted too). Throws, listing the programs, when there is none. */
  program(name: string): BpfProgram {
    const p = this.#programs.find((x) => x.name === name) ?? this.#programs.find((x) => x.sectionName === name);
    if (!p) {
      const avail = this.#programs.map((x) => `${x.name} (${x.sectionName})`).join(', ') || 'none';
      throw new BpfError({ errno: 2, op: `find program '${name}' in ${this.path}`, reason: 'no such program', details: [`available programs: ${avail}`] });
    }
    return p;
  }

  /** The map called `name`. Throws, listing the maps, when there is none. */
  map(name: string): BpfMap {
    const m = this.#maps.find((x) => x.name === name);
    if (!m) {
      const avail = this.#maps.map((x) => x.name).join(', ') || 'none';
      throw new BpfError({ errno: 2, op: `find map '${name}' in ${this.path}`, reason: 'no such map', details: [`available maps: ${avail}`] });
    }
    return m;
  }

  /** All programs, in ELF order. */
  programs(): BpfProgram[] {
    return [...this.#programs];
  }

  /** All maps, including libbpf's internal ones (`<obj>.rodata`, `.bss`, ...). */
  maps(): BpfMap[] {
    return [...this.#maps];
  }

  /**
   * Frees the object: closes its program and map file descriptors. Attachments that hold their own
   * references (XDP/TC attachments, TCX links, pins) keep the programs and maps alive in the kernel. Idempotent.
   */
  close(): void {
    if (this.#owner.closed) return;
    this.#owner.closed = true;
    lib.bpf_object__close(this.#ptr);
    this.#ptr = 0n;
  }
}

function lastErrnoOr(fallback: number): number {
  const e = koffiErrno();
  return e > 0 ? e : fallback;
}
