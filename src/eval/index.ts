/**
 * Sandboxed evaluation of candidate balancers (public API). See pool.ts for EvaluatorPool and
 * candidate-api.ts for what a candidate receives and returns.
 */
export type {
  CallSplit,
  CandidateContext,
  CandidateShape,
  DispatchBinding,
  DispatchSpec,
  Rebalance,
  RebalanceInput,
  RebalanceOutput,
} from './candidate-api.js';
export { DEFAULT_HISTORY, DEFAULT_MOE_TOKENS, DEFAULT_REPEATS, EvaluatorError } from './cascade.js';
export { DEFAULT_MEMORY_MB, EvaluatorPool } from './pool.js';
export {
  adrsObjective,
  DEFAULT_SCORE_TIME_EXPONENT,
  DEFAULT_SCORE_TIME_MS,
  defaultScore,
  moeScore,
  OBJECTIVES,
} from './scores.js';
export { DEFAULT_SERIES_LIKE, drawSeries, secretSeriesSeed } from './series.js';
export type { CandidateInput } from './sources.js';
export type { EvalMetrics, EvalResult, EvaluateOptions, Objective, PoolOptions } from './types.js';
