/**
 * The candidate API (contract): the one place that defines what an evolved EPLB balancer receives
 * and must return, and how it is called and scored. A candidate is a folder holding `balancer.ts`
 * and `kernels/*.wgsl`; it imports these declarations as types only
 * (`import type { … } from '…/candidate-api.js'`), so it carries no runtime dependency on this
 * project and runs unchanged in the sandboxed evaluator.
 *
 * ```ts
 * import type { CandidateContext, RebalanceInput, RebalanceOutput } from '../../src/eval/candidate-api.js';
 * export default async function rebalance(input: RebalanceInput, ctx: CandidateContext): Promise<RebalanceOutput> { … }
 * ```
 *
 * HOW THE EVALUATOR CALLS IT
 * - Window k of a trace is the expert load summed over a stretch of serving steps. The call for
 *   window k receives `input.loads` = window k and `input.history` = windows k−H+1 … k (H = 8 by
 *   default; fewer at the start of the series), and its placement is scored on window k+1, which
 *   it never sees. Forecasting the next window from the history is part of the job.
 * - Each evaluation pass runs in a fresh worker process, and within a process the calls come in
 *   time order (window k's call only after window k−1's), one at a time. Module variables and
 *   `ctx.cache` therefore persist from call to call, and state derived from earlier windows
 *   (a running forecast, say) is meaningful: time only moves forward.
 * - Inputs are relabelled: within one pass ONE relabelling applies to every call (the experts of
 *   each group permuted, the layers reordered), so expert and layer ids are consistent between the
 *   calls of a process, but differ from the trace's and from pass to pass. Loads may also be scaled
 *   by a factor that changes from call to call. What the relabelling preserves: within each layer,
 *   the multiset of expert loads up to that scale (so each expert's share of its layer, the load
 *   ratios, the ranking); the group of every expert (experts move only within their group of E/G
 *   consecutive ids); the set of per-layer load vectors (layers are only reordered). What it
 *   changes: which id an expert or a layer has, and the absolute scale — compare loads as shares of
 *   their window's total, not in absolute terms.
 * - Every answer is validated (shapes, ids in range, every expert at least one replica, logcnt
 *   consistent with phy2log); one invalid answer makes the candidate invalid. Answers must be
 *   computed from the input of the call; a remembered answer does not fit a relabelled input.
 *
 * HOW IT IS SCORED
 * - Quality b = the mean over scored windows k of the GPU balancedness of placement(k) on window
 *   k+1 (GPU balancedness of a layer = mean GPU load / max GPU load; over layers, the ratio of their
 *   sums). Placing well on window k itself is not enough: the next window differs.
 * - Time t = the MEAN time per call over all timed calls of all passes, outliers included (one slow
 *   call costs as much as it weighs in the mean; median and p95 are reported beside it, not
 *   charged). A call is timed from the moment it starts until its promise resolves AND all GPU work
 *   it submitted has finished (the harness waits for the queue; that wait is charged).
 * - Scores: `adrs` = 90·b + 5·min(0.002 / t, 2) − (t > 0.01 ? min(20·t, 20) : 0), t in seconds
 *   (the ADRS leaderboard objective: all speed points at t ≤ 1 ms, a penalty past 10 ms);
 *   `default` = 100·b·(1 + t / 10 ms)^−0.1 (one point of balancedness is always worth 1 % of the
 *   score; halving the time at most ≈ 7 %). +0.001 of b is worth 0.09 `adrs` points.
 *
 * THE METRICS OF AN EVALUATION (one line each; all computed by the harness, none from the candidate)
 * - balancedness_next: b above, in the worst pass (the scored quality).
 * - balancedness_same: placement(k) scored on window k itself (what a balancer without forecast optimises).
 * - balancedness_next_varied: b over the later, relabelled passes (equals b for an honest candidate).
 * - slot_balancedness_next: like b, per physical slot instead of per GPU.
 * - inter_node_share_next: share of routed load that must cross nodes on window k+1 (lower is better).
 * - mean_ms: t above, the charged time per call; median_ms, p95_ms: its median and 95th percentile.
 * - host_ms, gpu_wait_ms, gpu_ms: where the call time went (see CallSplit): CPU work in JavaScript,
 *   waiting for the GPU (mapAsync, onSubmittedWorkDone, the harness's final wait), and GPU execution
 *   of the `ctx.dispatch` passes (timestamp queries; null where unavailable).
 * - adrs_score, default_score: the two scores above.
 * - windows, calls: scored windows and timed calls.
 * - ipc_ms: the harness↔worker message round trip, measured before candidate code loads and
 *   subtracted from the parent's clock (not charged).
 * - clock_gap_ms: median of (parent's clock − ipc_ms) − worker's clock per call; ≈ 0 unless time
 *   escaped the worker's clock (each call is charged the larger of the two).
 * - setup_ms: the harness's preparation before the candidate's code was sent (not charged).
 * - eval_ms, candidate_ms, overhead_ms: whole evaluation wall time; the sum of call times within it;
 *   the rest (scoring, IPC, process start), none of it charged.
 * - peak_rss_mb: the worker's peak resident memory.
 *
 * THE SANDBOX
 * - The candidate runs in a separate process inside bubblewrap where available (no network, a
 *   read-only file system with a private /tmp, its own uid, no inherited descriptors), under Node's
 *   permission model (no file reads or writes, no child processes, no worker threads); its kernels
 *   arrive as source text. Only these built-ins can be imported: assert, buffer, events, path,
 *   perf_hooks, string_decoder, timers, url, util, zlib (ALLOWED_BUILTINS in transpile.ts);
 *   `import()` always fails, eval/new Function are disabled, fetch and WebSocket are absent,
 *   process.kill/binding/getBuiltinModule throw, process.stdout/stderr only write (capped), and the
 *   harness's channel is out of reach.
 * - Everything it may keep between calls (GPU buffers, pipelines, scratch arrays, forecasts) lives
 *   in module variables, `ctx.cache` or the ctx buffers.
 * - GPU memory it holds (buffers, textures, query sets; destroyed ones do not count) is bounded by
 *   the same cap as its host memory: past it the evaluation ends as a resource failure.
 * - A call ends once the GPU work and the pipeline compilations it started are done; what is still
 *   running after the reply is charged to the next call. Create pipelines once and reuse them.
 * - Lines between `// EVOLVE-BLOCK-START` and `// EVOLVE-BLOCK-END` (in `.ts` and `.wgsl` files)
 *   are the regions evolution may rewrite.
 */

