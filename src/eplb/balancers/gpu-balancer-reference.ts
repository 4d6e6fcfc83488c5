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
 * 4. Matching rounds (`matchingRounds` of them): GPUs ranked by (load desc, index asc); the i-th heaviest
 *    and the i-th lightest (i < P/2) each apply their best swap as in step 5 (ties lowest kb·S+ka).
 * 5. Refinement: at most `maxSwaps` times, take the heaviest GPU h (ties lowest index) and apply the
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
  /** Rounds in which every i-th heaviest GPU swaps with the i-th lightest at once. */
  matchingRounds: number;
}

export const DEFAULT_GPU_LPT_OPTIONS: GpuLptOptions = { maxSwaps: 128, matchingRounds: 4 };

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
  matchSwaps: Int32Array;
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
  const matchSwaps = new Int32Array(L);
  const cnt = new Int32Array(E);
  const repX = new Int32Array(R);
  const repW = new Float32Array(R);
  const ord = new Int32Array(R);
  const slotX = new Int32Array(R);
  const slotW = new Float32Array(R);
  const gload = new Float32Array(P);
  const perm = new Int32Array(P);

  /** Swaps the replicas in slots a (on GPU h) and b (on GPU g), updating both loads as the kernel does. */
  const swapSlots = (a: number, b: number, h: number, g: number): void => {
    const wa = slotW[a]!;
    const wb = slotW[b]!;
    gload[h] = f(f(gload[h]! - wa) + wb);
    gload[g] = f(f(gload[g]! + wa) - wb);
    slotW[a] = wb;
    slotW[b] = wa;
    const xa = slotX[a]!;
    slotX[a] = slotX[b]!;
    slotX[b] = xa;
  };

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
    // 4a. Matching rounds: the i-th heaviest GPU with the i-th lightest, all pairs at once (the pairs are
    // disjoint, so applying each pair's swap at once changes nothing for the others).
    for (let round = 0; round < options.matchingRounds; round++) {
      for (let g = 0; g < P; g++) {
        const lg = gload[g]!;
        let rank = 0;
        for (let k = 0; k < P; k++) if (gload[k]! > lg || (gload[k] === lg && k < g)) rank++;
        perm[rank] = g;
      }
      for (let i = 0; i < P >> 1; i++) {
        const h = perm[i]!;
        const g = perm[P - 1 - i]!;
        const top = gload[h]!;
        const lg = gload[g]!;
        if (!(lg < top)) continue;
        let bestM = top;
        let bestC = -1;
        for (let c = 0; c < S * S; c++) {
          const ka = c % S;
          const wa = slotW[h * S + ka]!;
          const t = g * S + Math.floor(c / S);
          const wb = slotW[t]!;
          if (!(wa > wb) || holds(slotX, S, g, slotX[h * S + ka]!) || holds(slotX, S, h, slotX[t]!)) continue;
          const m = Math.max(f(f(top - wa) + wb), f(f(lg + wa) - wb));
          if (m < bestM) {
            bestM = m;
            bestC = c;
          }
        }
        if (bestC < 0) continue;
        swapSlots(h * S + (bestC % S), g * S + Math.floor(bestC / S), h, g);
        matchSwaps[l]!++;
      }
    }
    // 4b. Swap refinement.
    let done = 0;
    for (let it = 0; it < options.maxSwaps && !done; it++) {
      let h = 0;
      for (let g = 1; g < P; g++) if (gload[g]! > gload[h]!) h = g;
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
        if (!(wa > wb) || holds(slotX, S, g, slotX[h * S + ka]!) || holds(slotX, S, h, slotX[t]!)) continue;
        const nh = f(f(top - wa) + wb);
        const ng = f(f(gload[g]! + wa) - wb);
        const m = Math.max(nh, ng);
        if (m < bestM) {
          bestM = m;
          bestC = c;
        }
      }
      if (bestC < 0) {
        done = 1;
        break;
      }
      const t = Math.floor(bestC / S);
      swapSlots(h * S + (bestC % S), t, h, Math.floor(t / S));
      swaps[l]!++;
    }
    phy2log.set(slotX, l * R);
    logcnt.set(cnt, l * E);
  }
  return { phy2log, logcnt, swaps, matchSwaps };
}

/** Whether GPU g holds a replica of expert x. */
function holds(slotX: Int32Array, S: number, g: number, x: number): boolean {
  for (let k = 0; k < S; k++) if (slotX[g * S + k] === x) return true;
  return false;
}
