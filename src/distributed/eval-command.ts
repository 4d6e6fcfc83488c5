import { checkEvaluateOptions } from '../eval/pool.js';
import { openCandidate } from '../eval/sources.js';
import type { Objective } from '../eval/types.js';
import { UserError } from '../util/errors.js';
import type { BrokerOutcome } from './broker-evaluator.js';
import { BROKER_URL_ENV, resolveBrokerUrl } from './broker-url.js';
import { evaluateBatch } from './eval-batch.js';
import { DEFAULT_QUEUE } from './run-evaluator.js';

export interface EvalBatchArgs {
  dirs: string[];
  broker?: string;
  queue?: string;
  trace: string;
  /** Draw the series like `trace` with this seed (each worker draws the same one); null: score on `trace` itself. */
  seriesSeed: number | null;
  history: number;
  replicas?: number;
  gpus?: number;
  nodes?: number;
  groups?: number;
  objective: Objective;
  timeout: number;
  windows?: number;
  repeats: number;
  memory: number;
  json: boolean;
}

/** The `adrs eval DIR... --broker URL` handler: one job per folder, results in the folders' order. */
export async function evalBatchCommand(a: EvalBatchArgs): Promise<void> {
  const url = resolveBrokerUrl(a.broker || undefined, null);
  if (!url) {
    throw new UserError(
      a.broker === undefined
        ? 'several candidate folders are evaluated through a broker: add --broker redis://HOST:PORT (or run adrs eval once per folder)'
        : `--broker needs a URL, or ${BROKER_URL_ENV} set`,
    );
  }
  // A bad folder or option is a one-line error before anything is queued.
  for (const d of a.dirs) openCandidate(d).dispose();
  checkEvaluateOptions({
    objective: a.objective,
    repeats: a.repeats,
    ...(a.windows !== undefined ? { windows: a.windows } : {}),
  });
  const progress = process.stderr.isTTY && !a.json;
  let done = 0;
  const results = await evaluateBatch(a.dirs, {
    url,
    queue: a.queue ?? DEFAULT_QUEUE,
    settings: {
      timeout_s: a.timeout,
      memory_mb: a.memory,
      objective: a.objective,
      trace: a.trace,
      secret_series: a.seriesSeed !== null,
      series_seed: a.seriesSeed,
      history: a.history,
      ...(a.replicas !== undefined ? { replicas: a.replicas } : {}),
      ...(a.gpus !== undefined ? { gpus: a.gpus } : {}),
      ...(a.nodes !== undefined ? { nodes: a.nodes } : {}),
      ...(a.groups !== undefined ? { groups: a.groups } : {}),
      windows: a.windows ?? null,
      repeats: a.repeats,
    },
    onResult: () => {
      done++;
      if (progress) process.stderr.write(`\r\x1b[K${done}/${a.dirs.length} evaluated`);
    },
  });
  if (progress) process.stderr.write('\r\x1b[K');
  if (a.json) {
    console.log(
      JSON.stringify(
        results.map((r) => ({ dir: r.dir, ...r.result })),
        null,
        2,
      ),
    );
    return;
  }
  for (const { dir, result } of results) printOne(dir, result, a.trace);
}

function printOne(dir: string, r: BrokerOutcome, trace: string): void {
  const f = (x: number | undefined, d = 3) => (x === undefined ? '—' : x.toFixed(d));
  const m = r.metrics;
  console.log(
    `${dir}: ${r.valid ? 'valid' : 'INVALID'}${r.stage !== undefined ? ` (stage ${r.stage})` : ''} on ${trace}, ${r.adapter} (worker ${r.worker})`,
  );
  console.log(
    `  score: ${f(r.score ?? undefined)}   adrs ${f(m.adrs_score)}, default ${f(m.default_score)}; median ${f(m.median_ms)} ms per call`,
  );
  for (const [key, text] of Object.entries(r.artifacts)) {
    console.log(`  ${key}:`);
    for (const line of text.split('\n')) console.log(`    ${line}`);
  }
}
