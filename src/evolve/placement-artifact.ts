import { deriveLog2phy, type Placement, placementProblem } from '../eplb/placement.js';
import { type Shape, validateShape } from '../eplb/shape.js';
import { oneLine } from '../util/errors.js';
import { isCount } from '../util/guards.js';

/**
 * The `placement` artifact of an evaluation (PLACEMENT_ARTIFACT), read for reports. Evaluators
 * write it, and a plug-in evaluator is code the run's owner supplies, so it is read as untrusted
 * input: a malformed one is an explained absence in the report, never a crash or a wrong drawing.
 */
export type PlacementArtifact =
  /** The EPLB evaluator's: GPU loads [layers][gpus] of one scored window. */
  | { format: 'gpu-loads/1'; window: number | null; layers: number; gpus: number; loads: number[] }
  /** A plug-in evaluator's: a placement and the loads [layers][experts] it is scored on. */
  | { format: 'placement'; window: number | null; placement: Placement; loads: Float32Array };

/** The artifact, or why it cannot be drawn (one line). */
export function readPlacementArtifact(text: string): PlacementArtifact | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'the placement artifact is not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return 'the placement artifact is not an object';
  const r = v as Record<string, unknown>;
  const window = r.window === undefined || r.window === null ? null : r.window;
  if (window !== null && !isCount(window)) return 'the placement artifact has a window that is not an index';
  if (r.format === 'gpu-loads/1') {
    const { layers, gpus, loads } = r;
    if (!isCount(layers) || !isCount(gpus) || layers < 1 || gpus < 1)
      return 'the gpu-loads artifact has no positive layers and gpus';
    if (!isLoads(loads, layers * gpus))
      return `the gpu-loads artifact does not hold ${layers}×${gpus} loads ≥ 0`;
    return { format: 'gpu-loads/1', window, layers, gpus, loads };
  }
  const shape = r.shape as Shape;
  try {
    validateShape(shape);
  } catch (error) {
    return `the placement artifact's shape is invalid: ${oneLine(error)}`;
  }
  const { layers: L, experts: E, replicas: R } = shape;
  if (!isLoads(r.loads, L * E)) return `the placement artifact does not hold ${L}×${E} loads ≥ 0`;
  if (!isIntegers(r.phy2log, L * R) || !isIntegers(r.logcnt, L * E))
    return 'the placement artifact has no phy2log and logcnt of its shape';
  const placement = deriveLog2phy(shape, Int32Array.from(r.phy2log), Int32Array.from(r.logcnt));
  const problem = placementProblem(placement);
  if (problem) return `the placement artifact's placement is invalid: ${problem}`;
  return { format: 'placement', window, placement, loads: Float32Array.from(r.loads) };
}

function isLoads(x: unknown, n: number): x is number[] {
  return (
    Array.isArray(x) &&
    x.length === n &&
    x.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)
  );
}

function isIntegers(x: unknown, n: number): x is number[] {
  return Array.isArray(x) && x.length === n && x.every((v) => Number.isInteger(v));
}
