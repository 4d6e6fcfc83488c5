/**
 * Throughput of the sandboxed evaluator: evaluates one candidate folder N times through a pool of W
 * workers (all submitted at once, as the evolution loop does) and reports, per candidate, the
 * evaluation wall time, the candidate's own time within it and the rest (the harness's overhead:
 * worker hand-over, transpile, WGSL compile, IPC, validation, GPU scoring), the median time per
 * call, and the pool's candidates per minute.
 *
 * Run (the bundle goes next to the built evaluator, which finds its worker entry beside itself):
 *   npm run build && npx esbuild bench/eval-throughput.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=dist/eval/bench-eval-throughput.mjs \
 *     && XDG_RUNTIME_DIR=/tmp node dist/eval/bench-eval-throughput.mjs examples/eplb
 * Arguments: candidate folder (default examples/eplb).
 * Env: WORKERS (2), CANDIDATES (8), WINDOWS (all of the trace), REPEATS (2), HISTORY (8),
 * MOE_TOKENS (4096; 0 skips the MoE-time simulation), TRACE (synthetic-v4-windows: the public
 * series, so figures compare with runs before the drawn secret series existed; SERIES=drawn scores
 * on a series drawn like it instead, as adrs eval does by default).
 * Each evaluation runs REPEATS fresh worker processes (one per pass); each pool slot keeps REPEATS
 * workers started, so the spawns overlap the previous evaluation.
 * Prints one human-readable block and one JSON line.
 */
import { EvaluatorPool } from '../src/eval/index.js';
import { drawSeries, secretSeriesSeed } from '../src/eval/series.js';
import type { EvalResult } from '../src/eval/types.js';
import { loadTrace } from '../src/trace/load.js';

const env = (k: string, d: number | undefined): number | undefined =>
  process.env[k] !== undefined ? Number(process.env[k]) : d;
const dir = process.argv[2] ?? 'examples/eplb';
const workers = env('WORKERS', 2)!;
const candidates = env('CANDIDATES', 8)!;
const windows = env('WINDOWS', undefined);
const repeats = env('REPEATS', 2)!;
const history = env('HISTORY', 8)!;
const moeTokens = env('MOE_TOKENS', 4096)!;
const traceName = process.env.TRACE ?? 'synthetic-v4-windows';
const trace =
  process.env.SERIES === 'drawn' ? drawSeries(traceName, secretSeriesSeed()) : loadTrace(traceName);

const createStart = performance.now();
const pool = await EvaluatorPool.create({ workers, timeoutS: 300, prestart: repeats });
const createMs = performance.now() - createStart;
let results: EvalResult[];
let wallMs: number;
try {
  const t0 = performance.now();
  results = await Promise.all(
    Array.from({ length: candidates }, () =>
      pool.evaluate(dir, {
        trace,
        objective: 'default',
        repeats,
        history,
        moeTokens,
        ...(windows !== undefined ? { windows } : {}),
      }),
    ),
  );
  wallMs = performance.now() - t0;
} finally {
  await pool.close();
}

const invalid = results.filter((r) => !r.valid);
if (invalid.length > 0) {
  console.error(
    `${invalid.length} of ${candidates} evaluations invalid: ${JSON.stringify(invalid[0]!.artifacts)}`,
  );
  process.exitCode = 1;
}
const med = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const pick = (f: (r: EvalResult) => number | null): number => med(results.map((r) => f(r) ?? Number.NaN));
const m = results[0]!.metrics;
const summary = {
  dir,
  adapter: pool.adapter,
  trace: trace.manifest.name,
  workers,
  candidates,
  windows: m.windows,
  calls: m.calls,
  passes: m.passes,
  history: m.history,
  moe_tokens: moeTokens,
  pool_create_ms: round(createMs),
  median_eval_ms: round(pick((r) => r.metrics.eval_ms)),
  median_candidate_ms: round(pick((r) => r.metrics.candidate_ms)),
  median_overhead_ms: round(pick((r) => r.metrics.overhead_ms)),
  median_call_ms: round(
    pick((r) => r.metrics.median_ms),
    3,
  ),
  median_mean_call_ms: round(
    pick((r) => r.metrics.mean_ms),
    3,
  ),
  median_setup_ms: round(pick((r) => r.metrics.setup_ms)),
  median_ipc_ms: round(
    pick((r) => r.metrics.ipc_ms),
    3,
  ),
  median_clock_gap_ms: round(
    pick((r) => r.metrics.clock_gap_ms),
    3,
  ),
  balancedness_next: round(
    pick((r) => r.metrics.balancedness_next),
    4,
  ),
  wall_s: round(wallMs / 1000, 2),
  candidates_per_minute: round(candidates / (wallMs / 60_000), 1),
};
console.log(
  [
    `${dir} on ${summary.trace} (${summary.passes} passes × ${summary.windows} windows, history ${history}, ${summary.calls} timed calls, MoE-time ${moeTokens} tokens), ${workers} worker(s), ${summary.adapter}`,
    `  per candidate (median of ${candidates}): evaluation ${summary.median_eval_ms} ms = candidate ${summary.median_candidate_ms} ms + overhead ${summary.median_overhead_ms} ms`,
    `  setup (waiting for the slot's started workers, IPC calibration): ${summary.median_setup_ms} ms`,
    `  per call: mean ${summary.median_mean_call_ms} ms, median ${summary.median_call_ms} ms (IPC baseline ${summary.median_ipc_ms} ms, clock gap ${summary.median_clock_gap_ms} ms)`,
    `  throughput: ${summary.candidates_per_minute} candidates/min (${candidates} in ${summary.wall_s} s; pool start ${summary.pool_create_ms} ms not counted)`,
  ].join('\n'),
);
console.log(JSON.stringify(summary));

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
