/**
 * Strict reading of what Spin's `pan` printed. `pan` exits 0 even when it
 * found errors, and prints `errors: 0` after a search that was cut short or
 * that checked nothing useful; so a check passes only on positive evidence:
 * a full state-space search, the lines of its mode, the named claim, no
 * truncation warning, and `errors: 0`.
 */

export type Mode = 'safety' | 'ltl' | 'nonprogress';

export interface PanReport {
  readonly errors: number | undefined;
  readonly statesStored: number | undefined;
  readonly transitions: number | undefined;
  readonly depthReached: number | undefined;
  readonly memoryMb: number | undefined;
  readonly elapsedSeconds: number | undefined;
  readonly fullSearch: boolean;
  /** Reasons the search may have been cut short. */
  readonly truncated: readonly string[];
  /** The first error pan reported (`pan:1: ...`). */
  readonly firstError: string | undefined;
  readonly lines: readonly string[];
}

const num = (text: string, re: RegExp): number | undefined => {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
};

export function parsePan(output: string): PanReport {
  const truncated: string[] = [];
  if (/Warning: Search not completed/.test(output)) truncated.push('search not completed');
  if (/max search depth too small/.test(output)) truncated.push('depth limit reached (raise -m)');
  if (/reached -DMEMLIM bound/.test(output)) truncated.push('memory limit reached (-DMEMLIM)');
  if (/pan: out of memory/.test(output)) truncated.push('out of memory');
  if (/Search interrupted|time limit/i.test(output)) truncated.push('time limit reached');
  if (/error: no claim named|no accept labels are defined|unknown claim/i.test(output)) truncated.push('claim not found');
  return {
    errors: num(output, /errors: (\d+)/),
    statesStored: num(output, /(\d+) states, stored/),
    transitions: num(output, /(\d+) transitions \(=/),
    depthReached: num(output, /depth reached (\d+)/),
    memoryMb: num(output, /([\d.]+)\s+total actual memory usage/),
    elapsedSeconds: num(output, /elapsed time ([\d.e+-]+) seconds/),
    fullSearch: /Full statespace search for:/.test(output),
    truncated,
    firstError: /^pan:1: (.*)$/m.exec(output)?.[1],
    lines: output.split('\n'),
  };
}

/** The lines that prove a mode was really checked. */
export function requiredLines(mode: Mode, claim?: string): RegExp[] {
  switch (mode) {
    case 'safety':
      return [/assertion violations\s+\+/, /invalid end states\s+\+/];
    case 'ltl':
      if (!claim) throw new Error('an ltl check names its claim');
      return [new RegExp(`never claim\\s+\\+ \\(${claim.replace(/[^A-Za-z0-9_]/g, '')}\\)`), /acceptance\s+cycles\s+\+/];
    case 'nonprogress':
      return [/non-progress cycles\s+\+/];
  }
}

export interface Verdict {
  readonly ok: boolean;
  readonly reasons: readonly string[];
}

/** A check expected to hold: everything must show an exhaustive, error-free search of that mode. */
export function judgePass(report: PanReport, mode: Mode, claim: string | undefined, exitCodes: readonly number[], pinnedStates?: number): Verdict {
  const reasons: string[] = [];
  if (exitCodes.some((c) => c !== 0)) reasons.push(`a step exited with ${exitCodes.join('/')}`);
  if (report.errors === undefined) reasons.push('no "errors:" line: pan did not finish');
  else if (report.errors !== 0) reasons.push(`${report.errors} errors: ${report.firstError ?? ''}`);
  if (!report.fullSearch) reasons.push('not a full state-space search');
  for (const t of report.truncated) reasons.push(t);
  for (const re of requiredLines(mode, claim)) {
    if (!report.lines.some((l) => re.test(l))) reasons.push(`missing the ${mode} line ${re.source}`);
  }
  if (mode === 'ltl' && report.lines.some((l) => /\(disabled by -DSAFETY\)/.test(l))) reasons.push('LTL checked under -DSAFETY');
  if (pinnedStates !== undefined && report.statesStored !== pinnedStates) {
    reasons.push(`stored ${report.statesStored} states, the manifest pins ${pinnedStates}: the model changed`);
  }
  return { ok: reasons.length === 0, reasons };
}

/** A check expected to fail (a mutant or a witness): pan must report the expected error. */
export function judgeFail(report: PanReport, expectedMessage: string): Verdict {
  const reasons: string[] = [];
  if (!report.errors) reasons.push('no error found: the check cannot fail, or the hazard is unreachable');
  else if (!report.firstError?.includes(expectedMessage)) {
    reasons.push(`found "${report.firstError}", expected "${expectedMessage}"`);
  }
  for (const t of report.truncated) if (t !== 'search not completed') reasons.push(t);
  return { ok: reasons.length === 0, reasons };
}

/** The replay of a trail must end in the error the search reported. */
export function replayShowsError(replay: string, firstError: string): boolean {
  if (/acceptance cycle/.test(firstError)) return /START OF CYCLE/.test(replay);
  if (/invalid end state/.test(firstError)) return /invalid end state|timeout/.test(replay);
  if (/non-progress cycle/.test(firstError)) return /START OF CYCLE/.test(replay);
  return /Error: assertion violated/.test(replay);
}
