import type { CandidateFiles } from './candidate.js';

/**
 * The evaluator as the evolution loop sees it, apart from evaluator.ts (which picks and builds one)
 * so that the implementations (pool-evaluator.ts, src/distributed) import this and not their factory.
 */

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
