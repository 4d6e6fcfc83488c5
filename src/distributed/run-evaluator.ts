import type { EvolveConfig } from '../evolve/config.js';
import { createEvaluator, type Evaluator } from '../evolve/evaluator.js';
import { UserError } from '../util/errors.js';
import { createBrokerEvaluator } from './broker-evaluator.js';
import { parseBrokerUrl, resolveBrokerUrl } from './broker-url.js';
import { FolderRunState } from './run-state.js';

export const DEFAULT_QUEUE = 'adrs-eval';

export interface RunEvaluatorOptions {
  mode: 'start' | 'resume' | 'replay';
  /** The run folder (it may not exist yet for a new run: broker.json is written on the first job). */
  runDir: string;
  /** `--broker URL`. */
  broker?: string;
}

/**
 * The evaluator of an `adrs evolve` session: the broker when --broker or evaluator.broker asks for
 * it (the URL from the flag, the config, else $ADRS_BROKER_URL), the local one otherwise. A replay evaluates locally unless --broker is
 * given: it must reproduce the run with no broker at all. Returns the config to record, whose
 * broker URL carries no password.
 */
export async function createRunEvaluator(
  config: EvolveConfig,
  o: RunEvaluatorOptions,
): Promise<{ evaluator: Evaluator; config: EvolveConfig }> {
  const configured = config.evaluator.broker;
  // The broker is chosen by --broker or evaluator.broker; $ADRS_BROKER_URL only supplies the address.
  const wanted = o.mode === 'replay' ? o.broker !== undefined : o.broker !== undefined || configured !== null;
  const url = wanted ? resolveBrokerUrl(o.broker || undefined, configured?.url) : null;
  if (url === null) {
    if (wanted) {
      throw new UserError(
        `${o.broker !== undefined ? '--broker' : 'evaluator.broker'} names no URL; give --broker redis://HOST:PORT or set ADRS_BROKER_URL`,
      );
    }
    const local = structuredClone(config);
    local.evaluator.broker = null;
    return { evaluator: await createEvaluator(local), config };
  }
  const address = parseBrokerUrl(url);
  const broker = {
    url: address.display,
    queue: configured?.queue ?? DEFAULT_QUEUE,
    adapters: configured?.adapters ?? ('same' as const),
  };
  const recorded = structuredClone(config);
  recorded.evaluator.broker = broker;
  const evaluator = await createBrokerEvaluator({
    evaluator: recorded.evaluator,
    address,
    queue: broker.queue,
    adapters: broker.adapters,
    state: new FolderRunState(o.runDir),
  });
  return { evaluator, config: recorded };
}
