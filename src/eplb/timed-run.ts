import { meanOrNaN, summarizeTimes, type TimingSummary } from '../util/stats.js';
import type { PreparedBalancer } from './balancer.js';
import { type Placement, validatePlacement } from './placement.js';

export interface CallTimes {
  /** Wall time of the balancer call alone (no I/O). */
  timing: TimingSummary;
  /** GPU time per call from timestamp queries (GPU balancers on devices that have them). */
  gpuTiming?: TimingSummary;
  meanMs: number;
}

export interface TimingOptions {
  /** Timed calls; they cycle through the inputs so no two consecutive calls see the same loads. */
  repeat: number;
  /** Untimed calls first, until `calls` were made or `ms` elapsed (lets the JIT settle). */
  warmup?: { calls: number; ms: number };
}

/**
 * Times a prepared balancer's calls on the given inputs (validation is the caller's, outside the clock).
 * `histories[i]`, when given, is input i's history (the windows up to it, it last).
 */
export async function timeCalls(
  prepared: PreparedBalancer,
  inputs: readonly Float32Array[],
  options: TimingOptions,
  histories?: ReadonlyArray<readonly Float32Array[]>,
): Promise<CallTimes> {
  const { calls = 0, ms = 0 } = options.warmup ?? {};
  const warmupEnd = performance.now() + ms;
  for (let i = 0; i < calls && performance.now() < warmupEnd; i++) {
    await prepared.rebalance(inputs[i % inputs.length]!, histories?.[i % inputs.length]);
  }
  const wall: number[] = [];
  const gpu: number[] = [];
  for (let i = 0; i < options.repeat; i++) {
    const loads = inputs[i % inputs.length]!;
    const history = histories?.[i % inputs.length];
    const t0 = performance.now();
    await prepared.rebalance(loads, history);
    wall.push(performance.now() - t0);
    const g = prepared.lastGpuMs?.();
    if (g !== undefined) gpu.push(g);
  }
  return {
    timing: summarizeTimes(wall),
    ...(gpu.length > 0 ? { gpuTiming: summarizeTimes(gpu) } : {}),
    meanMs: meanOrNaN(wall),
  };
}

/**
 * Places every input once, in order (the first call doubles as the warm-up), and validates each
 * placement — the harness validates, never the balancer. `histories[i]`: input i's history.
 */
export async function placeAll(
  prepared: PreparedBalancer,
  inputs: readonly Float32Array[],
  histories?: ReadonlyArray<readonly Float32Array[]>,
): Promise<Placement[]> {
  const placements: Placement[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const placement = await prepared.rebalance(inputs[i]!, histories?.[i]);
    validatePlacement(placement);
    placements.push(placement);
  }
  return placements;
}
