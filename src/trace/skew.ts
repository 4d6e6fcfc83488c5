import { quantileSorted } from 'simple-statistics';

/** How unevenly one layer's load spreads over its experts. */
export interface LayerSkew {
  /** Coefficient of variation (population std / mean) of the expert loads. */
  cv: number;
  /** Hottest expert over the mean expert. */
  maxMean: number;
  /** Share of the layer's load on its 8 hottest experts. */
  top8Share: number;
  /** Gini coefficient of the expert loads (0 even, → 1 all on one expert). */
  gini: number;
  /** Coefficient of variation of the expert-group sums (what group-per-node placement must balance). */
  groupCv: number;
}

export const SKEW_KEYS = ['cv', 'maxMean', 'top8Share', 'gini', 'groupCv'] as const;
export type SkewKey = (typeof SKEW_KEYS)[number];

/** Skew of one layer's loads `row` (length = experts, split into `groups` consecutive groups). */
export function layerSkew(row: ArrayLike<number>, groups: number, scratch?: Float64Array): LayerSkew {
  const n = row.length;
  const sorted = scratch && scratch.length >= n ? scratch.subarray(0, n) : new Float64Array(n);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    sorted[i] = v;
    sum += v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  if (sum === 0) return { cv: 0, maxMean: 0, top8Share: 0, gini: 0, groupCv: 0 };
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (sorted[i]! - mean) ** 2;
  sorted.sort();
  let gini = 0;
  for (let i = 0; i < n; i++) gini += (2 * (i + 1) - n - 1) * sorted[i]!;
  let top = 0;
  for (let i = Math.max(0, n - 8); i < n; i++) top += sorted[i]!;
  const size = n / groups;
  let gss = 0;
  for (let g = 0; g < groups; g++) {
    let s = 0;
    for (let i = g * size; i < (g + 1) * size; i++) s += row[i]!;
    gss += (s - sum / groups) ** 2;
  }
  return {
    cv: Math.sqrt(ss / n) / mean,
    maxMean: max / mean,
    top8Share: top / sum,
    gini: gini / (n * sum),
    groupCv: Math.sqrt(gss / groups) / (sum / groups),
  };
}

/** Skew of every layer of a [layers × experts] load matrix. */
export function matrixSkew(
  loads: Float32Array,
  layers: number,
  experts: number,
  groups: number,
): LayerSkew[] {
  const scratch = new Float64Array(experts);
  const out: LayerSkew[] = [];
  for (let l = 0; l < layers; l++)
    out.push(layerSkew(loads.subarray(l * experts, (l + 1) * experts), groups, scratch));
  return out;
}

export interface Distribution {
  mean: number;
  median: number;
  p10: number;
  p90: number;
  n: number;
}

/** mean / median / p10 / p90 of a sample. */
export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0)
    return { mean: Number.NaN, median: Number.NaN, p10: Number.NaN, p90: Number.NaN, n: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  return {
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    median: quantileSorted(sorted, 0.5),
    p10: quantileSorted(sorted, 0.1),
    p90: quantileSorted(sorted, 0.9),
    n: sorted.length,
  };
}
