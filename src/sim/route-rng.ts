/**
 * The routing simulator's counter-based random numbers, mirrored bit for bit by kernels/route-sim.wgsl.
 * Stateless: the draws of one (token, layer) depend only on (seed, layer, token, draw index), so every
 * (token, layer) is independent and the GPU may process them in any order.
 */

/** PCG's LCG step and output multiplier (shared with the kernel through its contract). */
export const PCG_MULTIPLIER = 747796405;
export const PCG_INCREMENT = 2891336453;
export const PCG_OUTPUT_MULTIPLIER = 277803737;

/** PCG-based 32-bit hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020). A bijection on u32. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, PCG_MULTIPLIER) + PCG_INCREMENT) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, PCG_OUTPUT_MULTIPLIER) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Draw indices: groups use [0, 16), experts [16, 32), random replicas [32, 48). */
export const DRAW_GROUP = 0;
export const DRAW_EXPERT = 16;
export const DRAW_REPLICA = 32;

/** Weyl-sequence step between draw indices and layers (2³² / golden ratio). */
export const GOLDEN = 0x9e3779b9;

/** The per-call seed key (hashed once so that nearby seeds give unrelated streams). */
export const seedKey = (seed: number): number => pcgHash(seed >>> 0);

/** The per-layer key. */
export const layerKey = (seedKeyValue: number, layer: number): number =>
  pcgHash((seedKeyValue + Math.imul(layer, GOLDEN)) >>> 0);

/** The key of one (token, layer). */
export const tokenKey = (layerKeyValue: number, token: number): number =>
  pcgHash((pcgHash(token >>> 0) ^ layerKeyValue) >>> 0);

/** Draw number `d` of a (token, layer): a uniform u32. */
export const draw = (key: number, d: number): number => pcgHash((key + Math.imul(d, GOLDEN)) >>> 0);

/**
 * ⌊u · n / 2³²⌋ for u32 u and n: maps a uniform u32 onto [0, n) with every value's probability
 * within 2⁻³² of 1/n (unlike `u % n`, whose bias concentrates on the low values). Exact in doubles:
 * both partial products are below 2⁴⁸.
 */
export function mulHi(u: number, n: number): number {
  const hi = u >>> 16;
  const lo = u & 0xffff;
  return Math.floor((hi * n + Math.floor((lo * n) / 65536)) / 65536);
}
