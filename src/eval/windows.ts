import { createHash, randomInt } from 'node:crypto';
import { deriveLog2phy, type Placement } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import type { Trace } from '../trace/trace.js';
import { traceWindows, windowLoads } from '../trace/windows.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * The trace's first `limit` windows (all by default) as separate [layers × experts] views, cut by
 * the trace layer's traceWindows (src/trace/windows.ts, the same windows bench and simulate use).
 * At least two are needed: place on window k, score on k+1.
 */
export function evalWindows(trace: Trace, limit?: number): Float32Array[] {
  const w = traceWindows(trace);
  const n = limit === undefined ? w.count : Math.min(w.count, limit);
  if (n < 2) {
    throw new UserError(
      `trace '${trace.manifest.name}' gives ${w.count} window(s)${limit !== undefined ? ` (limit ${limit})` : ''}; evaluation needs at least 2 (place on window k, score on window k+1)`,
    );
  }
  return Array.from({ length: n }, (_, k) => windowLoads(w, k));
}

/**
 * A relabelling of a load matrix that leaves the balancing problem's difficulty unchanged: layers
 * reordered, experts permuted within their group (so group and node structure stay intact), all
 * loads scaled. Applied identically to the history window and the window it is scored on, it gives
 * every call a fresh input whose right answer differs, so remembered answers fail and caches miss.
 */
export interface LoadTransform {
  /** source layer of each output layer [L]. */
  layerOf: Int32Array;
  /** source expert of each output (layer, expert) [L×E]. */
  expertOf: Int32Array;
  scale: number;
}

export function identityTransform(shape: Shape): LoadTransform {
  const { layers: L, experts: E } = shape;
  return {
    layerOf: Int32Array.from({ length: L }, (_, l) => l),
    expertOf: Int32Array.from({ length: L * E }, (_, i) => i % E),
    scale: 1,
  };
}

export function randomTransform(shape: Shape, rng: Rng): LoadTransform {
  const { layers: L, experts: E, groups: G } = shape;
  const t = identityTransform(shape);
  shuffle(t.layerOf, 0, L, rng);
  const per = E / G;
  for (let l = 0; l < L; l++) for (let g = 0; g < G; g++) shuffle(t.expertOf, l * E + g * per, per, rng);
  t.scale = randomScale(rng);
  return t;
}

export function applyTransform(t: LoadTransform, loads: Float32Array, shape: Shape): Float32Array {
  const { layers: L, experts: E } = shape;
  const out = new Float32Array(L * E);
  for (let l = 0; l < L; l++) {
    const src = t.layerOf[l]! * E;
    for (let e = 0; e < E; e++) out[l * E + e] = t.scale * loads[src + t.expertOf[l * E + e]!]!;
  }
  return out;
}

function shuffle(a: Int32Array, start: number, n: number, rng: Rng): void {
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const x = a[start + i]!;
    a[start + i] = a[start + j]!;
    a[start + j] = x;
  }
}

/**
 * A placement computed for transformed loads, relabelled back to the original layers and experts:
 * it balances the original window exactly as the placement balances the transformed one (the scale
 * cancels in every ratio), so the harness scores every pass against the windows already on the GPU.
 */
export function untransformPlacement(t: LoadTransform, p: Placement): Placement {
  const { shape } = p;
  const { layers: L, experts: E, replicas: R } = shape;
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) {
    const src = t.layerOf[l]!;
    for (let s = 0; s < R; s++) phy2log[src * R + s] = t.expertOf[l * E + p.phy2log[l * R + s]!]!;
    for (let e = 0; e < E; e++) logcnt[src * E + t.expertOf[l * E + e]!] = p.logcnt[l * E + e]!;
  }
  return deriveLog2phy(shape, phy2log, logcnt);
}

/** Load scale factors of the relabellings: any pass's values look alike. */
const randomScale = (rng: Rng): number => 0.5 + 1.5 * rng.next();

/**
 * A fresh secret seed for one evaluation: 48 bits from the OS's cryptographic generator, so no
 * candidate can predict a relabelling, a call order or a load scale (the old fixed seed 1 made
 * every plan a public function of the shape). Reported in the result to reproduce a run.
 */
export function secretSeed(): string {
  return randomInt(2 ** 48 - 1)
    .toString(16)
    .padStart(12, '0');
}

/**
 * A generator for one purpose of one evaluation: its state is a hash of (seed, purpose), so the
 * streams of different passes are unrelated and the 48-bit seed cannot be recovered by trying the
 * 2^32 states of one stream.
 */
export function seededRng(seed: string, purpose: string): Rng {
  return new Rng(createHash('sha256').update(`${seed}/${purpose}`).digest().readUInt32LE(0));
}

/**
 * One timed pass of stage 2: one relabelling (layer order + expert permutation within groups) for
 * every call of the pass, so a balancer that keeps state between calls sees consistent expert ids,
 * and a load scale per call (loads and history of a call share it).
 */
export interface PassPlan {
  transform: LoadTransform;
  /** scales[k]: the scale of the pass's k-th call. */
  scales: Float64Array;
}

/** Every pass's plan, drawn from the evaluation's secret seed. */
export function passPlans(shape: Shape, calls: number, passes: number, seed: string): PassPlan[] {
  return Array.from({ length: passes }, (_, p) => {
    const rng = seededRng(seed, `pass-${p}`);
    const transform = randomTransform(shape, rng);
    const scales = Float64Array.from({ length: calls }, () => randomScale(rng));
    return { transform, scales };
  });
}

/**
 * What call k of a pass receives: windows max(0, k−H+1) … k, oldest first, relabelled with the pass's
 * transform and scaled by the call's factor (the last one is the call's `loads`). Only windows up
 * to k: the process has never seen anything after the window it is asked about.
 */
export function callInput(
  windows: readonly Float32Array[],
  k: number,
  historyLength: number,
  plan: PassPlan,
  shape: Shape,
): { loads: Float32Array; history: Float32Array[] } {
  const t: LoadTransform = { ...plan.transform, scale: plan.scales[k]! };
  const history: Float32Array[] = [];
  for (let j = Math.max(0, k - historyLength + 1); j <= k; j++)
    history.push(applyTransform(t, windows[j]!, shape));
  // A copy: the call's loads and the latest history window are separate arrays with equal values.
  return { loads: history[history.length - 1]!.slice(), history };
}
