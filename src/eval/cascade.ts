import { DEFAULT_HISTORY } from '../eplb/balancer.js';
import { gpuLoads } from '../eplb/metrics.js';
import { countReplicas, deriveLog2phy, type Placement, placementProblem } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import { assert, UserError } from '../util/errors.js';
import { meanOrNull, standardError, summarizeTimes } from '../util/stats.js';
import type { GpuScorer } from './gpu-scorer.js';
import type { Failure, FromWorker } from './protocol.js';
import { adrsObjective, defaultScore, moeScore } from './scores.js';
import type { CompiledCandidate } from './transpile.js';
import type { EvalMetrics, EvalResult, EvaluateOptions, GpuLoads, HarnessClock } from './types.js';
import { callInput, type PassPlan, passPlans, secretSeed, untransformPlacement } from './windows.js';
import { WorkerDeath, type WorkerProcess } from './worker-process.js';

/** Stage 1's tiny case: DeepSeek's README example (2 layers × 12 experts, 16 slots, 4 groups, 2 nodes, 8 GPUs). */
export const TINY_SHAPE: Shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
export const TINY_LOADS = Float32Array.from([
  90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86, 20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27,
]);

/**
 * Passes may differ this much (relative mean GPU balancedness, worst pass against best) before
 * answers count as not following the input. Every pass feeds the same windows in the same order
 * under a different secret relabelling, so a balancer that computes from its input (state between
 * calls included) gives the same quality in each (greedy-cpu: within 0.05 %); an input-independent
 * one such as valid-naive swings by up to ~3.5 % between passes of two windows.
 */
export const CONSISTENCY_TOLERANCE = 0.05;
/** Untimed calls at the start of each pass (pipeline compilation, JIT), still scored. */
const WARMUP_CALLS = 2;
/** Timed passes, each in its own fresh worker process. */
export const DEFAULT_REPEATS = 2;
// Windows in each call's history (the latest included): the one default the balancers cap at too.
export { DEFAULT_HISTORY };
/** Tokens per layer of the MoE-time simulation, and at most how many windows of pass 1 it samples. */
export const DEFAULT_MOE_TOKENS = 4096;
export const MOE_WINDOWS = 2;
const IPC_PROBES = 5;

export interface CascadeJob {
  /**
   * Fresh, started workers, one per pass (`repeats` of them): the first runs stage 1 and pass 1, each
   * later pass runs in the next one, so no process ever sees a window after the one it is asked about.
   */
  workers: WorkerProcess[];
  compiled: CompiledCandidate;
  kernels: Record<string, string>;
  options: EvaluateOptions;
  /** The trace's leading windows (evalWindows(trace, n)) and the trace they come from. */
  windows: Float32Array[];
  trace: Trace;
  shape: Shape;
  /** The harness's GPU metrics (shared by the pool). */
  scorer: GpuScorer;
  /** Settles when background work that would disturb timing (the slot's next workers' start) is over. */
  quiet?: Promise<unknown>;
  /** The candidate's limit, seconds: from the moment its code is sent (after `quiet` and the calibration). */
  timeoutS: number;
  /** Bound on the harness's own preparation (`quiet`, calibration), ms (default SETUP_TIMEOUT_MS). */
  setupTimeoutMs?: number;
  /** The harness's clock for the setup bound, the candidate's limit and setup_ms/eval_ms (tests inject one). */
  clock?: HarnessClock;
}

/** The harness's clock outside tests: performance.now() and setTimeout. */
export const realClock: HarnessClock = {
  now: () => performance.now(),
  timer: (ms, fire) => {
    const t = setTimeout(fire, ms);
    return () => clearTimeout(t);
  },
};

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
/** The worker's optional time split of a call (contract 3). */
interface Split {
  host_ms: number;
  gpu_wait_ms: number;
  gpu_ms: number | null;
}

/** Per pass: charged times of its timed calls and its windows' metrics. */
interface PassRecord {
  times: number[];
  next: number[];
  same: number[];
  slotNext: number[];
  interNode: number[];
}

