import { align, stagingBuffer, storageBuffer, uniformBuffer, upload } from '../../gpu/buffers.js';
import type { GpuContext } from '../../gpu/device.js';
import { PassTimer } from '../../gpu/timing.js';
import { assert, UserError } from '../../util/errors.js';
import type { Balancer, BalancerContext, PreparedBalancer } from '../balancer.js';
import { deriveLog2phy, type Placement } from '../placement.js';
import { type Shape, validateShape } from '../shape.js';
import { GPU_LPT_KERNEL } from './gpu-balancer.contract.js';
import { DEFAULT_GPU_LPT_OPTIONS, type GpuLptOptions, reciprocals } from './gpu-balancer-reference.js';

/**
 * Driver settings that do not change the result (every choice in the kernel is a total order, so the
 * placement is the same for any workgroup size): only its speed.
 */
export interface GpuLptDriverOptions extends GpuLptOptions {
  /**
   * Threads per workgroup, a power of two in [4, 1024]. Default: 256 on a GPU; 64 on a software adapter,
   * where each barrier costs a switch per SIMD batch of threads and fewer threads run faster.
   */
  workgroupSize?: number;
}

/**
 * `gpu-lpt`: apportioned replicas, round-based longest-first packing and best-swap refinement, one
 * workgroup per layer in kernels/eplb-balancer.wgsl. Its exact TypeScript twin is gpuLptReference.
 */
export function createGpuLptBalancer(options: GpuLptDriverOptions = DEFAULT_GPU_LPT_OPTIONS): Balancer {
  return {
    name: 'gpu-lpt',
    summary: 'GPU (WGSL): apportioned replicas, round-based longest-first packing, best-swap refinement',
    runsOn: 'gpu',
    prepare: (shape, ctx) => GpuLpt.create(shape, ctx, options),
  };
}

export const gpuLptBalancer: Balancer = createGpuLptBalancer();

/**
 * The kernel's array sizes for a shape: at least DeepSeek-V3's, so every shape up to it shares one
 * pipeline (a compile costs lavapipe seconds), and multiples of 32/8 above it.
 */
export function gpuLptCapacities(shape: Shape): {
  E_CAP: number;
  R_CAP: number;
  P_CAP: number;
  W_CAP: number;
} {
  const cap = (v: number, min: number, step: number) => Math.max(min, Math.ceil(v / step) * step);
  const E_CAP = cap(shape.experts, 256, 32);
  return { E_CAP, R_CAP: cap(shape.replicas, 288, 32), P_CAP: cap(shape.gpus, 32, 8), W_CAP: E_CAP / 32 };
}

/** The kernel's pipeline constants for a shape and workgroup size. */
const gpuLptOverrides = (shape: Shape, workgroupSize: number) => ({
  ...gpuLptCapacities(shape),
  WG: workgroupSize,
  PARTS: reductionParts(workgroupSize),
});

/** Workgroup memory the kernel declares for a shape (from its contract's var<workgroup> list). */
export function gpuLptWorkgroupBytes(shape: Shape, workgroupSize: number): number {
  return GPU_LPT_KERNEL.workgroupBytes(gpuLptOverrides(shape, workgroupSize));
}

/** The kernel's two-level reductions: PARTS threads fold WG/PARTS values each, then one folds PARTS. */
const reductionParts = (workgroupSize: number): number => 2 ** Math.ceil(Math.log2(workgroupSize) / 2);

/**
 * Buffers, pipeline and bind group are made once here; `rebalance` uploads the loads, dispatches one
 * pass and reads results and timestamps back in a single mapping of one staging buffer.
 */
