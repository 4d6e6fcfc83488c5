import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { ShaderCompileError } from '../src/gpu/kernels.js';
import { SMOKE_KERNEL } from '../src/gpu/smoke.contract.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

const BROKEN_MODULE = 'fn main() {\n  let x: u32 = 1.5;\n}\n';
/** A module that compiles but whose pipeline fails validation (its workgroup is over every limit). */
const BROKEN_PIPELINE =
  '@group(0) @binding(0) var<storage, read_write> o: array<u32>;\n@compute @workgroup_size(100000)\nfn main() { o[0] = 1u; }\n';

describe('error scopes are never shared between concurrent creations', () => {
  it('a valid pipeline created next to broken ones succeeds, and each broken one reports its own error', async () => {
    // The good module compiled beforehand, so its pipeline's creation is in flight while the broken
    // module compiles (the interleaving that let one creation pop the other's scope).
    await gpu.kernels.module(SMOKE_KERNEL.file, SMOKE_KERNEL.wgsl(), SMOKE_KERNEL.headerLines);
    for (let round = 0; round < 5; round++) {
      const tag = `r${round}`;
      const results = await Promise.allSettled([
        gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: round + 10 }),
        gpu.kernels.module(`bad-${tag}.wgsl`, BROKEN_MODULE),
        gpu.kernels.pipeline({ file: `bad-pipe-${tag}.wgsl`, entry: 'main', code: BROKEN_PIPELINE }),
        gpu.kernels.kernelPipeline(SMOKE_KERNEL, 'main', { scale: round + 20 }),
      ]);
      expect(results[0]!.status).toBe('fulfilled');
      expect(results[3]!.status).toBe('fulfilled');
      const badModule = results[1] as PromiseRejectedResult;
      expect(badModule.status).toBe('rejected');
      expect(badModule.reason).toBeInstanceOf(ShaderCompileError);
      expect((badModule.reason as ShaderCompileError).file).toBe(`bad-${tag}.wgsl`);
      const badPipe = results[2] as PromiseRejectedResult;
      expect(badPipe.status).toBe('rejected');
      expect(badPipe.reason).toBeInstanceOf(ShaderCompileError);
      expect((badPipe.reason as ShaderCompileError).file).toBe(`bad-pipe-${tag}.wgsl`);
    }
  });
});
