import type { GpuContext } from '../gpu/device.js';
import type { Placement } from './placement.js';
import type { Shape } from './shape.js';

/** Windows of history a caller passes by default (the latest included): what vLLM and SGLang keep. */
export const DEFAULT_HISTORY = 8;

/**
 * A named EPLB algorithm. `prepare` does the per-shape setup (scratch buffers, GPU pipelines) once,
 * so that `rebalance` — the part that is timed — does only the work of one call.
 */
export interface Balancer {
  name: string;
  /** One line for `--help` and tables. */
  summary: string;
  /** Where it runs; GPU balancers need a device in the context. */
  runsOn: 'cpu' | 'gpu';
  prepare(shape: Shape, ctx: BalancerContext): Promise<PreparedBalancer> | PreparedBalancer;
}

export interface BalancerContext {
  gpu?: GpuContext;
  /** Seed for balancers that use randomness. */
  seed?: number;
  /**
   * The most history windows a history-aware balancer uses (it keeps the latest ones); default
   * DEFAULT_HISTORY. Callers decide what they pass; this caps what the balancer looks at.
   */
  history?: number;
}

export interface PreparedBalancer {
  /**
   * loads: Float32Array [layers × experts], non-negative and finite (checked by the caller): the
   * latest window. history: the windows up to and including the latest, oldest first, each
   * [layers × experts], so that history[history.length − 1] holds the same values as loads (the
   * candidate API's contract); omitted = a history of one window, [loads]. Balancers that place on
   * the latest window alone ignore it.
   *
   * Calls on one prepared balancer come in time order within a series (window k after k − 1), so a
   * balancer may keep state between calls; a caller that restarts a series prepares it anew.
   */
  rebalance(loads: Float32Array, history?: readonly Float32Array[]): Placement | Promise<Placement>;
  /** GPU time of the last call in ms, when the balancer measured it with timestamp queries. */
  lastGpuMs?(): number | undefined;
  dispose?(): void;
}
