import type { Balancer, BalancerContext } from '../eplb/balancer.js';
import { noneBalancer } from '../eplb/balancers/baselines.js';
import { bldmSwapBalancer } from '../eplb/balancers/bldm-swap.js';
import { historyUpTo } from '../eplb/history.js';
import { adrsScore } from '../eplb/metrics.js';
import type { Placement } from '../eplb/placement.js';
import { type Shape, validateShape } from '../eplb/shape.js';
import { type CallTimes, placeAll, timeCalls } from '../eplb/timed-run.js';
import { adapterLabel } from '../gpu/adapter-info.js';
import type { GpuContext } from '../gpu/device.js';
import { PlacementEvaluator } from '../sim/placement-eval.js';
import { RouteSimulator } from '../sim/route-sim.js';
import type { RoutePolicy } from '../sim/route-types.js';
import type { Trace } from '../trace/trace.js';
import { type TraceWindows, traceWindows, windowLoads } from '../trace/windows.js';
import { check } from '../util/errors.js';
import type { BenchReport, BenchRow, Spread } from './bench-types.js';

// Warm up until the JIT has settled (V8 optimises hot code after many calls): WARMUP_CALLS calls or
// WARMUP_MS, whichever comes first, so CPU balancers are not timed in the interpreter.
const WARMUP_CALLS = 50;
const WARMUP_MS = 300;

export interface BenchOptions {
  traces: Trace[];
  balancers: readonly Balancer[];
  /** Timed balancer calls per trace, cycling through its windows (after a JIT warm-up). */
  repeat: number;
  /** Tokens per forward step in the routing simulation. */
  tokens: number;
  policy: RoutePolicy;
  /** Steps between two rebalances (vLLM's default: 3000). */
  rebalanceInterval: number;
  /** The deployment; groups: the trace's unless given. */
  deployment: BenchDeployment;
  /** History windows each balancer call gets (window k and the ones before it, at most this many). */
  history: number;
  /** Stored steps summed into one window (default: the trace's own, see traceWindows). */
  windowSteps?: number;
  /** Add the `oracle` and `last-window` rows (bldm-swap placed on the scored window / on window k). */
  headroom: boolean;
  seed: number;
  command: string;
  /** Called with a short status before each (trace, balancer). */
  progress?: (message: string) => void;
}

/**
 * Every balancer on every trace: timing of the balancer call, balancedness placed and scored on the
 * same window and on the next one (all windows scored on the GPU in one batched evaluation per trace),
 * the ADRS score, and the token-level modelled MoE time against the `none` placement.
 *
 * The call for window k gets windows up to k as its history (at most `history`), in time order. Two
 * reference rows frame the balancers: `oracle`, bldm-swap placed on the scored window itself (the
 * ceiling of next-window balancedness), and `last-window`, bldm-swap placed on window k alone (what a
 * balancer that ignores the history reaches).
 */
export async function runBench(gpu: GpuContext, options: BenchOptions): Promise<BenchReport> {
  const rows: BenchRow[] = [];
  for (const trace of options.traces) {
    const shape = traceShape(trace, options.deployment);
    validateShape(shape);
    const tw = traceWindows(trace, options.windowSteps);
    // One view per window, shared by every history that holds it (the latest is the loads itself).
    const views = Array.from({ length: tw.count }, (_, k) => windowLoads(tw, k));
    const histories = views.map((_, k) =>
      historyUpTo({ count: tw.count, window: (j) => views[j]! }, k, options.history),
    );
    const windows = tw.count;
    check(
      windows > 0,
      `trace '${trace.manifest.name}' holds ${trace.manifest.steps} steps, fewer than one window of ${tw.stepsPerWindow}`,
    );
    const evaluator = await PlacementEvaluator.create(gpu, shape, {
      placements: windows,
      windows,
      pairs: 2 * windows,
    });
    const simulator = await RouteSimulator.create(gpu, shape, { maxTokens: options.tokens });
    try {
      evaluator.setWindows(tw.windows);
      // The window the routing simulation replays: the last one, placed from the one before it.
      const simWindow = windows - 1;
      const placeWindow = Math.max(0, windows - 2);
      const none = await timeAndPlace(noneBalancer, shape, tw, {}, 0);
      const noneSim = await simulate(
        simulator,
        trace,
        tw,
        shape,
        none.placements[placeWindow]!,
        simWindow,
        options,
      );
      const pairs: Array<[number, number]> = [];
      for (let k = 0; k < windows; k++) pairs.push([k, k]);
      for (let k = 0; k + 1 < windows; k++) pairs.push([k, k + 1]);
      const addRow = async (
        name: string,
        balancer: Balancer,
        timed: TimedPlacements,
        placementPairs: Array<[number, number]>,
        simPlacement: Placement,
      ) => {
        const metrics = await evaluator.evaluate(timed.placements, placementPairs, { perLayer: false });
        const same = ratioOfSums(metrics.slice(0, windows));
        const nextMetrics = metrics.slice(windows);
        const next = windows > 1 ? ratioOfSums(nextMetrics) : null;
        const sim = await simulate(simulator, trace, tw, shape, simPlacement, simWindow, options);
        const meanSeconds = timed.meanMs / 1000;
        rows.push({
          trace: trace.manifest.name,
          balancer: name,
          runs_on: balancer.runsOn,
          time: timed.timing,
          ...(timed.gpuTiming ? { gpu_time: timed.gpuTiming } : {}),
          balancedness_same: same,
          balancedness_next: next,
          ...(windows > 1 ? { balancedness_next_spread: spread(nextMetrics.map(pairBalancedness)) } : {}),
          ...(windows > 1 ? { per_window_next: nextMetrics.map(pairBalancedness) } : {}),
          adrs_score: adrsScore(next ?? same, meanSeconds),
          moe_us: sim.us,
          moe_vs_none: sim.us / noneSim.us,
          cross_node_share: sim.crossNodeShare,
          rebalance_share: timed.timing.median_ms / 1000 / ((options.rebalanceInterval * sim.us) / 1e6),
        });
      };
      if (options.headroom) {
        options.progress?.(`${trace.manifest.name}: last-window and oracle`);
        // bldm-swap on each window alone: placed on k and scored on k+1 (last-window), or scored on
        // the window it was placed on (oracle: "next" pairs (k+1, k+1), the same windows scored).
        const last = await timeAndPlace(bldmSwapBalancer, shape, tw, { seed: options.seed }, options.repeat);
        const oraclePairs: Array<[number, number]> = [...pairs.slice(0, windows)];
        for (let k = 0; k + 1 < windows; k++) oraclePairs.push([k + 1, k + 1]);
        await addRow('oracle', bldmSwapBalancer, last, oraclePairs, last.placements[simWindow]!);
        await addRow('last-window', bldmSwapBalancer, last, pairs, last.placements[placeWindow]!);
      }
      for (const balancer of options.balancers) {
        options.progress?.(`${trace.manifest.name}: ${balancer.name}`);
        const ctx: BalancerContext = {
          seed: options.seed,
          history: options.history,
          ...(balancer.runsOn === 'gpu' ? { gpu } : {}),
        };
        const timed = await timeAndPlace(balancer, shape, tw, ctx, options.repeat, histories);
        await addRow(balancer.name, balancer, timed, pairs, timed.placements[placeWindow]!);
      }
    } finally {
      evaluator.destroy();
      simulator.destroy();
    }
  }
  return {
    device: adapterLabel(gpu.info),
    device_software: gpu.info.software,
    date: new Date().toISOString(),
    command: options.command,
    config: {
      repeat: options.repeat,
      tokens: options.tokens,
      policy: options.policy,
      rebalance_interval: options.rebalanceInterval,
      history: options.history,
      ...(options.windowSteps !== undefined ? { window_steps: options.windowSteps } : {}),
      ...options.deployment,
    },
    rows,
  };
}

