import { readFileSync } from 'node:fs';

/**
 * Reading a JSON configuration with errors that name the field and the
 * problem, all of them at once. A middlebox's configuration, like the
 * agent's own, is read with it:
 *
 * ```ts
 * const r = ConfigReader.read(JSON.parse(text), 'ips.json');
 * r.known(['port', 'block']);
 * const port = r.int('port', 8080, 1, 65535);
 * const block = r.section('block');
 * block.known(['action']);
 * const action = block.oneOf('action', ['drop', 'reset'], 'drop');
 * return r.done({ port, action }); // or a ConfigError listing every problem
 * ```
 *
 * A ConfigReader is a place in the parsed document: a `path` (the source's
 * name, then `.field` and `[index]`) and the `value` there. Each reader of
 * a field returns the field's value, or the default when the field is
 * absent or wrong; a wrong one is recorded as
 * `ips.json.block.action: must be "drop" or "reset", got "kill"`. The
 * readers of one document share its problems, and `done()` throws them,
 * in the order they were found, as one ConfigError.
 */

/** Every problem of a configuration, each `path: what is wrong`. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1 ? `invalid configuration: ${problems[0]}` : `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Fields any object of a configuration may carry: accepted, ignored, and not offered as known fields. */
export const IGNORED_FIELDS: readonly string[] = ['$schema', 'comment'];

type Obj = Readonly<Record<string, unknown>>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The default of a field that must be given: its reader records an absent
 * field as a problem (`is required and must be ...`) and returns undefined.
 */
export const REQUIRED: unique symbol = Symbol('required');

/** A value, as a problem shows it: as JSON, but an object only by its kind (it may be large, or hold a secret). */
export function shown(v: unknown): string {
  if (isObject(v)) return 'an object';
  return JSON.stringify(v) ?? 'undefined';
}

export class ConfigReader {
  private constructor(
    /** Where this is: the source's name, then `.field` and `[index]`. */
    readonly path: string,
    /** The value here, as parsed; undefined when absent. */
    readonly value: unknown,
    private readonly found: string[],
  ) {}

  /**
   * The reader of a parsed document named `source` (a file name: problems
   * start with it). Throws a ConfigError at once when the document is not
   * a JSON object.
   */
  static read(raw: unknown, source = 'config'): ConfigReader {
    if (!isObject(raw)) throw new ConfigError([`${source}: must be a JSON object`]);
    return new ConfigReader(source, raw, []);
  }

  /** The problems found so far in the whole document. */
  get problems(): readonly string[] {
    return this.found;
  }

  /** No problem found so far in the whole document. */
  get ok(): boolean {
    return this.found.length === 0;
  }

  /**
   * Records a problem with the value here: `path: message`. Returns
   * undefined, so that a reader of a value can `return at.problem(...)`.
   */
  problem(message: string): undefined {
    this.found.push(`${this.path}: ${message}`);
    return undefined;
  }

  /**
   * Returns `result` when the document has no problem; throws a
   * ConfigError with every problem otherwise.
   */
  done<T>(result: T): T {
    if (this.found.length > 0) throw new ConfigError([...this.found]);
    return result;
  }

  /** The value here is a JSON object. */
  get isObject(): boolean {
    return isObject(this.value);
  }

  private get fields(): Obj {
    return isObject(this.value) ? this.value : {};
  }

  /** The place of a field of this object, or of an element of this list. */
  at(key: string | number): ConfigReader {
    if (typeof key === 'number') return new ConfigReader(`${this.path}[${key}]`, Array.isArray(this.value) ? (this.value as unknown[])[key] : undefined, this.found);
    return new ConfigReader(`${this.path}.${key}`, Object.hasOwn(this.fields, key) ? this.fields[key] : undefined, this.found);
  }

  /** The field is present (not undefined). */
  has(name: string): boolean {
    return this.at(name).value !== undefined;
  }

  /** The fields of this object, each as a place. */
  entries(): [string, ConfigReader][] {
    return Object.keys(this.fields).map((k) => [k, this.at(k)]);
  }

  /** Records every field that is not in `names` (nor in IGNORED_FIELDS) as unknown, naming the known ones. */
  known(names: readonly string[]): void {
    for (const k of Object.keys(this.fields)) if (!names.includes(k) && !IGNORED_FIELDS.includes(k)) this.at(k).problem(`unknown field (known: ${names.join(', ')})`);
  }

  /**
   * A field holding an object: its place. An absent field reads as an
   * empty object, and so does a field that is not an object (a problem),
   * so that the section's fields get their defaults.
   */
  section(name: string): ConfigReader {
    const s = this.at(name);
    if (s.value === undefined || s.isObject) return s;
    s.problem(`must be an object, got ${shown(s.value)}`);
    return new ConfigReader(s.path, undefined, this.found);
  }

