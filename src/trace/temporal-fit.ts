import { check } from '../util/errors.js';
import type { TemporalParams } from './temporal-model.js';
import type { Trace } from './trace.js';

/**
 * Estimates the generator-v2 parameters (temporal-model.ts) from a real per-step series.
 *
 * 1. Tokens per step: a lognormal body (median and interquartile range of log tokens) and a Pareto
 *    tail above the 90th percentile (Hill estimator of its index); min and max as observed.
 * 2. Base: the per-layer sd of the series' long-run log shares (median over layers), less what the
 *    averaging of the two workloads adds to it (see step 3).
 * 3. Temporal structure, from the autocovariance across steps of the relative share deviations
 *    y = share/longrun − 1 (≈ log deviation), pooled over layers and experts with weights ∝ the
 *    long-run share. Between different steps the request-level and token-level noise is
 *    independent, so for lags k ≥ 1 the autocovariance is the persistent part alone:
 *       c(k) = workloadSd² · λ^k + driftSd² · φ^k,  λ = 1 − switch·M/(M−1),  φ = driftPersistence.
 *    (λ, φ) are fitted by grid search with (workloadSd², driftSd²) by non-negative least squares.
 *    M = 2 workloads is fixed (the real series mixes chat and code prompts). The variances are of
 *    relative deviations; they are converted to the log-offset sds the generator uses
 *    (workload: ±tanh of the offset; drift: lognormal, var = e^{σ²} − 1).
 * 4. Concentration: per step, Pearson's X² of the counts against the long-run shares (mean over
 *    layers) is ≈ (E − K) + N·(E − 1)/(1 + c) + N·(workloadSd² + driftSd²) for N = tokens × K hits,
 *    so 1/(1 + c) follows from the sums over all steps (method of moments).
 * The fit of a series generated with known parameters recovers them (test/trace-temporal.test.ts).
 */
export interface TemporalFit {
  params: TemporalParams;
  /** The autocovariance the temporal fit used: lag bins [from, to], value, and the fitted curve. */
  autocovariance: { from: number; to: number; value: number; fitted: number }[];
  steps: number;
  tokens: number;
}

export interface FitOptions {
  /** Tokens of each step; default: each step's first-layer hits / topK. */
  tokensPerStep?: readonly number[];
  /** Longest lag (steps) in the autocovariance; default a quarter of the series. */
  maxLag?: number;
}

