import { gpuLptBalancer } from '../eplb/balancers/gpu-balancer.js';
import { DEFAULT_GPU_LPT_OPTIONS, gpuLptReference } from '../eplb/balancers/gpu-balancer-reference.js';
import { balanceMetrics } from '../eplb/metrics.js';
import { DEEPSEEK_V3_SHAPE, type Shape } from '../eplb/shape.js';
import { stagingBuffer, storageBuffer, upload } from '../gpu/buffers.js';
import { SMOKE_KERNEL } from '../gpu/smoke.contract.js';
import { PassTimer } from '../gpu/timing.js';
import { check } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { COUNTERS_PER_GPU } from './cost-model.js';
import { PlacementEvaluator } from './placement-eval.js';
import { cyclePairs, randomPlacement, randomWindows } from './placement-eval-inputs.js';
import type { ProfilableKernel, ProfileSize } from './profile-types.js';
import { routeReference } from './route-reference.js';
import { RouteSimulator } from './route-sim.js';
import type { RouteInput } from './route-types.js';
import { allocateRouteTables } from './routing-tables.js';

/** The kernels `adrs profile` measures (registered in profile.ts PROFILABLE_KERNELS; their contract is profile-types.ts). */

const TOY_SHAPE: Shape = { layers: 4, experts: 16, replicas: 24, groups: 4, nodes: 2, gpus: 8 };

const describeShape = (s: Shape): string => `${s.layers}×${s.experts}, R=${s.replicas}, ${s.gpus} GPUs`;

// ---- placement-eval ----------------------------------------------------------------------------

/** Shape, placements, windows and default pairs per size: v3 is the ADRS leaderboard deployment. */
const PLACEMENT_EVAL_SIZES: Record<
  ProfileSize,
  { shape: Shape; placements: number; windows: number; pairs: number }
> = {
  small: { shape: TOY_SHAPE, placements: 8, windows: 8, pairs: 64 },
  v3: { shape: DEEPSEEK_V3_SHAPE, placements: 64, windows: 16, pairs: 1024 },
  large: { shape: DEEPSEEK_V3_SHAPE, placements: 256, windows: 32, pairs: 8192 },
};

