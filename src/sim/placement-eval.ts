import type { Placement } from '../eplb/placement.js';
import { gpusPerNode, type Shape, slotsPerGpu, validateShape } from '../eplb/shape.js';
import type { GpuContext } from '../gpu/device.js';
import { PassTimer } from '../gpu/timing.js';
import { assert, check, UserError } from '../util/errors.js';
import {
  LAYERS_PER_GROUP,
  PLACEMENT_EVAL_KERNEL,
  SUMMARY,
  SUMMARY_WORDS,
} from './placement-eval.contract.js';
import {
  createEvalBuffers,
  destroyEvalBuffers,
  type EvalBuffers,
  type EvalCapacity,
  evalBufferBytes,
} from './placement-eval-buffers.js';

export type { EvalCapacity } from './placement-eval-buffers.js';

/**
 * Balance metrics of one (placement, window) pair, as src/eplb/metrics.ts balanceMetrics defines
 * them, computed in f32 on the GPU (see PLACEMENT_EVAL_TOLERANCE).
 */
export interface PairMetrics {
  /** Σ_l mean GPU load / Σ_l max GPU load. */
  gpuBalancedness: number;
  /** Σ_l mean slot load / Σ_l max slot load. */
  slotBalancedness: number;
  /** [L] mean/max GPU load per layer (1 for a layer without load); empty when perLayer is false. */
  perLayerGpuBalancedness: Float32Array;
  /** [L] mean/max slot load per layer; empty when perLayer is false. */
  perLayerSlotBalancedness: Float32Array;
  /** Share of routed load that crosses nodes (balanceMetrics' interNodeShare). */
  interNodeShare: number;
  sumMaxGpuLoad: number;
  sumMeanGpuLoad: number;
  sumMaxSlotLoad: number;
  sumMeanSlotLoad: number;
  /** Σ over layers and experts of the window's load. */
  totalLoad: number;
}

export interface EvaluateOptions {
  /** Read back per-layer ratios (2·L floats per pair); off for the smallest readback. Default true. */
  perLayer?: boolean;
}

/** What the last evaluate() moved and ran, for `adrs profile`. */
export interface EvalCallStats {
  pairs: number;
  dispatches: number;
  uploadedBytes: number;
  readBackBytes: number;
  /** Estimate of device-memory bytes read and written by the two kernels. */
  touchedBytes: number;
  gpuMs: number | undefined;
}

/**
 * Relative tolerance of the GPU results against the f64 reference on the same f32 loads: slot loads
 * are one f32 division, GPU loads a sum of R/P of them in slot order, layer and pair sums pairwise
 * trees (error ∝ log2 n · 2^-24). Measured at the DeepSeek-V3 shape: ≤ 1.6e-7 (about one ulp);
 * 2e-6 leaves a 10× margin.
 */
export const PLACEMENT_EVAL_TOLERANCE = 2e-6;

/**
 * Threads per layer_stats workgroup: 64 on GPUs (see the kernel's comment); 8 on CPU adapters
 * (llvmpipe), where one workgroup of 8 is a single SIMD batch, so its barriers and the serial
 * reduction are cheapest (measured: about 40% less CPU time than 64 at the DeepSeek-V3 shape).
 */
const GPU_WORKGROUP_SIZE = 64;
const CPU_WORKGROUP_SIZE = 8;

export interface EvaluatorOptions {
  /** Threads per workgroup, a power of two in [1, 256]; default by adapter (see above). Tests vary it. */
  workgroupSize?: number;
}

/**
 * Scores many (placement, window) pairs in one GPU submission: the windows stay resident on the GPU
 * (setWindows), placements are uploaded per call, and one readback returns every pair's metrics.
 * Buffers and pipelines are made in create() for the given capacity and only grow when a call needs
 * more. Calls must not overlap (await each one).
 */
export class PlacementEvaluator {
  private windowCount = 0;
  private busy = false;
  private destroyed = false;
  private lastStats: EvalCallStats | undefined;
  /** Host-side packing areas, reused across calls. */
  private placementWords: Int32Array;
  private pairWords: Uint32Array;
  private readonly params = PLACEMENT_EVAL_KERNEL.uniform('Params');