export function fitTemporalParams(trace: Trace, opts: FitOptions = {}): TemporalFit {
  const m = trace.manifest;
  const { layers: L, experts: E, topK: K, steps: S } = m;
  check(
    m.granularity === 'step',
    `trace '${m.name}' is a ${m.granularity} trace; the fit needs one step per request`,
  );
  check(S >= 64, `trace '${m.name}' has ${S} steps; the fit needs at least 64`);
  const size = L * E;
  const tokens = opts.tokensPerStep
    ? Float64Array.from(opts.tokensPerStep)
    : Float64Array.from({ length: S }, (_, s) => {
        let h = 0;
        for (let e = 0; e < E; e++) h += trace.loads[s * size + e]!;
        return h / K;
      });
  check(tokens.length === S, `tokens per step: ${tokens.length} values for ${S} steps`);
  // Two workloads (chat, code): then a step's relative deviation from the long-run share is
  // ±tanh(offset), which logSdOfSwitch inverts.
  const M = 2;

  // 1. Tokens: lognormal body from the median and interquartile range of log tokens; Pareto tail
  // above the 90th percentile, its index by the Hill estimator.
  let tMin = Number.POSITIVE_INFINITY;
  let tMax = 0;
  let totalTokens = 0;
  for (const n of tokens) {
    check(n >= 1, 'every step needs at least one token');
    tMin = Math.min(tMin, n);
    tMax = Math.max(tMax, n);
    totalTokens += n;
  }
  const sortedTokens = Float64Array.from(tokens).sort();
  const tailFrom = quantile(sortedTokens, 0.9);
  let tailCount = 0;
  let hill = 0;
  for (const n of sortedTokens) {
    if (n > tailFrom) {
      tailCount++;
      hill += Math.log(n / tailFrom);
    }
  }
  const logMedian = Math.log(quantile(sortedTokens, 0.5));
  const logSd = (Math.log(quantile(sortedTokens, 0.75)) - Math.log(quantile(sortedTokens, 0.25))) / 1.349;

  // 2. Long-run shares and the base spread.
  const longrun = new Float64Array(size);
  for (let s = 0; s < S; s++) for (let i = 0; i < size; i++) longrun[i]! += trace.loads[s * size + i]!;
  const sds: number[] = [];
  for (let l = 0; l < L; l++) {
    let t = 0;
    for (let e = 0; e < E; e++) t += longrun[l * E + e]!;
    check(t > 0, `trace '${m.name}' has no load in layer ${l}`);
    let mean = 0;
    for (let e = 0; e < E; e++) {
      longrun[l * E + e]! /= t;
      mean += Math.log(longrun[l * E + e]! + 1e-12) / E;
    }
    let v = 0;
    for (let e = 0; e < E; e++) v += (Math.log(longrun[l * E + e]! + 1e-12) - mean) ** 2 / E;
    sds.push(Math.sqrt(v));
  }
  sds.sort((a, b) => a - b);
  const baseSd = sds[Math.floor(L / 2)]!;

  // Relative deviations per step, and hits per layer.
  const y = new Float64Array(S * size);
  const hits = new Float64Array(S * L);
  for (let s = 0; s < S; s++) {
    for (let l = 0; l < L; l++) {
      let h = 0;
      for (let e = 0; e < E; e++) h += trace.loads[s * size + l * E + e]!;
      hits[s * L + l] = h;
      for (let e = 0; e < E; e++) {
        const p = longrun[l * E + e]!;
        y[s * size + l * E + e] = h > 0 && p > 0 ? trace.loads[s * size + l * E + e]! / h / p - 1 : 0;
      }
    }
  }
  // Step weights damp the noisiest (shortest) requests; any fixed weights keep c(k) unbiased.
  const weight = Float64Array.from(tokens, (n) => n / (n + 50));
  // Center with the same weights: a routing bias that depends on the request length alone (the chat
  // template's fixed tokens weigh more in a short prompt) is then mean-zero, and since lengths are
  // independent between steps it adds nothing to c(k) for k ≥ 1. The X² below uses uncentered y.
  const yc = new Float64Array(S * size);
  {
    const mean = new Float64Array(size);
    let wsum = 0;
    for (let s = 0; s < S; s++) {
      for (let i = 0; i < size; i++) mean[i]! += weight[s]! * y[s * size + i]!;
      wsum += weight[s]!;
    }
    for (let s = 0; s < S; s++)
      for (let i = 0; i < size; i++) yc[s * size + i] = y[s * size + i]! - mean[i]! / wsum;
  }
  const autocov = (k: number): number => {
    let num = 0;
    let den = 0;
    for (let s = 0; s + k < S; s++) {
      const a = s * size;
      const b = (s + k) * size;
      let dot = 0;
      for (let i = 0; i < size; i++) dot += longrun[i]! * yc[a + i]! * yc[b + i]!;
      const w = weight[s]! * weight[s + k]!;
      num += (w * dot) / L;
      den += w;
    }
    return den > 0 ? num / den : 0;
  };

  // 3. Lag bins: 1..4 single, then doubling, up to maxLag.
  const maxLag = Math.max(8, Math.min(opts.maxLag ?? Math.floor(S / 4), S - 1));
  const bins: { from: number; to: number; value: number; fitted: number }[] = [];
  for (let from = 1; from <= maxLag; ) {
    const to = from <= 4 ? from : Math.min(maxLag, 2 * from - 1);
    let v = 0;
    const lags = lagsOf(from, to);
    for (const k of lags) v += autocov(k) / lags.length;
    bins.push({ from, to, value: v, fitted: 0 });
    from = to + 1;
  }
  const binMean = (r: number, b: { from: number; to: number }) => {
    const lags = lagsOf(b.from, b.to);
    let v = 0;
    for (const k of lags) v += r ** k / lags.length;
    return v;
  };
  let best = { err: Number.POSITIVE_INFINITY, lambda: 0, phi: 0, a: 0, b: 0 };
  const lambdas = Array.from({ length: 200 }, (_, i) => i / 200);
  // Drift is the slow part by definition: time constants from half a window (50 steps) up; what
  // decays faster is request-to-request structure, which the workload chain models.
  const taus = Array.from({ length: 65 }, (_, i) => 50 * 10 ** (i / 20)); // 50 … 5e4 steps
  for (const lambda of lambdas) {
    const fast = bins.map((b) => binMean(lambda, b));
    for (const tau of taus) {
      const phi = Math.exp(-1 / tau);
      if (phi <= lambda) continue;
      const slow = bins.map((b) => binMean(phi, b));
      const [a, b] = nnls2(
        fast,
        slow,
        bins.map((x) => x.value),
      );
      let err = 0;
      for (let i = 0; i < bins.length; i++) err += (a * fast[i]! + b * slow[i]! - bins[i]!.value) ** 2;
      if (err < best.err) best = { err, lambda, phi, a, b };
    }
  }
  for (const b of bins) b.fitted = best.a * binMean(best.lambda, b) + best.b * binMean(best.phi, b);
  const persistent = best.a + best.b;

  // 4. Concentration from the per-step X² (mean over layers).
  let excess = 0;
  let hitsSum = 0;
  for (let s = 0; s < S; s++) {
    for (let l = 0; l < L; l++) {
      const N = hits[s * L + l]!;
      if (N <= 0) continue;
      let x2 = 0;
      for (let e = 0; e < E; e++) {
        const p = longrun[l * E + e]!;
        if (p > 0) x2 += N * p * y[s * size + l * E + e]! ** 2;
      }
      excess += (x2 - (E - K) - N * persistent) / L;
      hitsSum += N / L;
    }
  }
  const inv = Math.max(1e-6, excess / ((E - 1) * hitsSum));
  const concentration = 1 / inv - 1;

  // The long-run shares average the two workloads, which adds Var[log cosh(u)] to their log spread:
  // the base is what remains.
  const workloadSd = logSdOfSwitch(best.a);
  const base = Math.sqrt(Math.max(0, baseSd ** 2 - varLogCosh(workloadSd)));
  const round = (x: number, d = 6) => Number(x.toPrecision(d));
  return {
    params: {
      tokensLogMedian: round(logMedian),
      tokensLogSd: round(logSd),
      tokensTailFrom: round(tailFrom),
      tokensTailShare: round(tailCount / S),
      tokensTailIndex: round(hill > 0 ? tailCount / hill : 1e3),
      tokensMin: tMin,
      tokensMax: tMax,
      concentration: round(Math.max(1e-3, concentration)),
      workloads: M,
      workloadSd: round(workloadSd),
      workloadSwitch: round(Math.min(1, ((1 - best.lambda) * (M - 1)) / M)),
      driftSd: round(logSdOfDrift(best.b)),
      driftPersistence: round(best.phi),
      baseSd: round(base),
      fitExperts: E,
      fitTopK: K,
    },
    autocovariance: bins,
    steps: S,
    tokens: totalTokens,
  };
}

