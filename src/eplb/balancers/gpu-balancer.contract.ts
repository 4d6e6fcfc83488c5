import { defineKernel } from '../../gpu/kernel-contract.js';

/**
 * kernels/eplb-balancer.wgsl (gpu-lpt): one workgroup per layer. Array sizes are pipeline constants;
 * loop bounds come from `params` at run time instead: constant trip counts get loops fully
 * unrolled, which made one compile cost lavapipe seconds of LLVM time.
 */
export const GPU_LPT_KERNEL = defineKernel({
  file: 'eplb-balancer.wgsl',
  declaredIn: 'src/eplb/balancers/gpu-balancer.contract.ts',
  overrides: {
    E_CAP: { type: 'u32', doc: 'logical experts' },
    R_CAP: { type: 'u32', doc: 'physical slots' },
    P_CAP: { type: 'u32', doc: 'GPUs' },
    W_CAP: { type: 'u32', doc: 'words of an expert bitset: ⌈E_CAP / 32⌉' },
    WG: { type: 'u32', doc: 'threads per workgroup; the result does not depend on it' },
    PARTS: { type: 'u32', doc: 'first reduction level: PARTS threads each fold WG/PARTS partial results' },
  },
  constants: { NONE: { type: 'u32', value: 0xffffffff, doc: 'no index' } },
  structs: {
    Params: {
      e: { type: 'u32', doc: 'logical experts' },
      r: { type: 'u32', doc: 'physical slots' },
      p: { type: 'u32', doc: 'GPUs' },
      s: { type: 'u32', doc: 'slots per GPU (r / p)' },
      w: { type: 'u32', doc: 'words of an expert bitset ((e + 31) / 32)' },
      max_swaps: { type: 'u32', doc: 'single-swap refinement rounds per layer' },
      match_rounds: { type: 'u32', doc: 'matching rounds per layer' },
    },
  },
  bindings: {
    loads: { binding: 0, access: 'read', type: 'array<f32>', doc: '[L][E]' },
    recip: { binding: 1, access: 'read', type: 'array<f32>', doc: 'fround(1/c), c = 0 … R−E+1' },
    out: { binding: 2, access: 'read_write', type: 'array<i32>', doc: 'phy2log [L][R], then logcnt [L][E]' },
    params: { binding: 3, access: 'uniform', type: 'Params' },
  },
  workgroup: {
    load: { type: 'f32', length: 'E_CAP' },
    cnt: { type: 'u32', length: 'E_CAP' },
    rep_x: { type: 'u32', length: 'R_CAP', doc: 'expert of replica j' },
    rep_w: { type: 'f32', length: 'R_CAP', doc: 'its weight load·(1/count)' },
    ord: { type: 'u32', length: 'R_CAP', doc: 'replicas heaviest first' },
    slot_x: { type: 'u32', length: 'R_CAP', doc: 'expert in GPU slot g·S+k' },
    slot_w: { type: 'f32', length: 'R_CAP' },
    has: { type: 'u32', length: 'P_CAP * W_CAP', doc: 'per GPU, a bit per expert it holds' },
    heavy: { type: 'u32', doc: 'the heaviest GPU (ties lowest index)' },
    gload: { type: 'f32', length: 'P_CAP' },
    perm: { type: 'u32', length: 'P_CAP', doc: 'GPUs in ascending (load, index) order' },
    red_v: { type: 'f32', length: 'WG' },
    red_i: { type: 'u32', length: 'WG' },
    part_v: { type: 'f32', length: 'PARTS' },
    part_i: { type: 'u32', length: 'PARTS' },
    done: { type: 'u32' },
  },
});
