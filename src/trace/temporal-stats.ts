import type { Balancer } from '../eplb/balancer.js';
import { balanceMetrics } from '../eplb/metrics.js';
import type { Placement } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { TraceWindows } from './windows.js';

/**
 * Temporal statistics of a windowed series, the ones generator v2 is calibrated to reproduce:
 * - lag-1 correlation of expert shares between consecutive windows (median over window pairs × layers);
 * - next-window GPU balancedness of a placement computed on window k (by `balancer`) and scored on
 *   k+1, for the last window alone and for history forecasts: the mean of the last 2/4/8 windows
 *   and an exponentially weighted mean (rate 0.25); each scored on the same windows k+1
 *   (k = 1 … count−2; fewer history windows at the start, as the evaluator gives them).
 */
export interface TemporalStatistics {
  windows: number;
  lag1ShareCorrelation: number;
  /** Mean next-window GPU balancedness per forecast. */
  nextWindow: Record<Forecast, number>;
  /** nextWindow[f] − nextWindow.last, in balancedness points (× 100). */
  gainPoints: Record<Exclude<Forecast, 'last'>, number>;
}

export const FORECASTS = ['last', 'mean2', 'mean4', 'mean8', 'ewma'] as const;
export type Forecast = (typeof FORECASTS)[number];
export const EWMA_RATE = 0.25;

export function lag1ShareCorrelation(w: TraceWindows): number {
  const { layers: L, experts: E, count } = w;
  const size = L * E;
  const values: number[] = [];
  for (let k = 0; k + 1 < count; k++) {
    for (let l = 0; l < L; l++) {
      const a = w.windows.subarray(k * size + l * E, k * size + (l + 1) * E);
      const b = w.windows.subarray((k + 1) * size + l * E, (k + 1) * size + (l + 1) * E);
      values.push(pearson(a, b));
    }
  }
  values.sort((x, y) => x - y);
  return values.length ? values[Math.floor(values.length / 2)]! : Number.NaN;
}

/** The forecast of window k+1 from windows ≤ k. */
export function forecastLoads(w: TraceWindows, k: number, f: Forecast): Float32Array {
  const size = w.layers * w.experts;
  const win = (j: number) => w.windows.subarray(j * size, (j + 1) * size);
  if (f === 'last') return win(k);
  const out = new Float64Array(size);
  if (f === 'ewma') {
    // Shares, not counts, are averaged: windows of a per-step series hold different token counts.
    for (let j = 0; j <= k; j++) {
      const a = j === 0 ? 1 : EWMA_RATE;
      const x = normalized(win(j), w.layers, w.experts);
      for (let i = 0; i < size; i++) out[i] = (1 - a) * out[i]! + a * x[i]!;
    }
  } else {
    const h = f === 'mean2' ? 2 : f === 'mean4' ? 4 : 8;
    for (let j = Math.max(0, k - h + 1); j <= k; j++) {
      const x = normalized(win(j), w.layers, w.experts);
      for (let i = 0; i < size; i++) out[i]! += x[i]!;
    }
  }
  return Float32Array.from(out);
}

export async function temporalStatistics(
  w: TraceWindows,
  balancer: Balancer,
  shape: Shape,
): Promise<TemporalStatistics> {
  const prepared = await balancer.prepare(shape, { seed: 1 });
  try {
    const sums = Object.fromEntries(FORECASTS.map((f) => [f, 0])) as Record<Forecast, number>;
    let n = 0;
    const size = w.layers * w.experts;
    for (let k = 1; k + 1 < w.count; k++) {
      const next = w.windows.subarray((k + 1) * size, (k + 2) * size);
      for (const f of FORECASTS) {
        const placement: Placement = await prepared.rebalance(forecastLoads(w, k, f));
        sums[f] += balanceMetrics(placement, next).gpuBalancedness;
      }
      n++;
    }
    const nextWindow = Object.fromEntries(FORECASTS.map((f) => [f, sums[f] / n])) as Record<Forecast, number>;
    const gainPoints = Object.fromEntries(
      FORECASTS.filter((f) => f !== 'last').map((f) => [f, 100 * (nextWindow[f] - nextWindow.last)]),
    ) as Record<Exclude<Forecast, 'last'>, number>;
    return { windows: w.count, lag1ShareCorrelation: lag1ShareCorrelation(w), nextWindow, gainPoints };
  } finally {
    prepared.dispose?.();
  }
}

function normalized(x: Float32Array, layers: number, experts: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let l = 0; l < layers; l++) {
    let t = 0;
    for (let e = 0; e < experts; e++) t += x[l * experts + e]!;
    for (let e = 0; e < experts; e++) out[l * experts + e] = t > 0 ? x[l * experts + e]! / t : 1 / experts;
  }
  return out;
}

function pearson(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]! / n;
    mb += b[i]! / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 1;
}
