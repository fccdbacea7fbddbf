import { BpfError } from './errors.js';
import { addressOf, lib, type ProgPtr } from './native.js';
import { progTypeName } from './constants.js';
import type { OwnerState } from './owner.js';

const EBADF = 9;
const ENOSPC = 28;

/** Input of {@link BpfProgram.testRun} (BPF_PROG_TEST_RUN). */
export interface TestRunOptions {
  /** Packet bytes the program sees (XDP and TC need at least an Ethernet header, 14 bytes). */
  data: Buffer;
  /** Runs the program this many times back to back (default 1); `durationNs` is the average. With repeat > 1 the program sees its own rewritten packet after the first run. */
  repeat?: number;
  /** `BPF_F_TEST_*` flags, see {@link TestRunFlags}. */
  flags?: number;
  /** Context in (`struct xdp_md` for XDP, `struct __sk_buff` for TC). */
  ctxIn?: Buffer;
  /** Room for the context out; defaults to `ctxIn.length` when `ctxIn` is given, else no context out. */
  ctxOutSize?: number;
  /** Room for the output packet; default `data.length + 4096` (XDP and TC programs may grow the packet). */
  dataOutSize?: number;
  /** CPU to run on, with `TestRunFlags.RUN_ON_CPU`. */
  cpu?: number;
}

/** Output of {@link BpfProgram.testRun}. */
export interface TestRunResult {
  /** The program's return value (verdict: {@link XdpAction}, {@link TcAction}). */
  retval: number;
  /** The packet after the program ran. */
  data: Buffer;
  /** Average run time per repetition in nanoseconds, measured by the kernel. */
  durationNs: number;
  /** Context after the run, when `ctxIn` or `ctxOutSize` was given. */
  ctxOut?: Buffer;
}

/** sizeof(struct bpf_test_run_opts) in libbpf 1.1 on 64-bit. */
const TEST_RUN_OPTS_SIZE = 80;

/** A program of a {@link BpfObject}. Obtain it with {@link BpfObject.program}. */
export class BpfProgram {
  /** The C function name. */
  readonly name: string;
  /** ELF section (`xdp`, `tc`, `tcx/ingress`, ...). */
  readonly sectionName: string;
  /** `enum bpf_prog_type` value; see {@link ProgType}. */
  readonly type: number;
  /** The verifier log from load() when it was called with `logLevel > 0`. */
  verifierLog: string | undefined;
  readonly #ptr: ProgPtr;
  readonly #owner: OwnerState;

  /** @internal Use {@link BpfObject.program}. */
  constructor(ptr: ProgPtr, owner: OwnerState) {
    this.#ptr = ptr;
    this.#owner = owner;
    this.name = lib.bpf_program__name(ptr);
    this.sectionName = lib.bpf_program__section_name(ptr);
    this.type = lib.bpf_program__type(ptr);
  }

  /** @internal The libbpf handle. */
  get ptr(): ProgPtr {
    return this.#ptr;
  }

  /** Whether load() loads this program (libbpf autoload; false for sections libbpf does not recognise). */
  get autoload(): boolean {
    return lib.bpf_program__autoload(this.#ptr);
  }

  /** Program type name, e.g. `'XDP'`, `'SCHED_CLS'`. */
  get typeName(): string {
    return progTypeName(this.type);
  }

  /** The program's file descriptor; throws before load() and after close(). */
  get fd(): number {
    if (this.#owner.closed) throw new BpfError({ errno: EBADF, op: `use program '${this.name}'`, details: [`${this.#owner.label} was closed`] });
    const fd = lib.bpf_program__fd(this.#ptr);
    if (fd < 0) throw new BpfError({ errno: EBADF, op: `use program '${this.name}'`, details: [`${this.#owner.label} is not loaded yet: call load() first`] });
    return fd;
  }

  /** Pins the program at `path` in a bpffs. */
  pin(path: string): void {
    const r = lib.bpf_obj_pin(this.fd, path);
    if (r < 0) throw new BpfError({ errno: -r, op: `pin program '${this.name}' at ${path}` });
  }

  /**
   * Runs the program once (or `repeat` times) on `data` in the kernel without attaching it (BPF_PROG_TEST_RUN),
   * returning the verdict, the rewritten packet and the kernel-measured time. Side effects on maps are real.
   */
  testRun(opts: TestRunOptions): TestRunResult {
    const { data } = opts;
    if (!Buffer.isBuffer(data)) throw new TypeError(`testRun '${this.name}': data must be a Buffer`);
    const repeat = opts.repeat ?? 1;
    const dataOutSize = opts.dataOutSize ?? data.length + 4096;
    const ctxOutSize = opts.ctxOutSize ?? opts.ctxIn?.length ?? 0;
    const dataOut = Buffer.allocUnsafe(dataOutSize);
    const ctxOut = ctxOutSize > 0 ? Buffer.alloc(ctxOutSize) : undefined;
    const ctxIn = opts.ctxIn;

    const o = Buffer.alloc(TEST_RUN_OPTS_SIZE);
    o.writeBigUInt64LE(BigInt(TEST_RUN_OPTS_SIZE), 0); // sz
    o.writeBigUInt64LE(addressOf(data), 8); // data_in
    o.writeBigUInt64LE(addressOf(dataOut), 16); // data_out
    o.writeUInt32LE(data.length, 24); // data_size_in
    o.writeUInt32LE(dataOutSize, 28); // data_size_out
    if (ctxIn) {
      o.writeBigUInt64LE(addressOf(ctxIn), 32); // ctx_in
      o.writeUInt32LE(ctxIn.length, 48); // ctx_size_in
    }
    if (ctxOut) {
      o.writeBigUInt64LE(addressOf(ctxOut), 40); // ctx_out
      o.writeUInt32LE(ctxOut.length, 52); // ctx_size_out
    }
    o.writeInt32LE(repeat, 60); // repeat
    o.writeUInt32LE(opts.flags ?? 0, 68); // flags
    o.writeUInt32LE(opts.cpu ?? 0, 72); // cpu

    const r = lib.bpf_prog_test_run_opts(this.fd, o);
    // Keep the Buffers whose addresses went into `o` alive across the call.
    void [data, dataOut, ctxIn, ctxOut];
    if (r < 0) {
      const details: string[] = [];
      if (r === -ENOSPC) details.push(`the output did not fit: packet out ${o.readUInt32LE(28)} bytes (dataOutSize ${dataOutSize}), context out ${o.readUInt32LE(52)} bytes (ctxOutSize ${ctxOutSize})`);
      if (data.length < 14 && (this.typeName === 'XDP' || this.typeName === 'SCHED_CLS' || this.typeName === 'SCHED_ACT')) details.push('packet data must hold at least an Ethernet header (14 bytes)');
      throw new BpfError({ errno: -r, op: `test run of program '${this.name}' (${this.typeName}, ${data.length} bytes in)`, details });
    }
    const outLen = o.readUInt32LE(28);
    const result: TestRunResult = {
      retval: o.readUInt32LE(56) | 0,
      data: dataOut.subarray(0, outLen),
      durationNs: o.readUInt32LE(64),
    };
    if (ctxOut) result.ctxOut = ctxOut.subarray(0, o.readUInt32LE(52));
    return result;
  }
}
