/** What `adrs devices` reports about an adapter, and what results record as "the device". */
export interface AdapterSummary {
  name: string;
  backend: string;
  vendor: string;
  architecture: string;
  description: string;
  /** A software rasterizer on the CPU (lavapipe/llvmpipe, SwiftShader). */
  software: boolean;
  timestampQuery: boolean;
  subgroups: boolean;
  limits: ComputeLimits;
}

export interface ComputeLimits {
  maxComputeWorkgroupSizeX: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxStorageBuffersPerShaderStage: number;
}

export function summarizeAdapter(adapter: GPUAdapter, name: string, backend: string): AdapterSummary {
  const info = adapter.info;
  const l = adapter.limits;
  const text = `${info.vendor} ${info.architecture} ${info.description} ${name}`.toLowerCase();
  return {
    name,
    backend,
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
    software:
      (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
      /llvmpipe|lavapipe|swiftshader|software/.test(text),
    timestampQuery: adapter.features.has('timestamp-query'),
    subgroups: adapter.features.has('subgroups'),
    limits: {
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  };
}

/** "NVIDIA H100 (vulkan)" or "llvmpipe … (vulkan, software)". */
export function adapterLabel(a: AdapterSummary): string {
  return `${a.name} (${a.backend}${a.software ? ', software' : ''})`;
}
