import { countReplicas, deriveLog2phy, type Placement, placementProblem } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import { Rng } from '../util/rng.js';
import { summarizeTimes } from '../util/stats.js';
import type { GpuScorer } from './gpu-scorer.js';
import type { Failure, FromWorker } from './protocol.js';
import { adrsObjective, defaultScore } from './scores.js';
import type { CompiledCandidate } from './transpile.js';
import type { EvalMetrics, EvalResult, EvaluateOptions } from './types.js';
import {
  applyTransform,
  identityTransform,
  type LoadTransform,
  randomTransform,
  untransformPlacement,
} from './windows.js';
import { WorkerDeath, type WorkerProcess } from './worker-process.js';

/** Stage 1's tiny case: DeepSeek's README example (2 layers × 12 experts, 16 slots, 4 groups, 2 nodes, 8 GPUs). */
export const TINY_SHAPE: Shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
export const TINY_LOADS = Float32Array.from([
  90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86, 20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27,
]);

/** Relabelled passes may be this much worse (absolute balancedness) than the plain one before answers count as not following the input. */
export const CONSISTENCY_TOLERANCE = 0.05;
const WARMUP_CALLS = 2;
const IPC_PROBES = 5;

export interface CascadeJob {
  worker: WorkerProcess;
  compiled: CompiledCandidate;
  kernels: Record<string, string>;
  options: EvaluateOptions;
  /** The trace's leading windows (traceWindows(trace, n)) and the trace they come from. */
  windows: Float32Array[];
  trace: Trace;
  shape: Shape;
  /** The harness's GPU metrics (shared by the pool). */
  scorer: GpuScorer;
  /** Settles when background work that would disturb timing (the next worker's start) is over. */
  quiet?: Promise<unknown>;
}

/** A reason the candidate is invalid, already phrased as an artifact. */
class Invalid extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

type CallReply = Extract<FromWorker, { type: 'result' }>;

/**
 * The cascade for one candidate on one fresh worker. Stage 1: WGSL compile (in the worker, with
 * file:line:col), module load, the tiny case, validated. Stage 2: warm-up, then `repeats` passes over
 * the windows in time order; pass 0 feeds each window as it is and scores its placement on the next
 * window, later passes feed relabelled windows (see windows.ts) and check that quality holds. Every
 * call is timed and every placement validated here, in the harness; after each pass its placements
 * are scored in one batch on the harness's GPU (relabelled ones mapped back to the original labels,
 * so the windows stay resident). Nothing the worker reports about quality is used, and its clock is
 * only trusted when the parent's clock agrees.
 */
