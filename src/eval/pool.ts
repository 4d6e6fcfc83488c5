import { rmSync } from 'node:fs';
import { DEEPSEEK_V3_SHAPE, type Shape, validateShape } from '../eplb/shape.js';
import { assert, check, UserError } from '../util/errors.js';
import { DEFAULT_REPEATS, runCascade, SETUP_TIMEOUT_MS } from './cascade.js';
import { GpuScorer } from './gpu-scorer.js';
import { OBJECTIVES } from './scores.js';
import { type CandidateInput, openCandidate } from './sources.js';
import { TranspileError, transpileCandidate } from './transpile.js';
import type { EvalMetrics, EvalResult, EvaluateOptions, PoolOptions } from './types.js';
import { evalWindows, secretSeed } from './windows.js';
import { buildWorkerBundle, type WorkerBundle } from './worker-bundle.js';
import { WorkerDeath, WorkerProcess } from './worker-process.js';

export const DEFAULT_MEMORY_MB = 2048;

/**
 * Evaluates untrusted candidates, several at once (public API for the evolution driver).
 *
 * ```ts
 * const pool = await EvaluatorPool.create({ workers: 2, timeoutS: 60 });
 * const r = await pool.evaluate('examples/eplb', { trace, objective: 'default' });
 * const s = await pool.evaluate({ files: { 'balancer.ts': src, 'kernels/k.wgsl': wgsl } }, { trace, objective: 'adrs' });
 * await pool.close();
 * ```
 *
 * Each evaluation runs on FRESH sandboxed worker processes, one per timed pass (nothing a candidate
 * leaves behind can touch the next pass or the next candidate); every slot keeps the next
 * evaluation's workers started and their devices open in advance, so the spawns cost little wall
 * time between evaluations. `evaluate` resolves with a result for anything
 * the candidate does (invalid results carry artifacts); it rejects only when the evaluation cannot
 * run: a missing folder, an unusable trace or deployment (UserError), or no GPU device.
 */
export class EvaluatorPool {
  private readonly free: Slot[];
  private readonly waiting: Array<{ resolve: (slot: Slot) => void; reject: (error: Error) => void }> = [];
  private closed = false;

  private constructor(
    private readonly options: Required<Pick<PoolOptions, 'timeoutS' | 'memoryMb'>> & PoolOptions,
    private readonly bundle: WorkerBundle,
    private readonly slots: Slot[],
    private readonly scorer: GpuScorer,
  ) {
    this.free = [...slots];
  }

  static async create(options: PoolOptions): Promise<EvaluatorPool> {
    check(
      Number.isInteger(options.workers) && options.workers >= 1,
      `workers must be a positive integer, got ${options.workers}`,
    );
    check(options.timeoutS > 0, `the evaluation timeout must be positive, got ${options.timeoutS} s`);
    const memoryMb = options.memoryMb ?? DEFAULT_MEMORY_MB;
    check(memoryMb >= 256, `the worker memory cap must be at least 256 MiB, got ${memoryMb}`);
    const bundle = await buildWorkerBundle();
    // The scorer first ("no device" surfaces now, not on the first candidate): its adapter is the
    // one every worker must open, by exact name, so candidates are timed on the GPU that scores them.
    const scorerStart = GpuScorer.create(options.adapter);
    let slots: Slot[] = [];
    try {
      const adapter = (await scorerStart).adapterName;
      const spawn = (signal: AbortSignal) =>
        WorkerProcess.spawn({
          bundle,
          memoryMb,
          adapter,
          lifetimeS: options.timeoutS + SETUP_TIMEOUT_MS / 1000,
          signal,
        });
      const depth = options.prestart ?? DEFAULT_REPEATS;
      check(
        Number.isInteger(depth) && depth >= 1,
        `prestart must be a positive integer, got ${options.prestart}`,
      );
      slots = Array.from({ length: options.workers }, () => new Slot(spawn, depth));
      await Promise.all(slots.map((s) => s.ready()));
      return new EvaluatorPool({ ...options, memoryMb }, bundle, slots, await scorerStart);
    } catch (error) {
      await Promise.allSettled([
        ...slots.map((s) => s.close()),
        scorerStart.then((scorer) => scorer.close()),
      ]);
      rmSync(bundle.dir, { recursive: true, force: true });
      if (error instanceof UserError) throw error;
      throw new UserError(`could not start an evaluation worker: ${(error as Error).message}`);
    }
  }

  /** The GPU adapter the workers and the scorer use. */
  get adapter(): string {
    return this.scorer.adapterName;
  }

