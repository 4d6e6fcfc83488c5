import type { Balancer } from '../eplb/balancer.js';
import { type Placement, validatePlacement } from '../eplb/placement.js';
import { getBalancer } from '../eplb/registry.js';
import type { Shape } from '../eplb/shape.js';
import { adapterLabel } from '../gpu/adapter-info.js';
import type { GpuContext } from '../gpu/device.js';
import { selectWindow } from '../trace/load.js';
import type { Trace } from '../trace/trace.js';
import { windowLoads } from '../trace/windows.js';
import { check } from '../util/errors.js';
import { COUNTER_NAMES, COUNTERS_PER_GPU } from './cost-model.js';
import { routeReference } from './route-reference.js';
import { RouteSimulator } from './route-sim.js';
import type { RouteInput, RoutePolicy, RouteResult } from './route-types.js';
import { MAX_TOP_K } from './routing-tables.js';

/** Token-level figures of one simulated placement (snake_case: they are `adrs simulate --json`'s). */
export interface RouteSummary {
  /** Σ_l max_g tokens / L: what the slowest GPU serves, per layer on average. */
  max_tokens_per_gpu: number;
  mean_tokens_per_gpu: number;
  /** Σ_l mean / Σ_l max over GPUs of routed token-experts (1 = perfectly even), as GPU balancedness. */
  token_balancedness: number;
  /** Share of routed token-experts whose replica is on another node than their source GPU. */
  cross_node_share: number;
  /** Modelled MoE time of one forward over all layers, in µs, and its parts. */
  modelled_us: number;
  compute_us: number;
  transfer_us: number;
}

export function summarizeRoute(shape: Shape, r: RouteResult): RouteSummary {
  const { layers: L, gpus: P } = shape;
  let sumMax = 0;
  let sumMean = 0;
  let cross = 0;
  let compute = 0;
  let transfer = 0;
  for (let l = 0; l < L; l++) {
    let max = 0;
    let total = 0;
    for (let g = 0; g < P; g++) {
      const v = r.tokensPerGpu[l * P + g]!;
      total += v;
      if (v > max) max = v;
    }
    sumMax += max;
    sumMean += total / P;
    cross += r.crossNode[l]!;
    compute += r.computeUs[l]!;
    transfer += r.dispatchUs[l]! + r.combineUs[l]!;
  }
  return {
    max_tokens_per_gpu: sumMax / L,
    mean_tokens_per_gpu: sumMean / L,
    token_balancedness: sumMax > 0 ? sumMean / sumMax : 1,
    cross_node_share: r.routed > 0 ? cross / r.routed : 0,
    modelled_us: r.totalTimeUs,
    compute_us: compute,
    transfer_us: transfer,
  };
}

export interface SimulateOptions {
  trace: Trace;
  /** Window K to route (negative counts from the end; default the last); placed on K−1, or on K when K = 0. */
  window?: number;
  balancer: Balancer;
  /** The trace's model on a deployment. */
  shape: Shape;
  policy: RoutePolicy;
  /** Tokens per layer, spread evenly over the GPUs. */
  tokens: number;
  /** Experts per token (default: the trace's top-k). */
  topK?: number;
  /** Group-limited routing with the trace's top-k groups. */
  groupLimited: boolean;
  seed: number;
  /** Also run the TypeScript reference on the same input and compare its counts and speed. */
  compareCpu: boolean;
  /** Progress notes (what runs now). */
  log?: (line: string) => void;
}

/** `adrs simulate`'s result, as its --json prints it. */
export interface SimulateReport {
  trace: string;
  window: number;
  placed_on_window: number;
  balancer: string;
  policy: RoutePolicy;
  tokens: number;
  top_k: number;
  top_k_groups: number | null;
  seed: number;
  shape: Shape;
  device: string;
  /** The balancer's placement, and the load-unaware `none` placement on the same tokens. */
  placement: RouteSummary;
  none: RouteSummary;
  modelled_speedup_over_none: number;
  per_layer: { layer_time_us: number[]; cross_node: number[]; tokens_per_gpu: number[][] };
  performance: {
    routed: number;
    gpu_ms: number | null;
    wall_ms: number;
    routed_per_second_gpu: number | null;
    routed_per_second_wall: number;
    cpu: {
      wall_ms: number;
      routed_per_second: number;
      speedup_wall: number;
      speedup_gpu: number | null;
      agree: boolean;
      /** Where the two first disagree ("layer l, GPU g, received: GPU x, TS y"); null when they agree. */
      first_difference: string | null;
    } | null;
  };
}

const throughput = (routed: number, ms: number): number => (ms > 0 ? routed / (ms / 1e3) : Number.NaN);

/** Runs a balancer once on `loads` and validates its placement (the harness validates, never the balancer). */
async function place(balancer: Balancer, shape: Shape, gpu: GpuContext, seed: number, loads: Float32Array) {
  const prepared = await balancer.prepare(shape, { gpu, seed });
  try {
    const placement: Placement = await prepared.rebalance(loads);
    validatePlacement(placement);
    return placement;
  } finally {
    prepared.dispose?.();
  }
}

/**
 * The options' problems that need no GPU, as one-line UserErrors: a caller checks them before it
 * takes a device (the router checks everything again per call, planRoute).
 */