class GpuLpt implements PreparedBalancer {
  private busy = false;
  private gpuMs: number | undefined;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly shape: Shape,
    private readonly pipeline: GPUComputePipeline,
    private readonly bindGroup: GPUBindGroup,
    private readonly loadsBuffer: GPUBuffer,
    private readonly buffers: GPUBuffer[],
    private readonly outBuffer: GPUBuffer,
    private readonly staging: GPUBuffer,
    private readonly outBytes: number,
    private readonly timerOffset: number,
    private readonly timer: PassTimer | null,
  ) {}

  static async create(shape: Shape, ctx: BalancerContext, options: GpuLptDriverOptions): Promise<GpuLpt> {
    const gpu = ctx.gpu;
    if (!gpu)
      throw new UserError('balancer gpu-lpt runs on the GPU: pass a device (acquireGpu) in its context');
    validateShape(shape);
    const { layers: L, experts: E, replicas: R, gpus: P } = shape;
    const { device } = gpu;
    const WG = options.workgroupSize ?? (gpu.info.software ? 64 : 256);
    if (!Number.isInteger(Math.log2(WG)) || WG < 4 || WG > device.limits.maxComputeInvocationsPerWorkgroup) {
      throw new UserError(
        `gpu-lpt workgroupSize must be a power of two in [4, ${device.limits.maxComputeInvocationsPerWorkgroup}], got ${WG}`,
      );
    }
    const wgBytes = gpuLptWorkgroupBytes(shape, WG);
    if (wgBytes > device.limits.maxComputeWorkgroupStorageSize) {
      throw new UserError(
        `gpu-lpt needs ${wgBytes} bytes of workgroup memory for ${E} experts and ${R} slots, but the device ` +
          `allows ${device.limits.maxComputeWorkgroupStorageSize}: use a CPU balancer for this shape`,
      );
    }
    if (L > device.limits.maxComputeWorkgroupsPerDimension) {
      throw new UserError(
        `gpu-lpt dispatches one workgroup per layer; ${L} layers exceed the device's ${device.limits.maxComputeWorkgroupsPerDimension}`,
      );
    }
    for (const key of ['maxSwaps', 'matchingRounds'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 0) {
        throw new UserError(`gpu-lpt ${key} must be a non-negative integer, got ${options[key]}`);
      }
    }
    // Only array sizes and the workgroup size are pipeline constants; the options travel in `params`.
    const pipeline = await gpu.kernels.kernelPipeline(GPU_LPT_KERNEL, 'main', gpuLptOverrides(shape, WG));
    const outBytes = GPU_LPT_KERNEL.elementBytes('out') * L * (R + E);
    const timer = gpu.hasTimestamps ? new PassTimer(device, 1, 'gpu-lpt') : null;
    const timerOffset = align(outBytes, 8);
    const loadsBuffer = storageBuffer(device, GPU_LPT_KERNEL.elementBytes('loads') * L * E, 'gpu-lpt-loads');
    const recipBuffer = storageBuffer(
      device,
      GPU_LPT_KERNEL.elementBytes('recip') * (R - E + 2),
      'gpu-lpt-recip',
    );
    const outBuffer = storageBuffer(device, outBytes, 'gpu-lpt-out');
    const params = GPU_LPT_KERNEL.uniform('Params').set({
      e: E,
      r: R,
      p: P,
      s: R / P,
      w: Math.ceil(E / 32),
      max_swaps: options.maxSwaps,
      match_rounds: options.matchingRounds,
    });
    const paramsBuffer = uniformBuffer(device, params.bytes.byteLength, 'gpu-lpt-params');
    const staging = stagingBuffer(device, timerOffset + (timer?.bytes ?? 0), 'gpu-lpt-read');
    upload(device, recipBuffer, reciprocals(shape));
    upload(device, paramsBuffer, params.bytes);
    const bindGroup = gpu.kernels.bindGroup(GPU_LPT_KERNEL, 'gpu-lpt', {
      loads: loadsBuffer,
      recip: recipBuffer,
      out: outBuffer,
      params: paramsBuffer,
    });
    gpu.check();
    return new GpuLpt(
      gpu,
      shape,
      pipeline,
      bindGroup,
      loadsBuffer,
      [loadsBuffer, recipBuffer, outBuffer, paramsBuffer, staging],
      outBuffer,
      staging,
      outBytes,
      timerOffset,
      timer,
    );
  }

  async rebalance(loads: Float32Array): Promise<Placement> {
    const { layers: L, experts: E, replicas: R } = this.shape;
    if (loads.length !== L * E) {
      throw new UserError(`gpu-lpt expects ${L}×${E} = ${L * E} loads, got ${loads.length}`);
    }
    assert(!this.busy, 'gpu-lpt: rebalance called again before the previous call finished');
    this.busy = true;
    try {
      const { device } = this.gpu;
      upload(device, this.loadsBuffer, loads);
      const encoder = device.createCommandEncoder({ label: 'gpu-lpt' });
      const pass = encoder.beginComputePass({
        label: 'gpu-lpt',
        ...(this.timer ? { timestampWrites: this.timer.writes(0) } : {}),
      });
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, this.bindGroup);
      pass.dispatchWorkgroups(L);
      pass.end();
      encoder.copyBufferToBuffer(this.outBuffer, 0, this.staging, 0, this.outBytes);
      this.timer?.resolveInto(encoder, 1, this.staging, this.timerOffset);
      device.queue.submit([encoder.finish()]);
      await this.staging.mapAsync(GPUMapMode.READ);
      let phy2log: Int32Array;
      let logcnt: Int32Array;
      try {
        const mapped = this.staging.getMappedRange();
        // `out` holds phy2log [L][R], then logcnt [L][E].
        phy2log = new Int32Array(mapped.slice(0, Int32Array.BYTES_PER_ELEMENT * L * R));
        logcnt = new Int32Array(mapped.slice(Int32Array.BYTES_PER_ELEMENT * L * R, this.outBytes));
        this.gpuMs = this.timer ? PassTimer.totalMs(mapped, this.timerOffset, 1) : undefined;
      } finally {
        this.staging.unmap();
      }
      this.gpu.check();
      return deriveLog2phy(this.shape, phy2log, logcnt);
    } finally {
      this.busy = false;
    }
  }

  lastGpuMs(): number | undefined {
    return this.gpuMs;
  }

  dispose(): void {
    this.timer?.destroy();
    for (const b of this.buffers) b.destroy();
  }
}
