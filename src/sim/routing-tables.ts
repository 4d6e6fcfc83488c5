import type { Placement } from '../eplb/placement.js';
import { placementProblem } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import { gpusPerNode, slotsPerGpu } from '../eplb/shape.js';
import { check } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { RouteInput, RoutePolicy } from './route-types.js';
import { ROUTE_POLICIES } from './route-types.js';

/**
 * Host-side preparation shared by the GPU simulator and the TypeScript reference: both consume the
 * same integer tables, so they make the same choices bit for bit.
 */

/** Most experts per token (private arrays in the kernel are sized by it). */
export const MAX_TOP_K = 16;
/** Most expert groups with group-limited routing (chosen groups are a u32 bit mask). */
export const MAX_GROUPS = 32;
/** An expert's integer weights sum to about 2^WEIGHT_BITS per layer (< 2³¹ with rounding). */
export const WEIGHT_BITS = 30;
/** Most tokens per call: keeps every token index and tile offset of the kernel within u32. */
export const MAX_TOKENS = 2 ** 31;

export const POLICY_CODE: Record<RoutePolicy, number> = { 'round-robin': 0, 'static-local': 1, random: 2 };

/** A validated call: what the kernel's uniforms and the reference's loops need. */
export interface RoutePlan {
  shape: Shape;
  tokens: number;
  topK: number;
  /** Search groups: the shape's groups when group-limited, else 1 (all experts in one group). */
  groups: number;
  expertsPerGroup: number;
  /** Groups chosen per token (equal to `groups` when not group-limited). */
  chosenGroups: number;
  limited: boolean;
  policy: RoutePolicy;
  seed: number;
}

/** Checks a call's inputs and resolves its group-limited routing; throws a UserError naming the problem. */
export function planRoute(shape: Shape, input: RouteInput, maxTokens = MAX_TOKENS): RoutePlan {
  const { layers: L, experts: E, groups: G } = shape;
  const p = input.placement.shape;
  check(
    p.layers === L &&
      p.experts === E &&
      p.replicas === shape.replicas &&
      p.gpus === shape.gpus &&
      p.nodes === shape.nodes,
    'the placement was computed for another shape than the simulator: create the simulator with the placement shape',
  );
  const problem = placementProblem(input.placement);
  check(problem === null, `invalid placement: ${problem}`);
  check(
    input.loads instanceof Float32Array && input.loads.length === L * E,
    `loads must be a Float32Array of ${L}×${E} = ${L * E} values`,
  );
  check(
    Number.isInteger(input.tokens) && input.tokens >= 1 && input.tokens <= maxTokens,
    `tokens must be an integer in [1, ${maxTokens}], got ${input.tokens}`,
  );
  check(
    Number.isInteger(input.topK) && input.topK >= 1 && input.topK <= Math.min(E, MAX_TOP_K),
    `top-k must be an integer in [1, ${Math.min(E, MAX_TOP_K)}], got ${input.topK}`,
  );
  check(
    input.tokens * input.topK <= 0xffffffff,
    `tokens × top-k must fit in 32 bits (counters are u32): route fewer tokens`,
  );
  check(
    ROUTE_POLICIES.includes(input.policy),
    `unknown routing policy '${input.policy}'; choose one of: ${ROUTE_POLICIES.join(', ')}`,
  );
  check(Number.isInteger(input.seed), `seed must be an integer, got ${input.seed}`);
  const limited = input.topKGroups !== undefined && input.topKGroups < G;
  if (limited) {
    const g = input.topKGroups!;
    check(Number.isInteger(g) && g >= 1, `top-k groups must be a positive integer, got ${g}`);
    check(G <= MAX_GROUPS, `group-limited routing supports at most ${MAX_GROUPS} groups, the shape has ${G}`);
    check(
      g * (E / G) >= input.topK,
      `top-k ${input.topK} experts do not fit in ${g} groups of ${E / G}: raise top-k groups or disable group-limited routing`,
    );
  }
  return {
    shape,
    tokens: input.tokens,
    topK: input.topK,
    groups: limited ? G : 1,
    expertsPerGroup: limited ? E / G : E,
    chosenGroups: limited ? input.topKGroups! : 1,
    limited,
    policy: input.policy,
    seed: input.seed >>> 0,
  };
}

/**
 * Per-layer integer CDF of the routing distribution, [L][E+1]: cdf[l][e] = Σ_{i<e} w_i with
 * w_e = 0 for an expert without load (never chosen while a loaded one is eligible) and otherwise
 * max(1, round(load_e / layer total · 2^30)), so a tiny positive load keeps a chance.
 */
export function buildExpertCdf(shape: Shape, loads: Float32Array, out: Uint32Array): Uint32Array {
  const { layers: L, experts: E } = shape;
  const scale = 2 ** WEIGHT_BITS;
  for (let l = 0; l < L; l++) {
    let total = 0;
    for (let e = 0; e < E; e++) {
      const v = loads[l * E + e]!;
      check(
        Number.isFinite(v) && v >= 0,
        `load of layer ${l}, expert ${e} is ${v}: loads must be finite and ≥ 0`,
      );
      total += v;
    }
    let acc = 0;
    const base = l * (E + 1);
    for (let e = 0; e < E; e++) {
      out[base + e] = acc;
      const v = loads[l * E + e]!;
      if (v > 0) acc += Math.max(1, Math.round((v / total) * scale));
    }
    out[base + E] = acc;
  }
  return out;
}

/**
 * The replicas of every expert as GPU indices in CSR form: the GPUs of expert e of layer l are
 * gpus[l·R + offsets[l·(E+1) + e] …] (in slot order), offsets [L][E+1], gpus [L][R].
 */
