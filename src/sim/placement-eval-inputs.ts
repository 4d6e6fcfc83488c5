import type { Shape } from '../eplb/shape.js';
import type { Rng } from '../util/rng.js';

/**
 * Workloads for profiling and benchmarking the placement evaluator (not for scoring: real
 * placements come from balancers and real loads from traces).
 */

/** A valid random placement (the `random` baseline's): every expert once plus R−E random extra replicas. */
export { randomPlacement } from '../eplb/balancers/baselines.js';

/** Skewed random loads [W][L][E] (exponential with a per-expert scale), about 10% zero. */
export function randomWindows(shape: Shape, windows: number, rng: Rng): Float32Array {
  const loads = new Float32Array(windows * shape.layers * shape.experts);
  for (let i = 0; i < loads.length; i++) {
    loads[i] = rng.next() < 0.1 ? 0 : Math.floor(-Math.log(1 - rng.next()) * 1000 * (1 + 4 * rng.next()));
  }
  return loads;
}

/** `count` pairs cycling over every (placement, window) combination, placements varying fastest. */
export function cyclePairs(placements: number, windows: number, count: number): Array<[number, number]> {
  return Array.from({ length: count }, (_, i) => [i % placements, Math.floor(i / placements) % windows]);
}
