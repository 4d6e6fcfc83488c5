import type { Shape } from '../eplb/shape.js';
import { stagingBuffer, storageBuffer, uniformBuffer } from '../gpu/buffers.js';
import type { KernelCache } from '../gpu/kernels.js';
import { UserError } from '../util/errors.js';
import { PLACEMENT_EVAL_KERNEL, SUMMARY_WORDS } from './placement-eval.contract.js';

/** How many placements, windows and pairs the evaluator's buffers hold. */
export interface EvalCapacity {
  placements: number;
  windows: number;
  pairs: number;
}

/** The GPU buffers of a PlacementEvaluator and the bind groups over them. */
export interface EvalBuffers {
  capacity: EvalCapacity;
  params: GPUBuffer;
  windows: GPUBuffer;
  placements: GPUBuffer;
  pairs: GPUBuffer;
  layerStats: GPUBuffer;
  layerBad: GPUBuffer;
  out: GPUBuffer;
  /** Output plus 256 bytes for the timestamp pair, mapped once per call. */
  staging: GPUBuffer;
  /** Every binding of the kernel: both entry points share the contract's one layout. */
  bindGroup: GPUBindGroup;
}

/** Bytes of `count` elements of one of the kernel's array bindings. */
const bytes = (binding: Parameters<typeof PLACEMENT_EVAL_KERNEL.elementBytes>[0], count: number) =>
  PLACEMENT_EVAL_KERNEL.elementBytes(binding) * count;

function sizes(shape: Shape, c: EvalCapacity) {
  const { layers: L, experts: E, replicas: R } = shape;
  const out = bytes('out', c.pairs * (SUMMARY_WORDS + 2 * L));
  return {
    windows: bytes('windows', c.windows * L * E),
    placements: bytes('placements', c.placements * L * (R + E)),
    pairs: bytes('pairs', c.pairs),
    layerStats: bytes('layer_stats', c.pairs * L),
    layerBad: bytes('layer_bad', c.pairs * L),
    out,
    staging: Math.ceil(out / 256) * 256 + 256,
  };
}

/** Bytes of GPU memory the buffers for `capacity` take. */
export function evalBufferBytes(shape: Shape, capacity: EvalCapacity): number {
  return Object.values(sizes(shape, capacity)).reduce((a, b) => a + b, 0);
}

export function createEvalBuffers(
  device: GPUDevice,
  shape: Shape,
  capacity: EvalCapacity,
  kernels: KernelCache,
): EvalBuffers {
  const s = sizes(shape, capacity);
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  for (const [name, bytes] of Object.entries(s)) {
    if (bytes > limit) {
      throw new UserError(
        `placement evaluator: the ${name} buffer for ${capacity.placements} placements, ${capacity.windows} windows, ` +
          `${capacity.pairs} pairs needs ${bytes} B, over the device's ${limit} B; evaluate in smaller batches`,
      );
    }
  }
  const params = uniformBuffer(device, PLACEMENT_EVAL_KERNEL.layouts.Params.size, 'placement-eval-params');
  const windows = storageBuffer(device, s.windows, 'placement-eval-windows');
  const placements = storageBuffer(device, s.placements, 'placement-eval-placements');
  const pairs = storageBuffer(device, s.pairs, 'placement-eval-pairs');
  const layerStats = storageBuffer(device, s.layerStats, 'placement-eval-layer-stats');
  const layerBad = storageBuffer(device, s.layerBad, 'placement-eval-layer-bad');
  const out = storageBuffer(device, s.out, 'placement-eval-out');
  const staging = stagingBuffer(device, s.staging, 'placement-eval-read');
  const bindGroup = kernels.bindGroup(PLACEMENT_EVAL_KERNEL, 'placement-eval', {
    params,
    windows,
    placements,
    pairs,
    layer_stats: layerStats,
    layer_bad: layerBad,
    out,
  });
  return {
    capacity: { ...capacity },
    params,
    windows,
    placements,
    pairs,
    layerStats,
    layerBad,
    out,
    staging,
    bindGroup,
  };
}

export function destroyEvalBuffers(b: EvalBuffers): void {
  for (const buffer of [
    b.params,
    b.windows,
    b.placements,
    b.pairs,
    b.layerStats,
    b.layerBad,
    b.out,
    b.staging,
  ]) {
    buffer.destroy();
  }
}
