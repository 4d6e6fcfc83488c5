import type { GpuContext } from '../gpu/device.js';

/**
 * The contract between `adrs profile` (profile.ts) and the kernels it measures (profile-cases.ts),
 * kept apart so that both import it and neither imports the other's module.
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