  private constructor(
    private readonly gpu: GpuContext,
    readonly shape: Shape,
    private readonly layerPipeline: GPUComputePipeline,
    private readonly pairPipeline: GPUComputePipeline,
    private buffers: EvalBuffers,
    private readonly timer: PassTimer | null,
  ) {
    this.placementWords = new Int32Array(buffers.capacity.placements * this.placementStride);
    this.pairWords = new Uint32Array(buffers.capacity.pairs * 2);
  }

  static async create(
    gpu: GpuContext,
    shape: Shape,
    capacity: EvalCapacity,
    options: EvaluatorOptions = {},
  ): Promise<PlacementEvaluator> {
    validateShape(shape);
    check(
      shape.nodes <= 32,
      `the placement evaluator supports at most 32 nodes (one bit each), got ${shape.nodes}`,
    );
    for (const key of ['placements', 'windows', 'pairs'] as const) {
      check(
        Number.isInteger(capacity[key]) && capacity[key] >= 1,
        `capacity.${key} must be a positive integer, got ${capacity[key]}`,
      );
    }
    const wg = options.workgroupSize ?? (gpu.info.software ? CPU_WORKGROUP_SIZE : GPU_WORKGROUP_SIZE);
    check(
      Number.isInteger(wg) && wg >= 1 && wg <= 256 && (wg & (wg - 1)) === 0,
      `workgroupSize must be a power of two in [1, 256], got ${wg}`,
    );
    const limits = gpu.device.limits;
    const overrides = { WG: wg, EXPERT_CAP: shape.experts };
    const sharedBytes = PLACEMENT_EVAL_KERNEL.workgroupBytes(overrides);
    check(
      sharedBytes <= limits.maxComputeWorkgroupStorageSize,
      `shape too large for the placement evaluator: ${shape.experts} experts need ` +
        `${sharedBytes} B of workgroup memory, the device has ${limits.maxComputeWorkgroupStorageSize} B`,
    );
    const [layerPipeline, pairPipeline] = await Promise.all([
      gpu.kernels.kernelPipeline(PLACEMENT_EVAL_KERNEL, 'layer_stats_main', overrides),
      gpu.kernels.kernelPipeline(PLACEMENT_EVAL_KERNEL, 'pair_sums_main', overrides),
    ]);
    const timer = gpu.hasTimestamps ? new PassTimer(gpu.device, 1, 'placement-eval') : null;
    const buffers = createEvalBuffers(gpu.device, shape, capacity, gpu.kernels);
    return new PlacementEvaluator(gpu, shape, layerPipeline, pairPipeline, buffers, timer);
  }

  /** Int32 words per uploaded placement: phy2log [L][R] then logcnt [L][E]. */
  get placementStride(): number {
    return this.shape.layers * (this.shape.replicas + this.shape.experts);
  }

  get capacity(): Readonly<EvalCapacity> {
    return this.buffers.capacity;
  }

  /** Uploads the windows [W][L][E] that pairs index into (kept on the GPU until replaced). */
  setWindows(loads: Float32Array): void {
    this.assertUsable();
    const { layers: L, experts: E } = this.shape;
    check(
      loads.length > 0 && loads.length % (L * E) === 0,
      `window loads must hold whole [${L}][${E}] matrices, got ${loads.length} values`,
    );
    for (let i = 0; i < loads.length; i++) {
      const v = loads[i]!;
      if (!(v >= 0 && v < Number.POSITIVE_INFINITY)) {
        const w = Math.floor(i / (L * E));
        const l = Math.floor((i % (L * E)) / E);
        throw new UserError(
          `window ${w}, layer ${l}, expert ${i % E}: load ${v} is not a finite non-negative number`,
        );
      }
    }
    const windows = loads.length / (L * E);
    this.ensureCapacity({ ...this.buffers.capacity, windows });
    this.gpu.device.queue.writeBuffer(
      this.buffers.windows,
      0,
      loads.buffer,
      loads.byteOffset,
      loads.byteLength,
    );
    this.windowCount = windows;
  }

