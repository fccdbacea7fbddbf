/**
 * A middlebox program's entry point on the command-line helper, for
 * command-line.test.ts: it prints its arguments and configuration as JSON.
 */
import { fail, readArgs, readConfigOrFail, usageError } from '../dist/command-line.js';
import { ConfigReader } from '../dist/config-reader.js';

const args = readArgs('box', 'usage: box [--config FILE] [--n N] [--tag T...] [--fail]', {
  config: { type: 'string' },
  n: { type: 'string' },
  tag: { type: 'string', multiple: true },
  fail: { type: 'boolean' },
});
if (args.n !== undefined && !/^\d+$/.test(args.n)) usageError(`--n: not a number: ${args.n}`);
if (args.fail) fail('it failed');
const config = args.config
  ? readConfigOrFail(args.config, (raw, source) => {
      const r = ConfigReader.read(raw, source);
      return r.done({ port: r.int('port', 80, 1, 65535) });
    })
  : undefined;
// typed as parseArgs types them: a string, a list, a boolean
const n: string | undefined = args.n;
const tags: string[] | undefined = args.tag;
process.stdout.write(`${JSON.stringify({ n, tags, fail: args.fail ?? false, config })}\n`);
