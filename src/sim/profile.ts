import type { GpuContext } from '../gpu/device.js';
import { check } from '../util/errors.js';
import { summarizeTimes, type TimingSummary } from '../util/stats.js';
import { gpuLptKernel, placementEvalKernel, routeSimKernel, smokeKernel } from './profile-cases.js';
import type { ProfilableKernel, ProfileOptions, ProfileSize } from './profile-types.js';

// The contract lives in profile-types.ts (so profile-cases.ts need not import this module); re-exported here for callers of `adrs profile`.
export {
  PROFILE_SIZES,
  type ProfilableKernel,
  type ProfileCase,
  type ProfileOptions,
  type ProfileSize,
  type RunStats,
} from './profile-types.js';

/**
 * `adrs profile`: GPU time, dispatches, bytes moved and wall time of each kernel family on a
 * generated workload. A kernel joins by adding one ProfilableKernel to PROFILABLE_KERNELS: its
 * `prepare` builds inputs and GPU state once, `run` does one hot-path call, `reference` (optional)
 * does the same work in plain TypeScript so the speed-up over the reference is reported too.
 */

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

/** Runs a prepared case: one warm-up call, then `repeat` timed calls; then the reference (see below). */
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
      // Warm the JIT for ≥ 50 ms, then time up to `repeat` calls (at least 3) within about 2 s.
      const samples: number[] = [];
      const warmStart = performance.now();
      do c.reference();
      while (performance.now() - warmStart < 50);
      const timedStart = performance.now();
      while (
        samples.length < 3 ||
        (samples.length < options.repeat && performance.now() - timedStart < 2000)
      ) {
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

/** Every kernel `adrs profile` knows, in the order it runs them for `--kernel all`. */
export const PROFILABLE_KERNELS: readonly ProfilableKernel[] = [
  smokeKernel,
  placementEvalKernel,
  routeSimKernel,
  gpuLptKernel,
];

export function findProfilableKernels(name: string): ProfilableKernel[] {
  if (name === 'all') return [...PROFILABLE_KERNELS];
  const kernel = PROFILABLE_KERNELS.find((k) => k.name === name);
  check(
    kernel !== undefined,
    `unknown kernel '${name}': choose one of ${PROFILABLE_KERNELS.map((k) => k.name).join(', ')} or all`,
  );
  return [kernel];
}