export function checkSimulateOptions(o: Pick<SimulateOptions, 'trace' | 'shape' | 'tokens' | 'topK'>): void {
  check(Number.isInteger(o.tokens) && o.tokens >= 1, `tokens must be a positive integer, got ${o.tokens}`);
  const topK = o.topK ?? o.trace.manifest.topK;
  const most = Math.min(o.shape.experts, MAX_TOP_K);
  check(
    Number.isInteger(topK) && topK >= 1 && topK <= most,
    `top-k must be an integer in [1, ${most}], got ${topK}`,
  );
}

/**
 * Token-level MoE routing on the GPU: the balancer places on window K−1, window K's tokens are routed
 * (and those of the `none` placement beside it), and each layer's time is modelled.
 */
export async function simulateRouting(gpu: GpuContext, o: SimulateOptions): Promise<SimulateReport> {
  checkSimulateOptions(o);
  const m = o.trace.manifest;
  const selected = selectWindow(o.trace, o.window);
  const tw = selected.windows;
  const window = selected.window;
  const placedOn = window === 0 ? 0 : window - 1;
  const topK = o.topK ?? m.topK;
  const base = {
    loads: windowLoads(tw, window),
    tokens: o.tokens,
    topK,
    policy: o.policy,
    seed: o.seed,
    ...(o.groupLimited ? { topKGroups: m.topKGroups } : {}),
  };
  const history = windowLoads(tw, placedOn);
  const placement = await place(o.balancer, o.shape, gpu, o.seed, history);
  const baseline = await place(getBalancer('none'), o.shape, gpu, o.seed, history);
  const sim = await RouteSimulator.create(gpu, o.shape, { maxTokens: o.tokens });
  try {
    o.log?.(`routing ${o.tokens} tokens × top-${topK} × ${m.layers} layers on ${adapterLabel(gpu.info)}…`);
    // The baseline runs first and doubles as the warm-up of the timed balancer run.
    const none = await sim.run({ ...base, placement: baseline });
    const input: RouteInput = { ...base, placement };
    const result = await sim.run(input);
    // A disagreement is reported, not thrown: it is what --compare-cpu is run to find out (on a
    // new GPU or driver), and the caller decides what it means (the CLI exits 1 after the report).
    let cpu: { result: RouteResult; difference: string | null } | null = null;
    if (o.compareCpu) {
      o.log?.('running the TypeScript reference on the same input…');
      const ref = routeReference(input);
      cpu = { result: ref, difference: firstDifference(o.shape.gpus, result.counters, ref.counters) };
    }
    const routed = result.routed;
    const gpuMs = result.gpuMs ?? null;
    const balanced = summarizeRoute(o.shape, result);
    const noneSummary = summarizeRoute(o.shape, none);
    const { layers, gpus } = o.shape;
    return {
      trace: m.name,
      window,
      placed_on_window: placedOn,
      balancer: o.balancer.name,
      policy: o.policy,
      tokens: o.tokens,
      top_k: topK,
      top_k_groups: base.topKGroups ?? null,
      seed: o.seed,
      shape: o.shape,
      device: gpu.info.name,
      placement: balanced,
      none: noneSummary,
      modelled_speedup_over_none:
        balanced.modelled_us > 0 ? noneSummary.modelled_us / balanced.modelled_us : Number.NaN,
      per_layer: {
        layer_time_us: Array.from(result.layerTimeUs),
        cross_node: Array.from(result.crossNode),
        tokens_per_gpu: Array.from({ length: layers }, (_, l) =>
          Array.from(result.tokensPerGpu.subarray(l * gpus, (l + 1) * gpus)),
        ),
      },
      performance: {
        routed,
        gpu_ms: gpuMs,
        wall_ms: result.wallMs,
        routed_per_second_gpu: gpuMs !== null ? throughput(routed, gpuMs) : null,
        routed_per_second_wall: throughput(routed, result.wallMs),
        cpu: cpu
          ? {
              wall_ms: cpu.result.wallMs,
              routed_per_second: throughput(routed, cpu.result.wallMs),
              speedup_wall: cpu.result.wallMs / result.wallMs,
              speedup_gpu: gpuMs !== null ? cpu.result.wallMs / gpuMs : null,
              agree: cpu.difference === null,
              first_difference: cpu.difference,
            }
          : null,
      },
    };
  } finally {
    sim.destroy();
  }
}

/** The first routing counter ([layer][gpu][COUNTERS_PER_GPU]) where the GPU and the reference differ. */
export function firstDifference(gpus: number, gpu: Uint32Array, ts: Uint32Array): string | null {
  if (gpu.length !== ts.length) return `the GPU gave ${gpu.length} counters, the TS reference ${ts.length}`;
  for (let i = 0; i < gpu.length; i++) {
    if (gpu[i] === ts[i]) continue;
    const c = i % COUNTERS_PER_GPU;
    const g = Math.floor(i / COUNTERS_PER_GPU) % gpus;
    const l = Math.floor(i / (COUNTERS_PER_GPU * gpus));
    return `layer ${l}, GPU ${g}, ${COUNTER_NAMES[c]}: GPU ${gpu[i]}, TS ${ts[i]}`;
  }
  return null;
}
