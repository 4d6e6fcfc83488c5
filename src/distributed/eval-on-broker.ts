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
}

/**
 * `adrs eval DIR... --broker URL`: one job per folder, the verdicts in the folders' order (the CLI
 * prints them). `onResult` is told how many are in.
 */
export async function evaluateOnBroker(
  a: EvalBatchArgs,
  onResult: (done: number, total: number) => void = () => {},
): Promise<{ dir: string; result: BrokerOutcome }[]> {
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
  let done = 0;
  return evaluateBatch(a.dirs, {
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
    onResult: () => onResult(++done, a.dirs.length),
  });
}
