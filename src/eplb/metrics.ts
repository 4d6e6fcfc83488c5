import { check } from '../util/errors.js';
import type { Placement } from './placement.js';
import { gpusPerNode, slotsPerGpu } from './shape.js';

/**
 * How well a placement balances a load matrix [layers × experts] (loads need not be the ones the
 * placement was computed from: "place on window k, score on window k+1").
 *
 * - GPU balancedness (EPLB.md): Σ_l mean_g(load_l,g) / Σ_l max_g(load_l,g), a ratio of sums in (0, 1].
 *   A replica of expert e receives load(e)/logcnt(e); a GPU's load is the sum over its R/P slots.
 * - Slot balancedness: the same ratio over physical slots instead of GPUs.
 * - Per-layer values: mean/max per layer (1 for a layer with no load).
 * - Inter-node share: the fraction of routed load that must cross nodes when tokens originate
 *   uniformly over nodes and each is served by a replica on its own node whenever one exists
 *   (the locality the hierarchical policy buys by keeping groups on one node).
 */
export interface BalanceMetrics {
  gpuBalancedness: number;
  slotBalancedness: number;
  perLayerGpuBalancedness: Float64Array;
  perLayerSlotBalancedness: Float64Array;
  interNodeShare: number;
  /** Σ_l max GPU load: the quantity the MoE layer time follows. */
  sumMaxGpuLoad: number;
}

export function balanceMetrics(p: Placement, loads: Float32Array | Float64Array): BalanceMetrics {
  const { layers: L, experts: E, replicas: R, gpus: P, nodes: N } = p.shape;
  check(
    loads.length === L * E,
    `loads must hold ${L}×${E} = ${L * E} values to score this placement, got ${loads.length}`,
  );
  const S = slotsPerGpu(p.shape);
  const gpn = gpusPerNode(p.shape);
  const perLayerGpu = new Float64Array(L);
  const perLayerSlot = new Float64Array(L);
  const onNode = new Uint8Array(E * N);
  let sumMeanGpu = 0;
  let sumMaxGpu = 0;
  let sumMeanSlot = 0;
  let sumMaxSlot = 0;
  let total = 0;
  let crossing = 0;
  for (let l = 0; l < L; l++) {
    let layerTotal = 0;
    let maxGpu = 0;
    let maxSlot = 0;
    onNode.fill(0);
    for (let g = 0; g < P; g++) {
      let gpuLoad = 0;
      for (let k = 0; k < S; k++) {
        const s = g * S + k;
        const e = p.phy2log[l * R + s]!;
        const slotLoad = loads[l * E + e]! / p.logcnt[l * E + e]!;
        gpuLoad += slotLoad;
        if (slotLoad > maxSlot) maxSlot = slotLoad;
        onNode[e * N + Math.floor(g / gpn)] = 1;
      }
      layerTotal += gpuLoad;
      if (gpuLoad > maxGpu) maxGpu = gpuLoad;
    }
    for (let e = 0; e < E; e++) {
      let nodesHolding = 0;
      for (let n = 0; n < N; n++) nodesHolding += onNode[e * N + n]!;
      crossing += loads[l * E + e]! * (1 - nodesHolding / N);
    }
    total += layerTotal;
    sumMeanGpu += layerTotal / P;
    sumMaxGpu += maxGpu;
    sumMeanSlot += layerTotal / R;
    sumMaxSlot += maxSlot;
    perLayerGpu[l] = maxGpu > 0 ? layerTotal / P / maxGpu : 1;
    perLayerSlot[l] = maxSlot > 0 ? layerTotal / R / maxSlot : 1;
  }
  return {
    gpuBalancedness: sumMaxGpu > 0 ? sumMeanGpu / sumMaxGpu : 1,
    slotBalancedness: sumMaxSlot > 0 ? sumMeanSlot / sumMaxSlot : 1,
    perLayerGpuBalancedness: perLayerGpu,
    perLayerSlotBalancedness: perLayerSlot,
    interNodeShare: total > 0 ? crossing / total : 0,
    sumMaxGpuLoad: sumMaxGpu,
  };
}

/** Each GPU's load per layer, `[layers × gpus]` (a replica of e receives load(e)/logcnt(e)): what reports draw. */
export function gpuLoads(p: Placement, loads: Float32Array | Float64Array): Float64Array {
  const { layers: L, experts: E, replicas: R, gpus: P } = p.shape;
  check(loads.length === L * E, `loads must hold ${L}×${E} = ${L * E} values, got ${loads.length}`);
  const S = slotsPerGpu(p.shape);
  const out = new Float64Array(L * P);
  for (let l = 0; l < L; l++) {
    for (let s = 0; s < R; s++) {
      const e = p.phy2log[l * R + s]!;
      out[l * P + Math.floor(s / S)]! += loads[l * E + e]! / p.logcnt[l * E + e]!;
    }
  }
  return out;
}

/**
 * The ADRS leaderboard score (EPLB.md): 90·balancedness + 5·min(0.002 s / t, 2)
 * − (t > 10 ms ? min(20·t, 20) : 0), with t the mean algorithm time in seconds.
 */
export function adrsScore(balancedness: number, meanSeconds: number): number {
  const t = Math.max(meanSeconds, 1e-9);
  const speed = 5 * Math.min(0.002 / t, 2);
  const penalty = t > 0.01 ? Math.min(20 * t, 20) : 0;
  return 90 * balancedness + speed - penalty;
}
