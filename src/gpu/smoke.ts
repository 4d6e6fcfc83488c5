import { stagingBuffer, storageBuffer, upload } from './buffers.js';
import type { GpuContext } from './device.js';
import { SMOKE_KERNEL } from './smoke.contract.js';

/** Runs kernels/smoke.wgsl: returns a[i] * scale + i for every i. */
export async function runSmoke(gpu: GpuContext, a: Float32Array, scale: number): Promise<Float32Array> {
  const { device } = gpu;
  const pipeline = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale });
  const input = storageBuffer(device, a.byteLength, 'smoke-in');
  const output = storageBuffer(device, a.byteLength, 'smoke-out');
  const staging = stagingBuffer(device, a.byteLength, 'smoke-read');
  try {
    upload(device, input, a);
    const encoder = device.createCommandEncoder({ label: 'smoke' });
    const pass = encoder.beginComputePass({ label: 'smoke' });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, gpu.kernels.bindGroup(SMOKE_KERNEL, 'smoke', { a: input, out: output }));
    pass.dispatchWorkgroups(Math.ceil(a.length / SMOKE_KERNEL.constant('WG')));
    pass.end();
    encoder.copyBufferToBuffer(output, 0, staging, 0, a.byteLength);
    await gpu.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    return new Float32Array(staging.getMappedRange(0, a.byteLength).slice(0));
  } finally {
    input.destroy();
    output.destroy();
    staging.destroy();
  }
}
