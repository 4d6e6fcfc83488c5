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

/** Runs `fn` once to warm up, then `repeat` timed times; returns the wall-clock samples in ms. */
export async function timeRepeated(repeat: number, fn: () => unknown): Promise<number[]> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}
