import { countReplicas, deriveLog2phy, type Placement, placementProblem } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { summarizeTimes } from '../util/stats.js';
import type { GpuScorer } from './gpu-scorer.js';
import type { Failure, FromWorker } from './protocol.js';
import { adrsObjective, defaultScore } from './scores.js';
import type { CompiledCandidate } from './transpile.js';
import type { EvalMetrics, EvalResult, EvaluateOptions } from './types.js';
import { applyTransform, type LoadTransform, randomTransform, untransformPlacement } from './windows.js';
import { WorkerDeath, type WorkerProcess } from './worker-process.js';

/** Stage 1's tiny case: DeepSeek's README example (2 layers × 12 experts, 16 slots, 4 groups, 2 nodes, 8 GPUs). */
export const TINY_SHAPE: Shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
export const TINY_LOADS = Float32Array.from([
  90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86, 20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27,
]);

/**
 * Passes may differ this much (relative GPU balancedness, worst pass against best) before answers
 * count as not following the input. A balancer that computes from its input gives the same quality
 * on every relabelling (measured: within 0.05 % for greedy-cpu); an input-independent one such as
 * valid-naive swings by up to ~3.5 % between passes of two windows, which is why this is not 1 %.
 * Passes cannot be played against each other anyway: the score takes the worst pass's quality and
 * the slowest pass's time.
 */
export const CONSISTENCY_TOLERANCE = 0.05;
const WARMUP_CALLS = 2;
/** Passes over the windows: the first scores, the relabelled ones check that answers follow the input. */
export const DEFAULT_REPEATS = 3;
/** Load scale factors of the relabellings: any pass's values look alike. */
const randomScale = (rng: Rng): number => 0.5 + 1.5 * rng.next();
const IPC_PROBES = 5;

export interface CascadeJob {
  worker: WorkerProcess;
  compiled: CompiledCandidate;
  kernels: Record<string, string>;
  options: EvaluateOptions;
  /** The trace's leading windows (evalWindows(trace, n)) and the trace they come from. */
  windows: Float32Array[];
  trace: Trace;
  shape: Shape;
  /** The harness's GPU metrics (shared by the pool). */
  scorer: GpuScorer;
  /** Settles when background work that would disturb timing (the next worker's start) is over. */
  quiet?: Promise<unknown>;
  /** The candidate's limit, seconds: from the moment its code is sent (after `quiet` and the calibration). */
  timeoutS: number;
  /** Bound on the harness's own preparation (`quiet`, calibration), ms (default SETUP_TIMEOUT_MS). */
  setupTimeoutMs?: number;
}

/**
 * How long the harness may take to get a worker ready for the candidate (the next worker's start,
 * which has its own 60 s limit, then the IPC calibration); past it the evaluation fails as the
 * evaluator's error, not the candidate's.
 */
export const SETUP_TIMEOUT_MS = 120_000;

/**
 * The evaluation could not run for the harness's own reasons; pool.evaluate rejects with it. A
 * UserError (and so named): the CLI prints it as one line.
 */
