import { gpusPerNode } from '../eplb/shape.js';
import {
  COUNTER_RECEIVED,
  COUNTER_RECEIVED_INTER,
  COUNTER_RECEIVED_INTRA,
  COUNTER_SENT_INTER,
  COUNTER_SENT_INTRA,
  COUNTERS_PER_GPU,
  type CostModel,
  H100_COST_MODEL,
} from './cost-model.js';
import { resultFromCounters } from './route-result.js';
import {
  DRAW_EXPERT,
  DRAW_GROUP,
  DRAW_REPLICA,
  draw,
  layerKey,
  mulHi,
  seedKey,
  tokenKey,
} from './route-rng.js';
import type { RouteInput, RouteResult } from './route-types.js';
import {
  allocateRouteTables,
  fillRouteTables,
  MAX_GROUPS,
  MAX_TOP_K,
  planRoute,
  type RoutePlan,
  type RouteTables,
  rankStart,
} from './routing-tables.js';

/**
 * The plain TypeScript reference of kernels/route-sim.wgsl: the same algorithm on the same integer
 * tables, so every count matches the GPU's exactly.
 *
 * Per (token, layer): with group-limited routing, `chosenGroups` distinct groups are drawn in turn,
 * each with probability ∝ its remaining group weight (Σ of its experts' integer weights); then `topK`
 * distinct experts among the chosen groups, each ∝ its weight among those not yet chosen (sequential
 * sampling without replacement: a draw in [0, remaining weight) mapped onto the CDF by skipping the
 * chosen experts' intervals, then a binary search). When the eligible remaining weight is zero —
 * fewer than k experts (or groups) have load — the remaining picks are uniform among the eligible
 * experts (groups) not yet chosen: a router always returns k experts, and an expert without load in
 * the window is one it rarely picks. Each pick then goes to a replica by the policy.
 */
export function routeReference(input: RouteInput, model: CostModel = H100_COST_MODEL): RouteResult {
  const t0 = performance.now();
  const shape = input.placement.shape;
  const plan = planRoute(shape, input);
  const tables = allocateRouteTables(shape);
  fillRouteTables(plan, input, tables);
  const counters = new Uint32Array(shape.layers * shape.gpus * COUNTERS_PER_GPU);
  routeCounts(plan, tables, counters);
  return resultFromCounters(shape, counters, model, { wallMs: performance.now() - t0 });
}

