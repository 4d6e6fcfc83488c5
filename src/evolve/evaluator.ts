import { pathToFileURL } from 'node:url';
import { UserError } from '../util/errors.js';
import type { CandidateFiles } from './candidate.js';
import type { EvolveConfig } from './config.js';
import type { EvalOutcome, Evaluator, Split } from './evaluator-types.js';

// The evaluator's types live in evaluator-types.ts (so pool-evaluator.ts need not import this module); re-exported for existing callers.
export {
  type EvalOutcome,
  type Evaluator,
  type EvaluatorInfo,
  isSoftwareAdapter,
  PLACEMENT_ARTIFACT,
  type Split,
  scoreNoise,
} from './evaluator-types.js';

/** The evaluator itself failed twice on one program; the message says what failed. */
export class EvaluatorFailure extends Error {
  override name = 'EvaluatorFailure';
}

/**
 * One evaluation, retried once when the evaluator fails (a worker that failed to start, a device
 * lost once); a second failure is an EvaluatorFailure, never a verdict on the program.
 */
export async function evaluateWithRetry(
  evaluator: Pick<Evaluator, 'evaluate'>,
  files: CandidateFiles,
  split: Split,
  onRetry: (error: string) => void = () => {},
): Promise<EvalOutcome> {
  try {
    return await evaluator.evaluate(files, split);
  } catch (first) {
    onRetry(firstLine(first));
    try {
      return await evaluator.evaluate(files, split);
    } catch (second) {
      throw new EvaluatorFailure(firstLine(second));
    }
  }
}

const firstLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0] || 'unknown error';

/** A plug-in evaluator module: `export async function createEvaluator(options) { return { workers, evaluate, ... } }`. */
export interface EvaluatorModule {
  createEvaluator(options: {
    evaluator: EvolveConfig['evaluator'];
    candidate: string;
  }): Promise<Partial<Evaluator>> | Partial<Evaluator>;
}

export async function createEvaluator(config: EvolveConfig): Promise<Evaluator> {
  if (config.evaluator.module) return fromModule(config.evaluator.module, config);
  return createPoolEvaluator(config);
}

async function fromModule(path: string, config: EvolveConfig): Promise<Evaluator> {
  let mod: Partial<EvaluatorModule>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Partial<EvaluatorModule>;
  } catch (error) {
    throw new UserError(
      `evaluator.module '${path}' cannot be loaded: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  if (typeof mod.createEvaluator !== 'function') {
    throw new UserError(
      `evaluator.module '${path}' must export createEvaluator(options) returning { evaluate(files, split) }`,
    );
  }
  const e = await mod.createEvaluator({ evaluator: config.evaluator, candidate: config.candidate });
  if (typeof e.evaluate !== 'function')
    throw new UserError(`evaluator.module '${path}': createEvaluator returned no evaluate()`);
  return {
    workers: e.workers ?? config.evaluator.workers,
    evaluate: e.evaluate.bind(e),
    hasHeldOut: e.hasHeldOut?.bind(e) ?? (() => false),
    traces: e.traces?.bind(e) ?? (() => ({})),
    ...(e.describe ? { describe: e.describe.bind(e) } : {}),
    close: e.close?.bind(e) ?? (async () => {}),
  };
}

/** The sandboxed GPU evaluator pool of src/eval (issue 4). */
async function createPoolEvaluator(config: EvolveConfig): Promise<Evaluator> {
  const { createPoolEvaluator: create } = await import('./pool-evaluator.js');
  return create(config);
}
