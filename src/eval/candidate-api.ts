/**
 * The candidate API (contract): the one place that defines what an evolved EPLB balancer receives
 * and must return. A candidate is a folder holding `balancer.ts` and `kernels/*.wgsl`; it imports
 * these declarations as types only (`import type { … } from '…/candidate-api.js'`), so it carries
 * no runtime dependency on this project and runs unchanged in the sandboxed evaluator.
 *
 * ```ts
 * import type { CandidateContext, RebalanceInput, RebalanceOutput } from '../../src/eval/candidate-api.js';
 * export default async function rebalance(input: RebalanceInput, ctx: CandidateContext): Promise<RebalanceOutput> { … }
 * ```
 *
 * Rules the evaluator enforces (src/eval):
 * - The default export is called once per history window; it sees that window only and is scored
 *   on the next one. It is timed from the call until the promise resolves AND all GPU work it
 *   submitted has finished. Inputs vary between calls (experts relabelled within groups, layers
 *   reordered, loads rescaled), and every answer is checked, so returning a remembered answer fails.
 * - It runs in a separate process under Node's permission model: no file writes, no file reads,
 *   no child processes, no worker threads; its kernels arrive as source text. The permission
 *   model does not cover the network or signals, so the evaluator refuses them itself: the network,
 *   process, thread and module-loading built-ins (net, http, child_process, worker_threads, vm,
 *   module, os, … see DENIED_BUILTINS in transpile.ts) cannot be imported, `import()` always fails
 *   (only static imports of the other built-ins work), eval/new Function are disabled, fetch and
 *   WebSocket are absent, process.kill/binding/getBuiltinModule throw, and the harness's IPC
 *   channel is out of reach. When the evaluator runs as root, the worker also runs under its own
 *   unprivileged uid, so the kernel refuses its signals.
 * - Everything it may keep between calls (GPU buffers, pipelines, scratch arrays) lives in module
 *   variables or `ctx.cache`; answers must be computed from the input of the call.
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
  /** Expert groups of E/G consecutive experts (DeepSeek's hierarchical policy packs groups onto nodes). */
  groups: number;
  /** Nodes (N); P/N consecutive GPUs form a node. */
  nodes: number;
  /** GPUs (P). */
  gpus: number;
}

export interface RebalanceInput {
  /** The history window's load per expert, row-major [layers × experts], non-negative and finite. */
  loads: Float32Array;
  /** The windows up to and including the latest, oldest first (at most H, default 8): history[history.length-1] equals loads. */
  history: Float32Array[];
  shape: CandidateShape;
}

/**
 * The placement, row-major. `phy2log[l·R + s]` is the logical expert in slot s of layer l;
 * `logcnt[l·E + e]` the number of slots holding expert e (≥ 1 for every expert, summing to R per
 * layer, and equal to what phy2log says). The evaluator derives log2phy itself.
 */
export interface RebalanceOutput {
  phy2log: Int32Array;
  logcnt: Int32Array;
}

/** What the candidate can use besides its input: its own kernels on the worker's GPU device. */
export interface CandidateContext {
  /** The worker's WebGPU device (Dawn). Do not destroy it. */
  device: GPUDevice;
  /** The candidate's kernel files, e.g. ["replicate.wgsl"]. */
  kernels: readonly string[];
  /** The WGSL source of one of the candidate's kernels. */
  kernelSource(file: string): string;
  /**
   * A compute pipeline (layout 'auto') for an entry point of one of the candidate's kernels,
   * compiled once and cached by (file, entry, constants).
   */
  pipeline(file: string, entry: string, constants?: Record<string, number>): Promise<GPUComputePipeline>;
  /** Whether the device supports timestamp queries. */
  hasTimestamps: boolean;
  /** Storage kept between calls for resources (buffers, pipelines, scratch), never for answers. */
  cache: Map<string, unknown>;
}

/** The signature of `balancer.ts`'s default export. */
export type Rebalance = (
  input: RebalanceInput,
  ctx: CandidateContext,
) => Promise<RebalanceOutput> | RebalanceOutput;