  /** A field holding an integer in min..max. */
  int<D extends number | undefined>(name: string, dflt: D | typeof REQUIRED, min: number, max: number): number | D {
    return this.scalar(name, dflt, (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max, `an integer in ${min}..${max}`);
  }

  /** A field holding a finite number in min..max. */
  number<D extends number | undefined>(name: string, dflt: D | typeof REQUIRED, min: number, max: number): number | D {
    return this.scalar(name, dflt, (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max, `a number in ${min}..${max}`);
  }

  /**
   * A field holding a non-empty string; with `pattern`, one that matches
   * it, described by `what` in the problem ("must be WHAT, got ...").
   */
  string<D extends string | undefined>(name: string, dflt: D | typeof REQUIRED, pattern?: RegExp, what = 'a non-empty string'): string | D {
    return this.scalar(name, dflt, (v): v is string => typeof v === 'string' && v !== '' && (!pattern || pattern.test(v)), what);
  }

  /** A field holding true or false. */
  boolean<D extends boolean | undefined>(name: string, dflt: D | typeof REQUIRED): boolean | D {
    return this.scalar(name, dflt, (v): v is boolean => typeof v === 'boolean', 'true or false');
  }

  /** A field holding one of `values`. */
  oneOf<const T extends string, D extends T | undefined>(name: string, values: readonly T[], dflt: D | typeof REQUIRED): T | D {
    const listed = values.map((x) => JSON.stringify(x));
    const what = listed.length === 2 ? `${listed[0]} or ${listed[1]}` : `one of ${listed.join(', ')}`;
    return this.scalar(name, dflt, (v): v is T => typeof v === 'string' && (values as readonly string[]).includes(v), what);
  }

  /** A field holding a list of non-empty strings; an absent one is empty. */
  strings(name: string): string[] {
    const f = this.at(name);
    if (f.value === undefined) return [];
    if (!Array.isArray(f.value) || !f.value.every((s) => typeof s === 'string' && s !== '')) {
      f.problem('must be a list of non-empty strings');
      return [];
    }
    return [...(f.value as string[])];
  }

  /**
   * A field holding a list (described by `what`: "must be WHAT"), of at
   * least `min` elements: `each` reads every element at its place
   * (`name[i]`) and returns its value, or undefined to leave it out (after
   * recording a problem, say). An absent field is an empty list.
   */
  list<T>(name: string, what: string, each: (element: ConfigReader, index: number) => T | undefined, min = 0): T[] {
    const f = this.at(name);
    if (f.value === undefined) return [];
    if (!Array.isArray(f.value) || f.value.length < min) {
      f.problem(`must be ${what}, got ${shown(f.value)}`);
      return [];
    }
    const out: T[] = [];
    for (let i = 0; i < f.value.length; i++) {
      const v = each(f.at(i), i);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  /**
   * The value here, a string (else "must be WHAT"), converted by `convert`;
   * what `convert` throws is the problem. Undefined when absent or wrong.
   */
  parse<T>(what: string, convert: (text: string) => T): T | undefined {
    if (this.value === undefined) return undefined;
    if (typeof this.value !== 'string') {
      this.problem(`must be ${what}, got ${shown(this.value)}`);
      return undefined;
    }
    const text = this.value;
    return this.attempt(() => convert(text));
  }

  /** Runs `check`; the message of an Error it throws is a problem here, and the result is then undefined. */
  attempt<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (e) {
      if (!(e instanceof Error)) throw e;
      this.problem(e.message);
      return undefined;
    }
  }

  /** The readers of single values: `dflt` when absent (a problem if REQUIRED), `dflt` again when wrong (undefined if REQUIRED). */
  private scalar<T, D>(name: string, dflt: D | typeof REQUIRED, ok: (v: unknown) => v is T, what: string): T | D {
    const f = this.at(name);
    const fallback = (dflt === REQUIRED ? undefined : dflt) as D;
    if (f.value === undefined) {
      if (dflt === REQUIRED) f.problem(`is required and must be ${what}`);
      return fallback;
    }
    if (!ok(f.value)) {
      f.problem(`must be ${what}, got ${shown(f.value)}`);
      return fallback;
    }
    return f.value;
  }
}

/**
 * Reads a JSON configuration file and hands it to `read` (a function of
 * the parsed document and the name problems start with, the file's path).
 * A file that cannot be read or is not JSON is a ConfigError.
 */
export function readConfigFile<T>(path: string, read: (raw: unknown, source: string) => T): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${path}: not valid JSON: ${(e as Error).message}`]);
  }
  return read(raw, path);
}