export class EvaluatorError extends UserError {}

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
    /** Wall time before the candidate's code was sent (null while the harness is still preparing). */
    setupMs: null as number | null,
    /** Calls per pass (timed calls in pass order) and each pass's mean next-window balancedness. */
    passSizes: [] as number[],
    passNext: [] as number[],
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
    // fooled but carries IPC jitter. Each call is charged the larger of the two (the parent's less
    // the IPC round trip measured before any candidate code ran), so time hidden from the worker's
    // clock is still charged, and a forged worker time gains nothing.
    run.times = run.workerMs.map((w, i) => Math.max(w, run.parentMs[i]!));
    const gaps = run.workerMs.map((w, i) => run.parentMs[i]! - w).sort((a, b) => a - b);
    const gap = gaps.length ? gaps[Math.floor(gaps.length / 2)]! : 0;
    // Time is that of the slowest pass (its median, its mean): a candidate that recognises a pass
    // (by call count, say) and spends more on it pays for it.
    const passes = splitPasses(run.times, run.passSizes);
    const medians = passes.map((p) => summarizeTimes(p).median_ms);
    const means = passes.map((p) => p.reduce((x, y) => x + y, 0) / p.length);
    const t = { median_ms: medians.length ? Math.max(...medians) : 0, p95_ms: 0 };
    if (run.times.length) t.p95_ms = summarizeTimes(run.times).p95_ms;
    const mean = means.length ? Math.max(...means) : null;
    const b = run.passNext.length ? Math.min(...run.passNext) : null;
    const metrics: EvalMetrics = {
      balancedness_next: b,
      balancedness_same: avg(run.same),
      balancedness_next_varied: avg(run.varied),
      slot_balancedness_next: avg(run.slotNext),
      inter_node_share_next: avg(run.interNode),
      median_ms: medians.length ? t.median_ms : null,
      p95_ms: run.times.length ? t.p95_ms : null,
      mean_ms: mean,
      adrs_score: b !== null && mean !== null ? adrsObjective(b, mean) : null,
      default_score: b !== null && medians.length ? defaultScore(b, t.median_ms) : null,
      windows: run.next.length,
      calls: run.times.length,
      ipc_ms: run.ipcMs,
      setup_ms: run.setupMs,
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
    if (typeof reply.ms !== 'number' || !Number.isFinite(reply.ms) || reply.ms < 0) {
      throw new Invalid('sandbox', `${run.where}: the worker reported an impossible call time`);
    }
    if (reply.failure) throw failureToInvalid(reply.failure, job.compiled, run.where);
    const ms = reply.ms;
    const parentMs = Math.max(0, roundTrip - (run.ipcMs ?? 0));
    run.candidateMs += ms;
    const placement = placementOf(shape, reply);
    if (typeof placement === 'string') throw new Invalid('validation', `${run.where}: ${placement}`);
    if (job.worker.unexpectedReplies > 0) {
      throw new Invalid('sandbox', `${run.where}: the candidate sent messages on the harness channel`);
    }
    return Object.assign(placement, { ms, parentMs });
  };

  // The harness's preparation has its own bound; the candidate's clock starts after it.
  const setupMs = job.setupTimeoutMs ?? SETUP_TIMEOUT_MS;
  let expire: (death: WorkerDeath) => void = () => {};
  const setupOver = new Promise<never>((_, reject) => {
    expire = reject;
  });
  setupOver.catch(() => {});
  let timer = setTimeout(() => {
    const death = new WorkerDeath(
      'evaluator',
      `the evaluator could not prepare a worker within ${setupMs / 1000} s (the machine is overloaded?); the candidate did not run`,
    );
    job.worker.kill(death);
    expire(death);
  }, setupMs);
  try {
    const { shape, windows } = job;
    // IPC calibration first, while no candidate code runs in the worker (once the next worker's
    // start, which would disturb it, is over).
    run.where = 'waiting for the next worker to start';
    await Promise.race([job.quiet, setupOver]);
    run.where = 'calibration';
    const probes: number[] = [];
    for (let i = 0; i < IPC_PROBES; i++) {
      const t0 = performance.now();
      await job.worker.request({ type: 'probe', loads: windows[0]!, shape });
      probes.push(performance.now() - t0);
    }
    run.ipcMs = summarizeTimes(probes).median_ms;
    run.setupMs = performance.now() - started;
    clearTimeout(timer);
    timer = setTimeout(() => {
      job.worker.kill(
        new WorkerDeath(
          'timeout',
          `timeout: the evaluation exceeded its ${job.timeoutS} s limit and the worker was killed`,
        ),
      );
    }, job.timeoutS * 1000);

    // Stage 1.
    run.where = 'loading';
    const loaded = await job.worker.request({ type: 'load', js: job.compiled.js, kernels: job.kernels });
    if (loaded.type === 'loaded' && loaded.failure)
      throw failureToInvalid(loaded.failure, job.compiled, 'loading');
    run.where = 'stage 1, tiny case (2 layers × 12 experts, 16 slots, 8 GPUs, 2 nodes)';
    await call(TINY_LOADS, TINY_SHAPE);

    // Stage 2 (see stage2Plan).
    run.stage = 2;
    const repeats = options.repeats ?? DEFAULT_REPEATS;
    const pairs = windows.length - 1;
    const plan = stage2Plan(shape, pairs, repeats, options.seed ?? 1);
    for (let i = 0; i < WARMUP_CALLS; i++) {
      run.where = `stage 2, warm-up call ${i + 1}`;
      await call(applyTransform(plan.warmup[i]!, windows[0]!, shape), shape);
    }
    let lastProgress = performance.now();
    for (let pass = 0; pass < repeats; pass++) {
      const { order, transforms } = plan.passes[pass]!;
      const placements: Placement[] = new Array(pairs);
      for (const k of order) {
        run.where = `stage 2, window ${k} of ${pairs}, pass ${pass + 1} of ${repeats}`;
        const t = transforms[k]!;
        const placement = await call(applyTransform(t, windows[k]!, shape), shape);
        run.workerMs.push(placement.ms);
        run.parentMs.push(placement.parentMs);
        placements[k] = untransformPlacement(t, placement);
        if (options.onProgress && performance.now() - lastProgress > 1000) {
          lastProgress = performance.now();
          options.onProgress(run.where);
        }
      }
      run.passSizes.push(pairs);
      // Every pass is scored on the next windows; pass 0 also on the windows it saw.
      run.where = `stage 2, scoring pass ${pass + 1} of ${repeats}`;
      const scored: Array<[number, number]> = [];
      for (let k = 0; k < pairs; k++) {
        scored.push([k, k + 1]);
        if (pass === 0) scored.push([k, k]);
      }
      const m = await job.scorer.score(job.trace, windows, shape, placements, scored);
      const next: number[] = [];
      for (let k = 0; k < pairs; k++) {
        if (pass === 0) {
          const n = m[2 * k]!;
          next.push(n.gpuBalancedness);
          run.slotNext.push(n.slotBalancedness);
          run.interNode.push(n.interNodeShare);
          run.same.push(m[2 * k + 1]!.gpuBalancedness);
        } else {
          next.push(m[k]!.gpuBalancedness);
          run.varied.push(m[k]!.gpuBalancedness);
        }
      }
      run.next.push(...(pass === 0 ? next : []));
      run.passNext.push(avg(next)!);
    }
    const best = Math.max(...run.passNext);
    const worst = Math.min(...run.passNext);
    if (worst < best * (1 - CONSISTENCY_TOLERANCE)) {
      throw new Invalid(
        'consistency',
        `answers do not follow the input: GPU balancedness ranges from ${fmt(worst)} to ${fmt(best)} over passes that feed the same windows relabelled (experts permuted within groups, layers reordered, loads rescaled); compute each placement from the loads of that call, do not reuse earlier answers`,
      );
    }
    return finish(true);
  } catch (error) {
    if (error instanceof Invalid) run.artifacts[error.key] = clip(error.message, 2000);
    else if (error instanceof WorkerDeath && (error.kind === 'evaluator' || run.setupMs === null)) {
      // No candidate code had reached the worker: whatever happened is the evaluator's problem.
      throw new EvaluatorError(
        error.kind === 'evaluator'
          ? error.message
          : `the worker failed before the candidate ran: ${error.message}`,
      );
    } else if (error instanceof WorkerDeath) {
      const key = error.kind === 'resource' ? 'resource' : error.kind === 'timeout' ? 'timeout' : 'crash';
      run.artifacts[key] = `${error.message} (during ${run.where})`;
    } else throw error;
    return finish(false);
  } finally {
    clearTimeout(timer);
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
  if (typeof a === 'string') return a; // the worker's description of what the candidate returned
  if (a === null || a === undefined) return String(a);
  if (typeof a !== 'object') return typeof a;
  const name = (a as object).constructor?.name ?? 'object';
  const length = (a as { length?: unknown }).length;
  return typeof length === 'number' ? `${name} of ${length}` : name;
}

