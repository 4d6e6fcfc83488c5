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
