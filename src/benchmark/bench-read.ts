import { UserError } from '../util/errors.js';
import { snakeKeys } from '../util/snake-case.js';
import type { BenchReport } from './bench-types.js';

/**
 * A bench report read from JSON: the snake_case of today's `adrs bench --out`, or a file written
 * before that convention (camelCase keys, e.g. bench/results/lavapipe-bench.json), converted.
 */
export function readBenchReport(raw: unknown, where = 'bench report'): BenchReport {
  const ok = (x: unknown): x is Record<string, unknown> =>
    typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!ok(raw) || !Array.isArray(raw.rows) || !ok(raw.config) || typeof raw.device !== 'string')
    throw new UserError(`${where} is not an adrs bench report (no device, config or rows)`);
  // Every key of a bench report is a field name (none is keyed by data), so the conversion is total.
  return snakeKeys(raw) as BenchReport;
}
