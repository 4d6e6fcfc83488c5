import { balanceMetrics } from '../eplb/metrics.js';
import { countReplicas, deriveLog2phy, type Placement, placementProblem } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { Rebalance } from '../eval/candidate-api.js';
import {
  candidateInput,
  createCandidateRuntime,
  type DispatchRecord,
  installGpuWaitTiming,
} from '../eval/candidate-context.js';
import { CANDIDATE_SOURCE_URL } from '../eval/protocol.js';
import { openCandidate } from '../eval/sources.js';
import { TranspileError, transpileCandidate } from '../eval/transpile.js';
import { evalWindows } from '../eval/windows.js';
import type { GpuContext } from '../gpu/device.js';
import { compileModule, ShaderCompileError } from '../gpu/kernels.js';
import type { Trace } from '../trace/trace.js';
import { check, UserError } from '../util/errors.js';
import { meanOrNaN, summarizeTimes } from '../util/stats.js';

/**
 * `adrs profile DIR`: where a candidate's time goes. The candidate runs IN THIS PROCESS, outside
 * the evaluator's sandbox (so that every dispatch can be attributed to its kernel): profile only
 * code you trust. Like the evaluator, each pass is a fresh module instance and context fed the
 * trace's windows in time order with their history (no relabelling); every call is timed from
 * the call until the GPU work it started has finished. Per call: total, host, GPU wait (the
 * worker's time split, candidate-context.ts) and GPU time of the ctx.dispatch passes; per kernel
 * (file:entry): its GPU time per call, from timestamp queries, or — where the adapter has none
 * (or --no-timestamps) — wall time from submit to onSubmittedWorkDone with each dispatch
 * submitted and waited for on its own, which then also inflates the call totals.
 */

export interface CandidateProfileOptions {
  trace: Trace;
  shape: Shape;
  /** Calls per pass: windows 0 … windows−1, each scored on the next (default: all but the last). */
  windows?: number;
  /** Windows of history per call, the latest included (default 8). */
  history: number;
  /** Passes over the windows, each in a fresh module instance and context. */
  passes: number;
  /** Time dispatches with timestamp queries when the adapter has them (default true). */
  timestamps?: boolean;
}

export interface TimeStats {
  mean_ms: number;
  median_ms: number;
  p95_ms: number;
  runs: number;
}

export interface KernelTime {
  /** "file:entry". */
  kernel: string;
  dispatches_per_call: number;
  /** GPU time per call, summed over its dispatches of this kernel. */
  per_call: TimeStats;
  /** Its share of the mean call time. */
  share_of_call: number;
}

export interface CandidateProfile {
  candidate: string;
  /** Always false: the candidate ran in the profiling process. */
  sandboxed: false;
  trace: string;
  shape: Shape;
  /** How kernel times were measured. */
  timing: 'timestamp-query' | 'wall (submit → onSubmittedWorkDone)';
  history: number;
  passes: number;
  /** Calls measured (the first call of every pass, which compiles pipelines, is reported apart). */
  calls: number;
  first_call_ms: number[];
  per_call: {
    total: TimeStats;
    host: TimeStats;
    gpu_wait: TimeStats;
    /** GPU time of the ctx.dispatch passes; null without timestamps or when a call made none. */
    gpu: TimeStats | null;
  };
  kernels: KernelTime[];
  /** Mean GPU balancedness of placement(k) on window k+1, first pass (the evaluator's quality, unrelabelled). */
  balancedness_next: number;
}

