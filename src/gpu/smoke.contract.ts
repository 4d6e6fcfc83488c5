import { defineKernel } from './kernel-contract.js';

/** kernels/smoke.wgsl: out[i] = a[i] * scale + i. */
export const SMOKE_KERNEL = defineKernel({
  file: 'smoke.wgsl',
  declaredIn: 'src/gpu/smoke.contract.ts',
  constants: { WG: { type: 'u32', value: 64, doc: 'threads per workgroup of main' } },
  overrides: { scale: { type: 'f32' } },
  bindings: {
    a: { binding: 0, access: 'read', type: 'array<f32>' },
    out: { binding: 1, access: 'read_write', type: 'array<f32>' },
  },
});
