/**
 * Multi-pattern search over byte streams (Aho–Corasick), compiled to a
 * deterministic automaton: one table lookup per input byte, whatever the
 * number of patterns, so scanning is linear in the stream (plus the number
 * of matches reported). A {@link StreamScanner} keeps the automaton's state
 * between chunks, so a pattern split across segments is found like one in a
 * single buffer.
 */

/** One occurrence: pattern `pattern` ends just before stream offset `end`. */
export interface Match {
  /** Index of the pattern in the list given to the constructor. */
  readonly pattern: number;
  /** Stream offset one past the pattern's last byte. */
  readonly end: number;
}

export interface AhoCorasickOptions {
  /** Match ASCII letters regardless of case (default false). */
  readonly caseInsensitive?: boolean;
}

export class PatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatternError';
  }
}

const FOLD = new Uint8Array(256);
for (let b = 0; b < 256; b++) FOLD[b] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;

/**
 * The compiled automaton. The input alphabet is reduced to the byte
 * classes the patterns use (every other byte is class 0), so the
 * transition table has states × classes entries rather than states × 256.
 */
export class AhoCorasick {
  readonly patterns: readonly Uint8Array[];
  readonly caseInsensitive: boolean;
  /** Number of states (the trie's nodes). */
  readonly states: number;
  /** Number of byte classes (distinct pattern bytes, plus one for all others). */
  readonly classes: number;
  /** Length of the longest pattern. */
  readonly maxLength: number;
  /** @internal byte -> class */
  readonly classOf: Uint16Array;
  /**
   * @internal states × classes -> the next state's row offset (state × classes),
   * complemented when the next state has matches to report
   */
  readonly delta: Int32Array;
  /** @internal patterns ending exactly at each state: ids outIds[outStart[s] .. outStart[s+1]) */
  readonly outStart: Int32Array;
  /** @internal */
  readonly outIds: Int32Array;
  /** @internal nearest state on the failure chain (excluding s) that has outputs, or -1 */
  readonly dictLink: Int32Array;

  constructor(patterns: readonly (Uint8Array | string)[], o: AhoCorasickOptions = {}) {
    this.caseInsensitive = o.caseInsensitive ?? false;
    const fold = this.caseInsensitive ? FOLD : undefined;
    const pats = patterns.map((p, i) => {
      const b = typeof p === 'string' ? new TextEncoder().encode(p) : p;
      if (b.length === 0) throw new PatternError(`pattern ${i} is empty`);
      return b;
    });
    this.patterns = pats;
    this.maxLength = pats.reduce((m, p) => Math.max(m, p.length), 0);

    // byte classes
    const classOf = new Uint16Array(256);
    let classes = 1;
    const seen = new Int16Array(256).fill(-1);
    for (const p of pats) {
      for (const raw of p) {
        const b = fold ? fold[raw]! : raw;
        if (seen[b] === -1) seen[b] = classes++;
      }
    }
    for (let b = 0; b < 256; b++) {
      const f = fold ? fold[b]! : b;
      classOf[b] = seen[f]! >= 0 ? seen[f]! : 0;
    }
    this.classOf = classOf;
    this.classes = classes;

    // the trie, in a dense table (-1: no edge yet)
    const bound = 1 + pats.reduce((n, p) => n + p.length, 0);
    let delta = new Int32Array(bound * classes).fill(-1);
    const ends: number[][] = [[]];
    let states = 1;
    pats.forEach((p, id) => {
      let s = 0;
      for (const b of p) {
        const c = classOf[b]!;
        let t = delta[s * classes + c]!;
        if (t < 0) {
          t = states++;
          ends.push([]);
          delta[s * classes + c] = t;
        }
        s = t;
      }
      ends[s]!.push(id);
    });
    if (states < bound) delta = delta.slice(0, states * classes);
    this.states = states;

    // failure links, breadth first, turning the trie into a complete automaton
    const fail = new Int32Array(states);
    const dictLink = new Int32Array(states).fill(-1);
    const queue = new Int32Array(states);
    let head = 0;
    let tail = 0;
    for (let c = 0; c < classes; c++) {
      const t = delta[c]!;
      if (t < 0) delta[c] = 0;
      else {
        fail[t] = 0;
        queue[tail++] = t;
      }
    }
    while (head < tail) {
      const s = queue[head++]!;
      const f = fail[s]!;
      dictLink[s] = ends[f]!.length > 0 ? f : dictLink[f]!;
      for (let c = 0; c < classes; c++) {
        const i = s * classes + c;
        const t = delta[i]!;
        const viaFail = delta[f * classes + c]!;
        if (t < 0) delta[i] = viaFail;
        else {
          fail[t] = viaFail;
          queue[tail++] = t;
        }
      }
    }
    this.dictLink = dictLink;
    const outStart = new Int32Array(states + 1);
    for (let s = 0; s < states; s++) outStart[s + 1] = outStart[s]! + ends[s]!.length;
    const outIds = new Int32Array(outStart[states]!);
    for (let s = 0; s < states; s++) outIds.set(ends[s]!, outStart[s]!);
    this.outStart = outStart;
    this.outIds = outIds;
    // the scanning table: each entry is the next state's row offset, complemented (negative) when
    // that state reports a match, so that the common step is one load and one comparison
    const reports = (t: number) => ends[t]!.length > 0 || dictLink[t]! >= 0;
    for (let i = 0; i < delta.length; i++) {
      const t = delta[i]!;
      delta[i] = reports(t) ? ~(t * classes) : t * classes;
    }
    this.delta = delta;
  }