export const placementEvalKernel: ProfilableKernel = {
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
      workload: `${describeShape(shape)}: ${pairCount} pairs of ${placementCount} placements × ${windowCount} windows`,
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
export const smokeKernel: ProfilableKernel = {
  name: 'smoke',
  describe: 'a[i]·scale + i over a float array (kernels/smoke.wgsl): upload, dispatch, readback floor',
  async prepare(gpu, options) {
    const n = options.batch ?? SMOKE_ELEMENTS[options.size];
    check(Number.isInteger(n) && n >= 1, `--batch must be a positive integer, got ${n}`);
    const { device } = gpu;
    const scale = 3;
    const pipeline = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale });
    const a = Float32Array.from({ length: n }, (_, i) => i % 1000);
    const bytes = a.byteLength;
    const input = storageBuffer(device, bytes, 'profile-smoke-in');
    const output = storageBuffer(device, bytes, 'profile-smoke-out');
    const timer = gpu.hasTimestamps ? new PassTimer(device, 1, 'profile-smoke') : null;
    const timestampOffset = Math.ceil(bytes / 256) * 256;
    const staging = stagingBuffer(device, timestampOffset + 16, 'profile-smoke-read');
    const bindGroup = gpu.kernels.bindGroup(SMOKE_KERNEL, 'profile-smoke', { a: input, out: output });
    const groups = Math.ceil(n / SMOKE_KERNEL.constant('WG'));
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
        const encoder = device.createCommandEncoder({ label: 'profile-smoke' });
        const pass = encoder.beginComputePass({
          label: 'profile-smoke',
          ...(timer ? { timestampWrites: timer.writes(0) } : {}),
        });
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

// ---- route-sim ---------------------------------------------------------------------------------

const ROUTE_SIZES: Record<ProfileSize, { shape: Shape; tokens: number; topK: number; topKGroups: number }> = {
  small: { shape: TOY_SHAPE, tokens: 4096, topK: 4, topKGroups: 2 },
  v3: { shape: DEEPSEEK_V3_SHAPE, tokens: 16_384, topK: 8, topKGroups: 4 },
  large: { shape: DEEPSEEK_V3_SHAPE, tokens: 131_072, topK: 8, topKGroups: 4 },
};

/** Token-level routing of one window (src/sim/route-sim.ts), vLLM's round-robin replica choice. */
export const routeSimKernel: ProfilableKernel = {
  name: 'route-sim',
  describe: 'token-level MoE routing of one window over a placement (kernels/route-sim.wgsl)',
  async prepare(gpu, options) {
    const size = ROUTE_SIZES[options.size];
    const tokens = options.batch ?? size.tokens;
    check(Number.isInteger(tokens) && tokens >= 1, `--batch must be a positive integer, got ${tokens}`);
    const { shape } = size;
    const rng = new Rng(options.seed);
    const input: RouteInput = {
      loads: randomWindows(shape, 1, rng),
      placement: randomPlacement(shape, rng),
      tokens,
      topK: size.topK,
      topKGroups: size.topKGroups,
      policy: 'round-robin',
      seed: options.seed,
    };
    const sim = await RouteSimulator.create(gpu, shape, { maxTokens: tokens });
    // What run() uploads (the round-robin policy needs no static map) and reads back.
    const t = allocateRouteTables(shape);
    const uploaded = t.cdf.byteLength + t.offsets.byteLength + t.gpus.byteLength + 64;
    const counters = shape.layers * shape.gpus * COUNTERS_PER_GPU * 4;
    const routed = tokens * size.topK * shape.layers;
    return {
      workload: `${describeShape(shape)}: ${tokens} tokens × top-${size.topK} (${size.topKGroups} groups), round-robin`,
      items: tokens * shape.layers,
      unit: 'token-layers',
      dispatches: 1,
      residentBytes: 0,
      async run() {
        const r = await sim.run(input);
        return {
          gpuMs: r.gpuMs,
          uploadedBytes: uploaded,
          readBackBytes: counters + (gpu.hasTimestamps ? 16 : 0),
          // Tables read once per workgroup is small; per routed token-expert: its replica range and GPU.
          touchedBytes: uploaded + counters + 8 * routed,
        };
      },
      reference() {
        routeReference(input);
      },
      destroy: () => sim.destroy(),
    };
  },
};

// ---- gpu-lpt -----------------------------------------------------------------------------------

const GPU_LPT_SIZES: Record<ProfileSize, Shape> = {
  small: TOY_SHAPE,
  v3: DEEPSEEK_V3_SHAPE,
  large: { ...DEEPSEEK_V3_SHAPE, layers: 4 * DEEPSEEK_V3_SHAPE.layers },
};

/** The GPU balancer gpu-lpt (src/eplb/balancers/gpu-balancer.ts): one rebalance of every layer. */
export const gpuLptKernel: ProfilableKernel = {
  name: 'gpu-lpt',
  describe:
    'EPLB balancer gpu-lpt: replication, packing and swaps, one workgroup per layer (kernels/eplb-balancer.wgsl)',
  async prepare(gpu, options) {
    const layers = options.batch ?? GPU_LPT_SIZES[options.size].layers;
    check(Number.isInteger(layers) && layers >= 1, `--batch must be a positive integer, got ${layers}`);
    const shape = { ...GPU_LPT_SIZES[options.size], layers };
    const loads = randomWindows(shape, 1, new Rng(options.seed));
    const balancer = await gpuLptBalancer.prepare(shape, { gpu, seed: options.seed });
    const { layers: L, experts: E, replicas: R } = shape;
    const out = 4 * L * (R + E);
    return {
      workload: `${describeShape(shape)}: one rebalance`,
      items: L,
      unit: 'layers',
      dispatches: 1,
      residentBytes: 0,
      async run() {
        await balancer.rebalance(loads);
        return {
          gpuMs: balancer.lastGpuMs?.(),
          uploadedBytes: loads.byteLength,
          readBackBytes: out + (gpu.hasTimestamps ? 16 : 0),
          // Loads read and the placement written once; the working set lives in workgroup memory.
          touchedBytes: loads.byteLength + out,
        };
      },
      reference() {
        gpuLptReference(shape, loads, DEFAULT_GPU_LPT_OPTIONS);
      },
      destroy: () => balancer.dispose?.(),
    };
  },
};
