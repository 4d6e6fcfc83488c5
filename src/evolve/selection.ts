/**
 * Selection that timing noise cannot fool. A program whose one measurement beats the best's, or
 * falls short of it by less than z standard errors (one measurement rules a program out no more
 * than it makes it the best), is a challenger, not yet the best: both are re-measured, interleaved in ABBA order (incumbent,
 * challenger, challenger, incumbent, …) so that a drift of the machine's load hits both alike, and
 * the challenger is promoted only when the difference of the means of these re-measurements
 * exceeds `z` standard errors. The first measurement that made it a challenger is left out: it was
 * picked for being high (the winner's curse).
 *
 * The noise of one measurement, σ, is the largest of: the pooled standard deviation of this
 * comparison's rounds; the evaluator's own estimate (`score_noise`, RMS over the rounds), when it
 * reports one; and the run's pooled estimate from earlier comparisons (more degrees of freedom
 * than three rounds, which can agree by chance). Then SE = σ·√(1/n_c + 1/n_i) and the rule is
 * mean_c − mean_i > z·SE.
 */
import { meanOrNaN } from '../util/stats.js';

/** A comparison as recorded in events.jsonl (type 'comparison'): resume and replay reuse the decision. */
export interface Comparison {
  iteration: number;
  challenger: { id: string; hash: string; first_score: number };
  incumbent: { id: string; hash: string; score: number };
  /** The order the re-measurements ran in. */
  order: Side[];
  /** Scores of each side's re-measurements, in order; null = invalid on re-measurement. */
  challenger_scores: (number | null)[];
  incumbent_scores: (number | null)[];
  /** score_noise the evaluator reported with each re-measurement, where it did. */
  reported_noise: number[];
  mean_challenger: number | null;
  mean_incumbent: number | null;
  difference: number | null;
  /** σ of one measurement, and which estimate it came from. */
  noise: number;
  noise_source: 'rounds' | 'evaluator' | 'run';
  standard_error: number;
  z: number;
  decision: 'promote' | 'keep';
  reason: string;
  /** Sum of squared deviations and degrees of freedom of the rounds: they feed the run's estimate. */
  ss: number;
  dof: number;
}

export type Side = 'incumbent' | 'challenger';

/** ABBA: i c c i i c … — a linear drift in time costs neither side. */
export function interleavedOrder(rounds: number): Side[] {
  const order: Side[] = [];
  for (let r = 0; r < rounds; r++)
    order.push(
      ...(r % 2 === 0 ? (['incumbent', 'challenger'] as const) : (['challenger', 'incumbent'] as const)),
    );
  return order;
}

export interface ComparisonInput {
  iteration: number;
  challenger: Comparison['challenger'];
  incumbent: Comparison['incumbent'];
  order: Side[];
  /** One result per entry of `order`. */
  results: { score: number | null; noise: number | null }[];
  /** The run's pooled noise so far (sum of squares, degrees of freedom), from earlier comparisons. */
  run: { ss: number; dof: number };
  z: number;
}

/** The decision, a pure function of the measurements (so a recorded comparison can be re-checked). */
export function decide(input: ComparisonInput): Comparison {
  const c: (number | null)[] = [];
  const i: (number | null)[] = [];
  const reported: number[] = [];
  input.order.forEach((side, k) => {
    const r = input.results[k]!;
    (side === 'challenger' ? c : i).push(r.score);
    if (r.noise !== null && Number.isFinite(r.noise)) reported.push(r.noise);
  });
  const cv = c.filter((x): x is number => x !== null);
  const iv = i.filter((x): x is number => x !== null);
  const base = {
    iteration: input.iteration,
    challenger: input.challenger,
    incumbent: input.incumbent,
    order: input.order,
    challenger_scores: c,
    incumbent_scores: i,
    reported_noise: reported,
    z: input.z,
  };
  if (cv.length < c.length || cv.length === 0) {
    return {
      ...base,
      mean_challenger: cv.length ? meanOrNaN(cv) : null,
      mean_incumbent: iv.length ? meanOrNaN(iv) : null,
      difference: null,
      noise: 0,
      noise_source: 'rounds',
      standard_error: 0,
      decision: 'keep',
      reason: `${input.challenger.id} was invalid on re-measurement: its score does not reproduce`,
      ss: 0,
      dof: 0,
    };
  }
  if (iv.length === 0) {
    return {
      ...base,
      mean_challenger: meanOrNaN(cv),
      mean_incumbent: null,
      difference: null,
      noise: 0,
      noise_source: 'rounds',
      standard_error: 0,
      decision: 'promote',
      reason: `${input.incumbent.id} was invalid on every re-measurement; ${input.challenger.id} was valid on all`,
      ss: 0,
      dof: 0,
    };
  }
  const mc = meanOrNaN(cv);
  const mi = meanOrNaN(iv);
  const ss = sumSq(cv, mc) + sumSq(iv, mi);
  const dof = cv.length - 1 + iv.length - 1;
  const local = dof > 0 ? ss / dof : 0;
  const fromEvaluator = reported.length ? meanOrNaN(reported.map((x) => x * x)) : 0;
  const fromRun = input.run.dof > 0 ? input.run.ss / input.run.dof : 0;
  const variance = Math.max(local, fromEvaluator, fromRun);
  const source: Comparison['noise_source'] =
    variance === local ? 'rounds' : variance === fromEvaluator ? 'evaluator' : 'run';
  const noise = Math.sqrt(variance);
  const se = noise * Math.sqrt(1 / cv.length + 1 / iv.length);
  const d = mc - mi;
  const promote = d > 0 && d > input.z * se;
  const show = (x: number) => x.toFixed(4);
  return {
    ...base,
    mean_challenger: mc,
    mean_incumbent: mi,
    difference: d,
    noise,
    noise_source: source,
    standard_error: se,
    decision: promote ? 'promote' : 'keep',
    reason: `re-measured ${cv.length}+${iv.length} times: ${input.challenger.id} − ${input.incumbent.id} = ${d >= 0 ? '+' : ''}${show(d)}, ${promote ? '>' : '≤'} ${input.z} × SE ${show(se)} (σ ${show(noise)} per measurement, from the ${source === 'rounds' ? "rounds' spread" : source === 'evaluator' ? "evaluator's score_noise" : "run's earlier comparisons"})`,
    ss,
    dof,
  };
}

/** The rule in one sentence, for the prompt and the README. */
export function selectionRule(rounds: number, z: number): string {
  return rounds > 0
    ? `A program whose score beats the best's, or falls short of it by less than ${z} standard errors, is re-measured ${rounds} more times against the best, interleaved (ABBA order); it becomes the best only if the mean of its re-measurements exceeds the best's by more than ${z} standard errors of the difference (noise per measurement: the largest of the rounds' spread, the evaluator's score_noise, and the run's earlier comparisons); the first, possibly lucky measurement is not counted. A gain within the timing noise is kept out of the best.`
    : 'The best is the program with the highest single measurement (re-measurement is off: selection.rounds = 0).';
}

const sumSq = (xs: number[], m: number): number => xs.reduce((a, x) => a + (x - m) ** 2, 0);
