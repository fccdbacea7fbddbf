/**
 * Structured logs: one JSON object a line, with the time, the level and
 * the message first, then the record's fields.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export type LogFields = Readonly<Record<string, unknown>>;

export class Log {
  constructor(
    private readonly write: (line: string) => void = (l) => void process.stdout.write(l),
    readonly level: Level = 'info',
  ) {}

  log(level: Level, msg: string, fields: LogFields = {}): void {
    if (RANK[level] < RANK[this.level]) return;
    // the record's own fields cannot overwrite t, level and msg
    const { t: _t, level: _l, msg: _m, ...rest } = fields;
    this.write(`${JSON.stringify({ t: new Date().toISOString(), level, msg, ...rest })}\n`);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
}