  async evaluate(candidate: CandidateInput, options: EvaluateOptions): Promise<EvalResult> {
    assert(!this.closed, 'the evaluator pool is closed');
    checkEvaluateOptions(options);
    const started = performance.now();
    const shape = deploymentShape(options);
    const windows = evalWindows(
      options.trace,
      options.windows !== undefined ? options.windows + 1 : undefined,
    );
    const repeats = options.repeats ?? DEFAULT_REPEATS;
    const seeded: EvaluateOptions = { ...options, seed: options.seed ?? secretSeed() };
    const folder = openCandidate(candidate);
    try {
      let compiled: Awaited<ReturnType<typeof transpileCandidate>>;
      try {
        compiled = await transpileCandidate(folder.dir, this.options);
      } catch (error) {
        if (!(error instanceof TranspileError)) throw error;
        return invalidAtStart(
          seeded,
          { [error.key]: error.diagnostics.join('\n') },
          performance.now() - started,
        );
      }
      const slot = await this.acquire();
      try {
        const { workers, successor } = await slot.take(repeats);
        try {
          const result = await runCascade({
            workers,
            compiled,
            kernels: folder.kernels,
            options: seeded,
            windows,
            trace: options.trace,
            shape,
            scorer: this.scorer,
            quiet: successor,
            timeoutS: this.options.timeoutS,
            ...(this.options.clock ? { clock: this.options.clock } : {}),
          });
          // A worker killed by close() is no verdict on the candidate.
          check(!this.closed, 'the evaluator pool was closed during the evaluation');
          // Every pass's worker starts the same way; the first's layers stand for all.
          return { ...result, sandbox: { ...workers[0]!.sandbox, transpile: compiled.sandbox } };
        } catch (error) {
          check(!this.closed, 'the evaluator pool was closed during the evaluation');
          throw error;
        } finally {
          for (const w of workers) w.kill();
        }
      } finally {
        this.release(slot);
      }
    } finally {
      folder.dispose();
    }
  }

  /**
   * Stops every worker (running, starting or waiting), destroys the scorer's device and removes the
   * worker bundle; evaluations in progress or queued reject. Safe to call more than once.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new UserError('the evaluator pool was closed'));
    try {
      await Promise.allSettled([...this.slots.map((s) => s.close()), this.scorer.close()]);
    } finally {
      rmSync(this.bundle.dir, { recursive: true, force: true });
    }
  }

  private acquire(): Promise<Slot> {
    const slot = this.free.pop();
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(slot: Slot): void {
    if (this.closed) return;
    const next = this.waiting.shift();
    if (next) next.resolve(slot);
    else this.free.push(slot);
  }
}

/**
 * One evaluation at a time, with the next evaluation's workers (`depth` of them: one per pass)
 * already starting, so a fresh process per pass costs little wall time.
 */
class Slot {
  private queue: Array<Promise<WorkerProcess>> = [];
  /** The workers of the evaluation in progress, if any. */
  private current: WorkerProcess[] = [];
  private readonly stop = new AbortController();

  constructor(
    private readonly spawn: (signal: AbortSignal) => Promise<WorkerProcess>,
    private readonly depth: number,
  ) {
    for (let i = 0; i < depth; i++) this.queue.push(this.start());
  }

  private start(): Promise<WorkerProcess> {
    const p = this.spawn(this.stop.signal).then((w) => {
      if (this.stop.signal.aborted) w.kill(); // started just as the slot closed
      return w;
    });
    p.catch(() => {}); // observed by take(); avoids an unhandled rejection while idle
    return p;
  }

  async ready(): Promise<void> {
    await Promise.all(this.queue);
  }

  /**
   * n fresh workers for one evaluation. The slot starts their successors at once; `successor`
   * settles when those starts are over, so the evaluation can keep device start-up out of its timed
   * stage.
   */
  async take(n: number): Promise<{ workers: WorkerProcess[]; successor: Promise<unknown> }> {
    const taken = this.queue.splice(0, n);
    while (taken.length < n) taken.push(this.start());
    const workers: WorkerProcess[] = [];
    try {
      for (const p of taken) {
        try {
          workers.push(await p);
        } catch (error) {
          if (this.stop.signal.aborted) throw error;
          workers.push(await this.spawn(this.stop.signal)); // one retry: a transient start failure must not cost a candidate
        }
      }
    } catch (error) {
      for (const w of workers) w.kill();
      for (const p of taken)
        void p.then(
          (w) => w.kill(),
          () => undefined,
        );
      throw error;
    }
    if (this.stop.signal.aborted) {
      for (const w of workers) w.kill();
      throw new UserError('the evaluator pool was closed');
    }
    this.current = workers;
    const fresh: Array<Promise<WorkerProcess>> = [];
    while (this.queue.length + fresh.length < this.depth) fresh.push(this.start());
    this.queue.push(...fresh);
    return { workers, successor: Promise.allSettled(fresh) };
  }

