import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import type { SandboxReport } from './sandbox.js';
import type { Objective } from './scores.js';

export type { Objective } from './scores.js';

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
}

export interface EvaluateOptions {
  trace: Trace;
  objective: Objective;
  /** Scored windows: the first `windows + 1` windows of the trace are used (default: all). */
  windows?: number;
  /**
   * Passes over the windows, at least 2 (default 3): the first scores, the later ones feed the same
   * windows relabelled; every pass is timed and their quality must agree.
   */
  repeats?: number;
  /** Deployment slots, nodes and GPUs (default DeepSeek-V3: 288, 4, 32); layers/experts/groups come from the trace. */
  deployment?: Pick<Shape, 'replicas' | 'nodes' | 'gpus'>;
  /** Seed of the input relabelling (default 1). */
  seed?: number;
  /** Progress lines for long evaluations. */
  onProgress?: (line: string) => void;
}

/** Every metric is computed by the harness; null where the evaluation stopped before it. */
export interface EvalMetrics {
  /**
   * Mean over windows k of the GPU balancedness of placement(k) on window k+1 (the scored one), in
   * the worst pass (every pass feeds the same windows, relabelled; they agree for a balancer that
   * computes from its input).
   */
  balancedness_next: number | null;
  /** Pass 0's placements scored on their own window k (what a balancer optimizes). */
  balancedness_same: number | null;
  /** Mean next-window balancedness over passes after the first (freshly relabelled). */
  balancedness_next_varied: number | null;
  slot_balancedness_next: number | null;
  inter_node_share_next: number | null;
  /**
   * Time per call: from the call to the end of the GPU work it started, charged as the larger of the
   * worker's clock and the parent's round trip less ipc_ms. median_ms and mean_ms are those of the
   * slowest pass; p95_ms is over all timed calls.
   */
  median_ms: number | null;
  p95_ms: number | null;
  mean_ms: number | null;
  adrs_score: number | null;
  default_score: number | null;
  /** Scored windows and calls made (all timed). */
  windows: number;
  calls: number;
  /** IPC round trip of a call's payload, measured before candidate code loads; subtracted from the parent's clock. */
  ipc_ms: number | null;
  /**
   * The harness's preparation before the candidate's code was sent (waiting for the slot's next
   * worker to start, IPC calibration), ms; part of eval_ms, outside the candidate's time limit.
   */
  setup_ms: number | null;
  /** Median gap between the parent's clock (round trip minus ipc_ms) and the worker's: ≈0 unless time was hidden from the worker's clock. */
  clock_gap_ms: number | null;
  /** Whole evaluation wall time, the candidate's own time within it, and the rest (overhead). */
  eval_ms: number;
  candidate_ms: number;
  overhead_ms: number;
  peak_rss_mb: number | null;
}

export interface EvalResult {
  valid: boolean;
  /** The cascade stage reached: 1 (compile + tiny case) or 2 (full trace). */
  stage: 1 | 2;
  /** The chosen objective's value; null when invalid. */
  score: number | null;
  objective: Objective;
  metrics: EvalMetrics;
  /** Short, precise messages (transpile, wgsl, exception, sandbox, validation, timeout, resource, …). */
  artifacts: Record<string, string>;
  /** The sandbox layers the candidate ran under (absent when it never reached a worker). */
  sandbox?: SandboxReport;
}
