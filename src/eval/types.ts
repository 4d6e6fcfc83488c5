import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import type { SandboxReport } from './sandbox.js';
import type { Objective } from './scores.js';

export type { Objective } from './scores.js';

/** Wall time and timers of the harness (not of the candidate's calls, which are always timed for real). */
export interface HarnessClock {
  now(): number;
  /** Starts a timer and returns its cancel. */
  timer(ms: number, fire: () => void): () => void;
}

export interface PoolOptions {
  /** Candidates evaluated at once (one worker process and GPU device each). */
  workers: number;
  /** GPU adapter name substring (as `--adapter`); default $ADRS_ADAPTER, then Dawn's choice. */
  adapter?: string;
  /**
   * Hard limit on one candidate, seconds, from the moment its code is sent to the worker: past it
   * the worker is killed and replaced (the harness's preparation before that has its own bound).
   */
  timeoutS: number;
  /** Cap on a worker's resident memory and JavaScript heap, MiB (default 2048). */
  memoryMb?: number;
  /**
   * Workers each slot keeps started for the next evaluation (default 2, the default number of
   * passes: one fresh process per pass); an evaluation with more passes starts the rest itself.
   */
  prestart?: number;
  /** Tests: the harness's clock for the setup bound, the candidate's limit and setup_ms/eval_ms. */
  clock?: HarnessClock;
}

export interface EvaluateOptions {
  trace: Trace;
  objective: Objective;
  /** Scored windows: the first `windows + 1` windows of the trace are used (default: all). */
  windows?: number;
  /**
   * Timed passes over the windows, at least 2 (default 2). Each pass is one fresh worker process fed
   * the windows in time order under its own relabelling; quality must agree between passes.
   */
  repeats?: number;
  /** Windows each call receives as `history` (the latest included), at least 1 (default 8). */
  history?: number;
  /**
   * Deployment slots, nodes, GPUs (default DeepSeek-V3: 288, 4, 32) and expert groups (default the
   * trace's); layers and experts come from the trace.
   */
  deployment?: Partial<Pick<Shape, 'replicas' | 'nodes' | 'gpus' | 'groups'>>;
  /**
   * Seed of the relabellings and load scales (12 hex digits, as reported in `EvalResult.seed`), to
   * reproduce an evaluation; default: a fresh secret one from the OS's cryptographic generator.
   */
  seed?: string;
  /** Tokens per layer in the MoE-time simulation (default 4096; 0 skips it). */
  moeTokens?: number;
  /** Progress lines for long evaluations. */
  onProgress?: (line: string) => void;
}

/**
 * Every metric is computed by the harness; null where the evaluation stopped before it (or, for
 * the time split, where the worker did not report one). "Next window": placement(k) scored on k+1.
 */
export interface EvalMetrics {
  /** GPU balancedness (mean/max load per GPU) of placement(k) on window k+1, mean over windows and passes. */
  balancedness_next: number | null;
  /** GPU balancedness of placement(k) on its own window k, mean over windows and passes (what a balancer optimizes). */
  balancedness_same: number | null;
  /** Slot balancedness (mean/max load per slot) on the next window, mean over windows and passes. */
  slot_balancedness_next: number | null;
  /** Share of routed load crossing nodes on the next window (token-free model), mean over windows and passes. */
  inter_node_share_next: number | null;
  /** Modelled MoE time (all layers, H100 cost model, vLLM round-robin replicas) of moe_tokens tokens routed by window k+1 through placement(k), mean over the sampled windows of pass 1, ms. */
  moe_time_ms: number | null;
  /** The same for the load-unaware `none` placement on the same windows: the reference of moe_score. */
  moe_time_none_ms: number | null;
  /** Tokens per layer and windows sampled for moe_time_ms. */
  moe_tokens: number;
  moe_windows: number;
  /** Charged time per call: mean over all timed calls of all passes (what adrs_score, default_score and moe_score use). */
  mean_ms: number | null;
  /** Median and 95th percentile of the same calls (reported, not charged). */
  median_ms: number | null;
  p95_ms: number | null;
  /** Standard error of mean_ms: standard deviation over timed calls / √calls. */
  mean_ms_noise: number | null;
  /** Time split reported by the worker, mean per timed call: host code, waiting for the GPU, GPU execution (null if not measured). */
  host_ms: number | null;
  gpu_wait_ms: number | null;
  gpu_ms: number | null;
  /** ADRS leaderboard objective on balancedness_next and mean_ms. */
  adrs_score: number | null;
  /** Our default objective on balancedness_next and mean_ms (scores.ts). */
  default_score: number | null;
  /** MoE-time objective: 100 · moe_time_none_ms / moe_time_ms · the default score's time factor on mean_ms. */
  moe_score: number | null;
  /** Standard error of each score: standard deviation of the score computed per pass / √passes. */
  adrs_score_noise: number | null;
  default_score_noise: number | null;
  moe_score_noise: number | null;
  /** The chosen objective's noise (one of the three above). */
  score_noise: number | null;
  /** Timed passes (fresh worker processes), scored windows per pass, timed calls in all, windows of history per call (at most). */
  passes: number;
  windows: number;
  calls: number;
  history: number;
  /** IPC round trip of a call's payload (loads + history), measured before candidate code loads; subtracted from the parent's clock. */
  ipc_ms: number | null;
  /**
   * The harness's preparation before the candidate's code was sent (waiting for the slot's next
   * workers to start, IPC calibration), ms; part of eval_ms, outside the candidate's time limit.
   */
  setup_ms: number | null;
  /** Median gap between the parent's clock (round trip minus ipc_ms) and the worker's: ≈0 unless time was hidden from the worker's clock. */
  clock_gap_ms: number | null;
  /** Whole evaluation wall time. */
  eval_ms: number;
  /** The candidate's own time within it (worker clock, every call including stage 1; the concurrent warm-up calls as their slowest worker's sum). */
  candidate_ms: number;
  /** eval_ms − candidate_ms: the harness's cost (hand-over, transpile, loading, IPC, validation, scoring). */
  overhead_ms: number;
  /** Largest resident memory of any of the evaluation's workers, MiB. */
  peak_rss_mb: number | null;
}

export interface EvalResult {
  valid: boolean;
  /** The cascade stage reached: 1 (compile + tiny case) or 2 (full trace). */
  stage: 1 | 2;
  /** The chosen objective's value; null when invalid. */
  score: number | null;
  objective: Objective;
  /** The secret seed of the relabellings (pass it as EvaluateOptions.seed to reproduce them). */
  seed: string;
  metrics: EvalMetrics;
  /** Short, precise messages (transpile, wgsl, exception, sandbox, validation, timeout, resource, …). */
  artifacts: Record<string, string>;
  /** The sandbox layers the candidate ran under (absent when it never reached a worker). */
  sandbox?: SandboxReport;
  /**
   * Pass 1's placement for the last scored window k, as GPU loads on window k+1 (the window it is
   * scored on, original labels): what reports draw. Absent when stage 2 did not finish.
   */
  gpu_loads?: GpuLoads;
}

/** GPU loads per layer of one placement on one window: `loads[l·gpus + g]`. */
export interface GpuLoads {
  /** The scored window (index into the evaluated series). */
  window: number;
  layers: number;
  gpus: number;
  loads: number[];
}
