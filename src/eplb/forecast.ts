/**
 * A forecast of the next window's expert loads from the windows seen so far.
 *
 * Why: a placement computed from window k is used on window k+1. On real serving series most of the
 * difference between two windows is sampling noise (a window of ~10k tokens draws each expert's count
 * from a multinomial) plus slow drift, so the latest window alone is a noisy forecast; an average of
 * recent windows removes noise but lags behind drift and shifts. The right trade-off depends on the
 * series (tokens per window, how fast popularity moves), so it is chosen from the history itself: the
 * exponentially weighted mean whose rate had the smallest one-step-ahead error over the history.
 *
 * Everything works on shares (each layer's loads divided by the layer's total) so that windows of
 * different size — or rescaled by the caller — weigh the same.
 */

/**
 * Candidate rates: the weight of the latest window in the weighted mean (1 = the latest window only;
 * small = close to the plain mean of the history). Spaced roughly evenly in effective length 1/rate.
 */
export const FORECAST_RATES: readonly number[] = [1, 0.7, 0.5, 0.35, 0.25, 0.17, 0.1, 0.05];

/** The rate used when the history is too short to judge any (fewer than 3 windows). */
export const PRIOR_RATE = 0.5;

export interface ForecastOptions {
  /** Candidate rates (each in (0, 1]); default FORECAST_RATES. */
  rates?: readonly number[];
  /**
   * How much each layer's own error counts against the error pooled over all layers when its rate
   * is chosen: 0 = one rate for every layer, 1 = each layer alone. Default 0.5: a layer's handful of
   * error terms is noisy, the pooled one is biased for layers that move differently.
   */
  layerWeight?: number;
}

export interface Forecast {
  /** [layers × experts]: forecast shares of the next window (each layer sums to 1, or 0 without data). */
  shares: Float64Array;
  /** The chosen rate per layer. */
  rate: Float64Array;
  /**
   * Per (layer, expert): the mean squared one-step-ahead error of the chosen rate over the history,
   * shrunk toward a per-layer model proportional to the share (multinomial noise scales with the
   * share); zero when the history has one window.
   */
  errorVariance: Float64Array;
  /** How many one-step errors the choice was based on (history length − 1). */
  errorTerms: number;
}

/** Per-layer shares of one window: loads / layer total (a layer without load stays all-zero). */
export function windowShares(loads: Float32Array, layers: number, experts: number): Float64Array {
  const out = new Float64Array(layers * experts);
  for (let l = 0; l < layers; l++) {
    let total = 0;
    for (let e = 0; e < experts; e++) total += loads[l * experts + e]!;
    if (!(total > 0)) continue;
    for (let e = 0; e < experts; e++) out[l * experts + e] = loads[l * experts + e]! / total;
  }
  return out;
}

/**
 * The forecast of the window after the last of `history` (oldest first). Deterministic; O(H·L·E·rates).
 */
export function forecastShares(
  history: readonly Float32Array[],
  layers: number,
  experts: number,
  options: ForecastOptions = {},
): Forecast {
  const shares = history.map((w) => windowShares(w, layers, experts));
  return forecastFromShares(shares, layers, experts, options, true);
}

/**
 * forecastShares on windows already turned into shares; `variance` false skips errorVariance (zeros).
 * `onPrefix(t, forecast)`, for t = 1 … T−1, receives the forecast that windows 0 … t−1 alone give
 * (what forecastFromShares(shares.slice(0, t)) returns), from the same running sums: one pass
 * instead of one per prefix.
 */
function forecastFromShares(
  shares: readonly Float64Array[],
  layers: number,
  experts: number,
  options: ForecastOptions,
  variance: boolean,
  onPrefix?: (t: number, forecast: Float64Array) => void,
): Forecast {
  const rates = options.rates ?? FORECAST_RATES;
  const layerWeight = options.layerWeight ?? 0.5;
  const T = shares.length;
  const LE = layers * experts;
  const R = rates.length;
  // sse[r·L + l]: squared one-step errors of rate r in layer l, over t = 2..T−1 (0-based: forecasts
  // made from windows 0..t−1 and compared with window t). A forecast from one window is that window
  // whatever the rate, so t = 1 does not discriminate between rates and is left out of the choice.
  const sse = new Float64Array(R * layers);
  // The running weighted sums (numerator per value, denominator per rate).
  const num = new Float64Array(R * LE);
  const den = new Float64Array(R);
  for (let t = 0; t < T; t++) {
    const s = shares[t]!;
    if (onPrefix && t >= 1) {
      const chosen = chooseRates(sse, t, rates, layers, layerWeight);
      onPrefix(t, combine(num, den, chosen, layers, experts));
    }
    for (let r = 0; r < R; r++) {
      const keep = 1 - rates[r]!;
      const n = num.subarray(r * LE, (r + 1) * LE);
      if (t >= 2) {
        const d = den[r]!;
        for (let l = 0; l < layers; l++) {
          let err = 0;
          for (let e = 0; e < experts; e++) {
            const i = l * experts + e;
            const diff = s[i]! - n[i]! / d;
            err += diff * diff;
          }
          sse[r * layers + l]! += err;
        }
      }
      for (let i = 0; i < LE; i++) n[i] = keep * n[i]! + s[i]!;
      den[r] = keep * den[r]! + 1;
    }
  }
  const chosen = chooseRates(sse, T, rates, layers, layerWeight);
  return {
    shares: combine(num, den, chosen, layers, experts),
    // With too short a history the rate is the prior itself, even when `rates` lacks it.
    rate:
      T < 3
        ? new Float64Array(layers).fill(T === 1 ? 1 : PRIOR_RATE)
        : Float64Array.from(chosen, (r) => rates[r]!),
    errorVariance: variance ? errorVariance(shares, chosen, rates, layers, experts) : new Float64Array(LE),
    errorTerms: Math.max(0, T - 1),
  };
}

