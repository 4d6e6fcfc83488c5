/**
 * Seed candidate for evolution: replication on the GPU (kernels/replicate.wgsl: each redundant slot
 * goes to the expert with the largest load per replica), packing on the host (longest-processing-
 * time first: replicas heaviest first, each onto the least-loaded GPU with a free slot, ignoring
 * nodes and groups). Correct and reasonable, with room to improve: apportionment instead of greedy
 * replication, node-aware packing, refinement swaps, packing on the GPU, no per-call allocation.
 * The candidate API: src/eval/candidate-api.ts.
 */
import type { CandidateContext, RebalanceInput, RebalanceOutput } from '../../src/eval/candidate-api.js';

interface GpuState {
  key: string;
  pipeline: GPUComputePipeline;
  params: GPUBuffer;
  loads: GPUBuffer;
  counts: GPUBuffer;
  staging: GPUBuffer;
  bindGroup: GPUBindGroup;
}

const MAX_EXPERTS = 1024;

export default async function rebalance(
  input: RebalanceInput,
  ctx: CandidateContext,
): Promise<RebalanceOutput> {
  const { loads, shape } = input;
  const { layers: L, experts: E, replicas: R, gpus: P } = shape;
  if (E > MAX_EXPERTS) throw new Error(`replicate.wgsl handles at most ${MAX_EXPERTS} experts, got ${E}`);
  const logcnt = await replicateOnGpu(ctx, loads, L, E, R);
  const phy2log = new Int32Array(L * R);
  // EVOLVE-BLOCK-START
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

/** Runs replicate.wgsl on all layers (one workgroup each) and reads the counts back. */
async function replicateOnGpu(
  ctx: CandidateContext,
  loads: Float32Array,
  L: number,
  E: number,
  R: number,
): Promise<Int32Array> {
  const s = await gpuState(ctx, L, E, R);
  const device = ctx.device;
  device.queue.writeBuffer(s.loads, 0, loads.buffer, loads.byteOffset, loads.byteLength);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(s.pipeline);
  pass.setBindGroup(0, s.bindGroup);
  pass.dispatchWorkgroups(L);
  pass.end();
  encoder.copyBufferToBuffer(s.counts, 0, s.staging, 0, L * E * 4);
  device.queue.submit([encoder.finish()]);
  await s.staging.mapAsync(GPUMapMode.READ);
  const counts = new Int32Array(s.staging.getMappedRange().slice(0));
  s.staging.unmap();
  return counts;
}

/** Buffers and pipeline for one shape, kept between calls in ctx.cache. */
async function gpuState(ctx: CandidateContext, L: number, E: number, R: number): Promise<GpuState> {
  const key = `${L}x${E}x${R}`;
  const cached = ctx.cache.get('replicate') as GpuState | undefined;
  if (cached?.key === key) return cached;
  const device = ctx.device;
  const pipeline = await ctx.pipeline('replicate.wgsl', 'replicate');
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([L, E, R, 0]));
  const loads = device.createBuffer({
    size: L * E * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  const counts = device.createBuffer({
    size: L * E * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const staging = device.createBuffer({
    size: L * E * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: loads } },
      { binding: 2, resource: { buffer: counts } },
    ],
  });
  if (cached) for (const b of [cached.params, cached.loads, cached.counts, cached.staging]) b.destroy();
  const state = { key, pipeline, params, loads, counts, staging, bindGroup };
  ctx.cache.set('replicate', state);
  return state;
}
