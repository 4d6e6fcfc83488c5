import type { CommandModule } from 'yargs';
import { DEFAULT_REPEATS, EvaluatorPool } from '../../eval/index.js';
import { checkEvaluateOptions } from '../../eval/pool.js';
import { openCandidate } from '../../eval/sources.js';
import type { EvalResult, Objective } from '../../eval/types.js';
import { loadTrace } from '../../trace/load.js';
import { printJson, withAdapter, withJson } from '../options.js';

export const DEFAULT_EVAL_TRACE = 'synthetic-v4-windows';

interface EvalArgs {
  dir: string;
  trace: string;
  objective: Objective;
  timeout: number;
  windows?: number;
  repeats: number;
  memory: number;
  adapter?: string;
  json: boolean;
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval <dir>',
  describe: 'Evaluate a candidate balancer folder (balancer.ts + kernels/*.wgsl) in the sandbox',
  builder: (y) =>
    withJson(
      withAdapter(
        y
          .positional('dir', { type: 'string', demandOption: true, describe: 'Candidate folder' })
          .option('trace', {
            type: 'string',
            default: DEFAULT_EVAL_TRACE,
            describe: 'Trace to evaluate on (bundled name or file); placement from window k is scored on k+1',
          })
          .option('objective', {
            choices: ['adrs', 'default'] as const,
            default: 'default' as const,
            describe: 'Which score is `score`: ADRS leaderboard or our default (both are always reported)',
          })
          .option('timeout', {
            type: 'number',
            default: 120,
            describe: "Hard limit on the candidate's run, seconds (the worker's preparation is not counted)",
          })
          .option('windows', { type: 'number', describe: 'Scored windows (default: all the trace has)' })
          .option('repeats', {
            type: 'number',
            default: DEFAULT_REPEATS,
            describe:
              'Timed passes over the windows, at least 2: the first is scored, the others feed the same windows relabelled and must agree',
          })
          .option('memory', { type: 'number', default: 2048, describe: 'Worker memory cap, MiB' }),
      ),
    ),
  handler: async (argv) => {
    // A bad folder or option is a one-line error before any worker or GPU device starts.
    openCandidate(argv.dir).dispose();
    checkEvaluateOptions({
      objective: argv.objective,
      repeats: argv.repeats,
      ...(argv.windows !== undefined ? { windows: argv.windows } : {}),
    });
    const trace = loadTrace(argv.trace);
    const pool = await EvaluatorPool.create({
      workers: 1,
      timeoutS: argv.timeout,
      memoryMb: argv.memory,
      ...(argv.adapter !== undefined ? { adapter: argv.adapter } : {}),
    });
    const progress = process.stderr.isTTY && !argv.json;
    try {
      const result = await pool.evaluate(argv.dir, {
        trace,
        objective: argv.objective,
        repeats: argv.repeats,
        ...(argv.windows !== undefined ? { windows: argv.windows } : {}),
        ...(progress ? { onProgress: (line: string) => process.stderr.write(`\r\x1b[K${line}`) } : {}),
      });
      if (progress) process.stderr.write('\r\x1b[K');
      if (argv.json) printJson(result);
      else printResult(result, argv.dir, trace.manifest.name, pool.adapter);
    } finally {
      await pool.close();
    }
  },
};

function printResult(r: EvalResult, dir: string, traceName: string, adapter: string): void {
  const m = r.metrics;
  const f = (x: number | null, d = 4) => (x === null ? '—' : x.toFixed(d));
  console.log(`${dir}: ${r.valid ? 'valid' : 'INVALID'} (stage ${r.stage}) on ${traceName}, ${adapter}`);
  console.log(
    `  score (${r.objective}): ${f(r.score, 3)}   adrs ${f(m.adrs_score, 3)}, default ${f(m.default_score, 3)}`,
  );
  console.log(
    `  GPU balancedness: next window ${f(m.balancedness_next)}, same window ${f(m.balancedness_same)}, relabelled ${f(m.balancedness_next_varied)}`,
  );
  console.log(
    `  time per call: median ${f(m.median_ms, 3)} ms, p95 ${f(m.p95_ms, 3)} ms, mean ${f(m.mean_ms, 3)} ms`,
  );
  console.log(
    `  ${m.windows} windows, ${m.calls} timed calls; evaluation ${(m.eval_ms / 1000).toFixed(2)} s, of which the candidate ${(m.candidate_ms / 1000).toFixed(2)} s`,
  );
  for (const [key, text] of Object.entries(r.artifacts)) {
    console.log(`  ${key}:`);
    for (const line of text.split('\n')) console.log(`    ${line}`);
  }
}