/**
 * The rate index per layer after T windows: the one whose one-step errors `sse` (t = 2 … T−1) are
 * smallest, a layer's own weighed `layerWeight` against the mean over layers; the prior rate (the
 * latest window alone for T = 1) when T < 3 leaves nothing to judge by.
 */
function chooseRates(
  sse: Float64Array,
  T: number,
  rates: readonly number[],
  layers: number,
  layerWeight: number,
): Int32Array {
  const R = rates.length;
  const chosen = new Int32Array(layers);
  if (T < 3) {
    // Nothing to judge by: the prior (the latest window alone when there is only one).
    const prior = T === 1 ? 1 : PRIOR_RATE;
    let best = 0;
    for (let r = 1; r < R; r++) if (Math.abs(rates[r]! - prior) < Math.abs(rates[best]! - prior)) best = r;
    chosen.fill(best);
    return chosen;
  }
  const pooled = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    for (let l = 0; l < layers; l++) pooled[r]! += sse[r * layers + l]!;
    pooled[r] = pooled[r]! / layers;
  }
  for (let l = 0; l < layers; l++) {
    let best = 0;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let r = 0; r < R; r++) {
      const score = layerWeight * sse[r * layers + l]! + (1 - layerWeight) * pooled[r]!;
      // Strictly smaller: ties keep the earlier (faster) rate, so the result is deterministic.
      if (score < bestScore) {
        bestScore = score;
        best = r;
      }
    }
    chosen[l] = best;
  }
  return chosen;
}

/** The weighted means of the chosen rate per layer: num[r] / den[r]. */
function combine(
  num: Float64Array,
  den: Float64Array,
  chosen: Int32Array,
  layers: number,
  experts: number,
): Float64Array {
  const LE = layers * experts;
  const out = new Float64Array(LE);
  for (let l = 0; l < layers; l++) {
    const r = chosen[l]!;
    const d = den[r]!;
    for (let e = 0; e < experts; e++) {
      const i = l * experts + e;
      out[i] = num[r * LE + i]! / d;
    }
  }
  return out;
}

/**
 * The forecast error's variance per value for the chosen rates: the mean squared one-step error over
 * the history, shrunk halfway toward c_l · share (the shape of multinomial sampling noise, with c_l
 * fitted to the layer's total error), since a handful of error terms per value is itself noisy.
 */
function errorVariance(
  shares: readonly Float64Array[],
  chosen: Int32Array,
  rates: readonly number[],
  layers: number,
  experts: number,
): Float64Array {
  const T = shares.length;
  const out = new Float64Array(layers * experts);
  if (T < 2) return out;
  const sum = new Float64Array(experts);
  const f = new Float64Array(experts);
  for (let l = 0; l < layers; l++) {
    const keep = 1 - rates[chosen[l]!]!;
    sum.fill(0);
    const sq = out.subarray(l * experts, (l + 1) * experts);
    let d = 0;
    let shareMass = 0;
    for (let t = 0; t < T; t++) {
      const s = shares[t]!;
      if (t >= 1) {
        for (let e = 0; e < experts; e++) {
          f[e] = sum[e]! / d;
          const diff = s[l * experts + e]! - f[e]!;
          sq[e]! += diff * diff;
          shareMass += f[e]!;
        }
      }
      for (let e = 0; e < experts; e++) sum[e] = keep * sum[e]! + s[l * experts + e]!;
      d = keep * d + 1;
    }
    let total = 0;
    for (let e = 0; e < experts; e++) {
      sq[e] = sq[e]! / (T - 1);
      total += sq[e]!;
    }
    // c_l: error variance per unit of share, so that Σ_e c_l·share_e equals the layer's mean error.
    const c = shareMass > 0 ? (total * (T - 1)) / shareMass : 0;
    for (let e = 0; e < experts; e++) sq[e] = 0.5 * sq[e]! + 0.5 * c * (sum[e]! / d);
  }
  return out;
}

/** Plausible next windows per layer: J rows of E shares for each layer ([layers][J][experts]). */
export interface Scenarios {
  count: number;
  /** [layers × count × experts]. */
  shares: Float64Array;
}

/**
 * Scenarios for a placement robust to the forecast's error: the forecast itself, and the forecast
 * moved by each one-step error the same method made over the history (window t minus the forecast
 * made from windows 0 … t−1), clipped at 0: the empirical distribution of the forecast's error. On a
 * series dominated by sampling noise they spread around the forecast by the noise; on one that
 * drifts, by the window-to-window change. A history of one window gives the forecast alone.
 */
export function forecastScenarios(
  history: readonly Float32Array[],
  forecast: Forecast,
  layers: number,
  experts: number,
  options: ForecastOptions = {},
): Scenarios {
  const T = history.length;
  const J = Math.max(1, T);
  const E = experts;
  const out = new Float64Array(layers * J * E);
  const f = forecast.shares;
  for (let l = 0; l < layers; l++) out.set(f.subarray(l * E, (l + 1) * E), l * J * E);
  const shares = history.map((w) => windowShares(w, layers, experts));
  forecastFromShares(shares, layers, experts, options, false, (t, before) => {
    const actual = shares[t]!;
    for (let l = 0; l < layers; l++) {
      const row = (l * J + t) * E;
      for (let e = 0; e < E; e++) {
        const i = l * E + e;
        const v = f[i]! + actual[i]! - before[i]!;
        out[row + e] = v > 0 ? v : 0;
      }
    }
  });
  return { count: J, shares: out };
}
