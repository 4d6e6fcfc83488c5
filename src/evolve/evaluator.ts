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
 * The artifact that carries data, not a message: one scored placement's GPU loads (JSON), for
 * reports. Prompts and failure classes leave it out.
 */
export const PLACEMENT_ARTIFACT = 'placement';

/** Where and how programs are measured: what the prompt tells the model about the evaluator. */
export interface EvaluatorInfo {
  /** 'eplb': the sandboxed EPLB evaluator (the prompt carries the candidate API and scoring rule). */
  problem: 'eplb' | 'custom';
  /** The GPU adapter candidates run on; software = a CPU rasteriser such as lavapipe. */
  adapter: { name: string; software: boolean } | null;
  /** The objective named `score` (e.g. adrs, default). */
  objective: string;
}

/** The evaluator's own estimate of one measurement's score noise (metric `score_noise`), if it reports one. */
export function scoreNoise(outcome: Pick<EvalOutcome, 'metrics'>): number | null {
  const v = outcome.metrics.score_noise;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

/** Adapters whose "GPU" is the CPU (lavapipe/llvmpipe, SwiftShader), as src/gpu/adapter-info.ts tells them. */
export const isSoftwareAdapter = (name: string): boolean =>
  /llvmpipe|lavapipe|swiftshader|software/i.test(name);

/**
 * The evaluator seen from the evolution loop: the sandboxed GPU pool in production, any module
 * exporting `createEvaluator` for other problems, an in-process fake in unit tests.
 */
export interface Evaluator {
  /** Evaluations that can run at once (the controller keeps this many busy). */
  readonly workers: number;
  /**
   * Resolves with the candidate's verdict, valid or not (a compile error, a timeout, a wrong
   * answer). Rejects only when the evaluation could not run (a worker that does not start, a lost
   * device, a pool error): that is no verdict on the program, see evaluateWithRetry.
   */
  evaluate(files: CandidateFiles, split: Split): Promise<EvalOutcome>;
  /** Whether a held-out trace is configured. */
  hasHeldOut(): boolean;
  /** Name and checksum of each trace, for the reproducer. */
  traces(): Record<string, { name: string; sha256: string }>;
  /** Where and how programs are measured (default: a custom problem on an unknown device). */
  describe?(): EvaluatorInfo;
  close(): Promise<void>;
}

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