export async function profileCandidate(
  gpu: GpuContext,
  dir: string,
  options: CandidateProfileOptions,
): Promise<CandidateProfile> {
  check(
    Number.isInteger(options.passes) && options.passes >= 1,
    `--passes must be ≥ 1, got ${options.passes}`,
  );
  check(
    Number.isInteger(options.history) && options.history >= 1,
    `--history must be ≥ 1, got ${options.history}`,
  );
  const { shape } = options;
  const folder = openCandidate(dir);
  try {
    const js = await transpileForProfile(folder.dir);
    for (const [file, code] of Object.entries(folder.kernels)) {
      try {
        await compileModule(gpu.device, `kernels/${file}`, code);
      } catch (error) {
        if (error instanceof ShaderCompileError)
          throw new UserError(error.diagnostics.slice(0, 3).join('; '));
        throw error;
      }
    }
    const windows = evalWindows(
      options.trace,
      options.windows === undefined ? undefined : options.windows + 1,
    );
    const pairs = windows.length - 1;
    check(
      pairs >= 2,
      `profiling needs at least 3 windows (the first call of a pass compiles pipelines and is reported apart), got ${windows.length}`,
    );
    const timestamps = (options.timestamps ?? true) && gpu.hasTimestamps;
    const waits = installGpuWaitTiming();
    const total: number[] = [];
    const host: number[] = [];
    const wait: number[] = [];
    const gpuTimes: Array<number | null> = [];
    const perCallKernels: Array<Map<string, { ms: number; n: number }>> = [];
    const firstCall: number[] = [];
    const next: number[] = [];
    for (let pass = 0; pass < options.passes; pass++) {
      // A fresh module instance per pass, as the evaluator's fresh worker per pass.
      const url = `data:text/javascript;base64,${Buffer.from(`${js}\n//# sourceURL=${CANDIDATE_SOURCE_URL}\n// pass ${pass}\n`).toString('base64')}`;
      const mod = (await import(url)) as { default?: unknown };
      if (typeof mod.default !== 'function')
        throw new UserError(`${dir}/balancer.ts must export a default function rebalance(input, ctx)`);
      const rebalance = mod.default as Rebalance;
      const rt = createCandidateRuntime(gpu, folder.kernels, {
        waits,
        timestamps,
        waitEachDispatch: !timestamps,
      });
      try {
        for (let k = 0; k < pairs; k++) {
          // Copies: the candidate runs in this process and could otherwise change the trace.
          const history = windows.slice(Math.max(0, k - options.history + 1), k + 1).map((w) => w.slice());
          const loads = history[history.length - 1]!;
          const t0 = performance.now();
          rt.beginCall();
          let out: unknown;
          try {
            out = await rebalance(candidateInput({ loads, history, shape }), rt.ctx);
          } catch (error) {
            throw new UserError(
              `${dir}: the candidate threw on window ${k} (pass ${pass + 1}): ${error instanceof Error ? error.message : String(error)}`,
            );
          }
          rt.flush();
          await gpu.device.queue.onSubmittedWorkDone();
          const ms = performance.now() - t0;
          const split = rt.endCall(ms);
          await rt.resolveLeftovers();
          gpu.check();
          const placement = placementOfOutput(shape, out, `${dir}, window ${k}`);
          if (pass === 0) next.push(balanceMetrics(placement, windows[k + 1]!).gpuBalancedness);
          if (k === 0) {
            firstCall.push(ms);
            continue;
          }
          total.push(ms);
          host.push(split.host_ms);
          wait.push(split.gpu_wait_ms);
          gpuTimes.push(timestamps ? rt.gpuMs() : null);
          perCallKernels.push(byKernel(rt.dispatches()));
        }
      } finally {
        rt.destroy();
      }
    }
    const meanTotal = meanOrNaN(total);
    const labels = [...new Set(perCallKernels.flatMap((m) => [...m.keys()]))].sort();
    const kernels = labels.map((kernel): KernelTime => {
      const per = perCallKernels.map((m) => m.get(kernel)?.ms ?? 0);
      const stats = statsOf(per);
      return {
        kernel,
        dispatches_per_call: meanOrNaN(perCallKernels.map((m) => m.get(kernel)?.n ?? 0)),
        per_call: stats,
        share_of_call: meanTotal > 0 ? stats.mean_ms / meanTotal : 0,
      };
    });
    const gpuKnown = gpuTimes.every((g) => g !== null) && gpuTimes.length > 0;
    return {
      candidate: dir,
      sandboxed: false,
      trace: options.trace.manifest.name,
      shape,
      timing: timestamps ? 'timestamp-query' : 'wall (submit → onSubmittedWorkDone)',
      history: options.history,
      passes: options.passes,
      calls: total.length,
      first_call_ms: firstCall,
      per_call: {
        total: statsOf(total),
        host: statsOf(host),
        gpu_wait: statsOf(wait),
        gpu: gpuKnown ? statsOf(gpuTimes as number[]) : null,
      },
      kernels,
      balancedness_next: meanOrNaN(next),
    };
  } finally {
    folder.dispose();
  }
}

async function transpileForProfile(dir: string): Promise<string> {
  try {
    return (await transpileCandidate(dir)).js;
  } catch (error) {
    if (error instanceof TranspileError) throw new UserError(error.diagnostics.slice(0, 3).join('; '));
    throw error;
  }
}

/** The candidate's answer validated as the evaluator does (the harness derives log2phy itself). */
function placementOfOutput(shape: Shape, out: unknown, where: string): Placement {
  const { layers: L, experts: E, replicas: R } = shape;
  const { phy2log, logcnt } = (out ?? {}) as { phy2log?: unknown; logcnt?: unknown };
  if (!(phy2log instanceof Int32Array) || phy2log.length !== L * R)
    throw new UserError(`${where}: phy2log must be an Int32Array of ${L}×${R} = ${L * R} entries`);
  if (!(logcnt instanceof Int32Array) || logcnt.length !== L * E)
    throw new UserError(`${where}: logcnt must be an Int32Array of ${L}×${E} = ${L * E} entries`);
  const placement = deriveLog2phy(shape, phy2log, countReplicas(shape, phy2log));
  placement.logcnt = logcnt;
  const problem = placementProblem(placement);
  if (problem) throw new UserError(`${where}: invalid placement: ${problem}`);
  return placement;
}

function byKernel(records: readonly DispatchRecord[]): Map<string, { ms: number; n: number }> {
  const m = new Map<string, { ms: number; n: number }>();
  for (const r of records) {
    const e = m.get(r.label) ?? { ms: 0, n: 0 };
    e.ms += r.gpuMs ?? 0;
    e.n++;
    m.set(r.label, e);
  }
  return m;
}

function statsOf(xs: number[]): TimeStats {
  const s = summarizeTimes(xs);
  return { mean_ms: meanOrNaN(xs), median_ms: s.median_ms, p95_ms: s.p95_ms, runs: s.runs };
}
