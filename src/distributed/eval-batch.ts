import { randomBytes } from 'node:crypto';
import { loadCandidateDir } from '../evolve/candidate.js';
import { defaultConfig, type EvolveConfig } from '../evolve/config.js';
import { type BrokerOutcome, createBrokerEvaluator } from './broker-evaluator.js';
import { parseBrokerUrl } from './broker-url.js';
import { MemoryRunState } from './run-state.js';

export interface BatchOptions {
  url: string;
  queue: string;
  settings: Pick<
    EvolveConfig['evaluator'],
    'timeout_s' | 'memory_mb' | 'objective' | 'trace' | 'windows' | 'repeats'
  > &
    Partial<
      Pick<
        EvolveConfig['evaluator'],
        'history' | 'secret_series' | 'series_seed' | 'replicas' | 'gpus' | 'nodes' | 'groups'
      >
    >;
  /** Called as each verdict arrives (in any order). */
  onResult?: (dir: string, result: BrokerOutcome) => void;
}

/**
 * `adrs eval DIR... --broker URL`: every folder becomes one job, all queued at once, scored by
 * whichever workers take them; a fresh batch id per invocation, so each call measures afresh.
 * The results keep the order of the folders given. Times from two GPU models in one batch are
 * refused (as in a run), unless the folders are sent to one queue per model.
 */
export async function evaluateBatch(
  dirs: string[],
  o: BatchOptions,
): Promise<{ dir: string; result: BrokerOutcome }[]> {
  const files = dirs.map((d) => loadCandidateDir(d));
  const config = defaultConfig();
  // The named trace itself unless the settings ask for a drawn series (adrs eval's default does).
  const evaluator = {
    ...config.evaluator,
    secret_series: false,
    ...o.settings,
    heldout_trace: null,
    workers: dirs.length,
  };
  const broker = await createBrokerEvaluator({
    evaluator,
    address: parseBrokerUrl(o.url),
    queue: o.queue,
    adapters: 'same',
    state: new MemoryRunState(`eval-${randomBytes(6).toString('hex')}`),
  });
  try {
    return await Promise.all(
      dirs.map(async (dir, i) => {
        const result = (await broker.evaluate(files[i]!, 'train')) as BrokerOutcome;
        o.onResult?.(dir, result);
        return { dir, result };
      }),
    );
  } finally {
    await broker.close();
  }
}
