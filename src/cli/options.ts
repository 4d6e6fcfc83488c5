import type { Argv } from 'yargs';
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