  get windows(): number {
    return this.windowCount;
  }

  /**
   * Metrics of each pair (placement index into `placements`, window index into the windows last
   * set). Placements must have this evaluator's shape and be valid (the harness validates them with
   * placementProblem); out-of-range experts or non-positive replica counts are still caught here.
   */
  async evaluate(
    placements: readonly Placement[],
    pairs: ReadonlyArray<readonly [placement: number, window: number]>,
    options: EvaluateOptions = {},
  ): Promise<PairMetrics[]> {
    this.assertUsable();
    assert(!this.busy, 'PlacementEvaluator.evaluate calls must not overlap: await the previous one');
    assert(this.windowCount > 0, 'no windows on the GPU: call setWindows(loads) before evaluate');
    if (pairs.length === 0) return [];
    const perLayer = options.perLayer ?? true;
    this.checkPlacements(placements);
    this.checkPairs(pairs, placements.length);
    this.busy = true;
    try {
      this.ensureCapacity({
        placements: Math.max(this.buffers.capacity.placements, placements.length),
        windows: this.buffers.capacity.windows,
        pairs: Math.max(this.buffers.capacity.pairs, pairs.length),
      });
      const uploaded = this.upload(placements, pairs);
      const { readBytes, timestampOffset } = this.encodeAndSubmit(pairs.length, perLayer);
      const staging = this.buffers.staging;
      const mapBytes = this.timer ? timestampOffset + 16 : readBytes;
      await staging.mapAsync(GPUMapMode.READ, 0, mapBytes).catch((error: unknown) => {
        this.gpu.check(); // a WebGPU error behind the failed map is the one worth reporting
        throw error;
      });
      this.gpu.check();
      let out: Float32Array;
      let gpuMs: number | undefined;
      try {
        const mapped = staging.getMappedRange(0, mapBytes);
        out = new Float32Array(mapped.slice(0, readBytes));
        if (this.timer) gpuMs = PassTimer.totalMs(mapped, timestampOffset, 1);
      } finally {
        staging.unmap();
      }
      this.lastStats = {
        pairs: pairs.length,
        dispatches: 2,
        uploadedBytes: uploaded,
        readBackBytes: readBytes + (this.timer ? 16 : 0),
        touchedBytes: this.touchedBytes(pairs.length),
        gpuMs,
      };
      return this.unpack(out, pairs, perLayer);
    } finally {
      this.busy = false;
    }
  }

  /** GPU milliseconds of the last evaluate (timestamp queries), undefined without them. */
  lastGpuMs(): number | undefined {
    return this.lastStats?.gpuMs;
  }

  lastCallStats(): EvalCallStats | undefined {
    return this.lastStats;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    destroyEvalBuffers(this.buffers);
    this.timer?.destroy();
  }

  private assertUsable(): void {
    if (this.destroyed) throw new Error('PlacementEvaluator used after destroy()');
  }

  private checkPlacements(placements: readonly Placement[]): void {
    const { layers: L, experts: E, replicas: R, gpus: P, nodes: N } = this.shape;
    for (let i = 0; i < placements.length; i++) {
      const p = placements[i]!;
      const s = p.shape;
      check(
        s.layers === L && s.experts === E && s.replicas === R && s.gpus === P && s.nodes === N,
        `placement ${i} has shape ${s.layers}×${s.experts}, ${s.replicas} slots, ${s.gpus} GPUs, ${s.nodes} nodes; ` +
          `the evaluator was made for ${L}×${E}, ${R} slots, ${P} GPUs, ${N} nodes`,
      );
      check(
        p.phy2log.length === L * R && p.logcnt.length === L * E,
        `placement ${i}: phy2log must have ${L * R} and logcnt ${L * E} entries, got ${p.phy2log.length} and ${p.logcnt.length}`,
      );
    }
  }

