import type { CommandModule } from 'yargs';
import type { BrokerOutcome } from '../../distributed/broker-evaluator.js';
import { DEFAULT_MOE_TOKENS } from '../../eval/cascade.js';
import { DEFAULT_REPEATS, EvaluatorPool } from '../../eval/index.js';
import { checkEvaluateOptions, deploymentShape } from '../../eval/pool.js';
import { OBJECTIVES } from '../../eval/scores.js';
import { DEFAULT_SERIES_LIKE, drawSeries, secretSeriesSeed } from '../../eval/series.js';
import { openCandidate } from '../../eval/sources.js';
import type { EvalResult, EvaluateOptions, Objective } from '../../eval/types.js';
import { loadTrace } from '../../trace/load.js';
import type { Trace } from '../../trace/trace.js';
import { check } from '../../util/errors.js';
import { fixed, formatTable, NO_VALUE } from '../../util/table.js';
import { type DeploymentArgs, deploymentOf, historyOf, withDeployment } from '../deployment.js';
import { cliIo, say } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';

interface EvalArgs extends DeploymentArgs {
  dirs: string[];
  trace?: string;
  like: string;
  'series-seed'?: number;
  seed?: string;
  objective: Objective;
  timeout: number;
  windows?: number;
  repeats: number;
  'moe-tokens': number;
  workers: number;
  memory: number;
  adapter?: string;
  broker?: string;
  queue?: string;
  json: boolean;
}

/** One candidate's row of `adrs eval --json`: the result plus where it was scored. */
export type EvalRow = EvalResult & { dir: string; trace: string; series_seed: number | null };

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval <dirs..>',
  describe: 'Evaluate candidate balancer folders (balancer.ts + kernels/*.wgsl) in the sandbox, side by side',
  builder: (y) =>
    withJson(
      withAdapter(
        withDeployment(y, { history: 'windows each call receives as input.history (the latest included)' })
          .positional('dirs', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'Candidate folders',
          })
          .option('trace', {
            type: 'string',
            describe:
              'Score on this trace (bundled name or file) instead of a drawn secret series: a private trace, or a public one for benchmarking',
          })
          .option('like', {
            type: 'string',
            default: DEFAULT_SERIES_LIKE,
            describe:
              'Without --trace: the drawn series is shaped like this trace (its generator parameters, or the trace as the only anchor)',
          })
          .option('series-seed', {
            type: 'number',
            describe: 'Seed of the drawn series (reported in every result), to reproduce one; default secret',
          })
          .option('seed', {
            type: 'string',
            describe:
              "Seed of the relabellings (a result's `seed`), to reproduce one evaluation; default secret",
          })
          .option('objective', {
            choices: OBJECTIVES,
            default: 'default' as const,
            describe: 'Which score is `score` (all are always reported)',
          })
          .option('timeout', {
            type: 'number',
            default: 120,
            describe: "Hard limit on each candidate's run, seconds (the workers' preparation is not counted)",
          })
          .option('windows', { type: 'number', describe: 'Scored windows (default: all the series has)' })
          .option('repeats', {
            type: 'number',
            default: DEFAULT_REPEATS,
            describe:
              'Timed passes, at least 2, each a fresh worker fed the windows in time order under its own relabelling',
          })
          .option('moe-tokens', {
            type: 'number',
            default: DEFAULT_MOE_TOKENS,
            describe: 'Tokens per layer in the MoE-time simulation (0 skips it)',
          })
          .option('workers', {
            type: 'number',
            default: 2,
            describe: 'Candidates evaluated at once (at most the number of folders)',
          })
          .option('memory', { type: 'number', default: 2048, describe: 'Worker memory cap, MiB' })
          .option('broker', {
            type: 'string',
            describe:
              'Evaluate the folders on `adrs worker` machines through this broker, redis://[:PASSWORD@]HOST:PORT or rediss:// (empty: $ADRS_BROKER_URL)',
          })
          .option('queue', {
            type: 'string',
            describe: 'Broker queue (one per GPU model; default adrs-eval)',
          }),
      ),
    ),
  handler: async (argv) => {
    // A bad folder or option is a one-line error before any worker or GPU device starts.
    for (const dir of argv.dirs) openCandidate(dir).dispose();
    check(
      Number.isInteger(argv.workers) && argv.workers >= 1,
      `--workers must be a positive integer, got ${argv.workers}`,
    );
    const deployment: EvaluateOptions['deployment'] = deploymentOf(argv);
    const common = {
      objective: argv.objective,
      repeats: argv.repeats,
      history: historyOf(argv),
      moeTokens: argv['moe-tokens'],
      ...(argv.seed !== undefined ? { seed: argv.seed } : {}),
      ...(argv.windows !== undefined ? { windows: argv.windows } : {}),
    };
    checkEvaluateOptions(common);
    // --broker: the batch goes to the queue (src/distributed); the workers draw the same series.
    if (argv.broker !== undefined) return evalOnBroker(argv);
    // One series for every candidate, so their scores compare.
    let trace: Trace;
    let seriesSeed: number | null = null;
    if (argv.trace !== undefined) trace = loadTrace(argv.trace);
    else {
      seriesSeed = argv['series-seed'] ?? secretSeriesSeed();
      // Only the windows scored are drawn (the generator costs about a second a window).
      trace = drawSeries(argv.like, seriesSeed, argv.windows !== undefined ? argv.windows + 1 : undefined);
    }
    deploymentShape({ trace, deployment });
    const pool = await EvaluatorPool.create({
      workers: Math.min(argv.workers, argv.dirs.length),
      timeoutS: argv.timeout,
      memoryMb: argv.memory,
      prestart: argv.repeats,
      ...(argv.adapter !== undefined ? { adapter: argv.adapter } : {}),
    });
    const progress = process.stderr.isTTY && !argv.json && argv.dirs.length === 1;
    try {
      // Every candidate in its own fresh workers: one's behaviour cannot touch another's verdict.
      const results = await Promise.all(
        argv.dirs.map(async (dir): Promise<EvalRow> => {
          const r = await pool.evaluate(dir, {
            ...common,
            trace,
            deployment,
            ...(progress ? { onProgress: (line: string) => cliIo().stderr(`\r\x1b[K${line}`) } : {}),
          });
          return { dir, trace: trace.manifest.name, series_seed: seriesSeed, ...r };
        }),
      );
      if (progress) cliIo().stderr('\r\x1b[K');
      if (argv.json) printJson(argv.dirs.length === 1 ? results[0] : results);
      else if (results.length === 1) printResult(results[0]!, pool.adapter);
      else printTable(results, pool.adapter);
    } finally {
      await pool.close();
    }
  },
};

