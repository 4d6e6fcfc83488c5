/**
 * The project's trace format (contract): a small JSON manifest plus the loads as a little-endian
 * float32 binary array [steps][layers][experts] that uploads to the GPU without conversion.
 * A "step" is one load matrix: a whole-run snapshot, a window of N serving steps, or one step.
 */
export interface TraceManifest {
  format: 'adrs-trace/1';
  name: string;
  /** e.g. "DeepSeek-V3/R1". */
  model: string;
  layers: number;
  experts: number;
  /** Expert groups (DeepSeek-V3: 8 groups of 32) used by group-limited routing and the hierarchical policy. */
  groups: number;
  /** Experts per token (DeepSeek-V3: 8). */
  topK: number;
  /** Groups a token may route to (DeepSeek-V3: 4); equal to `groups` when routing is not group-limited. */
  topKGroups: number;
  /** Number of load matrices in the data file. */
  steps: number;
  /** What one step is: a whole-run snapshot, a window of `stepsPerWindow` serving steps, or one step. */
  granularity: 'snapshot' | 'window' | 'step';
  stepsPerWindow?: number;
  /** Data file name, relative to the manifest. */
  data: string;
  dtype: 'float32';
  /** Where the data comes from, with credit and licence; shown by `adrs trace info`. */
  source: string;
  attribution: string;
  /** For generated traces: generator name, version, seed and parameters, so it can be regenerated. */
  generator?: Record<string, unknown>;
}

export interface Trace {
  manifest: TraceManifest;
  /** [steps][layers][experts] row-major. */
  loads: Float32Array;
  /** The file it was read from (for messages and reproducers). */
  path?: string;
}

/** The load matrix [layers × experts] of one step (a view, not a copy). */
export function stepLoads(trace: Trace, step: number): Float32Array {
  const { layers, experts, steps } = trace.manifest;
  if (!Number.isInteger(step) || step < 0 || step >= steps) {
    throw new RangeError(`step ${step} is outside [0, ${steps}) of trace '${trace.manifest.name}'`);
  }
  const size = layers * experts;
  return trace.loads.subarray(step * size, (step + 1) * size);
}

/** Routing facts of DeepSeek-V3/R1: 256 routed experts, top-8, 8 groups of 32, top-4 groups per token. */
export const DEEPSEEK_V3_ROUTING = {
  model: 'DeepSeek-V3/R1',
  experts: 256,
  groups: 8,
  topK: 8,
  topKGroups: 4,
} as const;

/** The model facts of a manifest, without its data and provenance. */
export type RoutingFacts = Pick<TraceManifest, 'model' | 'groups' | 'topK' | 'topKGroups'>;

/** Trace names double as file names: keep them portable. */
export const TRACE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
