import { type Shape, slotsPerGpu } from '../shape.js';

/**
 * Plain TypeScript twin of kernels/eplb-balancer.wgsl: the same algorithm, step for step, in the
 * same float32 arithmetic (Math.fround after every operation), so the kernel's phy2log can be
 * checked against it exactly. Every choice is a total order (value, then index), which makes the
 * result independent of how the GPU splits a reduction over threads.
 *
 * Per layer:
 * 1. Replication (D'Hondt): one replica each, then each of the R−E extra slots to the expert with the
 *    largest load·(1/count) (ties: lowest index). Replica j < E is expert j; replica E+i is the i-th pick.
 * 2. Sort: replicas by (weight desc, expert asc, replica asc); weight = load·(1/count).
 * 3. Round-based longest-first packing: in round r the P next-heaviest replicas go, heaviest first,
 *    to the GPUs in ascending (load, index) order; GPU g's slot g·S+r gets its round-r replica.
 * 4. Refinement: at most `maxSwaps` times, take the heaviest GPU h (ties lowest index) and apply the
 *    swap of a replica on h with a lighter replica on another GPU g that minimises max(new h, new g)
 *    (ties lowest candidate index (g·S+kb)·S+ka), among swaps with a GPU g lighter than h that bring both
 *    below the old load of h and put no expert twice on one GPU; stop when there is none.
 *
 * Reciprocals come from a table (`reciprocals`), not a division: WGSL division is only accurate to
 * 2.5 ULP, while multiplication, addition and subtraction are correctly rounded on every device.
 */
export interface GpuLptOptions {
  /** Refinement rounds per layer (a bound on kernel time). */
  maxSwaps: number;
}

export const DEFAULT_GPU_LPT_OPTIONS: GpuLptOptions = { maxSwaps: 128 };

/** fround(1/c) for c = 0 … R−E+1 (entry 0 unused): the kernel's reciprocal table. */
export function reciprocals(shape: Shape): Float32Array {
  const n = shape.replicas - shape.experts + 2;
  const table = new Float32Array(n);
  for (let c = 1; c < n; c++) table[c] = 1 / c;
  return table;
}

export interface ReferenceResult {
  phy2log: Int32Array;
  logcnt: Int32Array;
  /** Swaps applied per layer (a cost figure for benchmarks). */
  swaps: Int32Array;
}

/** Runs the algorithm on loads [layers × experts] (finite, non-negative). */
export function gpuLptReference(
  shape: Shape,
  loads: Float32Array,
  options: GpuLptOptions = DEFAULT_GPU_LPT_OPTIONS,
): ReferenceResult {
  const { layers: L, experts: E, replicas: R, gpus: P } = shape;
  const S = slotsPerGpu(shape);
  const f = Math.fround;
  const recip = reciprocals(shape);
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  const swaps = new Int32Array(L);
  const cnt = new Int32Array(E);
  const repX = new Int32Array(R);
  const repW = new Float32Array(R);
  const ord = new Int32Array(R);
  const slotX = new Int32Array(R);
  const slotW = new Float32Array(R);
  const gload = new Float32Array(P);
  const perm = new Int32Array(P);
  const dup = new Uint8Array(R);

  for (let l = 0; l < L; l++) {
    const load = loads.subarray(l * E, (l + 1) * E);
    // 1. Replication.
    cnt.fill(1);
    for (let e = 0; e < E; e++) repX[e] = e;
    for (let i = 0; i < R - E; i++) {
      let best = -1;
      let bestP = -1;
      for (let e = 0; e < E; e++) {
        const p = f(load[e]! * recip[cnt[e]!]!);
        if (p > bestP) {
          bestP = p;
          best = e;
        }
      }
      cnt[best]!++;
      repX[E + i] = best;
    }
    // 2. Weights and rank sort.
    for (let j = 0; j < R; j++) {
      const x = repX[j]!;
      repW[j] = f(load[x]! * recip[cnt[x]!]!);
    }
    for (let j = 0; j < R; j++) {
      const w = repW[j]!;
      const x = repX[j]!;
      let rank = 0;
      for (let k = 0; k < R; k++) {
        const wk = repW[k]!;
        if (wk > w || (wk === w && (repX[k]! < x || (repX[k] === x && k < j)))) rank++;
      }
      ord[rank] = j;
    }
    // 3. Round-based packing.
    gload.fill(0);
    for (let r = 0; r < S; r++) {
      for (let g = 0; g < P; g++) {
        const lg = gload[g]!;
        let rank = 0;
        for (let k = 0; k < P; k++) if (gload[k]! < lg || (gload[k] === lg && k < g)) rank++;
        perm[rank] = g;
      }
      for (let q = 0; q < P; q++) {
        const j = ord[r * P + q]!;
        const g = perm[q]!;
        slotX[g * S + r] = repX[j]!;
        slotW[g * S + r] = repW[j]!;
        gload[g] = f(gload[g]! + repW[j]!);
      }
    }
    // 4. Swap refinement.
    let done = 0;
    for (let it = 0; it < options.maxSwaps && !done; it++) {
      let h = 0;
      for (let g = 1; g < P; g++) if (gload[g]! > gload[h]!) h = g;
      for (let i = 0; i < R; i++) {
        const g = Math.floor(i / S);
        const k = i % S;
        const a = slotX[h * S + k]!;
        const b = slotX[i]!;
        let aOnG = 0;
        let bOnH = 0;
        for (let k2 = 0; k2 < S; k2++) {
          if (slotX[g * S + k2] === a) aOnG = 1;
          if (slotX[h * S + k2] === b) bOnH = 2;
        }
        dup[i] = aOnG | bOnH;
      }
      const top = gload[h]!;
      let bestM = top;
      let bestC = -1;
      for (let c = 0; c < P * S * S; c++) {
        const ka = c % S;
        const t = Math.floor(c / S);
        const g = Math.floor(t / S);
        if (g === h || !(gload[g]! < top)) continue;
        const wa = slotW[h * S + ka]!;
        const wb = slotW[t]!;
        if (!(wa > wb) || dup[g * S + ka]! & 1 || dup[t]! & 2) continue;
        const nh = f(f(top - wa) + wb);
        const ng = f(f(gload[g]! + wa) - wb);
        const m = nh > ng ? nh : ng;
        if (m < bestM) {
          bestM = m;
          bestC = c;
        }
      }
      if (bestC < 0) {
        done = 1;
        break;
      }
      const ka = bestC % S;
      const t = Math.floor(bestC / S);
      const g = Math.floor(t / S);
      const a = h * S + ka;
      const wa = slotW[a]!;
      const wb = slotW[t]!;
      gload[h] = f(f(top - wa) + wb);
      gload[g] = f(f(gload[g]! + wa) - wb);
      slotW[a] = wb;
      slotW[t] = wa;
      const xa = slotX[a]!;
      slotX[a] = slotX[t]!;
      slotX[t] = xa;
      swaps[l]!++;
    }
    phy2log.set(slotX, l * R);
    logcnt.set(cnt, l * E);
  }
  return { phy2log, logcnt, swaps };
}
