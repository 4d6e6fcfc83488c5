import type { Shape } from '../../src/eplb/shape.js';
import { Rng } from '../../src/util/rng.js';

/**
 * A series with the dynamics of real routing: per layer a fixed skewed popularity that drifts slowly,
 * and each window a multinomial sample of `draws` expert picks from it (sampling noise that shrinks
 * with tokens per window).
 */
export function noisySeries(shape: Shape, windows: number, draws: number, seed: number): Float32Array[] {
  const { layers: L, experts: E } = shape;
  const rng = new Rng(seed);
  const logPop = Float64Array.from({ length: L * E }, () => 0.8 * rng.normal());
  const out: Float32Array[] = [];
  const cdf = new Float64Array(E);
  for (let w = 0; w < windows; w++) {
    const loads = new Float32Array(L * E);
    for (let l = 0; l < L; l++) {
      let total = 0;
      for (let e = 0; e < E; e++) {
        // Slow drift: an AR(1) step of small variance.
        logPop[l * E + e] = 0.98 * logPop[l * E + e]! + 0.03 * rng.normal();
        total += Math.exp(logPop[l * E + e]!);
        cdf[e] = total;
      }
      for (let d = 0; d < draws; d++) {
        const u = rng.next() * total;
        let lo = 0;
        let hi = E - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cdf[mid]! < u) lo = mid + 1;
          else hi = mid;
        }
        loads[l * E + lo]!++;
      }
    }
    out.push(loads);
  }
  return out;
}
