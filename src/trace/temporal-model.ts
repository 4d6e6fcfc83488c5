import { assert, check } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * Generator v2: a per-step routing process with real temporal dynamics. Every parameter of
 * `TemporalParams` is estimated from a real per-step series by `fitTemporalParams`
 * (temporal-fit.ts); nothing here is set by hand.
 *
 * Per layer l, step s (one step = one request's prefill, as in the real series):
 *   log popularity  π_s = base + workload[m_s] + drift_s        (then softmax over experts)
 *   m_s             Markov chain over `workloads` profiles, leaving its workload with probability
 *                   `workloadSwitch` per step (to any other, uniformly): prompt-to-prompt runs of
 *                   related requests (chat, code, …);
 *   drift_s         per-expert mean-reverting walk (AR(1) per step), stationary sd `driftSd`,
 *                   persistence `driftPersistence` per step: slow change of expert popularity;
 *   n_s tokens      heavy-tailed request lengths: with probability tokensTailShare a Pareto draw
 *                   above tokensTailFrom (index tokensTailIndex), else a lognormal body
 *                   (log median tokensLogMedian, sd tokensLogSd) below it; rounded, clipped to
 *                   [tokensMin, tokensMax];
 *   θ_s             Dirichlet(concentration · softmax(π_s)): the request's own expert mix
 *                   (requests differ from each other far more than multinomial noise says);
 *   counts          each of the n_s tokens picks topK distinct experts with probabilities θ_s.
 * A window's loads are the sum of its steps, so its sampling noise depends on how many requests
 * and tokens it holds — the multinomial/Dirichlet-multinomial noise the real windows carry.
 */
export interface TemporalParams {
  /** Lognormal body of the tokens per request: log median and log sd. */
  tokensLogMedian: number;
  tokensLogSd: number;
  /** Pareto tail: share of requests above `tokensTailFrom` tokens, and its index α (P(n > x) ∝ x^−α). */
  tokensTailFrom: number;
  tokensTailShare: number;
  tokensTailIndex: number;
  tokensMin: number;
  tokensMax: number;
  /** Dirichlet concentration of one step's expert shares around the popularity (at `fitExperts`). */
  concentration: number;
  /** Number of workload profiles the steps switch between. */
  workloads: number;
  /** Per-expert sd of a workload's log-popularity offset. */
  workloadSd: number;
  /** Probability per step of switching to another workload. */
  workloadSwitch: number;
  /** Stationary per-expert sd of the log-popularity drift. */
  driftSd: number;
  /** AR(1) coefficient of the drift per step (→ 1: slow). */
  driftPersistence: number;
  /** Per-layer sd of the base log popularity (used when no anchor profile is given). */
  baseSd: number;
  /** Experts and topK of the series the parameters were fitted on (for scaling to another shape). */
  fitExperts: number;
  fitTopK: number;
}

export interface SeriesShape {
  layers: number;
  experts: number;
  groups: number;
  topK: number;
}

export interface TemporalRunOptions {
  seed: number;
  /** Output matrices: windows of `stepsPerWindow` steps (1 = per-step output). */
  windows: number;
  stepsPerWindow: number;
}

export interface TemporalSeries {
  /** [windows][layers][experts] hits. */
  loads: Float32Array;
  /** Tokens of every step, in order. */
  tokens: Int32Array;
  /** Workload of every step. */
  workload: Int32Array;
}

export function validateTemporalParams(p: TemporalParams): void {
  const finite = (k: keyof TemporalParams) => check(Number.isFinite(p[k]), `${k} must be a finite number`);
  for (const k of Object.keys(p) as (keyof TemporalParams)[]) finite(k);
  check(p.tokensMin >= 1 && p.tokensMin <= p.tokensMax, 'tokensMin must be in [1, tokensMax]');
  check(p.tokensLogSd >= 0, `tokensLogSd must be ≥ 0, got ${p.tokensLogSd}`);
  check(p.tokensTailFrom >= 1, `tokensTailFrom must be ≥ 1, got ${p.tokensTailFrom}`);
  check(p.tokensTailShare >= 0 && p.tokensTailShare < 1, 'tokensTailShare must be in [0, 1)');
  check(p.tokensTailIndex > 0, `tokensTailIndex must be > 0, got ${p.tokensTailIndex}`);
  check(p.concentration > 0, `concentration must be > 0, got ${p.concentration}`);
  check(Number.isInteger(p.workloads) && p.workloads >= 1, 'workloads must be a positive integer');
  check(p.workloadSd >= 0 && p.driftSd >= 0 && p.baseSd >= 0, 'standard deviations must be ≥ 0');
  check(p.workloadSwitch >= 0 && p.workloadSwitch <= 1, 'workloadSwitch must be in [0, 1]');
  check(p.driftPersistence >= 0 && p.driftPersistence < 1, 'driftPersistence must be in [0, 1)');
  check(p.fitExperts >= 1 && p.fitTopK >= 1, 'fitExperts and fitTopK must be ≥ 1');
}

/**
 * Scale factors that carry a fit to another shape while keeping per-expert statistics: hits per
 * expert per step (tokens × topK / experts) and the relative spread of one step's shares
 * (Dirichlet variance / p² ≈ experts / concentration).
 */
export function shapeScaling(
  p: TemporalParams,
  shape: SeriesShape,
): { tokens: number; concentration: number } {
  return {
    tokens: p.fitTopK / p.fitExperts / (shape.topK / shape.experts),
    concentration: (p.concentration * shape.experts) / p.fitExperts,
  };
}

/** A child RNG per component, so changing e.g. the window count leaves the profiles alone. */
function streams(seed: number) {
  const root = new Rng(seed ^ 0x7e3a_2b91);
  const next = () => root.child();
  return {
    profiles: next(),
    workload: next(),
    drift: next(),
    tokens: next(),
    mix: next(),
    picks: next(),
  };
}

/** A fresh base log-popularity [layers × experts]: N(0, baseSd²) per expert, centered per layer. */
export function freshBase(shape: SeriesShape, baseSd: number, seed: number): Float64Array {
  const rng = new Rng((seed ^ 0x0ba5_e5d0) >>> 0);
  const { layers, experts } = shape;
  const out = new Float64Array(layers * experts);
  for (let l = 0; l < layers; l++) {
    let mean = 0;
    for (let e = 0; e < experts; e++) {
      out[l * experts + e] = baseSd * rng.normal();
      mean += out[l * experts + e]! / experts;
    }
    for (let e = 0; e < experts; e++) out[l * experts + e]! -= mean;
  }
  return out;
}

/** One request's tokens (before scaling and clipping): Pareto tail or lognormal body below it. */
function drawTokens(p: TemporalParams, rng: Rng): number {
  if (rng.next() < p.tokensTailShare) return p.tokensTailFrom * (1 - rng.next()) ** (-1 / p.tokensTailIndex);
  // The body is the lognormal conditioned on ≤ tokensTailFrom (rejection; accepts ≈ 90 % on the fit).
  for (let i = 0; i < 1000; i++) {
    const n = Math.exp(p.tokensLogMedian + p.tokensLogSd * rng.normal());
    if (n <= p.tokensTailFrom) return n;
  }
  return p.tokensTailFrom;
}

/** Gamma(shape, 1) (Marsaglia–Tsang; shape < 1 by the U^(1/a) boost). */
function gamma(rng: Rng, a: number): number {
  if (a < 1) return gamma(rng, a + 1) * (1 - rng.next()) ** (1 / a);
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/**
 * Runs the process for windows × stepsPerWindow steps. `base` is the base log popularity
 * [layers × experts] (an anchor-derived profile or `freshBase`).
 */
export function generateTemporal(
  shape: SeriesShape,
  base: Float64Array,
  params: TemporalParams,
  run: TemporalRunOptions,
): TemporalSeries {
  validateTemporalParams(params);
  const { layers, experts, topK } = shape;
  assert(base.length === layers * experts, `base profile must hold ${layers}×${experts} values`);
  check(topK >= 1 && topK <= experts, `topK must be in [1, experts], got ${topK}`);
  check(Number.isInteger(run.seed), `--seed must be an integer, got ${run.seed}`);
  for (const k of ['windows', 'stepsPerWindow'] as const)
    check(Number.isInteger(run[k]) && run[k] >= 1, `${k} must be a positive integer, got ${run[k]}`);
  const p = params;
  const scale = shapeScaling(p, shape);
  const rng = streams(run.seed);
  const size = layers * experts;
  const steps = run.windows * run.stepsPerWindow;

  // Workload profiles: centered across workloads and rescaled so each offset has variance workloadSd².
  const M = p.workloads;
  const profiles = new Float64Array(M * size);
  for (let i = 0; i < profiles.length; i++) profiles[i] = rng.profiles.normal();
  if (M > 1) {
    const rescale = Math.sqrt(M / (M - 1));
    for (let i = 0; i < size; i++) {
      let mean = 0;
      for (let m = 0; m < M; m++) mean += profiles[m * size + i]! / M;
      for (let m = 0; m < M; m++)
        profiles[m * size + i] = (profiles[m * size + i]! - mean) * rescale * p.workloadSd;
    }
  } else profiles.fill(0);

  const drift = new Float64Array(size);
  for (let i = 0; i < size; i++) drift[i] = p.driftSd * rng.drift.normal();
  const innovation = p.driftSd * Math.sqrt(1 - p.driftPersistence ** 2);

  const loads = new Float32Array(run.windows * size);
  const tokens = new Int32Array(steps);
  const workload = new Int32Array(steps);
  const theta = new Float64Array(experts);
  const counts = new Float64Array(size);
  const hits = new Float64Array(experts);
  let m = rng.workload.int(M);

  for (let s = 0; s < steps; s++) {
    if (s > 0) {
      for (let i = 0; i < size; i++)
        drift[i] = p.driftPersistence * drift[i]! + innovation * rng.drift.normal();
      if (M > 1 && rng.workload.next() < p.workloadSwitch) m = (m + 1 + rng.workload.int(M - 1)) % M;
    }
    workload[s] = m;
    const n = Math.min(
      Math.round(scale.tokens * p.tokensMax),
      Math.max(
        Math.max(1, Math.round(scale.tokens * p.tokensMin)),
        Math.round(scale.tokens * drawTokens(p, rng.tokens)),
      ),
    );
    tokens[s] = n;
    const k = Math.min(topK, experts);
    for (let l = 0; l < layers; l++) {
      const row = l * experts;
      // Popularity (softmax of the log popularity), then the request's own mix θ ~ Dirichlet(c·pop).
      let max = Number.NEGATIVE_INFINITY;
      for (let e = 0; e < experts; e++) {
        const v = base[row + e]! + profiles[m * size + row + e]! + drift[row + e]!;
        theta[e] = v;
        if (v > max) max = v;
      }
      let sum = 0;
      for (let e = 0; e < experts; e++) {
        theta[e] = Math.exp(theta[e]! - max);
        sum += theta[e]!;
      }
      let tsum = 0;
      for (let e = 0; e < experts; e++) {
        // A floor keeps the gamma shape positive and the draw finite for vanishing popularity.
        theta[e] = gamma(rng.mix, Math.max(1e-3, (scale.concentration * theta[e]!) / sum));
        tsum += theta[e]!;
      }
      if (!(tsum > 0)) for (let e = 0; e < experts; e++) theta[e] = 1;
      sampleHits(theta, tsum > 0 ? tsum : experts, n, k, rng.picks, counts, row, hits);
    }
    if ((s + 1) % run.stepsPerWindow === 0) {
      const w = (s + 1) / run.stepsPerWindow - 1;
      const out = loads.subarray(w * size, (w + 1) * size);
      for (let i = 0; i < size; i++) out[i] = counts[i]!;
      counts.fill(0);
    }
  }
  return { loads, tokens, workload };
}

/**
 * Adds one step's hits of one layer to `counts[row …]`: n tokens × k experts, a multinomial draw of
 * n·k hits from the shares θ (sum `total`), drawn as conditional binomials expert by expert (exact
 * for small means, normal approximation above 30), no expert above n hits (a token picks an expert
 * at most once; what the cap removes goes to the experts with room, in order).
 */
function sampleHits(
  theta: Float64Array,
  total: number,
  n: number,
  k: number,
  rng: Rng,
  counts: Float64Array,
  row: number,
  hits: Float64Array,
): void {
  const E = theta.length;
  let left = n * k;
  let mass = total;
  for (let e = 0; e < E; e++) {
    const q = e === E - 1 || mass <= 0 ? 1 : Math.min(1, theta[e]! / mass);
    mass -= theta[e]!;
    const c = left <= 0 ? 0 : Math.min(n, q >= 1 ? left : binomial(rng, left, q));
    hits[e] = c;
    left -= c;
  }
  for (let e = 0; e < E && left > 0; e++) {
    const add = Math.min(n - hits[e]!, left);
    hits[e]! += add;
    left -= add;
  }
  for (let e = 0; e < E; e++) counts[row + e]! += hits[e]!;
}

/** Binomial(n, p): inversion for means up to 30, else a rounded normal clipped to [0, n]. */
function binomial(rng: Rng, n: number, p: number): number {
  if (p <= 0 || n <= 0) return 0;
  const mean = n * p;
  if (mean > 30) {
    const v = Math.round(mean + Math.sqrt(mean * (1 - p)) * rng.normal());
    return Math.min(n, Math.max(0, v));
  }
  // Inversion: walk the pmf from 0 (expected steps ≈ mean).
  const u = rng.next();
  const r = p / (1 - p);
  let pmf = (1 - p) ** n;
  let cdf = pmf;
  let x = 0;
  while (u > cdf && x < n) {
    pmf *= (r * (n - x)) / (x + 1);
    x++;
    cdf += pmf;
    if (pmf < 1e-300 && x > mean) break;
  }
  return x;
}