  /** Every occurrence of every pattern in one buffer, in order of end offset (then pattern length, longest first). */
  findAll(data: Uint8Array): Match[] {
    const out: Match[] = [];
    new StreamScanner(this).feed(data, (m) => void out.push(m));
    return out;
  }

  /** Bytes the transition table takes. */
  get tableBytes(): number {
    return this.delta.byteLength;
  }
}

/**
 * A scan position in one byte stream. `feed` the stream's chunks in order;
 * matches are reported with their offset in the whole stream, whether or
 * not they straddle chunks.
 */
export class StreamScanner {
  /** The current state's row in the table (state × classes). */
  private row = 0;
  /** Bytes fed so far (the stream offset of the next byte). */
  offset = 0;

  constructor(readonly automaton: AhoCorasick) {}

  /**
   * Scans `chunk`. `onMatch` is called for each occurrence; returning `true`
   * stops the scan right after that byte (the rest of the chunk is not
   * consumed). Returns the number of bytes consumed.
   */
  feed(chunk: Uint8Array, onMatch: (m: Match) => boolean | void = () => undefined): number {
    const { delta, classOf, classes, outStart, outIds, dictLink } = this.automaton;
    let row = this.row;
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const x = delta[row + classOf[chunk[i]!]!]!;
      if (x >= 0) {
        row = x;
        continue;
      }
      row = ~x;
      let stop = false;
      for (let o = row / classes; o >= 0; o = dictLink[o]!) {
        for (let k = outStart[o]!; k < outStart[o + 1]!; k++) {
          if (onMatch({ pattern: outIds[k]!, end: this.offset + i + 1 }) === true) stop = true;
        }
      }
      if (stop) {
        this.row = row;
        this.offset += i + 1;
        return i + 1;
      }
    }
    this.row = row;
    this.offset += n;
    return n;
  }

  /**
   * Forgets the partial match in progress: the next byte is not a
   * continuation of the previous ones (after a gap in the stream).
   * `skipped` bytes are added to the offset.
   */
  reset(skipped = 0): void {
    this.row = 0;
    this.offset += skipped;
  }
}

/** Every occurrence by brute force: the reference the automaton is tested against. */
export function naiveFindAll(patterns: readonly Uint8Array[], data: Uint8Array, caseInsensitive = false): Match[] {
  const f = (b: number) => (caseInsensitive ? FOLD[b]! : b);
  const out: Match[] = [];
  for (let end = 1; end <= data.length; end++) {
    patterns.forEach((p, id) => {
      if (p.length > end) return;
      for (let k = 0; k < p.length; k++) if (f(p[k]!) !== f(data[end - p.length + k]!)) return;
      out.push({ pattern: id, end });
    });
  }
  return out;
}