function lagsOf(from: number, to: number): number[] {
  // At most 8 lags per bin keeps long bins cheap; they are spread evenly over the bin.
  const n = Math.min(8, to - from + 1);
  return Array.from({ length: n }, (_, i) => from + Math.round((i * (to - from)) / Math.max(1, n - 1)));
}

/** min ‖a·u + b·v − t‖² over a, b ≥ 0. */
function nnls2(u: number[], v: number[], t: number[]): [number, number] {
  const dot = (x: number[], z: number[]) => x.reduce((s, xi, i) => s + xi * z[i]!, 0);
  const uu = dot(u, u);
  const vv = dot(v, v);
  const uv = dot(u, v);
  const ut = dot(u, t);
  const vt = dot(v, t);
  const det = uu * vv - uv * uv;
  if (det > 1e-18) {
    const a = (ut * vv - vt * uv) / det;
    const b = (vt * uu - ut * uv) / det;
    if (a >= 0 && b >= 0) return [a, b];
  }
  // One of them is 0: take the better single-term fit.
  const a1 = uu > 0 ? Math.max(0, ut / uu) : 0;
  const b1 = vv > 0 ? Math.max(0, vt / vv) : 0;
  const e1 = dot(t, t) - 2 * a1 * ut + a1 * a1 * uu;
  const e2 = dot(t, t) - 2 * b1 * vt + b1 * b1 * vv;
  return e1 <= e2 ? [a1, 0] : [0, b1];
}

/**
 * The log-offset sd σ of two symmetric workloads whose relative share deviation has (share-weighted)
 * variance v: with offsets ±u (u ~ N(0, σ²)) and equal time in each, share/long-run − 1 = ±tanh(u)
 * and the long-run share carries a factor cosh(u), so σ solves E[cosh·tanh²(σZ)] / E[cosh(σZ)] = v
 * (bisection; a 401-point quadrature of Z over ±6).
 */
function logSdOfSwitch(v: number): number {
  if (!(v > 0)) return 0;
  const meanTanh2 = (sigma: number) => {
    let num = 0;
    let den = 0;
    for (let i = -200; i <= 200; i++) {
      const z = (6 * i) / 200;
      const w = Math.exp(-0.5 * z * z);
      const c = Math.cosh(sigma * z);
      num += w * c * Math.tanh(sigma * z) ** 2;
      den += w * c;
    }
    return num / den;
  };
  if (v >= meanTanh2(20)) return 20;
  return solveIncreasing(meanTanh2, v, 20);
}

/**
 * The log sd σ of a lognormal drift whose share-weighted relative deviation has variance v:
 * E[e^d (e^d / E e^d − 1)²] / E e^d = e^{3σ²} − 2e^{σ²} + 1 for d ~ N(0, σ²), solved by bisection.
 */
function logSdOfDrift(v: number): number {
  if (!(v > 0)) return 0;
  return solveIncreasing((s) => Math.exp(3 * s * s) - 2 * Math.exp(s * s) + 1, v, 3);
}

/** The σ in [0, hi] where the increasing f reaches v (60 bisection steps: to double precision). */
function solveIncreasing(f: (sigma: number) => number, v: number, hi: number): number {
  let lo = 0;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < v) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Var[log cosh(σZ)], Z ~ N(0, 1) (401-point quadrature over ±6). */
export function varLogCosh(sigma: number): number {
  let m1 = 0;
  let m2 = 0;
  let den = 0;
  for (let i = -200; i <= 200; i++) {
    const z = (6 * i) / 200;
    const w = Math.exp(-0.5 * z * z);
    const v = Math.log(Math.cosh(sigma * z));
    m1 += w * v;
    m2 += w * v * v;
    den += w;
  }
  return m2 / den - (m1 / den) ** 2;
}

/** Quantile of sorted values, linear between order statistics (as numpy's default). */
function quantile(sorted: Float64Array, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}