export type BenchDeployment = Pick<Shape, 'replicas' | 'nodes' | 'gpus'> & { groups?: number };

/** The trace's model shape on the benchmark's deployment. */
export function traceShape(trace: Trace, deployment: BenchDeployment): Shape {
  const { layers, experts, groups } = trace.manifest;
  return { layers, experts, groups, ...deployment };
}

interface TimedPlacements extends CallTimes {
  placements: Placement[];
}

/**
 * Places every window in time order (with its history when given), then times `repeat` calls cycling
 * through the windows after a JIT warm-up — in a fresh preparation, so that a balancer keeping state
 * between calls placed the series once, in order.
 */
async function timeAndPlace(
  balancer: Balancer,
  shape: Shape,
  tw: TraceWindows,
  ctx: BalancerContext,
  repeat: number,
  histories?: ReadonlyArray<readonly Float32Array[]>,
): Promise<TimedPlacements> {
  const inputs = histories
    ? histories.map((h) => h[h.length - 1]!)
    : Array.from({ length: tw.count }, (_, k) => windowLoads(tw, k));
  const placer = await balancer.prepare(shape, ctx);
  let placements: Placement[];
  try {
    placements = await placeAll(placer, inputs, histories);
  } finally {
    placer.dispose?.();
  }
  const prepared = await balancer.prepare(shape, ctx);
  try {
    const times = await timeCalls(
      prepared,
      inputs,
      { repeat, warmup: { calls: WARMUP_CALLS, ms: WARMUP_MS } },
      histories,
    );
    return { placements, ...times };
  } finally {
    prepared.dispose?.();
  }
}

async function simulate(
  simulator: RouteSimulator,
  trace: Trace,
  tw: TraceWindows,
  shape: Shape,
  placement: Placement,
  simWindow: number,
  options: BenchOptions,
): Promise<{ us: number; crossNodeShare: number }> {
  const result = await simulator.run({
    loads: windowLoads(tw, simWindow),
    placement,
    tokens: options.tokens,
    topK: trace.manifest.topK,
    ...(trace.manifest.topKGroups < shape.groups ? { topKGroups: trace.manifest.topKGroups } : {}),
    policy: options.policy,
    seed: options.seed,
  });
  let cross = 0;
  for (const c of result.crossNode) cross += c;
  return { us: result.totalTimeUs, crossNodeShare: result.routed > 0 ? cross / result.routed : 0 };
}

function pairBalancedness(m: { sumMeanGpuLoad: number; sumMaxGpuLoad: number }): number {
  return m.sumMaxGpuLoad > 0 ? m.sumMeanGpuLoad / m.sumMaxGpuLoad : 1;
}

/** Median, quartiles and range of per-window values. */
export function spread(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number) => {
    const x = p * (s.length - 1);
    const i = Math.floor(x);
    return i + 1 < s.length ? s[i]! + (x - i) * (s[i + 1]! - s[i]!) : s[i]!;
  };
  return { median: q(0.5), q1: q(0.25), q3: q(0.75), min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** GPU balancedness over several (placement, window) pairs: Σ mean / Σ max, like the per-pair metric. */
function ratioOfSums(metrics: ReadonlyArray<{ sumMeanGpuLoad: number; sumMaxGpuLoad: number }>): number {
  let mean = 0;
  let max = 0;
  for (const m of metrics) {
    mean += m.sumMeanGpuLoad;
    max += m.sumMaxGpuLoad;
  }
  return max > 0 ? mean / max : 1;
}
