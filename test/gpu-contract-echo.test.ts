import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stagingBuffer, storageBuffer, uniformBuffer, upload } from '../src/gpu/buffers.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { defineKernel } from '../src/gpu/kernel-contract.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

/** The kernel echoes every field it reads, as raw 32-bit words, in declaration order. */
const ECHO_BODY = `
@compute @workgroup_size(1)
fn main() {
  out[0] = params.a;
  out[1] = bitcast<u32>(params.b);
  out[2] = bitcast<u32>(params.c.x);
  out[3] = bitcast<u32>(params.c.y);
  out[4] = bitcast<u32>(params.c.z);
  out[5] = bitcast<u32>(params.d);
  out[6] = bitcast<u32>(params.e.x);
  out[7] = bitcast<u32>(params.e.y);
  for (var i = 0u; i < 4u; i++) { out[8u + i] = params.f[i]; }
  for (var c = 0u; c < 2u; c++) {
    for (var r = 0u; r < 2u; r++) { out[12u + 2u * c + r] = bitcast<u32>(params.g[c][r]); }
  }
  for (var k = 0u; k < 2u; k++) {
    for (var i = 0u; i < 4u; i++) { out[16u + 4u * k + i] = bitcast<u32>(params.h[k][i]); }
  }
  out[24] = bitcast<u32>(params.i);
}
`;

const echoKernel = (label: string, fields: Record<string, string>) =>
  defineKernel({
    file: `${label}.wgsl`,
    declaredIn: 'test/gpu-contract-echo.test.ts',
    code: ECHO_BODY,
    structs: { Echo: fields },
    bindings: {
      params: { binding: 0, access: 'uniform', type: 'Echo' },
      out: { binding: 1, access: 'read_write', type: 'array<u32>' },
    },
  });

const FIELDS = {
  a: 'u32',
  b: 'f32',
  c: 'vec3<f32>',
  d: 'i32', // in c's fourth lane
  e: 'vec2<i32>',
  f: 'vec4<u32>',
  g: 'mat2x2<f32>',
  h: 'array<vec4<f32>, 2>',
  i: 'f32',
};

const VALUES = {
  a: 0xdeadbeef,
  b: -1.25,
  c: [0.5, 3, -7.75],
  d: -123456,
  e: [2147483647, -2147483648],
  f: [1, 0xffffffff, 65536, 7],
  g: [1.5, 2.5, -3.5, 4.5],
  h: [
    [10, 11, 12, 13],
    [-20, -21, -22, -23],
  ],
  i: 1e-3,
};

/** The words the kernel should write: each value's 32-bit pattern, independent of any layout code. */
function expectedWords(): number[] {
  const bits = new DataView(new ArrayBuffer(4));
  const f = (x: number) => {
    bits.setFloat32(0, x, true);
    return bits.getUint32(0, true);
  };
  const i = (x: number) => x >>> 0;
  return [
    VALUES.a,
    f(VALUES.b),
    ...VALUES.c.map(f),
    i(VALUES.d),
    ...VALUES.e.map(i),
    ...VALUES.f,
    ...VALUES.g.map(f),
    ...VALUES.h.flat().map(f),
    f(VALUES.i),
  ];
}

async function echo(
  kernel: ReturnType<typeof echoKernel>,
  values: Record<string, unknown>,
): Promise<number[]> {
  const { device } = gpu;
  const data = kernel.uniform('Echo').set(values as never);
  const params = uniformBuffer(device, data.bytes.byteLength, 'echo-params');
  const out = storageBuffer(device, 25 * 4, 'echo-out');
  const read = stagingBuffer(device, 25 * 4, 'echo-read');
  try {
    upload(device, params, data.bytes);
    const pipeline = await gpu.kernels.kernelPipeline(kernel, 'main', {});
    const encoder = device.createCommandEncoder({ label: 'echo' });
    const pass = encoder.beginComputePass({ label: 'echo' });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, gpu.kernels.bindGroup(kernel, 'echo', { params, out }));
    pass.dispatchWorkgroups(1);
    pass.end();
    encoder.copyBufferToBuffer(out, 0, read, 0, 25 * 4);
    await gpu.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const words = Array.from(new Uint32Array(read.getMappedRange(0, 25 * 4).slice(0)));
    read.unmap();
    return words;
  } finally {
    params.destroy();
    out.destroy();
    read.destroy();
  }
}

describe('a uniform struct packed from its contract reads back field by field on the GPU', () => {
  it('mixed scalars, vectors, a matrix and an array of vectors', async () => {
    const kernel = echoKernel('echo', FIELDS);
    expect(kernel.layouts.Echo.fields.map((f) => f.offset)).toEqual([0, 4, 16, 28, 32, 48, 64, 80, 112]);
    expect(await echo(kernel, VALUES)).toEqual(expectedWords());
  });

  it('a field declared in TS but never read by the WGSL still packs, and moves the others correctly', async () => {
    // `unused` sits between d and e: every later field shifts; the kernel never names it.
    const { a, b, c, d, ...rest } = FIELDS;
    const kernel = echoKernel('echo-unused', { a, b, c, d, unused: 'vec2<u32>', ...rest });
    expect(kernel.layouts.Echo.fields.find((f) => f.name === 'e')!.offset).toBe(40);
    expect(await echo(kernel, { ...VALUES, unused: [0xaaaaaaaa, 0x55555555] })).toEqual(expectedWords());
  });
});
