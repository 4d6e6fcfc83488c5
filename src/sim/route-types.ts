import type { Placement } from '../eplb/placement.js';

/**
 * How a routed (token, k) picks one replica of its expert, as serving engines do:
 * - `round-robin` (vLLM): replica = (flat token·k position within the source rank's batch) mod replicas;
 * - `static-local` (SGLang static): the source GPU's own replica, else one on its node, else a seeded
 *   fair choice — fixed per (layer, source rank, expert);
 * - `random` (SGLang dynamic): a uniform random replica per (token, k).
 */
export type RoutePolicy = 'round-robin' | 'static-local' | 'random';
export const ROUTE_POLICIES: readonly RoutePolicy[] = ['round-robin', 'static-local', 'random'];

export interface RouteInput {
  /** Expert loads of the simulated window, [layers × experts]: the routing distribution per layer. */
  loads: Float32Array;
  placement: Placement;
  /** Tokens per layer, spread evenly (contiguous blocks) over the P source GPUs. */
  tokens: number;
  /** Distinct experts per token and layer. */
  topK: number;
  /** Groups a token may use (group-limited routing); absent or ≥ the shape's groups: not group-limited. */
  topKGroups?: number;
  policy: RoutePolicy;
  seed: number;
}

export interface RouteResult {
  /** Routed token-experts received per GPU, [layers × gpus]. */
  tokensPerGpu: Uint32Array;
  /** Token-experts whose replica is on another node than their source GPU, per layer. */
  crossNode: Uint32Array;
  /** Token-experts sent to another GPU of the same node, per layer. */
  intraNode: Uint32Array;
  /** Modelled MoE layer time (cost-model.ts) and its parts, per layer, in µs. */
  layerTimeUs: Float64Array;
  computeUs: Float64Array;
  dispatchUs: Float64Array;
  combineUs: Float64Array;
  totalTimeUs: number;
  /** Routed token-experts in total (tokens × topK × layers). */
  routed: number;
  /** Raw counters [layers][gpus][5] (cost-model.ts COUNTER_*), what both implementations compute. */
  counters: Uint32Array;
  /** GPU time of the routing pass (timestamp queries), when the device has them. */
  gpuMs?: number;
  /** Wall time of the call, host preparation and readback included. */
  wallMs: number;
}
