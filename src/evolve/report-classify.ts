import type { EvalOutcome } from './evaluator.js';

/** Artifact keys that accompany a failure without being its cause. */
const NOT_A_CAUSE = new Set(['output', 'timings', 'placement']);

/** The failure class of an invalid evaluation: its first artifact key that names a cause (wgsl, transpile, validation, timeout, …). */
export function failureClass(result: EvalOutcome): string {
  const key = Object.keys(result.artifacts ?? {}).find((k) => !NOT_A_CAUSE.has(k));
  return key ?? (result.score === null ? 'no-score' : 'unknown');
}