export async function runCascade(job: CascadeJob): Promise<EvalResult> {
  const started = performance.now();
  const { options } = job;
  const run = {
    stage: 1 as 1 | 2,
    where: 'loading',
    times: [] as number[],
    candidateMs: 0,
    /** Per timed call: the worker's clock, and the parent's round trip minus the IPC baseline. */
    workerMs: [] as number[],
    parentMs: [] as number[],
    ipcMs: null as number | null,
    next: [] as number[],
    same: [] as number[],
    varied: [] as number[],
    slotNext: [] as number[],
    interNode: [] as number[],
    artifacts: {} as Record<string, string>,
  };
  const finish = (valid: boolean): EvalResult => {
    const evalMs = performance.now() - started;
    // The worker's clock is precise but runs in the candidate's process; the parent's cannot be
    // fooled but carries IPC jitter. Each call is charged its worker time plus the gap between the
    // clocks that even the best quarter of calls shows: ≈0 for an honest candidate, the whole hidden
    // time for one that stops the worker's clock early.
    const gaps = run.workerMs.map((w, i) => run.parentMs[i]! - w).sort((a, b) => a - b);
    const gap = gaps.length ? Math.max(0, gaps[Math.floor(gaps.length / 4)]!) : 0;
    run.times = run.workerMs.map((w) => w + gap);
    const t = summarizeTimes(run.times);
    const mean = run.times.length ? run.times.reduce((a, b) => a + b, 0) / run.times.length : null;
    const b = avg(run.next);
    const metrics: EvalMetrics = {
      balancedness_next: b,
      balancedness_same: avg(run.same),
      balancedness_next_varied: avg(run.varied),
      slot_balancedness_next: avg(run.slotNext),
      inter_node_share_next: avg(run.interNode),
      median_ms: run.times.length ? t.median_ms : null,
      p95_ms: run.times.length ? t.p95_ms : null,
      mean_ms: mean,
      adrs_score: b !== null && mean !== null ? adrsObjective(b, mean) : null,
      default_score: b !== null && run.times.length ? defaultScore(b, t.median_ms) : null,
      windows: run.next.length,
      calls: run.times.length,
      ipc_ms: run.ipcMs,
      clock_gap_ms: run.times.length ? gap : null,
      eval_ms: evalMs,
      candidate_ms: run.candidateMs,
      overhead_ms: evalMs - run.candidateMs,
      peak_rss_mb: job.worker.peakRssMb > 0 ? Math.round(job.worker.peakRssMb) : null,
    };
    const printed = job.worker.output.trim();
    if (!valid && printed) run.artifacts.output = clip(printed.split('\n').slice(-10).join('\n'), 800);
    const score = valid ? (options.objective === 'adrs' ? metrics.adrs_score : metrics.default_score) : null;
    return {
      valid,
      stage: run.stage,
      score,
      objective: options.objective,
      metrics,
      artifacts: run.artifacts,
    };
  };

  const call = async (
    loads: Float32Array,
    shape: Shape,
  ): Promise<Placement & { ms: number; parentMs: number }> => {
    const t0 = performance.now();
    const reply = (await job.worker.request({ type: 'call', loads, shape })) as CallReply;
    const roundTrip = performance.now() - t0;
    if (reply.failure) throw failureToInvalid(reply.failure, job.compiled, run.where);
    const ms = reply.ms;
    const parentMs = roundTrip - (run.ipcMs ?? roundTrip);
    run.candidateMs += ms;
    const placement = placementOf(shape, reply);
    if (typeof placement === 'string') throw new Invalid('validation', `${run.where}: ${placement}`);
    if (job.worker.unexpectedReplies > 0) {
      throw new Invalid('sandbox', `${run.where}: the candidate sent messages on the harness channel`);
    }
    return Object.assign(placement, { ms, parentMs });
  };

  try {
    // Stage 1.
    const loaded = await job.worker.request({ type: 'load', js: job.compiled.js, kernels: job.kernels });
    if (loaded.type === 'loaded' && loaded.failure)
      throw failureToInvalid(loaded.failure, job.compiled, 'loading');
    run.where = 'stage 1, tiny case (2 layers × 12 experts, 16 slots, 8 GPUs, 2 nodes)';
    await call(TINY_LOADS, TINY_SHAPE);

    // Stage 2.
    run.stage = 2;
    const { shape, windows } = job;
    const rng = new Rng(options.seed ?? 1);
    run.where = 'stage 2, calibration';
    await job.quiet;
    const probes: number[] = [];
    for (let i = 0; i < IPC_PROBES; i++) {
      const t0 = performance.now();
      await job.worker.request({ type: 'probe', loads: windows[0]!, shape });
      probes.push(performance.now() - t0);
    }
    run.ipcMs = summarizeTimes(probes).median_ms;
    // Warm-up: window 0 as it is, then relabelled. A candidate that keeps its first answer thus
    // looks fine on pass 0 and fails the relabelled passes (the consistency check below).
    for (let i = 0; i < WARMUP_CALLS; i++) {
      run.where = `stage 2, warm-up call ${i + 1}`;
      const t = i === 0 ? identityTransform(shape) : randomTransform(shape, rng);
      await call(applyTransform(t, windows[0]!, shape), shape);
    }
    const repeats = Math.max(1, options.repeats ?? 3);
    const pairs = windows.length - 1;
    let lastProgress = performance.now();
    for (let pass = 0; pass < repeats; pass++) {
      // Pass 0 scores placement k on windows k+1 and k; relabelled passes on window k+1 only.
      const placements: Placement[] = [];
      for (let k = 0; k < pairs; k++) {
        run.where = `stage 2, window ${k} of ${pairs}, pass ${pass + 1} of ${repeats}`;
        const t: LoadTransform = pass === 0 ? identityTransform(shape) : randomTransform(shape, rng);
        const history = pass === 0 ? windows[k]! : applyTransform(t, windows[k]!, shape);
        const placement = await call(history, shape);
        run.workerMs.push(placement.ms);
        run.parentMs.push(placement.parentMs);
        placements.push(pass === 0 ? placement : untransformPlacement(t, placement));
        if (options.onProgress && performance.now() - lastProgress > 1000) {
          lastProgress = performance.now();
          options.onProgress(run.where);
        }
      }
      run.where = `stage 2, scoring pass ${pass + 1} of ${repeats}`;
      const scored: Array<[number, number]> = [];
      for (let k = 0; k < pairs; k++) {
        scored.push([k, k + 1]);
        if (pass === 0) scored.push([k, k]);
      }
      const m = await job.scorer.score(job.trace, windows, shape, placements, scored);
      for (let k = 0; k < pairs; k++) {
        if (pass === 0) {
          const next = m[2 * k]!;
          run.next.push(next.gpuBalancedness);
          run.slotNext.push(next.slotBalancedness);
          run.interNode.push(next.interNodeShare);
          run.same.push(m[2 * k + 1]!.gpuBalancedness);
        } else run.varied.push(m[k]!.gpuBalancedness);
      }
    }
    const plain = avg(run.next);
    const varied = avg(run.varied);
    if (plain !== null && varied !== null && varied < plain - CONSISTENCY_TOLERANCE) {
      throw new Invalid(
        'consistency',
        `answers do not follow the input: GPU balancedness ${fmt(plain)} on the windows as given but ${fmt(varied)} when the same windows are relabelled (experts permuted within groups, layers reordered, loads rescaled); compute each placement from the loads of that call, do not reuse earlier answers`,
      );
    }
    return finish(true);
  } catch (error) {
    if (error instanceof Invalid) run.artifacts[error.key] = clip(error.message, 2000);
    else if (error instanceof WorkerDeath) {
      const key = error.kind === 'resource' ? 'resource' : error.kind === 'timeout' ? 'timeout' : 'crash';
      run.artifacts[key] = `${error.message} (during ${run.where})`;
    } else throw error;
    return finish(false);
  }
}

