/**
 * A scripted evolution run of the EPLB seed that uses the history, and what it costs per iteration.
 * A local OpenAI-compatible server stands in for the model: after a fixed latency it answers each
 * call with a valid edit of the current program's EVOLVE-BLOCK that makes the packing use a forecast
 * of the next window from `input.history` (per-layer shares of the last H windows, weighted DECAY^age)
 * instead of `input.loads` alone; later edits try other (H, DECAY). Every program is scored by the
 * real sandboxed GPU evaluator pool, and every new best is confirmed by interleaved re-measurement
 * (selection.rounds). Token usage is estimated from the prompt and answer sizes (4 characters a
 * token) and priced at PRICE_IN / PRICE_OUT USD per million tokens.
 *
 * The edits target two lines inside the seed's EVOLVE-BLOCK (examples/eplb/balancer.ts):
 *   `  const S = R / P;`                        the forecast is inserted after it
 *   `      const w = loads[l * E + e]! / c;`    its `loads[` becomes `fc[` (the forecast)
 * If the seed no longer has the second line, the first line of the block using `loads[l * E + e]`
 * is edited instead; if neither exists the answer is refused and counted (the run says so).
 * Where the harness sends no `history` yet, the edit falls back to `[input.loads]` (last window).
 *
 * Run (the bundle goes next to the built evaluator, which finds its worker entry beside itself):
 *   LATENCY_MS=1000 npm run bench:evolve
 * Env: ITERATIONS (12), LATENCY_MS (1000), WORKERS (2), PARALLEL (3), WINDOWS (4), REPEATS (2),
 *   ROUNDS (3: selection.rounds), TRACE (synthetic-v4-windows; a name or a manifest path),
 *   PRICE_IN (0.5), PRICE_OUT (1.5), SECRET_SERIES (unset: the evaluator's default; 0 or 1 where it has the key).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { summaryText } from '../src/evolve/progress.js';
import { RunFolder } from '../src/evolve/run-folder.js';
import { RunState } from '../src/evolve/run-log/fold.js';
import { runSession } from '../src/evolve/session.js';
import { FakeOpenAiServer, type FakeRequest } from '../test/helpers/fake-openai-server.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const iterations = env('ITERATIONS', 12);
const latency = env('LATENCY_MS', 1000);
const priceIn = env('PRICE_IN', 0.5);
const priceOut = env('PRICE_OUT', 1.5);
const trace = process.env.TRACE ?? 'synthetic-v4-windows';

const ANCHOR = '  const S = R / P;';
const WEIGHT_LINE = '      const w = loads[l * E + e]! / c;';
const KNOB = /^ {2}const H = (\d+), DECAY = ([\d.]+);$/m;
/** (H, DECAY) tried in turn: plain means of 1–8 windows and exponentially weighted ones. */
const VARIANTS: [number, number][] = [
  [4, 1],
  [8, 1],
  [2, 1],
  [8, 0.7],
  [8, 0.5],
  [3, 1],
  [6, 0.8],
  [1, 1],
  [5, 0.6],
  [8, 0.9],
  [2, 0.5],
  [6, 1],
];

const forecast = (h: number, decay: number): string =>
  `${ANCHOR}
  // Forecast of the next window: per-layer shares of the last H windows of input.history, weighted DECAY^age.
  const H = ${h}, DECAY = ${decay};
  const hist: Float32Array[] = (input as { history?: Float32Array[] }).history ?? [loads];
  const fc = new Float64Array(L * E);
  for (let a = 0; a < Math.min(H, hist.length); a++) {
    const win = hist[hist.length - 1 - a]!;
    const wa = DECAY ** a;
    for (let l = 0; l < L; l++) {
      let total = 0;
      for (let e = 0; e < E; e++) total += win[l * E + e]!;
      const k = total > 0 ? wa / total : 0;
      for (let e = 0; e < E; e++) fc[l * E + e]! += win[l * E + e]! * k;
    }
  }`;

/** balancer.ts of the current program, as the prompt lists it. */
function currentBalancer(q: FakeRequest): string {
  const user = q.messages.find((m) => m.role === 'user')!.content;
  const from = user.indexOf('# Current program');
  const start = user.indexOf('```ts\n', user.indexOf('## balancer.ts', from));
  return user.slice(start + 6, user.indexOf('\n```', start + 6));
}

