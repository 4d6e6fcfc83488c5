import { defineKernel } from '../gpu/kernel-contract.js';
import * as counters from './cost-model.js';
import * as rng from './route-rng.js';
import { MAX_GROUPS, MAX_TOP_K, POLICY_CODE } from './routing-tables.js';

/** Threads per workgroup and tokens per thread: one tile = ROUTE_WG_SIZE · ROUTE_TOKENS_PER_THREAD tokens. */
export const ROUTE_WG_SIZE = 256;
export const ROUTE_TOKENS_PER_THREAD = 8;

const u32 = (value: number, doc?: string) => ({ type: 'u32' as const, value, ...(doc ? { doc } : {}) });

/**
 * kernels/route-sim.wgsl: token-level MoE routing, one workgroup per tile of tokens of one layer.
 * Its constants are the host's (routing-tables.ts, route-rng.ts, cost-model.ts), so the kernel and
 * its TypeScript twin (route-reference.ts) cannot disagree on them.
 */
export const ROUTE_SIM_KERNEL = defineKernel({
  file: 'route-sim.wgsl',
  declaredIn: 'src/sim/route-sim.contract.ts',
  overrides: {
    CDF_LEN: { type: 'u32', doc: 'experts + 1' },
    GPUS: { type: 'u32' },
    TOP_K: { type: 'u32', doc: 'experts per token (≤ MAX_TOP_K)' },
    GROUPS: { type: 'u32', doc: "search groups: the shape's when group-limited, else 1 (the layer)" },
    CHOSEN_GROUPS: { type: 'u32', doc: 'groups a token may use (1 when not limited)' },
  },
  constants: {
    WG_SIZE: u32(ROUTE_WG_SIZE),
    TOKENS_PER_THREAD: u32(ROUTE_TOKENS_PER_THREAD),
    MAX_GROUPS: u32(MAX_GROUPS),
    MAX_TOP_K: u32(MAX_TOP_K),
    NONE: u32(0xffffffff),
    PCG_MULTIPLIER: u32(rng.PCG_MULTIPLIER),
    PCG_INCREMENT: u32(rng.PCG_INCREMENT),
    PCG_OUTPUT_MULTIPLIER: u32(rng.PCG_OUTPUT_MULTIPLIER),
    DRAW_GROUP: u32(rng.DRAW_GROUP),
    DRAW_EXPERT: u32(rng.DRAW_EXPERT),
    DRAW_REPLICA: u32(rng.DRAW_REPLICA),
    GOLDEN: u32(rng.GOLDEN),
    POLICY_ROUND_ROBIN: u32(POLICY_CODE['round-robin']),
    POLICY_STATIC_LOCAL: u32(POLICY_CODE['static-local']),
    POLICY_RANDOM: u32(POLICY_CODE.random),
    COUNTERS_PER_GPU: u32(counters.COUNTERS_PER_GPU, 'output counters per (layer, GPU), in this order:'),
    RECEIVED: u32(counters.COUNTER_RECEIVED),
    RECEIVED_INTRA: u32(counters.COUNTER_RECEIVED_INTRA),
    RECEIVED_INTER: u32(counters.COUNTER_RECEIVED_INTER),
    SENT_INTRA: u32(counters.COUNTER_SENT_INTRA),
    SENT_INTER: u32(counters.COUNTER_SENT_INTER),
  },
  structs: {
    Params: {
      tokens: 'u32',
      top_k: 'u32',
      groups: { type: 'u32', doc: "search groups: the shape's groups when group-limited, else 1" },
      experts_per_group: 'u32',
      chosen_groups: { type: 'u32', doc: 'groups drawn per token when group-limited' },
      limited: 'u32',
      experts: 'u32',
      gpus: 'u32',
      gpus_per_node: 'u32',
      replicas: 'u32',
      policy: { type: 'u32', doc: 'a POLICY_* code' },
      seed_key: 'u32',
      tiles_x: { type: 'u32', doc: 'workgroups along x (tile = x + z · tiles_x)' },
      tok_base: { type: 'u32', doc: 'tokens / gpus' },
      tok_rem: { type: 'u32', doc: 'tokens % gpus (the first tok_rem ranks get one more)' },
      search_top: { type: 'u32', doc: 'largest power of two < experts_per_group (0 when it is 1)' },
    },
  },
  bindings: {
    params: { binding: 0, access: 'uniform', type: 'Params' },
    cdf: { binding: 1, access: 'read', type: 'array<u32>', doc: '[L][E+1]' },
    offsets: { binding: 2, access: 'read', type: 'array<u32>', doc: '[L][E+1]' },
    rep_gpu: { binding: 3, access: 'read', type: 'array<u32>', doc: '[L][R]' },
    static_gpu: { binding: 4, access: 'read', type: 'array<u32>', doc: '[L][E][P]' },
    counters: {
      binding: 5,
      access: 'read_write',
      type: 'array<atomic<u32>>',
      doc: '[L][P][COUNTERS_PER_GPU]',
    },
  },
  workgroup: {
    wg_cdf: { type: 'u32', length: 'CDF_LEN' },
    wg_group_w: { type: 'u32', length: 'MAX_GROUPS' },
    wg_recv: {
      type: 'atomic<u32>',
      length: 'GPUS * 3',
      doc: 'per destination GPU: token-experts from itself, from its node, from other nodes',
    },
    wg_sent: {
      type: 'atomic<u32>',
      length: 'GPUS * 2',
      doc: 'per source GPU: token-experts sent within its node, across nodes',
    },
  },
});