/** The deployment: R slots over P GPUs in N nodes (GPU g owns slots g·R/P … (g+1)·R/P−1). */
export interface CandidateShape {
  /** MoE layers (L). */
  layers: number;
  /** Logical experts per layer (E). */
  experts: number;
  /** Physical expert slots per layer (R ≥ E, R divisible by P). */
  replicas: number;
  /**
   * Expert groups (G): group j is experts j·E/G … (j+1)·E/G−1 (DeepSeek's hierarchical policy packs
   * groups onto nodes; relabelling permutes experts only within their group).
   */
  groups: number;
  /** Nodes (N); P/N consecutive GPUs form a node. */
  nodes: number;
  /** GPUs (P). */
  gpus: number;
}

export interface RebalanceInput {
  /**
   * The latest window's load per expert, row-major [layers × experts] (`loads[l·E + e]`),
   * non-negative and finite. The placement is scored on the NEXT window.
   */
  loads: Float32Array;
  /**
   * The recent windows, oldest first, each [layers × experts] like `loads`; the last one has the
   * same values as `loads`. At most H windows (H = 8 by default), fewer at the start of a series; a
   * single-window input (`adrs rebalance` on a plain load file) is a history of one. All windows of
   * one call carry the same relabelling as `loads`.
   */
  history: Float32Array[];
  shape: CandidateShape;
}

/**
 * The placement, row-major. `phy2log[l·R + s]` is the logical expert in slot s of layer l;
 * `logcnt[l·E + e]` the number of slots holding expert e (≥ 1 for every expert, summing to R per
 * layer, and equal to what phy2log says). The evaluator derives log2phy itself. A replica of
 * expert e receives load(e)/logcnt(e); a GPU's load is the sum over its R/P slots.
 */
export interface RebalanceOutput {
  phy2log: Int32Array;
  logcnt: Int32Array;
}

/**
 * Where one call's time went, measured by the harness inside the worker (contract 3). The three
 * parts are approximations for diagnosis, not charged separately:
 * - gpu_wait_ms: wall time during which the call was waiting for the GPU: a `mapAsync` or
 *   `onSubmittedWorkDone` promise was pending (the candidate's own, `ctx.read`'s, and the harness's
 *   wait after the call). JavaScript that runs while such a promise is pending counts as waiting.
 * - host_ms: the call time minus gpu_wait_ms (JavaScript, encoding, submits).
 * - gpu_ms: GPU execution time of the compute passes made through `ctx.dispatch` and read back
 *   through `ctx.read` in the same call, from timestamp queries; null when the device has no
 *   timestamp queries, when the call made no such dispatch, or when one was not read back.
 */
export interface CallSplit {
  host_ms: number;
  gpu_wait_ms: number;
  gpu_ms: number | null;
}

/**
 * A value for one binding of `ctx.dispatch`, keyed by the WGSL variable name:
 * - a string: the name of a ctx buffer (`ctx.buffer` / `ctx.upload`);
 * - a record of numbers: packed into the variable's struct by field name (u32, i32, f32 and their
 *   vec2/3/4; every field given, nothing else) and written to a buffer the harness keeps for that
 *   binding (rewritten only when the values change) — the usual way to pass uniform params;
 * - a typed array: its bytes, written to a buffer the harness keeps for that binding;
 * - a GPUBuffer of your own.
 */
