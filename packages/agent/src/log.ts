import type { LogLevel } from './config.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

/** Structured logs: one JSON object per line (time, level, message, fields). */
export class Logger {
  constructor(
    private level: LogLevel = 'info',
    private readonly write: (line: string) => void = (l) => process.stderr.write(l),
    private readonly base: LogFields = {},
  ) {}

  setLevel(level: LogLevel): void {
    this.level = level;
  }

  child(fields: LogFields): Logger {
    return new Logger(this.level, this.write, { ...this.base, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    // the record's own keys come first and cannot be overwritten by a field of the same name
    const rec: Record<string, unknown> = { t: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries({ ...this.base, ...fields })) rec[k in rec && (k === 't' || k === 'level' || k === 'msg') ? `field.${k}` : k] = v;
    this.write(`${JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  }
  debug(msg: string, f?: LogFields): void {
    this.log('debug', msg, f);
  }
  info(msg: string, f?: LogFields): void {
    this.log('info', msg, f);
  }
  warn(msg: string, f?: LogFields): void {
    this.log('warn', msg, f);
  }
  error(msg: string, f?: LogFields): void {
    this.log('error', msg, f);
  }
}
