import { gpusPerNode, type Shape, validateShape } from '../eplb/shape.js';
import { stagingBuffer, storageBuffer, uniformBuffer, upload } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import { PassTimer } from '../gpu/timing.js';
import { assert, check } from '../util/errors.js';
import { COUNTERS_PER_GPU, type CostModel, H100_COST_MODEL } from './cost-model.js';
import { resultFromCounters } from './route-result.js';
import { seedKey } from './route-rng.js';
import { ROUTE_SIM_KERNEL, ROUTE_TOKENS_PER_THREAD, ROUTE_WG_SIZE } from './route-sim.contract.js';
import type { RouteInput, RouteResult } from './route-types.js';
import {
  allocateRouteTables,
  fillRouteTables,
  MAX_TOKENS,
  POLICY_CODE,
  planRoute,
  type RouteTables,
} from './routing-tables.js';

/** Tokens per workgroup of kernels/route-sim.wgsl. */
const TILE = ROUTE_WG_SIZE * ROUTE_TOKENS_PER_THREAD;
type RouteParams = ReturnType<typeof ROUTE_SIM_KERNEL.uniform<'Params'>>;

/** Largest power of two below n (0 for n = 1): the first step of the kernel's binary lifting. */
const searchTop = (n: number): number => (n <= 1 ? 0 : 2 ** Math.floor(Math.log2(n - 1)));

interface RoutePipeline {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
}

export interface RouteSimulatorOptions {
  /** Most tokens per call (buffers do not depend on it; it bounds the dispatch). */
  maxTokens: number;
  costModel?: CostModel;
  /** Most workgroups per dispatch dimension (default: the adapter's limit; tests lower it to exercise the 3-D split). */
  maxWorkgroupsPerDimension?: number;
}

/**
 * Token-level MoE routing on the GPU (kernels/route-sim.wgsl). Buffers are created once per shape in
 * `create`; the pipeline and its bind group once per (top-k, chosen groups), which the kernel takes as
 * pipeline constants so its per-token arrays unroll into registers (the first call with a new pair
 * compiles it: a warm-up). A call uploads the window's integer tables, runs one dispatch
 * (3-D: tiles along x and z, layers along y, so any token count fits the 65535-per-dimension limit)
 * and reads counters and timestamps back in one mapping. Calls must not overlap.
 */
export class RouteSimulator {
  private busy = false;
  private readonly pipelines = new Map<string, Promise<RoutePipeline>>();

  private constructor(
    private readonly gpu: GpuContext,
    readonly shape: Shape,
    private readonly maxTokens: number,
    private readonly model: CostModel,
    private readonly tables: RouteTables,
    private readonly buffers: {
      params: GPUBuffer;
      cdf: GPUBuffer;
      offsets: GPUBuffer;
      gpus: GPUBuffer;
      staticMap: GPUBuffer;
      counters: GPUBuffer;
      staging: GPUBuffer;
    },
    private readonly timer: PassTimer | null,
    private readonly params: RouteParams,
    private readonly maxDim: number,
  ) {}

  static async create(
    gpu: GpuContext,
    shape: Shape,
    options: RouteSimulatorOptions,
  ): Promise<RouteSimulator> {
    validateShape(shape);
    const { layers: L, experts: E, gpus: P } = shape;
    check(
      Number.isInteger(options.maxTokens) && options.maxTokens >= 1 && options.maxTokens <= MAX_TOKENS,
      `maxTokens must be an integer in [1, ${MAX_TOKENS}], got ${options.maxTokens}`,
    );
    const limits = gpu.device.limits;
    const shared = ROUTE_SIM_KERNEL.workgroupBytes({ CDF_LEN: E + 1, GPUS: P });
    check(
      shared <= limits.maxComputeWorkgroupStorageSize,
      `${E} experts and ${P} GPUs need ${shared} B of workgroup memory; the adapter offers ${limits.maxComputeWorkgroupStorageSize}`,
    );
    check(L <= limits.maxComputeWorkgroupsPerDimension, `${L} layers exceed the adapter's dispatch limit`);
    const tables = allocateRouteTables(shape);
    const { device } = gpu;
    const timer = gpu.hasTimestamps ? new PassTimer(device, 1, 'route-sim') : null;
    const countersBytes = L * P * COUNTERS_PER_GPU * 4;
    const timerOffset = Math.ceil(countersBytes / 256) * 256;
    const params = ROUTE_SIM_KERNEL.uniform('Params');
    const buffers = {
      params: uniformBuffer(device, params.bytes.byteLength, 'route-params'),
      cdf: storageBuffer(device, tables.cdf.byteLength, 'route-cdf'),
      offsets: storageBuffer(device, tables.offsets.byteLength, 'route-offsets'),
      gpus: storageBuffer(device, tables.gpus.byteLength, 'route-gpus'),
      staticMap: storageBuffer(device, tables.staticMap.byteLength, 'route-static'),
      counters: storageBuffer(device, countersBytes, 'route-counters'),
      staging: stagingBuffer(device, timerOffset + (timer?.bytes ?? 0), 'route-read'),
    };
    gpu.check();
    return new RouteSimulator(
      gpu,
      shape,
      options.maxTokens,
      options.costModel ?? H100_COST_MODEL,
      tables,
      buffers,
      timer,
      params,
      Math.min(
        options.maxWorkgroupsPerDimension ?? limits.maxComputeWorkgroupsPerDimension,
        limits.maxComputeWorkgroupsPerDimension,
      ),
    );
  }

