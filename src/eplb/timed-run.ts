import { summarizeTimes, type TimingSummary } from '../util/stats.js';
import type { PreparedBalancer } from './balancer.js';
import { type Placement, validatePlacement } from './placement.js';

export interface TimedPlacement {
  placement: Placement;
  /** Wall time of the balancer call alone (no I/O), over `repeat` runs after one warm-up. */
  timing: TimingSummary;
  /** GPU time per call from timestamp queries, for GPU balancers on devices that have them. */
  gpuTiming?: TimingSummary;
}

/**
 * Runs a prepared balancer once to warm up, then `repeat` timed times on the same loads, and validates
 * the placement it returns (the harness validates, never the balancer).
 */
export async function runTimed(
  prepared: PreparedBalancer,
  loads: Float32Array,
  repeat: number,
): Promise<TimedPlacement> {
  let placement = await prepared.rebalance(loads);
  validatePlacement(placement);
  const wall: number[] = [];
  const gpu: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    placement = await prepared.rebalance(loads);
    wall.push(performance.now() - t0);
    const g = prepared.lastGpuMs?.();
    if (g !== undefined) gpu.push(g);
  }
  validatePlacement(placement);
  return {
    placement,
    timing: summarizeTimes(wall),
    ...(gpu.length > 0 ? { gpuTiming: summarizeTimes(gpu) } : {}),
  };
}
