import type { TimingSummary } from '../util/stats.js';

/** Per-window values: median, quartiles, range, count. */
export interface Spread {
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
  n: number;
}

/**
 * One row of `adrs bench`: one balancer on one trace, or a reference row: `oracle` (bldm-swap placed
 * on the scored window: the ceiling) or `last-window` (bldm-swap placed on window k, scored on k+1).
 */
export interface BenchRow {
  trace: string;
  balancer: string;
  runs_on: 'cpu' | 'gpu';
  /** Wall time of one balancer call (GPU balancers: upload, dispatch and readback included). */
  time: TimingSummary;
  /** GPU time per call from timestamp queries (GPU balancers on devices that have them). */
  gpu_time?: TimingSummary;
  /** GPU balancedness, placed and scored on the same window (ratio of sums over every window). */
  balancedness_same: number;
  /** Placed on window k, scored on window k+1, over every k; null for single-snapshot traces. */
  balancedness_next: number | null;
  /** Per scored window k+1: its GPU balancedness (absent for single-window traces). */
  balancedness_next_spread?: Spread;
  /** Per scored window: balancedness of the placement from window k on window k+1 (the --html lines). */
  per_window_next?: number[];
  /** ADRS leaderboard score (EPLB.md) from balancedness (next window when there is one) and mean time. */
  adrs_score: number;
  /** Modelled MoE time of one forward pass (all layers, µs) with this placement, token-level simulation. */
  moe_us: number;
  /** moe_us of this balancer / moe_us of the `none` placement on the same window and tokens. */
  moe_vs_none: number;
  /** Share of inter-node token-experts in the simulation. */
  cross_node_share: number;
  /**
   * Rebalancing time as a share of the time between two rebalances at vLLM's default interval
   * (3000 steps of the modelled MoE forward time): whether the balancer's speed matters at all.
   */
  rebalance_share: number;
}

/**
 * `adrs bench --json` / `--out`: snake_case like every machine output of adrs. Files written before
 * this convention used camelCase keys; readBenchReport (bench-read.ts) takes both.
 */
export interface BenchReport {
  device: string;
  device_software: boolean;
  date: string;
  command: string;
  config: {
    repeat: number;
    tokens: number;
    policy: string;
    rebalance_interval: number;
    /** History windows each call got (at most). */
    history: number;
    /** Stored steps per window, when set explicitly. */
    window_steps?: number;
    replicas: number;
    nodes: number;
    gpus: number;
    /** Expert groups, when given (else each trace's own). */
    groups?: number;
  };
  rows: BenchRow[];
}