/** Adds every (token, layer)'s routed token-experts to counters [L][P][5]. */
export function routeCounts(plan: RoutePlan, tables: RouteTables, counters: Uint32Array): void {
  const { layers: L, experts: E, replicas: R, gpus: P } = plan.shape;
  const { tokens: T, topK: K, groups: G, expertsPerGroup: EG, chosenGroups, limited } = plan;
  const { cdf, offsets, gpus, staticMap } = tables;
  const gpn = gpusPerNode(plan.shape);
  const policy = plan.policy === 'round-robin' ? 0 : plan.policy === 'static-local' ? 1 : 2;
  const sk = seedKey(plan.seed);
  const gsel = new Uint32Array(MAX_GROUPS);
  const gremW = new Uint32Array(MAX_GROUPS);
  const gremN = new Uint32Array(MAX_GROUPS);
  const chosen = new Uint32Array(MAX_TOP_K);

  for (let l = 0; l < L; l++) {
    const lk = layerKey(sk, l);
    const cb = l * (E + 1);
    const layerTotal = cdf[cb + E]!;
    let src = 0;
    let srcStart = 0;
    let nextStart = rankStart(1, T, P);
    for (let t = 0; t < T; t++) {
      while (t >= nextStart) {
        src++;
        srcStart = nextStart;
        nextStart = rankStart(src + 1, T, P);
      }
      const key = tokenKey(lk, t);

      // Stage 1: the groups this token may use.
      let ng = 0;
      if (limited) {
        let mask = 0;
        let chosenW = 0;
        for (let d = 0; d < chosenGroups; d++) {
          const u = draw(key, DRAW_GROUP + d);
          const remaining = layerTotal - chosenW;
          let pick = 0;
          if (remaining > 0) {
            let r = mulHi(u, remaining);
            for (let j = 0; j < G; j++) {
              if ((mask >>> j) & 1) continue;
              const w = cdf[cb + (j + 1) * EG]! - cdf[cb + j * EG]!;
              if (r < w) {
                pick = j;
                break;
              }
              r -= w;
            }
          } else {
            let r = mulHi(u, G - d);
            for (let j = 0; j < G; j++) {
              if ((mask >>> j) & 1) continue;
              if (r === 0) {
                pick = j;
                break;
              }
              r--;
            }
          }
          mask |= 1 << pick;
          chosenW += cdf[cb + (pick + 1) * EG]! - cdf[cb + pick * EG]!;
        }
        for (let j = 0; j < G; j++) {
          if (!((mask >>> j) & 1)) continue;
          gsel[ng] = j;
          gremW[ng] = cdf[cb + (j + 1) * EG]! - cdf[cb + j * EG]!;
          gremN[ng] = EG;
          ng++;
        }
      } else {
        gsel[0] = 0;
        gremW[0] = layerTotal;
        gremN[0] = E;
        ng = 1;
      }
      let wrem = 0;
      for (let s = 0; s < ng; s++) wrem += gremW[s]!;
      let nrem = ng * EG;

      // Stage 2: k distinct experts among the chosen groups, then a replica each.
      let nc = 0;
      for (let j = 0; j < K; j++) {
        const u = draw(key, DRAW_EXPERT + j);
        let s = 0;
        let e: number;
        if (wrem > 0) {
          let r = mulHi(u, wrem);
          while (r >= gremW[s]!) {
            r -= gremW[s]!;
            s++;
          }
          const gs = gsel[s]! * EG;
          const ge = gs + EG;
          let v = cdf[cb + gs]! + r;
          for (let i = 0; i < nc; i++) {
            const c = chosen[i]!;
            if (c < gs) continue;
            if (c >= ge) break;
            if (v >= cdf[cb + c]!) v += cdf[cb + c + 1]! - cdf[cb + c]!;
          }
          let lo = gs;
          let hi = ge;
          while (hi - lo > 1) {
            const mid = (lo + hi) >>> 1;
            if (cdf[cb + mid]! <= v) lo = mid;
            else hi = mid;
          }
          e = lo;
        } else {
          let r = mulHi(u, nrem);
          while (r >= gremN[s]!) {
            r -= gremN[s]!;
            s++;
          }
          const gs = gsel[s]! * EG;
          const ge = gs + EG;
          e = gs + r;
          for (let i = 0; i < nc; i++) {
            const c = chosen[i]!;
            if (c < gs) continue;
            if (c >= ge) break;
            if (e >= c) e++;
          }
        }
        const w = cdf[cb + e + 1]! - cdf[cb + e]!;
        gremW[s]! -= w;
        gremN[s]!--;
        wrem -= w;
        nrem--;
        // Keep `chosen` sorted for the skips above.
        let i = nc;
        while (i > 0 && chosen[i - 1]! > e) {
          chosen[i] = chosen[i - 1]!;
          i--;
        }
        chosen[i] = e;
        nc++;

        const ob = l * (E + 1) + e;
        const first = offsets[ob]!;
        const count = offsets[ob + 1]! - first;
        let dest: number;
        if (policy === 0) dest = gpus[l * R + first + (((t - srcStart) * K + j) % count)]!;
        else if (policy === 1) dest = staticMap[(l * E + e) * P + src]!;
        else dest = gpus[l * R + first + mulHi(draw(key, DRAW_REPLICA + j), count)]!;

        const cd = (l * P + dest) * COUNTERS_PER_GPU;
        counters[cd + COUNTER_RECEIVED]!++;
        if (dest !== src) {
          const cs = (l * P + src) * COUNTERS_PER_GPU;
          if (Math.floor(dest / gpn) === Math.floor(src / gpn)) {
            counters[cd + COUNTER_RECEIVED_INTRA]!++;
            counters[cs + COUNTER_SENT_INTRA]!++;
          } else {
            counters[cd + COUNTER_RECEIVED_INTER]!++;
            counters[cs + COUNTER_SENT_INTER]!++;
          }
        }
      }
    }
  }
}
