import { rmSync } from 'node:fs';
import { DEEPSEEK_V3_SHAPE, type Shape, validateShape } from '../eplb/shape.js';
import { check, UserError } from '../util/errors.js';
import { runCascade, SETUP_TIMEOUT_MS } from './cascade.js';
import { GpuScorer } from './gpu-scorer.js';
import { type CandidateInput, openCandidate } from './sources.js';
import { TranspileError, transpileCandidate } from './transpile.js';
import type { EvalMetrics, EvalResult, EvaluateOptions, PoolOptions } from './types.js';
import { evalWindows } from './windows.js';
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
 * Each evaluation runs on a FRESH sandboxed worker process (nothing a candidate leaves behind can
 * touch the next one); every slot keeps its next worker started and its device open in advance, so
 * the spawn costs no wall time between evaluations. `evaluate` resolves with a result for anything
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
      slots = Array.from({ length: options.workers }, () => new Slot(spawn));
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
    check(!this.closed, 'the evaluator pool is closed');
    checkEvaluateOptions(options);
    const started = performance.now();
    const shape = deploymentShape(options);
    const windows = evalWindows(
      options.trace,
      options.windows !== undefined ? options.windows + 1 : undefined,
    );
    const folder = openCandidate(candidate);
    try {
      let compiled: Awaited<ReturnType<typeof transpileCandidate>>;
      try {
        compiled = await transpileCandidate(folder.dir, this.options);
      } catch (error) {
        if (!(error instanceof TranspileError)) throw error;
        return invalidAtStart(
          options,
          { [error.key]: error.diagnostics.join('\n') },
          performance.now() - started,
        );
      }
      const slot = await this.acquire();
      try {
        const { worker, successor } = await slot.take();
        try {
          const result = await runCascade({
            worker,
            compiled,
            kernels: folder.kernels,
            options,
            windows,
            trace: options.trace,
            shape,
            scorer: this.scorer,
            quiet: successor,
            timeoutS: this.options.timeoutS,
          });
          // A worker killed by close() is no verdict on the candidate.
          check(!this.closed, 'the evaluator pool was closed during the evaluation');
          return { ...result, sandbox: { ...worker.sandbox, transpile: compiled.sandbox } };
        } catch (error) {
          check(!this.closed, 'the evaluator pool was closed during the evaluation');
          throw error;
        } finally {
          worker.kill();
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

/** One worker at a time, with the next one already starting. */
class Slot {
  private next: Promise<WorkerProcess>;
  /** The worker of the evaluation in progress, if any. */
  private current: WorkerProcess | undefined;
  private readonly stop = new AbortController();

  constructor(private readonly spawn: (signal: AbortSignal) => Promise<WorkerProcess>) {
    this.next = this.start();
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
    await this.next;
  }

  /**
   * A fresh worker for one evaluation. The slot starts its successor at once; `successor` settles
   * when that start is over, so the evaluation can keep device start-up out of its timed stage.
   */
  async take(): Promise<{ worker: WorkerProcess; successor: Promise<unknown> }> {
    let worker: WorkerProcess;
    try {
      worker = await this.next;
    } catch (error) {
      if (this.stop.signal.aborted) throw error;
      worker = await this.spawn(this.stop.signal); // one retry: a transient start failure must not cost a candidate
    }
    if (this.stop.signal.aborted) {
      worker.kill();
      throw new UserError('the evaluator pool was closed');
    }
    this.current = worker;
    this.next = this.start();
    return { worker, successor: this.next.catch(() => undefined) };
  }

  /** Kills the running worker and the next one, cancelling its start if it is still starting. */
  async close(): Promise<void> {
    this.stop.abort();
    this.current?.kill(new WorkerDeath('killed', 'the evaluator pool was closed'));
    try {
      (await this.next).kill();
    } catch {}
  }
}

/** One-line UserErrors for evaluation options out of range (the CLI checks before starting workers). */
export function checkEvaluateOptions(
  options: Pick<EvaluateOptions, 'objective' | 'windows' | 'repeats'>,
): void {
  check(
    options.objective === 'adrs' || options.objective === 'default',
    `objective must be 'adrs' or 'default', got '${options.objective}'`,
  );
  if (options.windows !== undefined) {
    check(
      Number.isInteger(options.windows) && options.windows >= 1,
      `windows must be a positive integer, got ${options.windows}`,
    );
  }
  if (options.repeats !== undefined) {
    check(
      Number.isInteger(options.repeats) && options.repeats >= 2,
      `repeats must be an integer of at least 2 (pass 1 scores, later passes check that answers follow relabelled input), got ${options.repeats}`,
    );
  }
}

/** The evaluated deployment: layers, experts and groups from the trace; slots, nodes and GPUs from the options (default DeepSeek-V3). */
export function deploymentShape(options: Pick<EvaluateOptions, 'trace' | 'deployment'>): Shape {
  const m = options.trace.manifest;
  const d = options.deployment ?? DEEPSEEK_V3_SHAPE;
  const shape: Shape = {
    layers: m.layers,
    experts: m.experts,
    groups: m.groups,
    replicas: d.replicas,
    nodes: d.nodes,
    gpus: d.gpus,
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
    balancedness_next_varied: null,
    slot_balancedness_next: null,
    inter_node_share_next: null,
    median_ms: null,
    p95_ms: null,
    mean_ms: null,
    adrs_score: null,
    default_score: null,
    windows: 0,
    calls: 0,
    ipc_ms: null,
    setup_ms: null,
    clock_gap_ms: null,
    eval_ms: evalMs,
    candidate_ms: 0,
    overhead_ms: evalMs,
    peak_rss_mb: null,
  };
  return { valid: false, stage: 1, score: null, objective: options.objective, metrics, artifacts };
}
