import { defineKernel } from '../gpu/kernel-contract.js';

/** Consecutive layers of one pair per layer_stats workgroup (amortises its start and barriers). */
export const LAYERS_PER_GROUP = 8;

/**
 * The per-pair summary words at the start of the output, in this order (then [pairs][L] per-layer GPU
 * balancedness, then [pairs][L] per-layer slot balancedness).
 */
export const SUMMARY = {
  TOTAL_LOAD: 0,
  MAX_GPU_LOAD: 1,
  MAX_SLOT_LOAD: 2,
  CROSSING: 3,
  GPU_BALANCE: 4,
  SLOT_BALANCE: 5,
  INTER_NODE_SHARE: 6,
  BAD: 7,
} as const;
/** f32 words per pair in the output's summary section. */
export const SUMMARY_WORDS = Object.keys(SUMMARY).length;

const summaryConstants = Object.fromEntries(
  Object.entries(SUMMARY).map(([name, value]) => [`SUM_${name}`, { type: 'u32' as const, value }]),
);

/**
 * kernels/placement-eval.wgsl: two entry points (layer_stats_main, pair_sums_main) over one bind
 * group; the balance statistics of src/eplb/metrics.ts balanceMetrics for many (placement, window) pairs.
 */
export const PLACEMENT_EVAL_KERNEL = defineKernel({
  file: 'placement-eval.wgsl',
  declaredIn: 'src/sim/placement-eval.contract.ts',
  overrides: {
    WG: {
      type: 'u32',
      doc: 'workgroup size, a power of two (64 on GPUs, 8 on CPU adapters; see the kernel)',
    },
    EXPERT_CAP: { type: 'u32', doc: "capacity of the node marks (≥ the shape's E)" },
  },
  constants: {
    LAYERS_PER_GROUP: {
      type: 'u32',
      value: LAYERS_PER_GROUP,
      doc: 'consecutive layers of one pair per layer_stats workgroup',
    },
    SUMMARY_WORDS: { type: 'u32', value: SUMMARY_WORDS, doc: 'summary words per pair in `out`:' },
    ...summaryConstants,
  },
  structs: {
    Params: {
      layers: 'u32',
      experts: 'u32',
      replicas: 'u32',
      gpus: 'u32',
      slots_per_gpu: 'u32',
      gpus_per_node: 'u32',
      nodes: 'u32',
      pair_count: 'u32',
      grid_x: {
        type: 'u32',
        doc: 'workgroups per row of the 2-D grid: linear workgroup id = x + y·grid_x',
      },
      placement_stride: {
        type: 'u32',
        doc: 'i32 words per placement in `placements`: phy2log [L][R] then logcnt [L][E]',
      },
    },
  },
  bindings: {
    params: { binding: 0, access: 'uniform', type: 'Params' },
    windows: { binding: 1, access: 'read', type: 'array<f32>', doc: '[W][L][E] expert loads' },
    placements: {
      binding: 2,
      access: 'read',
      type: 'array<i32>',
      doc: '[Pn] blocks of placement_stride words',
    },
    pairs: { binding: 3, access: 'read', type: 'array<vec2<u32>>', doc: '[pairs] (placement, window)' },
    layer_stats: {
      binding: 4,
      access: 'read_write',
      type: 'array<vec4<f32>>',
      doc: '[pairs][L] (total load, max GPU load, max slot load, inter-node numerator)',
    },
    layer_bad: {
      binding: 5,
      access: 'read_write',
      type: 'array<u32>',
      doc: '[pairs][L] invalid entries met (expert out of range, replica count ≤ 0)',
    },
    out: {
      binding: 6,
      access: 'read_write',
      type: 'array<f32>',
      doc: '[pairs][SUMMARY_WORDS], [pairs][L] GPU and [pairs][L] slot balancedness',
    },
  },
  workgroup: {
    node_mask: { type: 'atomic<u32>', length: 'EXPERT_CAP' },
    partial: { type: 'vec4<f32>', length: 'WG' },
    bad_partial: { type: 'u32', length: 'WG' },
  },
});
