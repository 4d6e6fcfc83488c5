import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU_LPT_KERNEL } from '../src/eplb/balancers/gpu-balancer.contract.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { defineKernel, type KernelContract } from '../src/gpu/kernel-contract.js';
import { compileModule, ShaderCompileError } from '../src/gpu/kernels.js';
import { SMOKE_KERNEL } from '../src/gpu/smoke.contract.js';
import { PLACEMENT_EVAL_KERNEL } from '../src/sim/placement-eval.contract.js';
import { ROUTE_SIM_KERNEL } from '../src/sim/route-sim.contract.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

/** Every project kernel with its entry points and pipeline constants of a small shape. */
const KERNELS: Array<[KernelContract, string[], Record<string, number>]> = [
  [SMOKE_KERNEL, ['main'], { scale: 3 }],
  [GPU_LPT_KERNEL, ['main'], { E_CAP: 256, R_CAP: 288, P_CAP: 32, W_CAP: 8, WG: 64, PARTS: 8 }],
  [ROUTE_SIM_KERNEL, ['main'], { CDF_LEN: 65, GPUS: 8, TOP_K: 6, GROUPS: 1, CHOSEN_GROUPS: 1 }],
  [PLACEMENT_EVAL_KERNEL, ['layer_stats_main', 'pair_sums_main'], { WG: 8, EXPERT_CAP: 64 }],
];

/** The ShaderCompileError of a body behind a small generated header (one struct, one binding). */
async function compileErrorOf(file: string, code: string): Promise<ShaderCompileError> {
  const kernel = defineKernel({
    file,
    declaredIn: 'test/gpu-kernel-contracts.test.ts',
    code,
    structs: { P: { n: 'u32' } },
    bindings: { params: { binding: 0, access: 'uniform', type: 'P' } },
  });
  const error = await gpu.kernels.kernelPipeline(kernel, 'main', {}).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ShaderCompileError);
  return error as ShaderCompileError;
}