  private checkPairs(pairs: ReadonlyArray<readonly [number, number]>, placementCount: number): void {
    for (let i = 0; i < pairs.length; i++) {
      const [p, w] = pairs[i]!;
      if (
        !(
          Number.isInteger(p) &&
          p >= 0 &&
          p < placementCount &&
          Number.isInteger(w) &&
          w >= 0 &&
          w < this.windowCount
        )
      ) {
        throw new UserError(
          `pair ${i} = (${p}, ${w}) is out of range: placements [0, ${placementCount}), windows [0, ${this.windowCount})`,
        );
      }
    }
  }

  private ensureCapacity(needed: EvalCapacity): void {
    const have = this.buffers.capacity;
    if (needed.placements <= have.placements && needed.windows <= have.windows && needed.pairs <= have.pairs)
      return;
    // Grow geometrically so a slowly rising size does not reallocate on every call.
    const grown: EvalCapacity = {
      placements:
        needed.placements > have.placements
          ? Math.max(needed.placements, 2 * have.placements)
          : have.placements,
      windows: Math.max(needed.windows, have.windows),
      pairs: needed.pairs > have.pairs ? Math.max(needed.pairs, 2 * have.pairs) : have.pairs,
    };
    const next = createEvalBuffers(this.gpu.device, this.shape, grown, this.gpu.kernels);
    if (this.windowCount > 0 && grown.windows === have.windows) {
      // Keep resident windows: copy them on the GPU rather than asking the caller again.
      const encoder = this.gpu.device.createCommandEncoder({ label: 'placement-eval grow' });
      const bytes = this.windowCount * this.shape.layers * this.shape.experts * 4;
      encoder.copyBufferToBuffer(this.buffers.windows, 0, next.windows, 0, bytes);
      this.gpu.device.queue.submit([encoder.finish()]);
    } else {
      this.windowCount = 0;
    }
    destroyEvalBuffers(this.buffers);
    this.buffers = next;
    if (this.placementWords.length < grown.placements * this.placementStride) {
      this.placementWords = new Int32Array(grown.placements * this.placementStride);
    }
    if (this.pairWords.length < grown.pairs * 2) this.pairWords = new Uint32Array(grown.pairs * 2);
  }

  /** Packs and uploads placements, pairs and parameters; returns the bytes written. */
  private upload(placements: readonly Placement[], pairs: ReadonlyArray<readonly [number, number]>): number {
    const { layers: L, experts: E, replicas: R } = this.shape;
    const stride = this.placementStride;
    const words = this.placementWords;
    for (let i = 0; i < placements.length; i++) {
      const p = placements[i]!;
      words.set(p.phy2log, i * stride);
      words.set(p.logcnt, i * stride + L * R);
    }
    const pw = this.pairWords;
    for (let i = 0; i < pairs.length; i++) {
      pw[2 * i] = pairs[i]![0];
      pw[2 * i + 1] = pairs[i]![1];
    }
    const gridX = this.layerGrid(pairs.length).x;
    const params = this.params.set({
      layers: L,
      experts: E,
      replicas: R,
      gpus: this.shape.gpus,
      slots_per_gpu: slotsPerGpu(this.shape),
      gpus_per_node: gpusPerNode(this.shape),
      nodes: this.shape.nodes,
      pair_count: pairs.length,
      grid_x: gridX,
      placement_stride: stride,
    }).bytes;
    const queue = this.gpu.device.queue;
    const placementBytes = placements.length * stride * 4;
    const pairBytes = pairs.length * 8;
    queue.writeBuffer(this.buffers.placements, 0, words.buffer, 0, placementBytes);
    queue.writeBuffer(this.buffers.pairs, 0, pw.buffer, 0, pairBytes);
    queue.writeBuffer(this.buffers.params, 0, params);
    return placementBytes + pairBytes + params.byteLength;
  }