/** The relabellings and call order of stage 2, drawn from the evaluation's seed. */
export interface Stage2Plan {
  warmup: LoadTransform[];
  /** Per pass: the order windows are fed in, and window k's relabelling (transforms[k]). */
  passes: Array<{ order: Int32Array; transforms: LoadTransform[] }>;
}

/**
 * Every call gets a relabelled window (experts permuted within groups, layers reordered, loads
 * scaled by a fresh factor), so no pass can be told apart by its values, and each pass feeds its
 * windows in a shuffled order (each call still sees window k only and is scored on k+1). The first
 * warm-up call and pass 0 share one base relabelling (each call its own scale): an answer
 * remembered from the warm-up fits pass 0 only, which the consistency check sees.
 */
export function stage2Plan(shape: Shape, pairs: number, repeats: number, seed: number): Stage2Plan {
  const rng = new Rng(seed);
  const base = randomTransform(shape, rng);
  const rescaled = (): LoadTransform => ({ ...base, scale: randomScale(rng) });
  const warmup = Array.from({ length: WARMUP_CALLS }, (_, i) =>
    i === 0 ? rescaled() : randomTransform(shape, rng),
  );
  const passes: Stage2Plan['passes'] = [];
  for (let pass = 0; pass < repeats; pass++) {
    const order = Int32Array.from({ length: pairs }, (_, k) => k);
    for (let i = pairs - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const transforms = Array.from({ length: pairs }, () =>
      pass === 0 ? rescaled() : randomTransform(shape, rng),
    );
    passes.push({ order, transforms });
  }
  return { warmup, passes };
}

/** Consecutive runs of the given sizes. */
function splitPasses(times: number[], sizes: number[]): number[][] {
  const out: number[][] = [];
  let at = 0;
  for (const n of sizes) {
    if (at + n > times.length) break;
    out.push(times.slice(at, at + n));
    at += n;
  }
  return out;
}

const avg = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const fmt = (x: number): string => x.toFixed(3);
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
