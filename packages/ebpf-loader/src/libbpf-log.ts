/**
 * Captures libbpf's own diagnostics (libbpf_set_print) so errors can quote them.
 *
 * libbpf formats messages with a printf format and a va_list; the callback hands both to vasprintf(3),
 * which works where a va_list is passed as a pointer-sized argument (x86-64, arm64). libbpf calls the
 * print function synchronously on the thread that called into libbpf, which is always the JS thread here.
 */
import { lib, lastErrno, setErrno, PrintFn, registerCallback, cString, freeC, type Ptr } from './native.js';

/** libbpf message levels. */
export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
const LEVELS: readonly LibbpfLogLevel[] = ['warn', 'info', 'debug'];

/** A user hook receiving every libbpf message (including debug ones). */
export type LibbpfLogger = (level: LibbpfLogLevel, message: string) => void;

let userLogger: LibbpfLogger | null = process.env['EBPF_TS_LIBBPF_LOG'] ? (lvl, msg) => process.stderr.write(`[${lvl}] ${msg}`) : null;
/** Collectors of the operations in progress (nested calls each see the messages). */
const collectors: string[][] = [];

function onPrint(level: number, fmt: string, ap: Ptr): number {
  const lvl = LEVELS[level] ?? 'debug';
  if (!userLogger && (lvl === 'debug' || collectors.length === 0)) return 0;
  const saved = lastErrno();
  const out: [Ptr | null] = [null];
  const n = lib.vasprintf(out, fmt, ap);
  const p = out[0];
  if (n < 0 || p === null) return 0;
  const text = cString(p, n + 1);
  freeC(p);
  setErrno(saved);
  if (userLogger) {
    try {
      userLogger(lvl, text);
    } catch {
      // A logger must not break libbpf's control flow.
    }
  }
  if (lvl !== 'debug') for (const c of collectors) c.push(text.replace(/\n$/, ''));
  return 0;
}

let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  lib.libbpf_set_print(registerCallback(onPrint as (...a: never[]) => number, PrintFn));
}

/**
 * Routes every libbpf message (warn, info and debug) to `logger`, or stops doing so with `null`.
 * Warnings and info messages are captured for error messages either way. Setting the environment
 * variable `EBPF_TS_LIBBPF_LOG=1` prints them all to stderr.
 */
export function setLibbpfLogger(logger: LibbpfLogger | null): void {
  install();
  userLogger = logger;
}

/**
 * Runs `fn` while collecting the libbpf warn/info lines printed meanwhile into the array it receives
 * (read it after the native call, e.g. to quote it in an error).
 * @internal
 */
export function withLibbpfLog<T>(fn: (log: readonly string[]) => T): T {
  install();
  const log: string[] = [];
  collectors.push(log);
  try {
    return fn(log);
  } finally {
    collectors.splice(collectors.indexOf(log), 1);
  }
}
