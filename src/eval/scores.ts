import { adrsScore } from '../eplb/metrics.js';

export type Objective = 'adrs' | 'default' | 'moe-time';
export const OBJECTIVES: readonly Objective[] = ['adrs', 'default', 'moe-time'];

/** Runtime at which the default score's speed factor is 2^-0.1 ≈ 0.93 (a rebalance budget). */
export const DEFAULT_SCORE_TIME_MS = 10;
/** How much runtime weighs against balancedness in the default score. */
export const DEFAULT_SCORE_TIME_EXPONENT = 0.1;

/**
 * Our default objective: 100 · b · (1 + t / 10 ms)^−0.1, with b the GPU balancedness of each
 * window's placement on the NEXT window (mean over windows) and t the MEAN call time in ms (every
 * call counts: a candidate slow on some calls pays for each of them).
 *
 * Multiplicative, smooth and unsaturated, so neither term can be traded away cheaply: at 1 ms the
 * factor is 0.99 and at 3 ms 0.97 (GEPA-like balancers lose ~3%), at 10 ms 0.93, at 280 ms
 * (DeepSeek's eplb.py) 0.71; one point of balancedness is always worth 1% of the score, and
 * halving the time is worth ≤ 2^0.1 − 1 ≈ 7% (≈ 3% at 10 ms) — it never stops paying, unlike ADRS's speed term that is
 * flat below 1 ms and drops off a cliff at 10 ms.
 */
export function defaultScore(balancednessNext: number, meanMs: number): number {
  return 100 * balancednessNext * timeFactor(meanMs);
}

/** The default score's speed factor (1 + t / 10 ms)^−0.1. */
export function timeFactor(meanMs: number): number {
  const t = Math.max(meanMs, 0);
  return (1 + t / DEFAULT_SCORE_TIME_MS) ** -DEFAULT_SCORE_TIME_EXPONENT;
}

/**
 * The MoE-time objective: 100 · T_none / T · (1 + t / 10 ms)^−0.1, with T the modelled MoE layer
 * time of the candidate's next-window placements (token-level route simulation), T_none that of the
 * load-unaware placement on the same windows, t the mean call time. Balancedness is a proxy for T;
 * this rewards T itself (communication included), at the same price for runtime as the default.
 */
export function moeScore(moeNoneMs: number, moeMs: number, meanMs: number): number {
  return ((100 * moeNoneMs) / moeMs) * timeFactor(meanMs);
}

/** The ADRS leaderboard objective (EPLB.md) on the mean call time. */
export function adrsObjective(balancednessNext: number, meanMs: number): number {
  return adrsScore(balancednessNext, meanMs / 1000);
}
