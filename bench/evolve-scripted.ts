/**
 * Throughput of `adrs evolve` with a scripted model: a local OpenAI-compatible server answers every
 * call after a fixed latency with a distinct valid edit of the EPLB seed (examples/eplb), and every
 * program is scored by the real sandboxed GPU evaluator pool. Reports iterations per minute,
 * evaluator utilisation and the controller's own overhead per iteration (beyond model latency and
 * evaluation time).
 *
 * Run (the bundle goes next to the built evaluator, which finds its worker entry beside itself):
 *   npm run build && npx esbuild bench/evolve-scripted.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=dist/eval/bench-evolve-scripted.mjs \
 *     && XDG_RUNTIME_DIR=/tmp node dist/eval/bench-evolve-scripted.mjs
 * Env: ITERATIONS (12), LATENCY_MS (1000), WORKERS (2), PARALLEL (3), WINDOWS (4), REPEATS (2).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { summaryText } from '../src/evolve/progress.js';
import { runSession } from '../src/evolve/session.js';
import { FakeOpenAiServer } from '../test/helpers/fake-openai-server.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const iterations = env('ITERATIONS', 12);
const latency = env('LATENCY_MS', 1000);
const ANCHOR = '  const S = R / P;';

const server = await FakeOpenAiServer.start((q) => ({
  delayMs: latency,
  // A distinct, valid program each time: the same algorithm plus one unused constant.
  text: `<<<<<<< SEARCH balancer.ts\n${ANCHOR}\n=======\n${ANCHOR}\n  const variant${q.index} = ${q.index};\n  void variant${q.index};\n>>>>>>> REPLACE`,
  usage: { prompt_tokens: 6000, completion_tokens: 400 },
}));
const dir = mkdtempSync(join(tmpdir(), 'adrs-evolve-bench-'));
const config = {
  problem: 'Balance the experts.',
  candidate: resolve('examples/eplb'),
  iterations,
  llm: {
    base_url: server.baseUrl,
    models: [{ name: 'scripted', price_input_per_mtok: 0.5, price_output_per_mtok: 1.5 }],
  },
  // Uniform parent picks; every program keeps the anchor line, so each edit applies once.
  search: {
    islands: 1,
    parallel: env('PARALLEL', 3),
    exploration: 0,
    exploitation: 0,
    mutations: { diff: 1, rewrite: 0, crossover: 0 },
  },
  prompt: { top_programs: 0, diverse_programs: 0 },
  evaluator: {
    workers: env('WORKERS', 2),
    timeout_s: 120,
    objective: 'adrs',
    trace: 'synthetic-v4-windows',
    windows: env('WINDOWS', 4),
    repeats: env('REPEATS', 2),
  },
};
writeFileSync(join(dir, 'evolve.json'), JSON.stringify(config));
try {
  const r = await runSession({ configPath: join(dir, 'evolve.json'), out: join(dir, 'run') });
  console.log(summaryText(r));
  console.log(
    JSON.stringify({
      iterations: r.stats.committed,
      latency_ms: latency,
      iterations_per_minute: r.stats.iterationsPerMinute,
      evaluator_utilisation: r.stats.evaluatorUtilisation,
      overhead_ms_per_iteration: r.stats.overheadMsPerIteration,
      mean_model_latency_ms: r.stats.meanModelLatencyMs,
      evaluations: r.stats.evaluationsThisSession,
      elapsed_s: r.stats.elapsedS,
    }),
  );
} finally {
  await server.close();
}
