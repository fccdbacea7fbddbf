import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, readConfigFile } from './config-reader.js';

/**
 * The command line of a middlebox program: what every such program does
 * with its options, its configuration file and its fatal errors, so that
 * its `main` keeps only what is its own.
 *
 * ```ts
 * const args = readArgs('ips', USAGE, { config: { type: 'string' }, socket: { type: 'string' } });
 * if (!args.config) usageError('--config is required');
 * const config = readConfigOrFail(args.config, parseConfig);
 * const dysco = await connect({ socket: args.socket }).catch((e: Error) => fail(e.message));
 * ```
 *
 * Messages go to stderr as `NAME: message`, NAME being the name given to
 * readArgs. Exit statuses: 0 after --help, 1 for a failure at run time,
 * 2 for a usage or configuration error.
 */

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
/** The values of `options`, typed as parseArgs types them. */
export type ArgValues<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'];

let program = basename(process.argv[1] ?? 'node', '.js');
let programUsage = '';

/**
 * Parses the program's options strictly (`args`: default, the process's).
 * `--help` and `-h` print `usage` on stdout and exit with status 0; an
 * unknown option, a missing value or a positional argument is a usage
 * error. `name` and `usage` are also what fail and usageError print.
 */
export function readArgs<const O extends Options>(name: string, usage: string, options: O, args: readonly string[] = process.argv.slice(2)): ArgValues<O> {
  program = name;
  programUsage = usage;
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (e) {
    usageError((e as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values as ArgValues<O>;
}

/** Ends the program: `NAME: message` on stderr, exit `status` (1: a failure at run time; 2: a usage or configuration error). */
export function fail(message: string, status = 1): never {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(status);
}

/** Ends the program on a usage error: `NAME: message`, then the usage, on stderr; exit status 2. */
export function usageError(message: string): never {
  fail(programUsage ? `${message}\n${programUsage}` : message, 2);
}

/**
 * Reads a configuration file with readConfigFile; the program ends with
 * status 2 and every problem when the file cannot be read, is not JSON, or
 * `read` throws a ConfigError.
 */
export function readConfigOrFail<T>(path: string, read: (raw: unknown, source: string) => T): T {
  try {
    return readConfigFile(path, read);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, 2);
    throw e;
  }
}