export function buildReplicaTables(p: Placement, offsets: Uint32Array, gpus: Uint32Array): void {
  const { layers: L, experts: E, replicas: R } = p.shape;
  const S = slotsPerGpu(p.shape);
  const X = p.maxReplicas;
  for (let l = 0; l < L; l++) {
    let off = 0;
    for (let e = 0; e < E; e++) {
      offsets[l * (E + 1) + e] = off;
      const n = p.logcnt[l * E + e]!;
      for (let i = 0; i < n; i++) gpus[l * R + off + i] = Math.floor(p.log2phy[(l * E + e) * X + i]! / S);
      off += n;
    }
    offsets[l * (E + 1) + E] = off;
  }
}

/**
 * SGLang's static dispatch map extended with node locality, [L][E][P] → destination GPU: a source
 * GPU holding a replica uses its own (the first in slot order); otherwise the ranks of a node that
 * holds replicas share that node's replicas fairly; ranks on nodes without one share all replicas
 * fairly. "Fairly" as SGLang's _fair_choices: each candidate ⌊k/n⌋ times, a seeded sample of the
 * remainder, seeded shuffle. (SGLang itself skips the node step: its fallback is the global fair choice.)
 */
export function buildStaticMap(
  p: Placement,
  seed: number,
  offsets: Uint32Array,
  gpus: Uint32Array,
  out: Uint32Array,
): void {
  const { layers: L, experts: E, replicas: R, gpus: P } = p.shape;
  const gpn = gpusPerNode(p.shape);
  const N = P / gpn;
  const rng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const needy = new Int32Array(P);
  const candidates = new Int32Array(R);
  const choices = new Int32Array(P);
  const pool = new Int32Array(R);
  const scratch = new Int32Array(R);
  for (let l = 0; l < L; l++) {
    for (let e = 0; e < E; e++) {
      const base = (l * E + e) * P;
      const start = l * R + offsets[l * (E + 1) + e]!;
      const n = offsets[l * (E + 1) + e + 1]! - offsets[l * (E + 1) + e]!;
      for (let g = 0; g < P; g++) out[base + g] = 0xffffffff;
      for (let i = n - 1; i >= 0; i--) out[base + gpus[start + i]!] = gpus[start + i]!;
      let farCount = 0;
      const far = needy;
      for (let node = 0; node < N; node++) {
        let nc = 0;
        for (let i = 0; i < n; i++)
          if (Math.floor(gpus[start + i]! / gpn) === node) candidates[nc++] = gpus[start + i]!;
        if (nc === 0) {
          for (let g = node * gpn; g < (node + 1) * gpn; g++) far[farCount++] = g;
          continue;
        }
        let k = 0;
        for (let g = node * gpn; g < (node + 1) * gpn; g++)
          if (out[base + g] === 0xffffffff) choices[k++] = g;
        if (k === 0) continue;
        const picks = fairChoices(candidates, nc, k, rng, pool, scratch);
        for (let i = 0; i < k; i++) out[base + choices[i]!] = picks[i]!;
      }
      if (farCount > 0) {
        for (let i = 0; i < n; i++) candidates[i] = gpus[start + i]!;
        const picks = fairChoices(candidates, n, farCount, rng, pool, scratch);
        for (let i = 0; i < farCount; i++) out[base + far[i]!] = picks[i]!;
      }
    }
  }
}

/** k picks from arr[0..n): every item ⌊k/n⌋ times plus a sample of k mod n distinct items, shuffled (into pool). */
function fairChoices(
  arr: Int32Array,
  n: number,
  k: number,
  rng: Rng,
  pool: Int32Array,
  scratch: Int32Array,
): Int32Array {
  const q = Math.floor(k / n);
  const rem = k % n;
  // Partial Fisher–Yates on a scratch copy for the sample without replacement.
  scratch.set(arr.subarray(0, n));
  let m = 0;
  for (let r = 0; r < q; r++) for (let i = 0; i < n; i++) pool[m++] = arr[i]!;
  for (let i = 0; i < rem; i++) {
    const j = i + rng.int(n - i);
    const t = scratch[i]!;
    scratch[i] = scratch[j]!;
    scratch[j] = t;
    pool[m++] = scratch[i]!;
  }
  for (let i = m - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = t;
  }
  return pool;
}

/** First token of source rank r when T tokens are split into P contiguous blocks (the first T mod P get one more). */
export const rankStart = (r: number, T: number, P: number): number =>
  r * Math.floor(T / P) + Math.min(r, T % P);

/** The integer tables of one call, allocated once per shape and refilled per call. */
export interface RouteTables {
  /** [L][E+1] integer CDF (buildExpertCdf). */
  cdf: Uint32Array;
  /** [L][E+1] CSR offsets and [L][R] replica GPUs (buildReplicaTables). */
  offsets: Uint32Array;
  gpus: Uint32Array;
  /** [L][E][P] static-local destination GPU (buildStaticMap); filled only for that policy. */
  staticMap: Uint32Array;
}

export function allocateRouteTables(shape: Shape): RouteTables {
  const { layers: L, experts: E, replicas: R, gpus: P } = shape;
  return {
    cdf: new Uint32Array(L * (E + 1)),
    offsets: new Uint32Array(L * (E + 1)),
    gpus: new Uint32Array(L * R),
    staticMap: new Uint32Array(L * E * P),
  };
}

export function fillRouteTables(plan: RoutePlan, input: RouteInput, tables: RouteTables): void {
  buildExpertCdf(plan.shape, input.loads, tables.cdf);
  buildReplicaTables(input.placement, tables.offsets, tables.gpus);
  if (plan.policy === 'static-local') {
    buildStaticMap(input.placement, plan.seed, tables.offsets, tables.gpus, tables.staticMap);
  }
}