export type DispatchBinding =
  | string
  | Record<string, number | readonly number[]>
  | ArrayBufferView
  | GPUBuffer;

export interface DispatchSpec {
  /** A kernel file of the candidate, e.g. 'replicate.wgsl'. */
  kernel: string;
  /** The @compute entry point. */
  entry: string;
  /**
   * Every binding the entry point uses (its `@group(g) @binding(b) var` globals, found in its body
   * and the functions it calls), by variable name; names the module declares but the entry does not
   * use are ignored; names the module does not declare are an error.
   */
  bindings: Record<string, DispatchBinding>;
  /** Workgroups to dispatch: x, or [x, y?, z?]. */
  workgroups: number | readonly number[];
  /** Values of the kernel's `override` constants (part of the pipeline's cache key). */
  constants?: Record<string, number>;
}

/** The typed arrays ctx.read returns. */
export type ReadArray = Int32Array | Uint32Array | Float32Array;
export type ReadArrayType = Int32ArrayConstructor | Uint32ArrayConstructor | Float32ArrayConstructor;

/**
 * What the candidate can use besides its input: its own kernels on the worker's GPU device, and
 * harness-owned helpers that keep a whole GPU path (buffers, bindings, dispatch, readback) to a few
 * lines. Helpers throw an Error saying what to change when given something they cannot use.
 *
 * Ordering: `ctx.dispatch` records its compute pass; recorded passes are submitted, in order, at
 * the next `ctx.read`, `ctx.submit()`, at a `ctx.upload` (or a changed record/typed-array binding)
 * that writes a buffer a recorded pass uses, or at the end of the call. So a sequence of uploads,
 * dispatches and reads through ctx behaves as written, with one queue submission per read. Call
 * `ctx.submit()` before raw queue operations (device.queue.writeBuffer, mapAsync) that must come
 * after recorded passes.
 */
export interface CandidateContext {
  /** The worker's WebGPU device (Dawn). Do not destroy it. */
  device: GPUDevice;
  /** The candidate's kernel files, e.g. ["replicate.wgsl"]. */
  kernels: readonly string[];
  /** The WGSL source of one of the candidate's kernels. */
  kernelSource(file: string): string;
  /**
   * A compute pipeline (layout 'auto') for an entry point of one of the candidate's kernels,
   * compiled once and cached by (file, entry, constants). (ctx.dispatch uses its own cached pipelines.)
   */
  pipeline(file: string, entry: string, constants?: Record<string, number>): Promise<GPUComputePipeline>;
  /** Whether the device supports timestamp queries. */
  hasTimestamps: boolean;
  /** Storage kept between calls for resources (buffers, pipelines, scratch, forecasts). */
  cache: Map<string, unknown>;

  /**
   * The buffer named `name`, of at least `bytes` bytes (rounded up to 16), created on first use and
   * returned as is while the size and usage stay the same (a different size or usage replaces it).
   * usage: 'storage' (default: STORAGE | COPY_DST | COPY_SRC), 'uniform' (UNIFORM | COPY_DST) or
   * GPUBufferUsage flags.
   */
  buffer(name: string, bytes: number, usage?: 'storage' | 'uniform' | number): GPUBuffer;
  /**
   * Writes `data` into the buffer named `name` at byte `offset` (default 0), creating a storage
   * buffer of the data's size when there is none, growing it when it is too small.
   */
  upload(name: string, data: ArrayBufferView, offset?: number): GPUBuffer;
  /**
   * Records one compute pass: the pipeline (compiled once, with a layout built from the kernel's
   * declarations), the bind groups (created once per set of buffers) and the dispatch, e.g.
   * `await ctx.dispatch({ kernel: 'replicate.wgsl', entry: 'replicate',
   *   bindings: { params: { layers: L, experts: E }, loads: 'loads', logcnt: 'counts' }, workgroups: [L] })`.
   * Timed with timestamp queries when the device has them (see CallSplit.gpu_ms).
   */
  dispatch(spec: DispatchSpec): Promise<void>;
  /** Submits the recorded passes now (see the ordering note above). */
  submit(): void;
  /**
   * Submits the recorded passes, copies the buffer named `name` back and returns its first
   * `length` elements (default: the bytes it was created with, as elements) as a new array, or
   * fills `into` (its length elements) and returns it. The staging buffer is kept between calls.
   */
  read<T extends ReadArrayType>(name: string, type: T, length?: number): Promise<InstanceType<T>>;
  read<A extends ReadArray>(name: string, into: A): Promise<A>;
}

/** The signature of `balancer.ts`'s default export. */
export type Rebalance = (
  input: RebalanceInput,
  ctx: CandidateContext,
) => Promise<RebalanceOutput> | RebalanceOutput;
