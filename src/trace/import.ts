import { check, UserError } from '../util/errors.js';
import { DEEPSEEK_V3_ROUTING, type RoutingFacts, type Trace, type TraceManifest } from './trace.js';

/** What an importer knows besides the loads; the model facts default from the expert count. */
export interface ImportOptions {
  name: string;
  /** For messages: the file the JSON came from. */
  label: string;
  routing?: Partial<RoutingFacts>;
  source?: string;
  attribution?: string;
}

export type ForeignFormat = 'sglang-snapshot' | 'expert-load-json' | 'plain-array';

/** Which foreign shape a parsed JSON document has, or undefined when none fits. */
export function detectFormat(doc: unknown): ForeignFormat | undefined {
  if (Array.isArray(doc)) return 'plain-array';
  if (doc !== null && typeof doc === 'object') {
    if ('logical_count' in doc) return 'sglang-snapshot';
    if ('load_history' in doc) return 'expert-load-json';
  }
  return undefined;
}

/**
 * Converts a parsed foreign JSON document into a trace:
 * - SGLang snapshot `{"logical_count": [layers][experts]}`: one snapshot; leading all-zero (dense) layers dropped;
 * - OpenEvolve/ADRS expert-load.json `{"load_history": [{"logical_expert_load": [layers][experts]}, ...]}`: one step each;
 * - plain array `[layers][experts]` (one step, zero rows kept) or `[steps][layers][experts]`.
 */
export function importDocument(doc: unknown, opts: ImportOptions): Trace {
  const format = detectFormat(doc);
  const f = opts.label;
  switch (format) {
    case 'sglang-snapshot': {
      const matrix = asMatrix((doc as { logical_count: unknown }).logical_count, `${f}: logical_count`);
      let firstMoe = 0;
      while (firstMoe < matrix.length && matrix[firstMoe]!.every((v) => v === 0)) firstMoe++;
      check(
        firstMoe < matrix.length,
        `${f}: every layer of logical_count is zero; there are no loads to import`,
      );
      return build([matrix.slice(firstMoe)], 'snapshot', opts, {
        source: `SGLang expert distribution snapshot ${f} (leading ${firstMoe} all-zero dense layers dropped)`,
      });
    }
    case 'expert-load-json': {
      const history = (doc as { load_history: unknown }).load_history;
      check(
        Array.isArray(history) && history.length > 0,
        `${f}: load_history must be a non-empty array of {"logical_expert_load": [[...]]}`,
      );
      const steps = history.map((entry, i) => {
        check(
          entry !== null && typeof entry === 'object' && 'logical_expert_load' in entry,
          `${f}: load_history[${i}] has no logical_expert_load`,
        );
        return asMatrix(
          (entry as { logical_expert_load: unknown }).logical_expert_load,
          `${f}: load_history[${i}].logical_expert_load`,
        );
      });
      return build(steps, 'step', opts, { source: `OpenEvolve/ADRS expert-load.json ${f}` });
    }
    case 'plain-array': {
      const arr = doc as unknown[];
      check(arr.length > 0, `${f}: the array is empty; expected loads [layers][experts]`);
      const threeD = Array.isArray(arr[0]) && Array.isArray((arr[0] as unknown[])[0]);
      const steps = threeD ? arr.map((s, i) => asMatrix(s, `${f}: step ${i}`)) : [asMatrix(arr, f)];
      return build(steps, 'step', opts, { source: `plain JSON load array ${f}` });
    }
    default:
      throw new UserError(
        `${f}: unknown JSON shape; expected an adrs-trace manifest, an SGLang snapshot {"logical_count": ...}, ` +
          `an expert-load.json {"load_history": ...} or an array [layers][experts] of loads`,
      );
  }
}

/** Checks a [rows][cols] array of finite non-negative numbers, naming the first problem. */
function asMatrix(value: unknown, what: string): number[][] {
  check(
    Array.isArray(value) && value.length > 0,
    `${what}: expected a non-empty array [layers][experts] of loads`,
  );
  const rows = value as unknown[];
  const width = Array.isArray(rows[0]) ? (rows[0] as unknown[]).length : -1;
  check(width > 0, `${what}: row 0 is not a non-empty array of loads (expected [layers][experts])`);
  rows.forEach((row, r) => {
    check(Array.isArray(row), `${what}: row ${r} is not an array of loads`);
    check(row.length === width, `${what}: row ${r} has ${row.length} loads, expected ${width}`);
    row.forEach((v, e) => {
      check(typeof v === 'number', `${what}: row ${r}, expert ${e} is ${JSON.stringify(v)}, not a number`);
      check(
        Number.isFinite(v) && v >= 0,
        `${what}: row ${r}, expert ${e} is ${v}; loads must be finite and non-negative`,
      );
    });
  });
  return rows as number[][];
}

/** Routing facts: DeepSeek-V3/R1's for 256 experts, neutral ones (one group, no group limit) otherwise. */
export function defaultRouting(experts: number): RoutingFacts {
  if (experts === DEEPSEEK_V3_ROUTING.experts) {
    const { model, groups, topK, topKGroups } = DEEPSEEK_V3_ROUTING;
    return { model, groups, topK, topKGroups };
  }
  return { model: 'unknown', groups: 1, topK: Math.min(8, experts), topKGroups: 1 };
}

function build(
  steps: number[][][],
  granularity: TraceManifest['granularity'],
  opts: ImportOptions,
  defaults: { source: string },
): Trace {
  const layers = steps[0]!.length;
  const experts = steps[0]![0]!.length;
  steps.forEach((s, i) => {
    check(s.length === layers, `${opts.label}: step ${i} has ${s.length} layers, expected ${layers}`);
    check(
      s[0]!.length === experts,
      `${opts.label}: step ${i} has ${s[0]!.length} experts per layer, expected ${experts}`,
    );
  });
  const loads = new Float32Array(steps.length * layers * experts);
  let i = 0;
  for (const s of steps) for (const row of s) for (const v of row) loads[i++] = v;
  const manifest: TraceManifest = {
    format: 'adrs-trace/1',
    name: opts.name,
    ...defaultRouting(experts),
    ...opts.routing,
    layers,
    experts,
    steps: steps.length,
    granularity,
    data: `${opts.name}.bin`,
    dtype: 'float32',
    source: opts.source ?? defaults.source,
    attribution: opts.attribution ?? '',
  };
  return { manifest, loads };
}
