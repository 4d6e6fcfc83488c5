import type { Argv } from 'yargs';
import { UserError } from '../util/errors.js';
import { snakeKeys } from '../util/snake-case.js';
import { cliIo } from './io.js';

/** `--adapter`, shared by every command that opens a GPU device. */
export function withAdapter<T>(y: Argv<T>) {
  return y.option('adapter', {
    type: 'string',
    describe:
      'GPU adapter to use (substring of its name, see `adrs devices`); default $ADRS_ADAPTER, then a hardware GPU, then lavapipe',
  });
}

/** `--json`, shared by every command. */
export function withJson<T>(y: Argv<T>) {
  return y.option('json', {
    type: 'boolean',
    default: false,
    describe: 'Print one JSON object for machines',
  });
}

/**
 * Writes a JSON document to stdout, its keys in snake_case (src/util/snake-case.ts): indented, or on one
 * line for large arrays (placements).
 */
export function printJson(value: unknown, options: { compact?: boolean } = {}): void {
  const doc = snakeKeys(value);
  cliIo().stdout(`${options.compact ? JSON.stringify(doc) : JSON.stringify(doc, null, 2)}\n`);
}

/** The port of `--serve` (report, evolve): none when absent; any free port (printed) for a bare --serve or 0. */
export function servePort(value: number | boolean | undefined): number | null {
  if (value === undefined || value === false) return null;
  if (value === true) return 0;
  if (!Number.isInteger(value) || value < 0 || value > 65535)
    throw new UserError(`--serve takes a port between 0 and 65535, got ${value}`);
  return value;
}