  /** Kills the running workers and the started ones, cancelling starts in progress. */
  async close(): Promise<void> {
    this.stop.abort();
    for (const w of this.current) w.kill(new WorkerDeath('killed', 'the evaluator pool was closed'));
    await Promise.allSettled(
      this.queue.map(async (p) => {
        (await p).kill();
      }),
    );
  }
}

/** One-line UserErrors for evaluation options out of range (the CLI checks before starting workers). */
export function checkEvaluateOptions(
  options: Pick<EvaluateOptions, 'objective' | 'windows' | 'repeats' | 'history' | 'seed' | 'moeTokens'>,
): void {
  check(
    OBJECTIVES.includes(options.objective),
    `objective must be one of ${OBJECTIVES.join(', ')}, got '${options.objective}'`,
  );
  if (options.history !== undefined) {
    check(
      Number.isInteger(options.history) && options.history >= 1,
      `history must be a positive integer (windows per call, the latest included), got ${options.history}`,
    );
  }
  if (options.seed !== undefined) {
    check(
      /^[0-9a-f]{1,12}$/.test(options.seed),
      `seed must be up to 12 hex digits (as reported in a result's seed), got '${options.seed}'`,
    );
  }
  check(
    options.objective !== 'moe-time' || options.moeTokens !== 0,
    'the moe-time objective needs the MoE-time simulation: moe tokens must be positive',
  );
  if (options.moeTokens !== undefined) {
    check(
      Number.isInteger(options.moeTokens) && options.moeTokens >= 0 && options.moeTokens <= 1 << 24,
      `moe tokens must be an integer in [0, 2^24], got ${options.moeTokens}`,
    );
  }
  if (options.windows !== undefined) {
    check(
      Number.isInteger(options.windows) && options.windows >= 1,
      `windows must be a positive integer, got ${options.windows}`,
    );
  }
  if (options.repeats !== undefined) {
    check(
      Number.isInteger(options.repeats) && options.repeats >= 2,
      `repeats must be an integer of at least 2 (each pass is a fresh worker under its own relabelling; passes must agree), got ${options.repeats}`,
    );
  }
}

/**
 * The evaluated deployment: layers and experts from the trace; slots, nodes and GPUs from the
 * options (default DeepSeek-V3's 288/4/32), groups from the options (default the trace's).
 */
export function deploymentShape(options: Pick<EvaluateOptions, 'trace' | 'deployment'>): Shape {
  const m = options.trace.manifest;
  const d = options.deployment ?? {};
  const shape: Shape = {
    layers: m.layers,
    experts: m.experts,
    groups: d.groups ?? m.groups,
    replicas: d.replicas ?? DEEPSEEK_V3_SHAPE.replicas,
    nodes: d.nodes ?? DEEPSEEK_V3_SHAPE.nodes,
    gpus: d.gpus ?? DEEPSEEK_V3_SHAPE.gpus,
  };
  validateShape(shape);
  return shape;
}

function invalidAtStart(
  options: EvaluateOptions,
  artifacts: Record<string, string>,
  evalMs: number,
): EvalResult {
  const metrics: EvalMetrics = {
    balancedness_next: null,
    balancedness_same: null,
    slot_balancedness_next: null,
    inter_node_share_next: null,
    moe_time_ms: null,
    moe_time_none_ms: null,
    moe_tokens: 0,
    moe_windows: 0,
    mean_ms: null,
    median_ms: null,
    p95_ms: null,
    mean_ms_noise: null,
    host_ms: null,
    gpu_wait_ms: null,
    gpu_ms: null,
    adrs_score: null,
    default_score: null,
    moe_score: null,
    adrs_score_noise: null,
    default_score_noise: null,
    moe_score_noise: null,
    score_noise: null,
    passes: 0,
    windows: 0,
    calls: 0,
    history: 0,
    ipc_ms: null,
    setup_ms: null,
    clock_gap_ms: null,
    eval_ms: evalMs,
    candidate_ms: 0,
    overhead_ms: evalMs,
    peak_rss_mb: null,
  };
  return {
    valid: false,
    stage: 1,
    score: null,
    objective: options.objective,
    seed: options.seed ?? '',
    metrics,
    artifacts,
  };
}
