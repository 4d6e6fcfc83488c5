import { UserError } from '../util/errors.js';
import type { Trace } from './trace.js';

/** Serving steps summed into one window of a per-step trace (EPLB.md: windows of 100 steps). */
export const DEFAULT_STEPS_PER_WINDOW = 100;

/** A trace cut into load windows, in time order. */
export interface TraceWindows {
  /** [count][layers][experts] row-major; a view of the trace's data when no summing was needed. */
  windows: Float32Array;
  /**
   * Whole windows. They are aligned to the END of the trace, so the last window always holds the
   * latest load; leading stored matrices that do not fill a window are dropped.
   */
  count: number;
  /** Stored matrices dropped at the start (window w covers matrices offset + w·stepsPerWindow …). */
  offset: number;
  /** Stored load matrices summed into one window (1: each stored matrix is a window). */
  stepsPerWindow: number;
  layers: number;
  experts: number;
}

/**
 * The trace's load windows, the unit every consumer (bench, simulate, eval) balances on: the
 * placement computed from window k is scored on window k+1.
 *
 * `stepsPerWindow` is how many stored load matrices form one window. Default: for a 'step' trace,
 * its manifest's stepsPerWindow, else DEFAULT_STEPS_PER_WINDOW (100), at most its number of steps; for a
 * 'window' or 'snapshot' trace, 1 (each stored matrix already is a window or a whole-run snapshot).
 */
export function traceWindows(trace: Trace, stepsPerWindow?: number): TraceWindows {
  const m = trace.manifest;
  // By default a step trace shorter than one window is one window of all its steps (a short
  // expert-load.json is still a usable workload); an explicit size is taken as given.
  const per =
    stepsPerWindow ??
    (m.granularity === 'step'
      ? Math.max(1, Math.min(m.steps, m.stepsPerWindow ?? DEFAULT_STEPS_PER_WINDOW))
      : 1);
  if (!Number.isInteger(per) || per < 1) {
    throw new UserError(`steps per window must be a positive integer, got ${per}`);
  }
  const size = m.layers * m.experts;
  const count = Math.floor(m.steps / per);
  const offset = m.steps - count * per;
  const base = { count, offset, stepsPerWindow: per, layers: m.layers, experts: m.experts };
  if (per === 1) return { windows: trace.loads.subarray(0, count * size), ...base };
  const windows = new Float32Array(count * size);
  for (let w = 0; w < count; w++) {
    const sum = windows.subarray(w * size, (w + 1) * size);
    for (let s = offset + w * per; s < offset + (w + 1) * per; s++) {
      const step = trace.loads.subarray(s * size, (s + 1) * size);
      for (let i = 0; i < size; i++) sum[i]! += step[i]!;
    }
  }
  return { windows, ...base };
}

/** Window k's loads [layers × experts] (a view). */
export function windowLoads(w: TraceWindows, k: number): Float32Array {
  if (!Number.isInteger(k) || k < 0 || k >= w.count) {
    throw new RangeError(`window ${k} is outside [0, ${w.count})`);
  }
  const size = w.layers * w.experts;
  return w.windows.subarray(k * size, (k + 1) * size);
}