  async run(input: RouteInput): Promise<RouteResult> {
    assert(
      !this.busy,
      'RouteSimulator.run was called while a previous call was still running: await each call',
    );
    this.busy = true;
    try {
      return await this.runOnce(input);
    } finally {
      this.busy = false;
    }
  }

  private async runOnce(input: RouteInput): Promise<RouteResult> {
    const t0 = performance.now();
    const { device } = this.gpu;
    const shape = this.shape;
    const plan = planRoute(shape, input, this.maxTokens);
    fillRouteTables(plan, input, this.tables);
    const b = this.buffers;
    upload(device, b.cdf, this.tables.cdf);
    upload(device, b.offsets, this.tables.offsets);
    upload(device, b.gpus, this.tables.gpus);
    if (plan.policy === 'static-local') upload(device, b.staticMap, this.tables.staticMap);

    const { pipeline, bindGroup } = await this.pipelineFor(plan.topK, plan.groups, plan.chosenGroups);
    const tiles = Math.ceil(plan.tokens / TILE);
    const tilesX = Math.min(tiles, this.maxDim);
    const tilesZ = Math.ceil(tiles / tilesX);
    check(tilesZ <= this.maxDim, `${plan.tokens} tokens need more workgroups than one dispatch allows`);
    this.params.set({
      tokens: plan.tokens,
      top_k: plan.topK,
      groups: plan.groups,
      experts_per_group: plan.expertsPerGroup,
      chosen_groups: plan.chosenGroups,
      limited: plan.limited ? 1 : 0,
      experts: shape.experts,
      gpus: shape.gpus,
      gpus_per_node: gpusPerNode(shape),
      replicas: shape.replicas,
      policy: POLICY_CODE[plan.policy],
      seed_key: seedKey(plan.seed),
      tiles_x: tilesX,
      tok_base: Math.floor(plan.tokens / shape.gpus),
      tok_rem: plan.tokens % shape.gpus,
      search_top: searchTop(plan.expertsPerGroup),
    });
    upload(device, b.params, this.params.bytes);

    const countersBytes = shape.layers * shape.gpus * COUNTERS_PER_GPU * 4;
    const timerOffset = Math.ceil(countersBytes / 256) * 256;
    const encoder = device.createCommandEncoder({ label: 'route-sim' });
    encoder.clearBuffer(b.counters);
    const pass = encoder.beginComputePass({
      label: 'route-sim',
      ...(this.timer ? { timestampWrites: this.timer.writes(0) } : {}),
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(tilesX, shape.layers, tilesZ);
    pass.end();
    encoder.copyBufferToBuffer(b.counters, 0, b.staging, 0, countersBytes);
    this.timer?.resolveInto(encoder, 1, b.staging, timerOffset);
    await this.gpu.submit([encoder.finish()]);
    await b.staging.mapAsync(GPUMapMode.READ);
    let counters: Uint32Array;
    let gpuMs: number | undefined;
    try {
      const mapped = b.staging.getMappedRange();
      counters = new Uint32Array(mapped.slice(0, countersBytes));
      if (this.timer) gpuMs = PassTimer.totalMs(mapped, timerOffset, 1);
    } finally {
      b.staging.unmap();
    }
    const timing: { wallMs: number; gpuMs?: number } = { wallMs: 0 };
    if (gpuMs !== undefined) timing.gpuMs = gpuMs;
    const result = resultFromCounters(shape, counters, this.model, timing);
    result.wallMs = performance.now() - t0;
    return result;
  }

  /** The kernel specialised for top-k and the chosen groups per token (cached per simulator). */
  private pipelineFor(topK: number, groups: number, chosenGroups: number): Promise<RoutePipeline> {
    const id = `${topK}/${groups}/${chosenGroups}`;
    let p = this.pipelines.get(id);
    if (!p) {
      p = this.createPipeline(topK, groups, chosenGroups);
      this.pipelines.set(id, p);
      p.catch(() => this.pipelines.delete(id));
    }
    return p;
  }

  private async createPipeline(topK: number, groups: number, chosenGroups: number): Promise<RoutePipeline> {
    const { experts: E, gpus: P } = this.shape;
    const pipeline = await this.gpu.kernels.kernelPipeline(ROUTE_SIM_KERNEL, 'main', {
      CDF_LEN: E + 1,
      GPUS: P,
      TOP_K: topK,
      GROUPS: groups,
      CHOSEN_GROUPS: chosenGroups,
    });
    const b = this.buffers;
    const bindGroup = this.gpu.kernels.bindGroup(ROUTE_SIM_KERNEL, 'route-sim', {
      params: b.params,
      cdf: b.cdf,
      offsets: b.offsets,
      rep_gpu: b.gpus,
      static_gpu: b.staticMap,
      counters: b.counters,
    });
    return { pipeline, bindGroup };
  }

  destroy(): void {
    for (const buffer of Object.values(this.buffers)) buffer.destroy();
    this.timer?.destroy();
  }
}
