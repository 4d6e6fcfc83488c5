import { check } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import type { Balancer, PreparedBalancer } from '../balancer.js';
import { type Placement, placementFromPhy2log } from '../placement.js';
import { type Shape, validateShape } from '../shape.js';

/**
 * Reference points without load awareness, to put real balancers' figures in perspective.
 * - `none`: slot s < E holds expert s; extra slot E + j holds expert j mod E (the first experts get
 *   the redundant slots, whatever their load).
 * - `random`: a seeded random valid placement (random extra replicas, slots shuffled); the same seed
 *   gives the same placement on every call.
 */
export const noneBalancer: Balancer = {
  name: 'none',
  summary: 'No load awareness: slot s holds expert s, extra slots go to experts 0, 1, … in order',
  runsOn: 'cpu',
  prepare: (shape) => {
    validateShape(shape);
    const { experts: E, replicas: R } = shape;
    const row = Int32Array.from({ length: R }, (_, s) => s % E);
    return layerRepeated(shape, row);
  },
};

export const randomBalancer: Balancer = {
  name: 'random',
  summary: 'Seeded random valid placement (random extra replicas, shuffled slots); same seed, same placement',
  runsOn: 'cpu',
  prepare: (shape, ctx) => {
    validateShape(shape);
    const seed = ctx.seed ?? 0;
    return {
      rebalance: (loads) => {
        checkLoads(shape, loads);
        return randomPlacement(shape, new Rng(seed));
      },
    };
  },
};

/** A random valid placement: every expert once, R − E extra replicas to uniform experts, slots shuffled. */
export function randomPlacement(shape: Shape, rng: Rng): Placement {
  const { layers: L, experts: E, replicas: R } = shape;
  const phy2log = new Int32Array(L * R);
  for (let l = 0; l < L; l++) {
    const row = phy2log.subarray(l * R, (l + 1) * R);
    for (let s = 0; s < E; s++) row[s] = s;
    for (let s = E; s < R; s++) row[s] = rng.int(E);
    for (let i = R - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = row[i]!;
      row[i] = row[j]!;
      row[j] = t;
    }
  }
  return placementFromPhy2log(shape, phy2log);
}

function layerRepeated(shape: Shape, row: Int32Array): PreparedBalancer {
  const { layers: L, replicas: R } = shape;
  return {
    rebalance: (loads) => {
      checkLoads(shape, loads);
      const phy2log = new Int32Array(L * R);
      for (let l = 0; l < L; l++) phy2log.set(row, l * R);
      return placementFromPhy2log(shape, phy2log);
    },
  };
}

function checkLoads(shape: Shape, loads: Float32Array): void {
  const n = shape.layers * shape.experts;
  check(
    loads.length === n,
    `loads must hold ${shape.layers}×${shape.experts} = ${n} values, got ${loads.length}`,
  );
}