/** The candidate's answer as a full placement, or why it is not one. */
export function placementOf(
  shape: Shape,
  reply: { phy2log?: unknown; logcnt?: unknown },
): Placement | string {
  const { layers: L, experts: E, replicas: R } = shape;
  const { phy2log, logcnt } = reply;
  if (!(phy2log instanceof Int32Array) || phy2log.length !== L * R) {
    return `phy2log must be an Int32Array of ${L}×${R} = ${L * R} entries, got ${describe(phy2log)}`;
  }
  if (!(logcnt instanceof Int32Array) || logcnt.length !== L * E) {
    return `logcnt must be an Int32Array of ${L}×${E} = ${L * E} entries, got ${describe(logcnt)}`;
  }
  // log2phy and its width come from the harness's own count; placementProblem compares logcnt with it.
  const placement = deriveLog2phy(shape, phy2log, countReplicas(shape, phy2log));
  placement.logcnt = logcnt;
  return placementProblem(placement) ?? placement;
}

function failureToInvalid(f: Failure, compiled: CompiledCandidate, where: string): Invalid {
  if (f.kind === 'wgsl')
    return new Invalid('wgsl', (f.diagnostics?.length ? f.diagnostics : [f.message]).slice(0, 5).join('\n'));
  const frames = f.stack ? compiled.mapStack(f.stack) : [];
  const text = [`${where}: ${f.message}`, ...frames].join('\n');
  if (f.kind === 'sandbox') {
    return new Invalid(
      'sandbox',
      `${text}\ncandidates may not read or write files, start processes or threads, or load native code`,
    );
  }
  const key =
    f.kind === 'exception'
      ? 'exception'
      : f.kind === 'import'
        ? 'import'
        : f.kind === 'gpu'
          ? 'gpu'
          : 'validation';
  return new Invalid(key, text);
}

function describe(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  if (typeof a !== 'object') return typeof a;
  const name = (a as object).constructor?.name ?? 'object';
  const length = (a as { length?: unknown }).length;
  return typeof length === 'number' ? `${name} of ${length}` : name;
}

const avg = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const fmt = (x: number): string => x.toFixed(3);
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
