import { median, quantileSorted } from 'simple-statistics';

export interface TimingSummary {
  median_ms: number;
  p95_ms: number;
  runs: number;
}

/** Median and 95th percentile of a set of durations in milliseconds. */
export function summarizeTimes(samplesMs: readonly number[]): TimingSummary {
  if (samplesMs.length === 0) return { median_ms: Number.NaN, p95_ms: Number.NaN, runs: 0 };
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { median_ms: median(sorted), p95_ms: quantileSorted(sorted, 0.95), runs: sorted.length };
}

/**
 * Plain arithmetic mean, NaN for no values (simple-statistics' mean throws on none, and its
 * compensated sum would shift reported figures in the last digits).
 */
export function meanOrNaN(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}

/** Plain arithmetic mean, null for no values (a metric that was not measured). */
export function meanOrNull(xs: readonly number[]): number | null {
  return xs.length ? meanOrNaN(xs) : null;
}

/** Sample standard deviation / √n of the finite values, null below two of them. */
export function standardError(xs: ReadonlyArray<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length < 2) return null;
  const m = meanOrNaN(v);
  const variance = v.reduce((a, x) => a + (x - m) ** 2, 0) / (v.length - 1);
  return Math.sqrt(variance / v.length);
}
