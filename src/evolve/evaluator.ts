import { pathToFileURL } from 'node:url';
import { UserError } from '../util/errors.js';
import type { CandidateFiles } from './candidate.js';
import type { EvolveConfig } from './config.js';

/** What the controller needs of an evaluation (a subset of src/eval's EvalResult). */
export interface EvalOutcome {
  valid: boolean;
  /** Cascade stage reached: 1 = compile + tiny case, 2 = full trace. */
  stage?: number;
  score: number | null;
  metrics: Record<string, number>;
  /** Compile errors with file:line:col, validation failures, timings: fed back to the model. */
  artifacts: Record<string, string>;
}

export type Split = 'train' | 'heldout';

/**
 * The evaluator seen from the evolution loop: the sandboxed GPU pool in production, any module
 * exporting `createEvaluator` for other problems, an in-process fake in unit tests.
 */
export interface Evaluator {
  /** Evaluations that can run at once (the controller keeps this many busy). */
  readonly workers: number;
  evaluate(files: CandidateFiles, split: Split): Promise<EvalOutcome>;
  /** Whether a held-out trace is configured. */
  hasHeldOut(): boolean;
  /** Name and checksum of each trace, for the reproducer. */
  traces(): Record<string, { name: string; sha256: string }>;
  close(): Promise<void>;
}

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
    close: e.close?.bind(e) ?? (async () => {}),
  };
}

/** The sandboxed GPU evaluator pool of src/eval (issue 4). */
async function createPoolEvaluator(config: EvolveConfig): Promise<Evaluator> {
  const { createPoolEvaluator: create } = await import('./pool-evaluator.js');
  return create(config);
}