/**
 * The cascade for one candidate. Stage 1 (first worker): WGSL compile (in the worker, with
 * file:line:col), module load, the tiny case, validated. Stage 2: `repeats` passes, each in its own
 * fresh worker process, each feeding windows 0 … n−2 in time order (call k gets windows up to k as
 * its history and is scored on window k+1), all relabelled by the pass's secret relabelling (one
 * expert permutation within groups and one layer order for the whole pass; a load scale per call).
 * A process only ever sees the past of the window it is scored on, so state kept between calls is
 * legitimate and remembering inputs gains nothing. Each pass's first WARMUP_CALLS calls (and its
 * worker's module load) run untimed, in all pass workers at once; then the passes' remaining calls
 * run timed, one pass after another. Every timed call is timed and every placement
 * validated here; after each pass its placements are mapped back to the original labels and
 * scored in one batch on the harness's GPU. Nothing the worker reports about quality is used, and
 * its clock is only trusted when the parent's clock agrees.
 */
export async function runCascade(job: CascadeJob): Promise<EvalResult> {
  const clock = job.clock ?? realClock;
  const started = clock.now();
  const { options, workers } = job;
  const seed = options.seed ?? secretSeed();
  const historyLength = options.history ?? DEFAULT_HISTORY;
  const moeTokens = options.moeTokens ?? DEFAULT_MOE_TOKENS;
  let worker = workers[0]!;
  const run = {
    stage: 1 as 1 | 2,
    where: 'loading',
    gpuLoads: null as GpuLoads | null,
    candidateMs: 0,
    /** Per timed call: the worker's clock, and the parent's round trip minus the IPC baseline. */
    workerMs: [] as number[],
    parentMs: [] as number[],
    /** Per timed call: the worker's time split, or null where it gave none. */
    splits: [] as Array<Split | null>,
    ipcMs: null as number | null,
    /** Wall time before the candidate's code was sent (null while the harness is still preparing). */
    setupMs: null as number | null,
    passes: [] as PassRecord[],
    moe: [] as Array<{ ms: number; noneMs: number }>,
    artifacts: {} as Record<string, string>,
  };
  const finish = (valid: boolean): EvalResult => {
    const evalMs = clock.now() - started;
    // The worker's clock is precise but runs in the candidate's process; the parent's cannot be
    // fooled but carries IPC jitter. Each call is charged the larger of the two (the parent's less
    // the IPC round trip measured before any candidate code ran), so time hidden from the worker's
    // clock is still charged, and a forged worker time gains nothing.
    const times = run.workerMs.map((w, i) => Math.max(w, run.parentMs[i]!));
    const gaps = run.workerMs.map((w, i) => run.parentMs[i]! - w).sort((a, b) => a - b);
    const gap = gaps.length ? gaps[Math.floor(gaps.length / 2)]! : 0;
    const passes = run.passes.filter((p) => p.next.length > 0);
    const b = meanOrNull(passes.flatMap((p) => p.next));
    // The mean over every timed call, as the ADRS evaluator charges: a slow call always costs.
    const mean = meanOrNull(times);
    const summary = times.length ? summarizeTimes(times) : null;
    const moeMs = meanOrNull(run.moe.map((m) => m.ms));
    const moeNoneMs = meanOrNull(run.moe.map((m) => m.noneMs));
    const scores = (bq: number | null, t: number | null) => ({
      adrs: bq !== null && t !== null ? adrsObjective(bq, t) : null,
      default: bq !== null && t !== null ? defaultScore(bq, t) : null,
      moe: moeMs !== null && moeNoneMs !== null && t !== null ? moeScore(moeNoneMs, moeMs, t) : null,
    });
    const total = scores(b, mean);
    // Noise: the same score computed per pass (its quality, its mean time); their spread / √passes.
    const perPass = passes.map((p) => scores(meanOrNull(p.next), meanOrNull(p.times)));
    const noise = (k: 'adrs' | 'default' | 'moe') => standardError(perPass.map((s) => s[k]));
    // A split mean only when every timed call reported that part.
    const split = (k: keyof Split) => {
      const xs = run.splits.map((s) => (s ? s[k] : null)).filter((x): x is number => x !== null);
      return xs.length > 0 && xs.length === run.splits.length ? meanOrNull(xs) : null;
    };
    const metrics: EvalMetrics = {
      balancedness_next: b,
      balancedness_same: meanOrNull(passes.flatMap((p) => p.same)),
      slot_balancedness_next: meanOrNull(passes.flatMap((p) => p.slotNext)),
      inter_node_share_next: meanOrNull(passes.flatMap((p) => p.interNode)),
      moe_time_ms: moeMs,
      moe_time_none_ms: moeNoneMs,
      moe_tokens: moeTokens,
      moe_windows: run.moe.length,
      mean_ms: mean,
      median_ms: summary ? summary.median_ms : null,
      p95_ms: summary ? summary.p95_ms : null,
      mean_ms_noise: standardError(times),
      host_ms: split('host_ms'),
      gpu_wait_ms: split('gpu_wait_ms'),
      gpu_ms: split('gpu_ms'),
      adrs_score: total.adrs,
      default_score: total.default,
      moe_score: total.moe,
      adrs_score_noise: noise('adrs'),
      default_score_noise: noise('default'),
      moe_score_noise: noise('moe'),
      score_noise: null,
      passes: passes.length,
      windows: passes[0]?.next.length ?? 0,
      calls: times.length,
      history: historyLength,
      ipc_ms: run.ipcMs,
      setup_ms: run.setupMs,
      clock_gap_ms: times.length ? gap : null,
      eval_ms: evalMs,
      candidate_ms: run.candidateMs,
      overhead_ms: evalMs - run.candidateMs,
      peak_rss_mb: peakRss(workers),
    };
    const which = objectiveKey(options.objective);
    metrics.score_noise = metrics[`${which}_noise`];
    const printed = worker.output.trim();
    if (!valid && printed) run.artifacts.output = clip(printed.split('\n').slice(-10).join('\n'), 800);
    return {
      valid,
      stage: run.stage,
      score: valid ? metrics[which] : null,
      objective: options.objective,
      seed,
      metrics,
      artifacts: run.artifacts,
      ...(valid && run.gpuLoads ? { gpu_loads: run.gpuLoads } : {}),
    };
  };

  const call = async (
    input: { loads: Float32Array; history: Float32Array[] },
    shape: Shape,
    on: WorkerProcess = worker,
    /** Whether the call's time adds to candidate_ms (concurrent calls are added as their phase's wall share). */
    count = true,
  ): Promise<Placement & { ms: number; parentMs: number; split: Split | null }> => {
    const t0 = performance.now();
    const reply = (await on.request({
      type: 'call',
      loads: input.loads,
      history: input.history,
      shape,
    })) as CallReply;
    const roundTrip = performance.now() - t0;
    if (typeof reply.ms !== 'number' || !Number.isFinite(reply.ms) || reply.ms < 0) {
      throw new Invalid('sandbox', `${run.where}: the worker reported an impossible call time`);
    }
    if (reply.failure) throw failureToInvalid(reply.failure, job.compiled, run.where);
    const ms = reply.ms;
    const parentMs = Math.max(0, roundTrip - (run.ipcMs ?? 0));
    if (count) run.candidateMs += ms;
    const placement = placementOf(shape, reply);
    if (typeof placement === 'string') throw new Invalid('validation', `${run.where}: ${placement}`);
    if (on.unexpectedReplies > 0) {
      throw new Invalid('sandbox', `${run.where}: the candidate sent messages on the harness channel`);
    }
    return Object.assign(placement, { ms, parentMs, split: splitOf((reply as { split?: unknown }).split) });
  };

  // The harness's preparation has its own bound; the candidate's clock starts after it.
  const setupMs = job.setupTimeoutMs ?? SETUP_TIMEOUT_MS;
  let expire: (death: WorkerDeath) => void = () => {};
  const setupOver = new Promise<never>((_, reject) => {
    expire = reject;
  });
  setupOver.catch(() => {});
  const killAll = (death: WorkerDeath) => {
    for (const w of workers) w.kill(death);
  };
  let cancelTimer = clock.timer(setupMs, () => {
    const death = new WorkerDeath(
      'evaluator',
      `the evaluator could not prepare a worker within ${setupMs / 1000} s (the machine is overloaded?); the candidate did not run`,
    );
    killAll(death);
    expire(death);
  });
  try {
    const { shape, windows } = job;
    const repeats = options.repeats ?? DEFAULT_REPEATS;
    assert(workers.length >= repeats, `runCascade needs ${repeats} workers, got ${workers.length}`);
    const pairs = windows.length - 1;
    const plans = passPlans(shape, pairs, repeats, seed);
    // IPC calibration first, while no candidate code runs in any worker (once the slot's next
    // workers' start, which would disturb it, is over), with a call's full payload.
    run.where = 'waiting for the next worker to start';
    await Promise.race([job.quiet, setupOver]);
    run.where = 'calibration';
    const probe = callInput(windows, Math.min(historyLength, pairs) - 1, historyLength, plans[0]!, shape);
    const probes: number[] = [];
    for (const w of workers.slice(0, repeats)) {
      for (let i = 0; i < IPC_PROBES; i++) {
        const t0 = performance.now();
        await w.request({ type: 'probe', loads: probe.loads, history: probe.history, shape });
        probes.push(performance.now() - t0);
      }
    }
    run.ipcMs = summarizeTimes(probes).median_ms;
    run.setupMs = clock.now() - started;
    cancelTimer();
    cancelTimer = clock.timer(job.timeoutS * 1000, () => {
      killAll(
        new WorkerDeath(
          'timeout',
          `timeout: the evaluation exceeded its ${job.timeoutS} s limit and the worker was killed`,
        ),
      );
    });

    const load = async (on: WorkerProcess = worker) => {
      const loaded = await on.request({ type: 'load', js: job.compiled.js, kernels: job.kernels });
      if (loaded.type === 'loaded' && loaded.failure)
        throw failureToInvalid(loaded.failure, job.compiled, 'loading');
    };
    // Stage 1. The later passes' workers load the code meanwhile (their loads are awaited below;
    // a stage-1 failure makes them moot).
    run.where = 'loading';
    const laterLoads = workers.slice(1, repeats).map((w) => load(w));
    for (const l of laterLoads) l.catch(() => {});
    await load();
    run.where = 'stage 1, tiny case (2 layers × 12 experts, 16 slots, 8 GPUs, 2 nodes)';
    await call({ loads: TINY_LOADS, history: [TINY_LOADS.slice()] }, TINY_SHAPE);

    // Stage 2, untimed part: every pass's worker loads the candidate and makes its warm-up calls
    // (windows 0 … warmup−1: pipeline compilation, JIT), all workers at once, so the fresh process
    // per pass costs its start-up once in wall time rather than once per pass.
    run.stage = 2;
    const warmup = Math.min(WARMUP_CALLS, pairs - 1);
    const placementsOf: Placement[][] = plans.map(() => new Array<Placement>(pairs));
    run.where = `stage 2, loading and warm-up calls of ${repeats} passes`;
    const warmMs = await Promise.all(
      plans.map(async (plan, pass) => {
        const w = workers[pass]!;
        if (pass > 0) await laterLoads[pass - 1];
        let spent = 0;
        for (let k = 0; k < warmup; k++) {
          const input = callInput(windows, k, historyLength, plan, shape);
          const placement = await call(input, shape, w, false);
          spent += placement.ms;
          placementsOf[pass]![k] = untransformPlacement(transformOf(plan), placement);
        }
        return spent;
      }),
    );
    // The candidate's share of that phase's wall time: its slowest worker's.
    run.candidateMs += Math.max(0, ...warmMs);
    // Timed part: one pass after another, each in its own process, continuing in time order.
    let lastProgress = performance.now();
    for (let pass = 0; pass < repeats; pass++) {
      const plan = plans[pass]!;
      if (pass > 0) {
        // Done with the previous pass's process (it saw the same windows).
        workers[pass - 1]!.kill();
        worker = workers[pass]!;
      }
      const record: PassRecord = { times: [], next: [], same: [], slotNext: [], interNode: [] };
      run.passes.push(record);
      const placements = placementsOf[pass]!;
      for (let k = warmup; k < pairs; k++) {
        run.where = `stage 2, window ${k} of ${pairs}, pass ${pass + 1} of ${repeats}`;
        const placement = await call(callInput(windows, k, historyLength, plan, shape), shape);
        run.workerMs.push(placement.ms);
        run.parentMs.push(placement.parentMs);
        record.times.push(Math.max(placement.ms, placement.parentMs));
        run.splits.push(placement.split);
        placements[k] = untransformPlacement(transformOf(plan), placement);
        if (options.onProgress && performance.now() - lastProgress > 1000) {
          lastProgress = performance.now();
          options.onProgress(run.where);
        }
      }
      run.where = `stage 2, scoring pass ${pass + 1} of ${repeats}`;
      const scored: Array<[number, number]> = [];
      for (let k = 0; k < pairs; k++) scored.push([k, k + 1], [k, k]);
      const m = await job.scorer.score(job.trace, windows, shape, placements, scored);
      for (let k = 0; k < pairs; k++) {
        const n = m[2 * k]!;
        record.next.push(n.gpuBalancedness);
        record.slotNext.push(n.slotBalancedness);
        record.interNode.push(n.interNodeShare);
        record.same.push(m[2 * k + 1]!.gpuBalancedness);
      }
      if (pass === 0) run.gpuLoads = gpuLoadsOf(shape, placements[pairs - 1]!, windows[pairs]!, pairs);
      if (pass === 0 && moeTokens > 0) {
        run.where = 'stage 2, MoE-time simulation of pass 1';
        run.moe = await job.scorer.moeTimes(
          job.trace,
          windows,
          shape,
          placements,
          sampledPairs(pairs, MOE_WINDOWS),
          moeTokens,
          job.trace.manifest.topK,
          job.trace.manifest.topKGroups,
        );
      }
    }
    const passNext = run.passes.map((p) => meanOrNull(p.next)!);
    const best = Math.max(...passNext);
    const worst = Math.min(...passNext);
    if (worst < best * (1 - CONSISTENCY_TOLERANCE)) {
      throw new Invalid(
        'consistency',
        `answers do not follow the input: GPU balancedness ranges from ${fmt(worst)} to ${fmt(best)} over passes that feed the same windows in the same order under different relabellings (experts permuted within groups, layers reordered, loads rescaled); compute each placement from the input of the call`,
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
    cancelTimer();
  }
}

/** Which metric the objective is. */
export function objectiveKey(o: EvaluateOptions['objective']): 'adrs_score' | 'default_score' | 'moe_score' {
  return o === 'adrs' ? 'adrs_score' : o === 'moe-time' ? 'moe_score' : 'default_score';
}

/** At most n window indices of 0 … pairs−1, evenly spaced, each with its next window. */
export function sampledPairs(pairs: number, n: number): Array<[number, number]> {
  const m = Math.min(n, pairs);
  return Array.from({ length: m }, (_, i) => {
    const k = Math.floor(((i + 0.5) * pairs) / m);
    return [k, k + 1] as [number, number];
  });
}

const transformOf = (plan: PassPlan) => ({ ...plan.transform, scale: 1 });

function splitOf(x: unknown): Split | null {
  if (x === null || typeof x !== 'object') return null;
  const { host_ms, gpu_wait_ms, gpu_ms } = x as Record<string, unknown>;
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!ok(host_ms) || !ok(gpu_wait_ms) || !(gpu_ms === null || ok(gpu_ms))) return null;
  return { host_ms, gpu_wait_ms, gpu_ms };
}

function peakRss(workers: readonly WorkerProcess[]): number | null {
  const peak = Math.max(0, ...workers.map((w) => w.peakRssMb));
  return peak > 0 ? Math.round(peak) : null;
}

/** GPU loads per layer of `placement` on window `window` (`loads`), rounded for a run folder. */
export function gpuLoadsOf(
  shape: Shape,
  placement: Placement,
  loads: Float32Array,
  window: number,
): GpuLoads {
  const out = gpuLoads(placement, loads);
  // Six significant digits: enough for a chart, small in a run folder.
  return {
    window,
    layers: shape.layers,
    gpus: shape.gpus,
    loads: Array.from(out, (x) => Number(x.toPrecision(6))),
  };
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

const fmt = (x: number): string => x.toFixed(3);
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