function edit(q: FakeRequest): string {
  const ts = currentBalancer(q);
  const knob = KNOB.exec(ts);
  if (knob) {
    const now = `${knob[1]},${knob[2]}`;
    const pick = [...VARIANTS.slice(q.index % VARIANTS.length), ...VARIANTS].find(
      ([h, d]) => `${h},${d}` !== now,
    )!;
    return `Try another forecast window.\n<<<<<<< SEARCH balancer.ts\n${knob[0]}\n=======\n  const H = ${pick[0]}, DECAY = ${pick[1]};\n>>>>>>> REPLACE`;
  }
  const [h, d] = VARIANTS[q.index % VARIANTS.length]!;
  const weight = ts.includes(WEIGHT_LINE)
    ? WEIGHT_LINE
    : ts.split('\n').find((l) => l.includes('loads[l * E + e]') && !l.includes('fc['));
  if (!weight || !ts.includes(ANCHOR)) return 'I cannot find the lines to edit.';
  return [
    'Pack on a forecast of the next window from input.history instead of the last window alone.',
    `<<<<<<< SEARCH balancer.ts\n${ANCHOR}\n=======\n${forecast(h, d)}\n>>>>>>> REPLACE`,
    `<<<<<<< SEARCH balancer.ts\n${weight}\n=======\n${weight.replace('loads[l * E + e]', 'fc[l * E + e]')}\n>>>>>>> REPLACE`,
  ].join('\n');
}

const tokens = (chars: number): number => Math.ceil(chars / 4);
const server = await FakeOpenAiServer.start((q) => {
  const text = edit(q);
  return {
    delayMs: latency,
    text,
    usage: {
      prompt_tokens: tokens(q.messages.reduce((a, m) => a + m.content.length, 0)),
      completion_tokens: tokens(text.length),
    },
  };
});
const dir = mkdtempSync(join(tmpdir(), 'adrs-evolve-bench-'));
const config = {
  problem: 'Balance the experts: place each window on a forecast of the next one.',
  candidate: resolve('examples/eplb'),
  iterations,
  llm: {
    base_url: server.baseUrl,
    models: [{ name: 'scripted', price_input_per_mtok: priceIn, price_output_per_mtok: priceOut }],
  },
  // Uniform parent picks: edits land on the seed and on forecasting programs alike.
  search: {
    islands: 1,
    parallel: env('PARALLEL', 3),
    exploration: 0,
    exploitation: 0,
    mutations: { diff: 1, rewrite: 0, crossover: 0 },
  },
  prompt: { top_programs: 1, diverse_programs: 0 },
  selection: { rounds: env('ROUNDS', 3), z: 2 },
  evaluator: {
    workers: env('WORKERS', 2),
    timeout_s: 120,
    objective: 'adrs',
    trace: trace.includes('/') ? resolve(trace) : trace,
    windows: env('WINDOWS', 4),
    repeats: env('REPEATS', 2),
    // SECRET_SERIES=0|1 where the evaluator has that key (train on TRACE itself, or on a series drawn like it).
    ...(process.env.SECRET_SERIES ? { secret_series: process.env.SECRET_SERIES === '1' } : {}),
  },
};
writeFileSync(join(dir, 'evolve.json'), JSON.stringify(config));
try {
  const r = await runSession({ configPath: join(dir, 'evolve.json'), out: join(dir, 'run') });
  // The run log as resume, replay and report read it (validated, folded once).
  const state = RunState.fold(new RunFolder(r.dir).readEvents());
  const evalMs = [...state.evaluations.values()].reduce((a, e) => a + e.ms, 0);
  const n = Math.max(1, r.stats.committed);
  const s = r.stats;
  const c = s.counters;
  const prompts = server.requests.map((q) => q.messages.reduce((a, m) => a + m.content.length, 0));
  console.log(summaryText(r));
  for (const [iteration, e] of state.comparisons)
    console.log(`comparison at iteration ${iteration}: ${e.decision} — ${e.reason}`);
  const withHistory = state.commitLog.filter(({ event }) => event.outcome === 'valid').length;
  console.log(
    JSON.stringify({
      trace,
      iterations: s.committed,
      latency_ms: latency,
      iterations_per_minute: s.iterationsPerMinute,
      evaluator_utilisation: s.evaluatorUtilisation,
      overhead_ms_per_iteration: s.overheadMsPerIteration,
      mean_model_latency_ms: s.meanModelLatencyMs,
      evaluations: s.evaluationsThisSession,
      remeasurements: s.remeasurementsThisSession,
      comparisons: s.comparisons,
      valid_programs: withHistory,
      refused: c.refused,
      duplicates: c.duplicates,
      elapsed_s: s.elapsedS,
      mean_prompt_chars: Math.round(prompts.reduce((a, x) => a + x, 0) / Math.max(1, prompts.length)),
      per_iteration: {
        wall_s: s.elapsedS / n,
        tokens_in: c.prompt_tokens / n,
        tokens_out: c.completion_tokens / n,
        usd: c.cost_usd / n,
        evaluations: (s.evaluationsThisSession + s.remeasurementsThisSession) / n,
        evaluator_s: (s.evaluatorUtilisation * s.elapsedS * config.evaluator.workers) / n,
        first_evaluation_ms: evalMs / Math.max(1, s.evaluationsThisSession),
      },
      seed: { score: r.seed.score, balancedness_next: r.seed.metrics.balancedness_next },
      best: { id: r.best.id, score: r.best.score, balancedness_next: r.best.metrics.balancedness_next },
    }),
  );
} finally {
  await server.close();
}