  private encodeAndSubmit(
    pairCount: number,
    perLayer: boolean,
  ): { readBytes: number; timestampOffset: number } {
    const { device } = this.gpu;
    const L = this.shape.layers;
    const b = this.buffers;
    const grid = this.layerGrid(pairCount);
    const gridX = grid.x;
    const encoder = device.createCommandEncoder({ label: 'placement-eval' });
    const pass = encoder.beginComputePass({
      label: 'placement-eval',
      ...(this.timer ? { timestampWrites: this.timer.writes(0) } : {}),
    });
    pass.setBindGroup(0, b.bindGroup);
    pass.setPipeline(this.layerPipeline);
    pass.dispatchWorkgroups(gridX, grid.y);
    pass.setPipeline(this.pairPipeline);
    // Same row width as the first dispatch: pairs ≤ gridX gives one row, otherwise gridX = maxDim.
    const pairGridX = Math.min(pairCount, gridX);
    pass.dispatchWorkgroups(pairGridX, Math.ceil(pairCount / pairGridX));
    pass.end();
    const readBytes = 4 * pairCount * (SUMMARY_WORDS + (perLayer ? 2 * L : 0));
    encoder.copyBufferToBuffer(b.out, 0, b.staging, 0, readBytes);
    const timestampOffset = Math.ceil(readBytes / 256) * 256;
    if (this.timer) this.timer.resolveInto(encoder, 1, b.staging, timestampOffset);
    device.queue.submit([encoder.finish()]);
    return { readBytes, timestampOffset };
  }

  /** The layer_stats grid: one workgroup per (pair, chunk of layers), rows of at most the dimension limit. */
  private layerGrid(pairCount: number): { x: number; y: number } {
    const items = pairCount * Math.ceil(this.shape.layers / LAYERS_PER_GROUP);
    const x = Math.min(items, this.gpu.device.limits.maxComputeWorkgroupsPerDimension);
    return { x, y: Math.ceil(items / x) };
  }

  private unpack(
    out: Float32Array,
    pairs: ReadonlyArray<readonly [number, number]>,
    perLayer: boolean,
  ): PairMetrics[] {
    const { layers: L, gpus: P, replicas: R } = this.shape;
    const n = pairs.length;
    const empty = new Float32Array(0);
    const results: PairMetrics[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const o = i * SUMMARY_WORDS;
      const bad = out[o + SUMMARY.BAD]!;
      if (bad !== 0) {
        const [p, w] = pairs[i]!;
        throw new UserError(
          `placement ${p} (pair ${i}, window ${w}) has ${bad} slots with an expert outside [0, ${this.shape.experts}) ` +
            'or a replica count ≤ 0: validate placements with placementProblem first',
        );
      }
      const total = out[o + SUMMARY.TOTAL_LOAD]!;
      results[i] = {
        totalLoad: total,
        sumMaxGpuLoad: out[o + SUMMARY.MAX_GPU_LOAD]!,
        sumMaxSlotLoad: out[o + SUMMARY.MAX_SLOT_LOAD]!,
        sumMeanGpuLoad: total / P,
        sumMeanSlotLoad: total / R,
        gpuBalancedness: out[o + SUMMARY.GPU_BALANCE]!,
        slotBalancedness: out[o + SUMMARY.SLOT_BALANCE]!,
        interNodeShare: out[o + SUMMARY.INTER_NODE_SHARE]!,
        perLayerGpuBalancedness: perLayer
          ? out.subarray(n * SUMMARY_WORDS + i * L, n * SUMMARY_WORDS + (i + 1) * L)
          : empty,
        perLayerSlotBalancedness: perLayer
          ? out.subarray(n * (SUMMARY_WORDS + L) + i * L, n * (SUMMARY_WORDS + L) + (i + 1) * L)
          : empty,
      };
    }
    return results;
  }

  /**
   * Device-memory traffic of one call, estimated from the kernels' access pattern: per (pair, layer)
   * R phy2log words, R logcnt and R load gathers, E loads for the inter-node term, one 20-byte stats
   * write; then the pair pass reads the stats back and writes summaries and per-layer ratios.
   */
  touchedBytes(pairs: number): number {
    const { layers: L, experts: E, replicas: R } = this.shape;
    const layerPass = pairs * L * (4 * (3 * R + E) + 8 + 20);
    const pairPass = pairs * (L * 20 + 4 * (SUMMARY_WORDS + 2 * L));
    return layerPass + pairPass;
  }

  /** Bytes of GPU memory this evaluator holds. */
  get gpuBytes(): number {
    return evalBufferBytes(this.shape, this.buffers.capacity);
  }
}
