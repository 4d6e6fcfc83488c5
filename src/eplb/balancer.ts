import type { GpuContext } from '../gpu/device.js';
import type { Placement } from './placement.js';
import type { Shape } from './shape.js';

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
}

export interface PreparedBalancer {
  /** loads: Float32Array [layers × experts], non-negative and finite (checked by the caller). */
  rebalance(loads: Float32Array): Placement | Promise<Placement>;
  /** GPU time of the last call in ms, when the balancer measured it with timestamp queries. */
  lastGpuMs?(): number | undefined;
  dispose?(): void;
}
