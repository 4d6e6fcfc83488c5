import { balanceMetrics } from '../eplb/metrics.js';
import { DEEPSEEK_V3_SHAPE, type Shape } from '../eplb/shape.js';
import { stagingBuffer, storageBuffer, upload } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import { PassTimer } from '../gpu/timing.js';
import { check } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { summarizeTimes, type TimingSummary } from '../util/stats.js';
import { PlacementEvaluator } from './placement-eval.js';
import { cyclePairs, randomPlacement, randomWindows } from './placement-eval-inputs.js';

/**
 * `adrs profile`: GPU time, dispatches, bytes moved and wall time of each kernel family on a
 * generated workload. A kernel joins by adding one ProfilableKernel to PROFILABLE_KERNELS: its
 * `prepare` builds inputs and GPU state once, `run` does one hot-path call, `reference` (optional)
 * does the same work in plain TypeScript so the speed-up over the reference is reported too.
 */

export const PROFILE_SIZES = ['small', 'v3', 'large'] as const;
export type ProfileSize = (typeof PROFILE_SIZES)[number];

export interface ProfileOptions {
  size: ProfileSize;
  /** Work items per call for batched kernels (placement-eval: pairs); each size has a default. */
  batch?: number;
  seed: number;
}

/** What one hot-path call did. */
export interface RunStats {
  /** From timestamp queries; undefined on devices without them. */
  gpuMs: number | undefined;
  uploadedBytes: number;
  readBackBytes: number;
  /** Estimate of device-memory bytes the kernels read and wrote. */
  touchedBytes: number;
}

export interface ProfileCase {
  /** The workload in words, e.g. "58×256, R=288, 32 GPUs: 1024 (placement, window) pairs". */
  workload: string;
  /** Work items per call and their unit, for throughput. */
  items: number;
  unit: string;
  dispatches: number;
  /** Bytes uploaded once at setup and kept resident (e.g. trace windows). */
  residentBytes: number;
  run(): Promise<RunStats>;
  reference?: () => void;
  destroy(): void;
}

export interface ProfilableKernel {
  name: string;
  describe: string;
  prepare(gpu: GpuContext, options: ProfileOptions): Promise<ProfileCase>;
}

export interface KernelProfile {
  kernel: string;
  size: ProfileSize;
  workload: string;
  items: number;
  unit: string;
  dispatches: number;
  gpuMs: TimingSummary | null;
  wallMs: TimingSummary;
  bytes: { resident: number; uploaded: number; readBack: number; touchedEstimate: number };
  /** Items per second from the median GPU time and the median wall time. */
  perSecond: { gpu: number | null; wall: number };
  reference: { wallMs: TimingSummary; perSecond: number; wallSpeedup: number } | null;
}

/** Runs a prepared case: one warm-up call, then `repeat` timed calls; the reference likewise (≤ 3 runs). */
export async function profileKernel(
  gpu: GpuContext,
  kernel: ProfilableKernel,
  options: ProfileOptions & { repeat: number; reference: boolean },
): Promise<KernelProfile> {
  check(
    Number.isInteger(options.repeat) && options.repeat >= 1,
    `--repeat must be ≥ 1, got ${options.repeat}`,
  );
  const c = await kernel.prepare(gpu, options);
  try {
    let last = await c.run();
    const wall: number[] = [];
    const gpuTimes: number[] = [];
    for (let i = 0; i < options.repeat; i++) {
      const t0 = performance.now();
      last = await c.run();
      wall.push(performance.now() - t0);
      if (last.gpuMs !== undefined) gpuTimes.push(last.gpuMs);
    }
    const wallMs = summarizeTimes(wall);
    const gpuMs = gpuTimes.length > 0 ? summarizeTimes(gpuTimes) : null;
    let reference: KernelProfile['reference'] = null;
    if (options.reference && c.reference) {
      const samples: number[] = [];
      c.reference();
      for (let i = 0; i < Math.min(options.repeat, 3); i++) {
        const t0 = performance.now();
        c.reference();
        samples.push(performance.now() - t0);
      }
      const refMs = summarizeTimes(samples);
      reference = {
        wallMs: refMs,
        perSecond: (c.items * 1000) / refMs.median_ms,
        wallSpeedup: refMs.median_ms / wallMs.median_ms,
      };
    }
    return {
      kernel: kernel.name,
      size: options.size,
      workload: c.workload,
      items: c.items,
      unit: c.unit,
      dispatches: c.dispatches,
      gpuMs,
      wallMs,
      bytes: {
        resident: c.residentBytes,
        uploaded: last.uploadedBytes,
        readBack: last.readBackBytes,
        touchedEstimate: last.touchedBytes,
      },
      perSecond: {
        gpu: gpuMs ? (c.items * 1000) / gpuMs.median_ms : null,
        wall: (c.items * 1000) / wallMs.median_ms,
      },
      reference,
    };
  } finally {
    c.destroy();
  }
}

// ---- placement-eval ----------------------------------------------------------------------------

const TOY_SHAPE: Shape = { layers: 4, experts: 16, replicas: 24, groups: 4, nodes: 2, gpus: 8 };

/** Shape, placements, windows and default pairs per size: v3 is the ADRS leaderboard deployment. */
const PLACEMENT_EVAL_SIZES: Record<
  ProfileSize,
  { shape: Shape; placements: number; windows: number; pairs: number }
> = {
  small: { shape: TOY_SHAPE, placements: 8, windows: 8, pairs: 64 },
  v3: { shape: DEEPSEEK_V3_SHAPE, placements: 64, windows: 16, pairs: 1024 },
  large: { shape: DEEPSEEK_V3_SHAPE, placements: 256, windows: 32, pairs: 8192 },
};

