import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageBuffer } from '../src/gpu/buffers.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { ShaderCompileError } from '../src/gpu/kernels.js';
import { SMOKE_KERNEL } from '../src/gpu/smoke.contract.js';
import { runSmoke } from '../src/gpu/smoke.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

describe('GPU runtime on lavapipe (or whatever adapter is present)', () => {
  it('reports the adapter and its timestamp support', () => {
    expect(gpu.info.name.length).toBeGreaterThan(0);
    expect(gpu.hasTimestamps).toBe(gpu.info.timestampQuery);
  });

  it('runs the smoke kernel and matches the TypeScript reference exactly', async () => {
    const n = 1000;
    const a = Float32Array.from({ length: n }, (_, i) => (i * 37) % 101);
    const out = await runSmoke(gpu, a, 3);
    const expected = Float32Array.from(a, (v, i) => Math.fround(v * 3 + i));
    expect(Array.from(out)).toEqual(Array.from(expected));
  });

  it('caches pipelines by (file, entry, overrides)', async () => {
    const p1 = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: 5 });
    const p2 = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: 5 });
    const p3 = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: 6 });
    expect(p1).toBe(p2);
    expect(p1).not.toBe(p3);
  });

  it('reports WGSL compile errors with file:line:col', async () => {
    const code = 'fn main() {\n  let x: u32 = 1.5;\n}\n';
    const error = await gpu.kernels.module('bad.wgsl', code).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShaderCompileError);
    expect((error as ShaderCompileError).diagnostics[0]).toMatch(/^bad\.wgsl:2:\d+: /);
  });

  it('surfaces validation errors instead of ignoring them', async () => {
    gpu.device.createBuffer({ size: 4, usage: 0 });
    await gpu.device.queue.onSubmittedWorkDone();
    expect(() => gpu.check()).toThrow(/WebGPU error/);
    expect(() => gpu.check()).not.toThrow();
  });

  it("names the labelled object in Dawn's error and keeps the full message", async () => {
    const pipeline = await gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: 1 });
    const input = storageBuffer(gpu.device, 256, 'label-test-in');
    try {
      // smoke.wgsl binds two buffers; giving one is a validation error on the bind group.
      gpu.device.createBindGroup({
        label: 'label-test-group',
        layout: gpu.kernels.layouts(SMOKE_KERNEL).groups[0]!,
        entries: [{ binding: 0, resource: { buffer: input } }],
      });
      await gpu.device.queue.onSubmittedWorkDone();
      const error = (() => {
        try {
          gpu.check();
        } catch (e) {
          return e as Error;
        }
        return null;
      })();
      expect(error?.message).toMatch(/^WebGPU error: .*"label-test-group"/);
      // Dawn's later lines ("- While calling [Device].CreateBindGroup(…)") survive for --verbose.
      expect(error?.message.split('\n').length).toBeGreaterThan(1);

      // A dispatch with no bind group set: the error names the labelled pass and encoder.
      const encoder = gpu.device.createCommandEncoder({ label: 'label-test-encoder' });
      const pass = encoder.beginComputePass({ label: 'label-test-pass' });
      pass.setPipeline(pipeline);
      pass.dispatchWorkgroups(1);
      pass.end();
      await expect(gpu.submit([encoder.finish()])).rejects.toThrow(
        /"label-test-pass"[\s\S]*"label-test-encoder"/,
      );
    } finally {
      input.destroy();
    }
  });
});
