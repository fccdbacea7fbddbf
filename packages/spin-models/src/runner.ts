import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { type Mode, judgeFail, judgePass, parsePan, replayShowsError, type PanReport } from './verdict.js';

/** One verification run, as the manifest describes it. */
export interface Check {
  readonly name: string;
  readonly model: string;
  readonly defines?: Readonly<Record<string, number | string | boolean>>;
  readonly mode: Mode;
  /** The `ltl` block checked in mode ltl. */
  readonly claim?: string;
  /** Weak fairness (`pan -f`): only where the property needs it, and say why in `why`. */
  readonly fairness?: boolean;
  readonly expect: 'pass' | 'fail';
  /** For expected failures: the text pan's first error must contain. */
  readonly message?: string;
  /** Stored states of a passing check, pinned so that a silent change of the model shows. */
  readonly states?: number;
  /** Search depth bound (pan -m); a search that reaches it fails. */
  readonly depth?: number;
  readonly why?: string;
  readonly large?: boolean;
  /** Extra verifier compile flags, e.g. -DCOLLAPSE for the large configurations. */
  readonly cflags?: readonly string[];
}

export interface Manifest {
  readonly checks: readonly Check[];
}

export interface CheckResult {
  readonly check: Check;
  readonly ok: boolean;
  readonly reasons: readonly string[];
  readonly report: PanReport | undefined;
  readonly seconds: number;
  /** The message-sequence chart of the trail, when pan found an error. */
  readonly trail: string | undefined;
  readonly log: string;
}

function defineArgs(c: Check): string[] {
  return Object.entries(c.defines ?? {}).map(([k, v]) => (v === true ? `-D${k}` : `-D${k}=${v}`));
}

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): { code: number; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) return { code: 127, out: `${cmd}: ${r.error.message}` };
  return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export function loadManifest(path: string): Manifest {
  const m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  if (!Array.isArray(m.checks)) throw new Error(`${path}: no "checks" array`);
  const names = new Set<string>();
  for (const c of m.checks) {
    if (names.has(c.name)) throw new Error(`${path}: check ${c.name} appears twice`);
    names.add(c.name);
    if (c.mode === 'ltl' && !c.claim) throw new Error(`${path}: ${c.name} is an ltl check without a claim`);
    if (c.expect === 'fail' && !c.message) throw new Error(`${path}: ${c.name} is expected to fail without the expected message`);
    if (c.fairness && !c.why) throw new Error(`${path}: ${c.name} assumes fairness without saying why`);
  }
  return m;
}

/** Runs one check in a fresh temporary directory. */
export function runCheck(c: Check, baseDir: string, timeoutMs = 15 * 60_000): CheckResult {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'dysco-spin-'));
  const log: string[] = [];
  try {
    const model = basename(c.model);
    copyFileSync(resolve(baseDir, c.model), join(dir, model));
    const defs = defineArgs(c);
    const spin = run('spin', [...defs, '-a', model], dir, timeoutMs);
    log.push(`$ spin ${[...defs, '-a', model].join(' ')}`, spin.out.trim());
    if (spin.code !== 0 || /error/i.test(spin.out)) {
      return { check: c, ok: false, reasons: [`spin -a failed (${spin.code})`], report: undefined, seconds: (Date.now() - t0) / 1000, trail: undefined, log: log.join('\n') };
    }
    // the model's defines are Spin's (its preprocessor); pan.c gets only the verifier's own
    const cflags = ['-O2', '-w', '-o', 'pan', 'pan.c', ...(c.cflags ?? [])];
    if (c.mode === 'safety') cflags.push('-DSAFETY', '-DNOCLAIM');
    if (c.mode === 'nonprogress') cflags.push('-DNP', '-DNOCLAIM');
    const gcc = run('gcc', cflags, dir, timeoutMs);
    log.push(`$ gcc ${cflags.join(' ')}`, gcc.out.trim());
    if (gcc.code !== 0) {
      return { check: c, ok: false, reasons: [`gcc failed (${gcc.code})`], report: undefined, seconds: (Date.now() - t0) / 1000, trail: undefined, log: log.join('\n') };
    }
    const panArgs = [`-m${c.depth ?? 1_000_000}`];
    if (c.mode === 'ltl') panArgs.push('-a', '-N', c.claim!);
    if (c.mode === 'nonprogress') panArgs.push('-l');
    if (c.fairness) panArgs.push('-f');
    const pan = run('./pan', panArgs, dir, timeoutMs);
    log.push(`$ ./pan ${panArgs.join(' ')}`, pan.out.trim());
    const report = parsePan(pan.out);
    const verdict = c.expect === 'pass' ? judgePass(report, c.mode, c.claim, [spin.code, gcc.code, pan.code], c.states) : judgeFail(report, c.message!);
    const reasons = [...verdict.reasons];
    let trail: string | undefined;
    if (report.errors) {
      // replay the trail with the same defines and the same claim; it must end in the same error
      // (the trail records which claim it is for: -N would name a claim file)
      const replayArgs = [...defs, '-t', '-c', model];
      const replay = run('spin', replayArgs, dir, timeoutMs);
      log.push(`$ spin ${replayArgs.join(' ')}`);
      trail = replay.out;
      if (!replayShowsError(replay.out, report.firstError ?? '')) reasons.push('the trail replay does not end in the reported error');
    }
    return { check: c, ok: reasons.length === 0, reasons, report, seconds: (Date.now() - t0) / 1000, trail, log: log.join('\n') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function spinAvailable(): boolean {
  return run('spin', ['-V'], dirname(tmpdir()), 10_000).code === 0 && run('gcc', ['--version'], tmpdir(), 10_000).code === 0;
}