describe("the project's kernels, built from their contracts", () => {
  it('the generated WGSL of each compiles without errors', async () => {
    for (const [kernel] of KERNELS) {
      const module = gpu.device.createShaderModule({ label: kernel.file, code: kernel.wgsl() });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error').map((m) => m.message);
      expect(errors, kernel.file).toEqual([]);
    }
  });

  it('each entry point makes a pipeline with the explicit, labelled layout', async () => {
    for (const [kernel, entries, overrides] of KERNELS) {
      const layouts = gpu.kernels.layouts(kernel);
      expect(layouts.pipeline.label).toBe(kernel.file);
      expect(layouts.groups[0]!.label).toBe(`${kernel.file} group 0`);
      for (const entry of entries) {
        const pipeline = await gpu.kernels.kernelPipeline(kernel, entry, overrides as never);
        // The pipeline's group 0 is the contract's layout, not one derived from the WGSL.
        expect(pipeline.label).toBe(`${kernel.file}:${entry}`);
      }
    }
    gpu.check();
  });

  it('i32 declarations compile: an i32 override sizing workgroup memory, the most negative i32 constant', async () => {
    const kernel = defineKernel({
      file: 'i32.wgsl',
      declaredIn: 'test/gpu-kernel-contracts.test.ts',
      code: '@compute @workgroup_size(1)\nfn main() { w[0] = u32(LOW + 1i); out[0] = w[0]; }\n',
      overrides: { N: { type: 'i32' } },
      constants: { LOW: { type: 'i32', value: -0x80000000 } },
      bindings: { out: { binding: 0, access: 'read_write', type: 'array<u32>' } },
      workgroup: { w: { type: 'u32', length: 'N * 3' } },
    });
    await expect(gpu.kernels.kernelPipeline(kernel, 'main', { N: 2 })).resolves.toBeDefined();
    expect(kernel.workgroupBytes({ N: 2 })).toBe(32);
  });

  it('the same override values in another order reuse the cached pipeline', () => {
    const overrides = { E_CAP: 64, R_CAP: 72, P_CAP: 8, W_CAP: 2, WG: 64, PARTS: 8 };
    const reversed = Object.fromEntries(Object.entries(overrides).reverse()) as typeof overrides;
    expect(Object.keys(reversed)[0]).toBe('PARTS');
    const a = gpu.kernels.kernelPipeline(GPU_LPT_KERNEL, 'main', overrides);
    expect(gpu.kernels.kernelPipeline(GPU_LPT_KERNEL, 'main', reversed)).toBe(a);
    return a;
  });

  it('a body that re-declares its contract struct is refused before compiling, naming the file', async () => {
    const clash = defineKernel({
      ...GPU_LPT_KERNEL.decl,
      structs: { ...GPU_LPT_KERNEL.decl.structs, Pick: { v: 'f32', i: 'u32' } },
    });
    await expect(
      gpu.kernels.kernelPipeline(clash, 'main', {
        E_CAP: 256,
        R_CAP: 288,
        P_CAP: 32,
        W_CAP: 8,
        WG: 64,
        PARTS: 8,
      }),
    ).rejects.toThrow(
      /^kernels\/eplb-balancer\.wgsl re-declares struct Pick, which its contract \(src\/eplb\/balancers\/gpu-balancer\.contract\.ts\) generates/,
    );
  });

  it("reports compile errors at the body file's own lines, past the generated declarations", async () => {
    const error = await compileErrorOf(
      'broken.wgsl',
      '@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = params.n * 1.5;\n}\n',
    );
    expect(error.diagnostics[0]).toMatch(/^broken\.wgsl:3:\d+: /);
  });

  it('a compiler message without a line (lineNum 0) names the file, not a line of the generated header', async () => {
    const error = await compileErrorOf('nul.wgsl', '@compute @workgroup_size(1)\nfn main() {}\u0000\n');
    expect(error.diagnostics).toEqual(["nul.wgsl: The WGSL shader contains an illegal character '\\0'"]);
  });

  it('the same text compiled with another header length reports its own line numbers', async () => {
    const code = '// header 1\n// header 2\nfn main() {\n  let x: u32 = 1.5;\n}\n';
    const [plain, past] = await Promise.allSettled([
      gpu.kernels.module('lines.wgsl', code),
      gpu.kernels.module('lines.wgsl', code, 2),
    ]);
    expect((plain as PromiseRejectedResult).reason.diagnostics[0]).toMatch(/^lines\.wgsl:4:\d+: /);
    expect((past as PromiseRejectedResult).reason.diagnostics[0]).toMatch(/^lines\.wgsl:2:\d+: /);
  });

  it('each binding requires the size an auto layout would: the struct, one element of a runtime array', () => {
    const min = Object.fromEntries(
      PLACEMENT_EVAL_KERNEL.layoutEntries(0).map((e) => [e.binding, e.buffer?.minBindingSize]),
    );
    expect(min[0]).toBe(PLACEMENT_EVAL_KERNEL.uniform('Params').layout.size);
    expect(min[1]).toBe(4); // array<f32>
    expect(min[3]).toBe(8); // array<vec2<u32>>
    expect(min[4]).toBe(16); // array<vec4<f32>>
    expect(ROUTE_SIM_KERNEL.layoutEntries(0).every((e) => (e.buffer?.minBindingSize ?? 0) >= 4)).toBe(true);
  });

  it('refuses a buffer smaller than one element where the bind group is made', async () => {
    const kernel = defineKernel({
      file: 'min-size.wgsl',
      declaredIn: 'test/gpu-kernel-contracts.test.ts',
      code: '@compute @workgroup_size(1) fn main() { v[0] = vec4f(1.0); }',
      bindings: { v: { binding: 0, access: 'read_write', type: 'array<vec4<f32>>' } },
    });
    await gpu.kernels.kernelPipeline(kernel, 'main', {});
    const small = gpu.device.createBuffer({ label: 'four-bytes', size: 4, usage: GPUBufferUsage.STORAGE });
    try {
      gpu.device.pushErrorScope('validation');
      gpu.kernels.bindGroup(kernel, 'too-small', { v: small });
      const error = await gpu.device.popErrorScope();
      expect(error?.message).toMatch(/too-small|four-bytes/);
    } finally {
      small.destroy();
    }
  });

  it('binds buffers by name and refuses a missing or unknown binding', () => {
    const buffer = gpu.device.createBuffer({ label: 'named', size: 64, usage: GPUBufferUsage.STORAGE });
    try {
      expect(() => gpu.kernels.bindGroup(SMOKE_KERNEL, 'bg', { a: buffer } as never)).toThrow(
        "bg: no buffer for binding 'out' of kernels/smoke.wgsl",
      );
      expect(() =>
        gpu.kernels.bindGroup(SMOKE_KERNEL, 'bg', { a: buffer, out: buffer, b: buffer } as never),
      ).toThrow("bg: kernels/smoke.wgsl has no binding 'b' in group 0");
      expect(() => gpu.kernels.bindGroup(SMOKE_KERNEL, 'bg', { a: buffer, out: buffer }, 1)).toThrow(
        'bg: kernels/smoke.wgsl has no bind group 1',
      );
    } finally {
      buffer.destroy();
    }
  });
});

describe('compileModule', () => {
  it('refuses a module its validation scope rejected even when the compiler listed no message', async () => {
    // Dawn reports WGSL errors both ways; a module refused only by the scope must not come back as
    // if valid (its pipeline would then fail without saying why). A device double makes that case.
    const module = { getCompilationInfo: async () => ({ messages: [] }) };
    const device = {
      pushErrorScope: () => {},
      createShaderModule: () => module,
      popErrorScope: async () => ({
        message: 'Shader module is invalid\n - While calling CreateShaderModule',
      }),
    } as unknown as GPUDevice;
    const error = await compileModule(device, 'x.wgsl', 'fn main() {}').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShaderCompileError);
    expect((error as ShaderCompileError).diagnostics).toEqual(['x.wgsl: Shader module is invalid']);
    expect((error as ShaderCompileError).detail).toContain('While calling CreateShaderModule');
  });
});