async function evalOnBroker(argv: EvalArgs): Promise<void> {
  // Loaded only here: the Redis client is not needed by a local evaluation.
  const { evaluateOnBroker } = await import('../../distributed/eval-on-broker.js');
  const trace = argv.trace ?? argv.like;
  const progress = process.stderr.isTTY && !argv.json;
  const results = await evaluateOnBroker(
    {
      ...argv,
      history: historyOf(argv),
      trace,
      seriesSeed: argv.trace !== undefined ? null : (argv['series-seed'] ?? secretSeriesSeed()),
    },
    (done, total) => {
      if (progress) cliIo().stderr(`\r\x1b[K${done}/${total} evaluated`);
    },
  );
  if (progress) cliIo().stderr('\r\x1b[K');
  if (argv.json) printJson(results.map((r) => ({ dir: r.dir, ...r.result })));
  else
    for (const { dir, result } of results)
      for (const line of brokerResultLines(dir, result, trace)) say(line);
}

/** One verdict from an `adrs worker`, as `adrs eval --broker` shows it. */
export function brokerResultLines(dir: string, r: BrokerOutcome, trace: string): string[] {
  const m = r.metrics;
  const g = (x: number | null | undefined) => fixed(x, 3);
  return [
    `${dir}: ${r.valid ? 'valid' : 'INVALID'}${r.stage !== undefined ? ` (stage ${r.stage})` : ''} on ${trace}, ${r.adapter} (worker ${r.worker})`,
    `  score: ${g(r.score)}   adrs ${g(m.adrs_score)}, default ${g(m.default_score)}; median ${g(m.median_ms)} ms per call`,
    ...Object.entries(r.artifacts).flatMap(([key, text]) => [
      `  ${key}:`,
      ...text.split('\n').map((line) => `    ${line}`),
    ]),
  ];
}

