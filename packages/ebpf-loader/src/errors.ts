import { constants } from 'node:os';

/** errno values that Node's `os.constants.errno` does not list (kernel-internal codes libbpf passes through). */
const EXTRA_ERRNO: Readonly<Record<number, [string, string]>> = {
  512: ['ERESTARTSYS', 'Interrupted system call, should restart'],
  524: ['ENOTSUPP', 'Operation not supported (kernel-internal ENOTSUPP)'],
};

const errnoNames: Map<number, string> = (() => {
  const m = new Map<number, string>();
  for (const [name, value] of Object.entries(constants.errno)) {
    // EWOULDBLOCK/EAGAIN and EDEADLOCK/EDEADLK share numbers: keep the first (the common) name.
    if (!m.has(value)) m.set(value, name);
  }
  for (const [value, [name]] of Object.entries(EXTRA_ERRNO)) m.set(Number(value), name);
  return m;
})();

/** The symbolic name (`'ENOENT'`) of a positive errno value, or `'E<number>'` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** Describes an errno in words; filled in by the native layer with strerror(3) (kept here to avoid an import cycle). */
let describe: (errno: number) => string = (e) => errnoName(e);

/** @internal Installs the strerror-based describer. */
export function setErrnoDescriber(fn: (errno: number) => string): void {
  describe = fn;
}

/** The human-readable text for an errno (`'No such file or directory'`). */
export function errnoMessage(errno: number): string {
  const extra = EXTRA_ERRNO[Math.abs(errno)];
  if (extra) return extra[1];
  return describe(Math.abs(errno));
}

/** Options for constructing a {@link BpfError}. */
export interface BpfErrorOptions {
  /** Positive errno (a negative value is normalised). */
  errno: number;
  /** What failed, in words a person understands, e.g. `attach XDP program 'xdp_count' to eth0 (native mode)`. */
  op: string;
  /** Full verifier log, when the kernel rejected a program. */
  verifierLog?: string;
  /** Extra lines appended to the message (hints, libbpf diagnostics). */
  details?: string[];
  /** Replaces the errno's strerror text in the message when that text would mislead (e.g. `no such program`). */
  reason?: string;
  /** Underlying cause, if any. */
  cause?: unknown;
}

/** How many trailing verifier-log lines the error message carries (the property has all of them). */
export const VERIFIER_LOG_MESSAGE_LINES = 100;

/**
 * An error from the kernel or libbpf. `errno` is the positive error number, `code` its name (`'ENOENT'`),
 * `op` what was being done. When the verifier rejected a program, `verifierLog` holds the whole log and the
 * message ends with its last {@link VERIFIER_LOG_MESSAGE_LINES} lines.
 */
export class BpfError extends Error {
  /** Positive errno value. */
  readonly errno: number;
  /** Symbolic errno name, e.g. `'EACCES'`. */
  readonly code: string;
  /** The operation that failed. */
  readonly op: string;
  /** The complete verifier log of a rejected program. */
  readonly verifierLog?: string;

  constructor(opts: BpfErrorOptions) {
    const errno = Math.abs(opts.errno);
    const code = errnoName(errno);
    let message = opts.reason === undefined
      ? `${opts.op} failed: ${code} (${errnoMessage(errno)})`
      : `${opts.op} failed: ${opts.reason} (${code})`;
    for (const d of opts.details ?? []) if (d) message += `\n${d}`;
    if (opts.verifierLog !== undefined) {
      const lines = opts.verifierLog.replace(/\n+$/, '').split('\n');
      const shown = lines.slice(-VERIFIER_LOG_MESSAGE_LINES);
      const head = lines.length > shown.length
        ? `verifier log (last ${shown.length} of ${lines.length} lines; full log in .verifierLog):`
        : 'verifier log:';
      message += `\n${head}\n${shown.join('\n')}`;
    }
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BpfError';
    this.errno = errno;
    this.code = code;
    this.op = opts.op;
    if (opts.verifierLog !== undefined) this.verifierLog = opts.verifierLog;
  }
}
