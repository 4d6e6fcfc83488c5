/**
 * Seed candidate for evolution: replication on the GPU (kernels/replicate.wgsl: each redundant slot
 * goes to the expert with the largest load per replica), packing on the host (longest-processing-
 * time first: replicas heaviest first, each onto the least-loaded GPU with a free slot, ignoring
 * nodes and groups). It places on the latest window only (`input.loads`); `input.history` holds the
 * recent windows too, oldest first, and the placement is scored on the NEXT window. Correct and
 * reasonable, with room to improve: a forecast of the next window from the history, apportionment
 * instead of greedy replication, node-aware packing, refinement swaps, packing on the GPU (the
 * kernel receives the whole shape), no per-call allocation.
 *
 * The GPU path uses the context's helpers (src/eval/candidate-api.ts): ctx.upload and ctx.buffer
 * keep named buffers between calls, ctx.dispatch binds them by the kernel's variable names and packs
 * the params struct from a record, ctx.read copies a buffer back. All of it is inside the
 * EVOLVE-BLOCK, so the kernel, its bindings and its dispatch can change together.
 */
import type { CandidateContext, RebalanceInput, RebalanceOutput } from '../../src/eval/candidate-api.js';

export default async function rebalance(
  input: RebalanceInput,
  ctx: CandidateContext,
): Promise<RebalanceOutput> {
  const { loads, shape } = input;
  const { layers: L, experts: E, replicas: R, gpus: P, nodes: N, groups: G } = shape;
  // EVOLVE-BLOCK-START
  // Replica counts on the GPU: one workgroup per layer (replicate.wgsl holds at most 1024 experts).
  if (E > 1024) throw new Error(`replicate.wgsl handles at most 1024 experts, got ${E}`);
  ctx.upload('loads', loads);
  ctx.buffer('counts', L * E * 4);
  await ctx.dispatch({
    kernel: 'replicate.wgsl',
    entry: 'replicate',
    bindings: {
      params: { layers: L, experts: E, replicas: R, gpus: P, nodes: N, groups: G },
      loads: 'loads',
      logcnt: 'counts',
    },
    workgroups: [L],
  });
  const logcnt = await ctx.read('counts', Int32Array);

  // Longest-processing-time packing on the host.
  const phy2log = new Int32Array(L * R);
  const S = R / P;
  const weight = new Float64Array(R);
  const expertOf = new Int32Array(R);
  const order = new Int32Array(R);
  const gpuLoad = new Float64Array(P);
  const gpuFill = new Int32Array(P);
  for (let l = 0; l < L; l++) {
    let n = 0;
    for (let e = 0; e < E; e++) {
      const c = logcnt[l * E + e]!;
      const w = loads[l * E + e]! / c;
      for (let k = 0; k < c; k++) {
        weight[n] = w;
        expertOf[n] = e;
        order[n] = n;
        n++;
      }
    }
    order.sort((a, b) => weight[b]! - weight[a]! || a - b);
    gpuLoad.fill(0);
    gpuFill.fill(0);
    for (let i = 0; i < R; i++) {
      const item = order[i]!;
      let best = -1;
      for (let g = 0; g < P; g++) {
        if (gpuFill[g]! < S && (best < 0 || gpuLoad[g]! < gpuLoad[best]!)) best = g;
      }
      phy2log[l * R + best * S + gpuFill[best]!] = expertOf[item]!;
      gpuFill[best]!++;
      gpuLoad[best]! += weight[item]!;
    }
  }
  // EVOLVE-BLOCK-END
  return { phy2log, logcnt };
}