const placementEvalKernel: ProfilableKernel = {
  name: 'placement-eval',
  describe: 'balance metrics of many (placement, window) pairs (kernels/placement-eval.wgsl)',
  async prepare(gpu, options) {
    const size = PLACEMENT_EVAL_SIZES[options.size];
    const pairCount = options.batch ?? size.pairs;
    check(
      Number.isInteger(pairCount) && pairCount >= 1,
      `--batch must be a positive integer, got ${pairCount}`,
    );
    const { shape } = size;
    const rng = new Rng(options.seed);
    const placementCount = Math.min(size.placements, pairCount);
    const windowCount = Math.min(size.windows, Math.ceil(pairCount / placementCount));
    const placements = Array.from({ length: placementCount }, () => randomPlacement(shape, rng));
    const loads = randomWindows(shape, windowCount, rng);
    const pairs = cyclePairs(placementCount, windowCount, pairCount);
    const evaluator = await PlacementEvaluator.create(gpu, shape, {
      placements: placementCount,
      windows: windowCount,
      pairs: pairCount,
    });
    evaluator.setWindows(loads);
    const n = shape.layers * shape.experts;
    const windowViews = Array.from({ length: windowCount }, (_, w) => loads.subarray(w * n, (w + 1) * n));
    return {
      workload:
        `${shape.layers}×${shape.experts}, R=${shape.replicas}, ${shape.gpus} GPUs: ` +
        `${pairCount} pairs of ${placementCount} placements × ${windowCount} windows`,
      items: pairCount,
      unit: 'pairs',
      dispatches: 2,
      residentBytes: loads.byteLength,
      async run() {
        await evaluator.evaluate(placements, pairs);
        const s = evaluator.lastCallStats()!;
        return {
          gpuMs: s.gpuMs,
          uploadedBytes: s.uploadedBytes,
          readBackBytes: s.readBackBytes,
          touchedBytes: s.touchedBytes,
        };
      },
      reference() {
        for (const [p, w] of pairs) balanceMetrics(placements[p]!, windowViews[w]!);
      },
      destroy: () => evaluator.destroy(),
    };
  },
};

// ---- smoke -------------------------------------------------------------------------------------

const SMOKE_ELEMENTS: Record<ProfileSize, number> = { small: 1 << 12, v3: 1 << 20, large: 1 << 24 };

/** kernels/smoke.wgsl (a·scale + i) with resident buffers and timestamps: the device's floor. */
const smokeKernel: ProfilableKernel = {
  name: 'smoke',
  describe: 'a[i]·scale + i over a float array (kernels/smoke.wgsl): upload, dispatch, readback floor',
  async prepare(gpu, options) {
    const n = options.batch ?? SMOKE_ELEMENTS[options.size];
    check(Number.isInteger(n) && n >= 1, `--batch must be a positive integer, got ${n}`);
    const { device } = gpu;
    const scale = 3;
    const pipeline = await gpu.kernels.pipeline({ file: 'smoke.wgsl', entry: 'main', constants: { scale } });
    const a = Float32Array.from({ length: n }, (_, i) => i % 1000);
    const bytes = a.byteLength;
    const input = storageBuffer(device, bytes, 'profile-smoke-in');
    const output = storageBuffer(device, bytes, 'profile-smoke-out');
    const timer = gpu.hasTimestamps ? new PassTimer(device, 1) : null;
    const timestampOffset = Math.ceil(bytes / 256) * 256;
    const staging = stagingBuffer(device, timestampOffset + 16, 'profile-smoke-read');
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: input } },
        { binding: 1, resource: { buffer: output } },
      ],
    });
    const groups = Math.ceil(n / 64);
    const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
    check(groups <= maxDim, `smoke: ${n} elements need ${groups} workgroups, over the device's ${maxDim}`);
    const result = new Float32Array(n);
    return {
      workload: `${n} floats`,
      items: n,
      unit: 'elements',
      dispatches: 1,
      residentBytes: 0,
      async run() {
        upload(device, input, a);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass(timer ? { timestampWrites: timer.writes(0) } : {});
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(groups);
        pass.end();
        encoder.copyBufferToBuffer(output, 0, staging, 0, bytes);
        if (timer) timer.resolveInto(encoder, 1, staging, timestampOffset);
        device.queue.submit([encoder.finish()]);
        const mapBytes = timer ? timestampOffset + 16 : bytes;
        await staging.mapAsync(GPUMapMode.READ, 0, mapBytes);
        gpu.check();
        let gpuMs: number | undefined;
        try {
          const mapped = staging.getMappedRange(0, mapBytes);
          result.set(new Float32Array(mapped, 0, n));
          if (timer) gpuMs = PassTimer.totalMs(mapped, timestampOffset, 1);
        } finally {
          staging.unmap();
        }
        return {
          gpuMs,
          uploadedBytes: bytes,
          readBackBytes: bytes + (timer ? 16 : 0),
          touchedBytes: 2 * bytes,
        };
      },
      reference() {
        for (let i = 0; i < n; i++) result[i] = Math.fround(a[i]! * scale + i);
      },
      destroy() {
        input.destroy();
        output.destroy();
        staging.destroy();
        timer?.destroy();
      },
    };
  },
};

/** Every kernel `adrs profile` knows, in the order it runs them for `--kernel all`. */
export const PROFILABLE_KERNELS: readonly ProfilableKernel[] = [smokeKernel, placementEvalKernel];

export function findProfilableKernels(name: string): ProfilableKernel[] {
  if (name === 'all') return [...PROFILABLE_KERNELS];
  const kernel = PROFILABLE_KERNELS.find((k) => k.name === name);
  check(
    kernel !== undefined,
    `unknown kernel '${name}': choose one of ${PROFILABLE_KERNELS.map((k) => k.name).join(', ')} or all`,
  );
  return [kernel];
}
