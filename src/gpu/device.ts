import { UserError } from '../util/errors.js';
import { type AdapterSummary, summarizeAdapter } from './adapter-info.js';
import { adapterFlags, createInstance, enumerateAdapters, noAdapterError, requestAdapter } from './dawn.js';
import { KernelCache } from './kernels.js';

export interface AcquireOptions {
  /** Substring of the adapter name (`--adapter`); defaults to ADRS_ADAPTER, then Dawn's choice. */
  adapter?: string;
}

/**
 * One Dawn device and what hangs off it. Device loss and validation errors that WebGPU reports
 * asynchronously are collected here and rethrown by `check()`/`submit()`, so no GPU failure is
 * silently ignored. `destroy()` must run (in `finally`) for the process to exit promptly.
 */
export class GpuContext {
  readonly kernels: KernelCache;
  private errors: string[] = [];
  private lostReason: string | null = null;
  private instance: GPU | null;

  constructor(
    instance: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly info: AdapterSummary,
  ) {
    this.instance = instance;
    this.kernels = new KernelCache(device);
    // The full text: Dawn's first line names the labelled object, the rest says where it was used
    // ("- While encoding [ComputePassEncoder \"route-sim\"]…"). The CLI shows the first line unless --verbose.
    device.onuncapturederror = (event) => {
      this.errors.push(event.error.message.trimEnd());
    };
    void device.lost.then((lost) => {
      if (lost.reason !== 'destroyed') this.lostReason = lost.message || String(lost.reason);
    });
  }

  get hasTimestamps(): boolean {
    return this.device.features.has('timestamp-query');
  }

  /** Throws if the device was lost or WebGPU reported an error since the last check. */
  check(): void {
    if (this.lostReason !== null) throw new Error(`GPU device lost: ${this.lostReason}`);
    if (this.errors.length > 0) {
      const [head, ...rest] = this.errors[0]!.split('\n');
      // Dawn names the labelled object only in its "- While …" context lines; the innermost one joins
      // the first line, which is all a one-line report shows. The rest follows for --verbose.
      const where = rest
        .find((line) => line.trimStart().startsWith('- While'))
        ?.trim()
        .slice(2);
      const more = this.errors.length > 1 ? ` (and ${this.errors.length - 1} more)` : '';
      this.errors = [];
      throw new Error([`WebGPU error: ${head}${where ? ` (${where})` : ''}${more}`, ...rest].join('\n'));
    }
  }

  /** Submits command buffers, waits until the GPU has finished them, and surfaces any error. */
  async submit(commands: GPUCommandBuffer[]): Promise<void> {
    this.device.queue.submit(commands);
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  destroy(): void {
    this.kernels.clear();
    this.device.destroy();
    // Dawn keeps the process alive while its instance is referenced.
    this.instance = null;
  }

  get destroyed(): boolean {
    return this.instance === null;
  }
}

/** Acquires a device on the chosen adapter, with timestamp queries when the adapter has them. */
export async function acquireGpu(options: AcquireOptions = {}): Promise<GpuContext> {
  const wanted = options.adapter ?? process.env.ADRS_ADAPTER ?? undefined;
  const available = await enumerateAdapters();
  const matches = wanted
    ? available.filter((a) => a.name.toLowerCase().includes(wanted.toLowerCase()))
    : [...available.filter((a) => !/llvmpipe|lavapipe|swiftshader/i.test(a.name)), ...available];
  const chosen = matches[0];
  if (!chosen) throw noAdapterError(wanted, available);

  const instance = createInstance(adapterFlags(chosen.name, chosen.backend));
  const adapter = await requestAdapter(instance);
  if (!adapter) throw noAdapterError(wanted, available);
  const info = summarizeAdapter(adapter, chosen.name, chosen.backend);

  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
  const l = adapter.limits;
  // Ask for what the adapter offers: the defaults (128 MiB bindings, 8 storage buffers) are web limits.
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (error) {
    throw new UserError(`could not open a device on '${chosen.name}': ${String(error).split('\n')[0]}`);
  }
  return new GpuContext(instance, adapter, device, info);
}

/** Runs `fn` with a fresh device and always destroys it afterwards. */
export async function withGpu<T>(options: AcquireOptions, fn: (gpu: GpuContext) => Promise<T>): Promise<T> {
  const gpu = await acquireGpu(options);
  try {
    return await fn(gpu);
  } finally {
    gpu.destroy();
  }
}
