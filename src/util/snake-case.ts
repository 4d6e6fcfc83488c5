/**
 * The one convention of adrs's machine output: every key is snake_case. Library types that speak
 * camelCase (RunStats, KernelProfile, a trace's manifest) are converted here, at the command line's
 * edge (printJson), and for bench's report files; maps keyed by data (a candidate's files, an
 * evaluator's metrics and artifacts, WebGPU's limits by their names in the spec) keep their keys.
 */

/**
 * Properties whose value is a map keyed by data, not by field names: a candidate's files, an
 * evaluator's metrics and artifacts (any names a custom evaluator module chooses), WebGPU's limits,
 * and the run report's tallies by outcome, refusal and failure class (the latter an artifact name).
 * Their keys are left alone; their values are still converted.
 */
export const DATA_KEYED: ReadonlySet<string> = new Set([
  'files',
  'metrics',
  'artifacts',
  'limits',
  'outcomes',
  'refused',
  'refused_answers',
  'invalid_by_class',
]);

/**
 * 'rebalanceInterval' → 'rebalance_interval', 'top8Share' → 'top8_share'. Hyphens stay: a key such
 * as 'no-match' is a value of an enum used as a map key (the run report's refusal classes).
 */
export function snakeCase(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** A copy of a JSON value with every field name in snake_case (maps keyed by data excepted). */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  const toJson = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJson === 'function') return snakeKeys(toJson.call(value));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[snakeCase(k)] = DATA_KEYED.has(k) ? dataKeyed(v) : snakeKeys(v);
  }
  return out;
}

/** A map keyed by data: its keys as they are, the field names of its values converted. */
function dataKeyed(map: unknown): unknown {
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return snakeKeys(map);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(map)) if (v !== undefined) out[k] = snakeKeys(v);
  return out;
}
