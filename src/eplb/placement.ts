import { UserError } from '../util/errors.js';
import type { Shape } from './shape.js';

/**
 * An expert placement for every layer (contract). Flat row-major arrays:
 * - phy2log[l·R + s]: the logical expert in physical slot s;
 * - logcnt[l·E + e]: replicas of expert e (≥ 1, summing to R per layer);
 * - log2phy[(l·E + e)·X + k]: the slots of expert e, padded with −1, X = maxReplicas.
 */
export interface Placement {
  shape: Shape;
  phy2log: Int32Array;
  logcnt: Int32Array;
  log2phy: Int32Array;
  maxReplicas: number;
}

/** Counts replicas per expert from phy2log (no validation: see validatePlacement). */
export function countReplicas(shape: Shape, phy2log: Int32Array): Int32Array {
  const { layers: L, experts: E, replicas: R } = shape;
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) {
    for (let s = 0; s < R; s++) {
      const e = phy2log[l * R + s]!;
      if (e >= 0 && e < E) logcnt[l * E + e]!++;
    }
  }
  return logcnt;
}

/** log2phy derived from phy2log: each expert's slots in increasing slot order, −1 padded. */
export function deriveLog2phy(shape: Shape, phy2log: Int32Array, logcnt: Int32Array): Placement {
  const { layers: L, experts: E, replicas: R } = shape;
  let X = 1;
  for (let i = 0; i < logcnt.length; i++) if (logcnt[i]! > X) X = logcnt[i]!;
  const log2phy = new Int32Array(L * E * X).fill(-1);
  const fill = new Int32Array(E);
  for (let l = 0; l < L; l++) {
    fill.fill(0);
    for (let s = 0; s < R; s++) {
      const e = phy2log[l * R + s]!;
      if (e < 0 || e >= E) continue;
      const k = fill[e]!++;
      if (k < X) log2phy[(l * E + e) * X + k] = s;
    }
  }
  return { shape, phy2log, logcnt, log2phy, maxReplicas: X };
}

/** Builds a full placement from phy2log alone. */
export function placementFromPhy2log(shape: Shape, phy2log: Int32Array): Placement {
  return deriveLog2phy(shape, phy2log, countReplicas(shape, phy2log));
}

/** Why a placement is invalid, or null when it is valid. One validator, used everywhere. */
export function placementProblem(p: Placement): string | null {
  const { layers: L, experts: E, replicas: R } = p.shape;
  const X = p.maxReplicas;
  if (!(p.phy2log instanceof Int32Array) || p.phy2log.length !== L * R) {
    return `phy2log must be an Int32Array of ${L}×${R} = ${L * R} entries, got ${describeArray(p.phy2log)}`;
  }
  if (!(p.logcnt instanceof Int32Array) || p.logcnt.length !== L * E) {
    return `logcnt must be an Int32Array of ${L}×${E} = ${L * E} entries, got ${describeArray(p.logcnt)}`;
  }
  if (!Number.isInteger(X) || X < 1 || X > R) return `maxReplicas must be an integer in [1, ${R}], got ${X}`;
  if (!(p.log2phy instanceof Int32Array) || p.log2phy.length !== L * E * X) {
    return `log2phy must be an Int32Array of ${L}×${E}×${X} entries, got ${describeArray(p.log2phy)}`;
  }
  const counted = new Int32Array(E);
  const seen = new Uint8Array(R);
  for (let l = 0; l < L; l++) {
    counted.fill(0);
    for (let s = 0; s < R; s++) {
      const e = p.phy2log[l * R + s]!;
      if (e < 0 || e >= E) return `layer ${l}: slot ${s} holds expert ${e}, outside [0, ${E})`;
      counted[e]!++;
    }
    for (let e = 0; e < E; e++) {
      const c = p.logcnt[l * E + e]!;
      if (counted[e] === 0) return `layer ${l}: expert ${e} has no replica`;
      if (c !== counted[e])
        return `layer ${l}: logcnt says expert ${e} has ${c} replicas, phy2log holds ${counted[e]}`;
      if (c > X) return `layer ${l}: expert ${e} has ${c} replicas but log2phy has room for ${X}`;
    }
    seen.fill(0);
    for (let e = 0; e < E; e++) {
      const base = (l * E + e) * X;
      const c = p.logcnt[l * E + e]!;
      for (let k = 0; k < X; k++) {
        const s = p.log2phy[base + k]!;
        if (k >= c) {
          if (s !== -1)
            return `layer ${l}: log2phy of expert ${e} has ${s} past its ${c} replicas (must be −1)`;
          continue;
        }
        if (s < 0 || s >= R) return `layer ${l}: log2phy of expert ${e} lists slot ${s}, outside [0, ${R})`;
        if (p.phy2log[l * R + s] !== e) {
          return `layer ${l}: log2phy lists slot ${s} for expert ${e}, but phy2log puts expert ${p.phy2log[l * R + s]} there`;
        }
        if (seen[s]) return `layer ${l}: slot ${s} is listed twice in log2phy`;
        seen[s] = 1;
      }
    }
  }
  return null;
}

/** Throws a UserError describing the first problem of an invalid placement. */
export function validatePlacement(p: Placement): void {
  const problem = placementProblem(p);
  if (problem) throw new UserError(`invalid placement: ${problem}`);
}

function describeArray(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  const name = (a as object).constructor?.name ?? typeof a;
  const length = (a as { length?: unknown }).length;
  return typeof length === 'number' ? `${name} of ${length}` : name;
}

/** Nested arrays for JSON output: [L][R], [L][E], [L][E][X]. */
export function placementToJson(p: Placement): {
  phy2log: number[][];
  logcnt: number[][];
  log2phy: number[][][];
} {
  const { layers: L, experts: E, replicas: R } = p.shape;
  const X = p.maxReplicas;
  const rows = (a: Int32Array, w: number) =>
    Array.from({ length: L }, (_, l) => Array.from(a.subarray(l * w, (l + 1) * w)));
  return {
    phy2log: rows(p.phy2log, R),
    logcnt: rows(p.logcnt, E),
    log2phy: Array.from({ length: L }, (_, l) =>
      Array.from({ length: E }, (_, e) =>
        Array.from(p.log2phy.subarray((l * E + e) * X, (l * E + e + 1) * X)),
      ),
    ),
  };
}