/** The layers a candidate ran under, in one line (the threat model in the README says what each does). */
function sandboxLine(b: NonNullable<EvalResult['sandbox']>): string {
  const os =
    b.os === 'bubblewrap'
      ? `bubblewrap (network ${b.network}, file system ${b.filesystem})`
      : 'NO OS sandbox (bubblewrap unavailable or ADRS_EVAL_SANDBOX=none)';
  const parts = [
    os,
    b.own_uid ? `own uid ${b.uid}` : 'the harness uid',
    b.node_permissions ? 'Node permission model' : 'NO Node permission model',
    b.hardened ? 'hardened intrinsics' : 'NOT hardened',
    `${b.channel} channel`,
  ];
  if (b.transpile) parts.push(`transpiled in ${b.transpile}`);
  return parts.join(', ');
}

const f = (x: number | null, d = 4) => fixed(x, d);
const pm = (x: number | null, noise: number | null, d = 3) =>
  x === null ? NO_VALUE : `${x.toFixed(d)}${noise !== null ? ` ± ${noise.toFixed(d)}` : ''}`;
const where = (r: EvalRow) =>
  r.series_seed !== null ? `${r.trace} (drawn, series seed ${r.series_seed})` : r.trace;

function printResult(r: EvalRow, adapter: string): void {
  const m = r.metrics;
  say(`${r.dir}: ${r.valid ? 'valid' : 'INVALID'} (stage ${r.stage}) on ${where(r)}, ${adapter}`);
  say(
    `  score (${r.objective}): ${pm(r.score, m.score_noise)}   adrs ${pm(m.adrs_score, m.adrs_score_noise)}, default ${pm(m.default_score, m.default_score_noise)}, moe-time ${pm(m.moe_score, m.moe_score_noise)}`,
  );
  say(`  GPU balancedness: next window ${f(m.balancedness_next)}, same window ${f(m.balancedness_same)}`);
  say(
    `  modelled MoE time (next window, ${m.moe_tokens} tokens/layer, ${m.moe_windows} windows): ${f(m.moe_time_ms, 3)} ms, load-unaware ${f(m.moe_time_none_ms, 3)} ms`,
  );
  say(
    `  time per call: mean ${pm(m.mean_ms, m.mean_ms_noise)} ms (charged), median ${f(m.median_ms, 3)} ms, p95 ${f(m.p95_ms, 3)} ms` +
      (m.host_ms !== null
        ? `; host ${f(m.host_ms, 3)}, GPU wait ${f(m.gpu_wait_ms, 3)}, GPU ${f(m.gpu_ms, 3)} ms`
        : ''),
  );
  say(
    `  ${m.passes} passes × ${m.windows} windows (history ${m.history}), ${m.calls} timed calls; evaluation ${(m.eval_ms / 1000).toFixed(2)} s, of which the candidate ${(m.candidate_ms / 1000).toFixed(2)} s; seed ${r.seed}`,
  );
  if (r.sandbox) say(`  sandbox: ${sandboxLine(r.sandbox)}`);
  for (const [key, text] of Object.entries(r.artifacts)) {
    say(`  ${key}:`);
    for (const line of text.split('\n')) say(`    ${line}`);
  }
}

function printTable(rows: EvalRow[], adapter: string): void {
  say(`${rows.length} candidates on ${where(rows[0]!)}, ${adapter}; score = ${rows[0]!.objective}`);
  const header = [
    'candidate',
    'verdict',
    'score',
    'bal. next',
    'MoE ms',
    'mean ms',
    'p95 ms',
    'adrs',
    'default',
  ];
  const body = rows.map((r) => {
    const m = r.metrics;
    return [
      r.dir,
      r.valid ? 'valid' : `INVALID (${Object.keys(r.artifacts)[0] ?? '?'})`,
      pm(r.score, m.score_noise),
      f(m.balancedness_next),
      f(m.moe_time_ms, 3),
      f(m.mean_ms, 3),
      f(m.p95_ms, 3),
      f(m.adrs_score, 3),
      f(m.default_score, 3),
    ];
  });
  for (const line of formatTable([header, ...body], { indent: '  ', align: ['left', 'left', 'right'] }))
    say(line);
  for (const r of rows) {
    for (const [key, text] of Object.entries(r.artifacts)) say(`  ${r.dir} ${key}: ${text.split('\n')[0]}`);
  }
}
