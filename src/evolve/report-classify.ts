import type { EvalOutcome } from './evaluator.js';

/** Why an edit was refused, in the classes a reader acts on. */
export type RefusalClass = 'no-match' | 'ambiguous' | 'outside-block' | 'malformed' | 'unchanged' | 'other';

/**
 * The class of a refusal reason as patch.ts, rewrite.ts and the controller word them (the report
 * test runs each refusal through the real patcher, so a reworded message fails a test, not a report).
 */
export function refusalClass(reason: string): RefusalClass {
  if (/matches \d+ places/.test(reason)) return 'ambiguous';
  if (/outside every EVOLVE-BLOCK|EVOLVE-BLOCK marker/.test(reason)) return 'outside-block';
  if (/changes nothing|leaves the program unchanged/.test(reason)) return 'unchanged';
  if (/was not found in|no file '|there is no EVOLVE-BLOCK/.test(reason)) return 'no-match';
  if (
    /no '<<<<<<< (SEARCH|BLOCK)|without a preceding|before the '(=======|>>>>>>> REPLACE)'|no '(=======|>>>>>>> REPLACE)'|is not closed by|SEARCH text is empty|rewritten twice/.test(
      reason,
    )
  ) {
    return 'malformed';
  }
  return 'other';
}

/** Artifact keys that accompany a failure without being its cause. */
const NOT_A_CAUSE = new Set(['output', 'timings', 'placement']);

/** The failure class of an invalid evaluation: its first artifact key that names a cause (wgsl, transpile, validation, timeout, …). */
export function failureClass(result: EvalOutcome): string {
  const key = Object.keys(result.artifacts ?? {}).find((k) => !NOT_A_CAUSE.has(k));
  return key ?? (result.score === null ? 'no-score' : 'unknown');
}
