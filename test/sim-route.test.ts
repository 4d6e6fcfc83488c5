import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Placement, placementFromPhy2log } from '../src/eplb/placement.js';
import type { Shape } from '../src/eplb/shape.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { COUNTERS_PER_GPU, expertUsPerToken, H100_COST_MODEL, layerTimes } from '../src/sim/cost-model.js';
import { routeReference } from '../src/sim/route-reference.js';
import { RouteSimulator } from '../src/sim/route-sim.js';
import { ROUTE_POLICIES, type RouteInput, type RouteResult } from '../src/sim/route-types.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

let gpu: GpuContext;
const sims: RouteSimulator[] = [];
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => {
  for (const s of sims) s.destroy();
  gpu?.destroy();
});

async function simulator(shape: Shape, maxWorkgroupsPerDimension?: number): Promise<RouteSimulator> {
  const options = maxWorkgroupsPerDimension
    ? { maxTokens: 1 << 20, maxWorkgroupsPerDimension }
    : { maxTokens: 1 << 20 };
  const sim = await RouteSimulator.create(gpu, shape, options);
  sims.push(sim);
  return sim;
}

/** Expert s mod E in slot s, then the extra slots to experts chosen by a seeded rng. */
function somePlacement(shape: Shape, seed: number): Placement {
  const { layers: L, experts: E, replicas: R } = shape;
  const rng = new Rng(seed);
  const phy2log = new Int32Array(L * R);
  for (let l = 0; l < L; l++) {
    const order = Array.from({ length: R }, (_, s) => (s < E ? s : rng.int(E)));
    // Shuffle so replicas land on varied GPUs and nodes.
    for (let i = R - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    phy2log.set(order, l * R);
  }
  return placementFromPhy2log(shape, phy2log);
}

function skewedLoads(shape: Shape, seed: number, zeroEvery = 0): Float32Array {
  const rng = new Rng(seed);
  const loads = new Float32Array(shape.layers * shape.experts);
  for (let i = 0; i < loads.length; i++) {
    loads[i] = zeroEvery && i % zeroEvery === 0 ? 0 : Math.floor(1000 * Math.exp(2 * rng.normal()));
  }
  return loads;
}

function expectSame(gpuResult: RouteResult, ref: RouteResult, input: RouteInput): void {
  const { layers: L } = input.placement.shape;
  expect(Array.from(gpuResult.counters)).toEqual(Array.from(ref.counters));
  expect(gpuResult.routed).toBe(input.tokens * input.topK * L);
  expect(ref.routed).toBe(input.tokens * input.topK * L);
  // Both derive times from identical integers with the same function: equal up to float noise (1e-9 relative).
  for (let l = 0; l < L; l++) {
    expect(Math.abs(gpuResult.layerTimeUs[l]! - ref.layerTimeUs[l]!)).toBeLessThanOrEqual(
      1e-9 * ref.layerTimeUs[l]!,
    );
  }
}

const SHAPE: Shape = { layers: 3, experts: 32, replicas: 40, groups: 4, nodes: 2, gpus: 8 };

describe('token-level routing simulator: GPU vs TypeScript reference (exact counts)', () => {
  for (const policy of ROUTE_POLICIES) {
    for (const topKGroups of [undefined, 2]) {
      it(`${policy}, ${topKGroups ? 'group-limited (2 of 4 groups)' : 'not group-limited'}`, async () => {
        const sim = await simulator(SHAPE);
        const input: RouteInput = {
          loads: skewedLoads(SHAPE, 7, 5),
          placement: somePlacement(SHAPE, 3),
          tokens: 5003,
          topK: 6,
          policy,
          seed: 42,
          ...(topKGroups ? { topKGroups } : {}),
        };
        expectSame(await sim.run(input), routeReference(input), input);
      });
    }
  }

  // Group sizes that are not powers of two (the kernel's fixed-length binary lifting must still reach
  // every expert), the largest top-k, and top-k equal to the experts of the chosen groups.
  const ODD: Shape = { layers: 2, experts: 24, replicas: 36, groups: 4, nodes: 2, gpus: 6 };
  for (const [topK, topKGroups] of [
    [5, undefined],
    [16, undefined],
    [5, 2],
    [12, 2],
    [1, 1],
  ] as const) {
    it(`24 experts in groups of 6: top-${topK}, ${topKGroups ?? 'no'} group limit`, async () => {
      const sim = await simulator(ODD);
      for (const policy of ROUTE_POLICIES) {
        const input: RouteInput = {
          loads: skewedLoads(ODD, 13, 7),
          placement: somePlacement(ODD, 6),
          tokens: 3001,
          topK,
          policy,
          seed: 8,
          ...(topKGroups ? { topKGroups } : {}),
        };
        expectSame(await sim.run(input), routeReference(input), input);
      }
    });
  }

  it('splits large token counts over a 3-D dispatch', async () => {
    const sim = await simulator(SHAPE, 3);
    const input: RouteInput = {
      loads: skewedLoads(SHAPE, 9),
      placement: somePlacement(SHAPE, 4),
      tokens: 4 * 2048 + 17, // 5 tiles as 3 × 2: one workgroup column past the end
      topK: 4,
      topKGroups: 3,
      policy: 'random',
      seed: 5,
    };
    expectSame(await sim.run(input), routeReference(input), input);
  });

  it('is deterministic per seed and changes with the seed', async () => {
    const sim = await simulator(SHAPE);
    const base = { loads: skewedLoads(SHAPE, 1), placement: somePlacement(SHAPE, 1), tokens: 3000, topK: 8 };
    const a = await sim.run({ ...base, policy: 'random', seed: 11 });
    const b = await sim.run({ ...base, policy: 'random', seed: 11 });
    const c = await sim.run({ ...base, policy: 'random', seed: 12 });
    expect(Array.from(a.counters)).toEqual(Array.from(b.counters));
    expect(Array.from(a.counters)).not.toEqual(Array.from(c.counters));
  });
});

describe('edge cases', () => {
  // One expert per GPU and R = E: GPU g receives exactly the tokens routed to expert g.
  const ONE: Shape = { layers: 2, experts: 8, replicas: 8, groups: 2, nodes: 2, gpus: 8 };
  const identity = () =>
    placementFromPhy2log(
      ONE,
      Int32Array.from({ length: 16 }, (_, i) => i % 8),
    );

  it('never routes to zero-load experts while k loaded ones are eligible', async () => {
    const sim = await simulator(ONE);
    const loads = new Float32Array(16);
    loads.set([0, 5, 0, 1, 0, 9, 0, 2], 0);
    loads.set([3, 0, 3, 0, 3, 0, 3, 0], 8);
    for (const policy of ROUTE_POLICIES) {
      const input: RouteInput = { loads, placement: identity(), tokens: 4000, topK: 4, policy, seed: 3 };
      const out = await sim.run(input);
      expectSame(out, routeReference(input), input);
      for (const g of [0, 2, 4, 6]) expect(out.tokensPerGpu[g]).toBe(0);
      for (const g of [1, 3, 5, 7]) expect(out.tokensPerGpu[8 + g]).toBe(0);
      // k = number of loaded experts: every token uses each of them once.
      for (const g of [1, 3, 5, 7]) expect(out.tokensPerGpu[g]).toBe(4000);
    }
  });

  it('with all load on one expert, fills the other picks uniformly among the rest', async () => {
    const sim = await simulator(ONE);
    const loads = new Float32Array(16);
    loads[2] = 100;
    loads[8 + 7] = 1;
    const input: RouteInput = {
      loads,
      placement: identity(),
      tokens: 7000,
      topK: 3,
      policy: 'random',
      seed: 9,
    };
    const out = await sim.run(input);
    expectSame(out, routeReference(input), input);
    expect(out.tokensPerGpu[2]).toBe(7000);
    expect(out.tokensPerGpu[8 + 7]).toBe(7000);
    // The two other picks: 14000 over 7 experts, 2000 each in expectation (binomial sd ≈ 42).
    for (let g = 0; g < 8; g++) if (g !== 2) expect(Math.abs(out.tokensPerGpu[g]! - 2000)).toBeLessThan(250);
  });

  it('group-limited routing with all load in one group still fills k picks from the chosen groups', async () => {
    const sim = await simulator(SHAPE);
    const loads = new Float32Array(SHAPE.layers * SHAPE.experts);
    for (let l = 0; l < SHAPE.layers; l++) for (let e = 8; e < 12; e++) loads[l * 32 + e] = 10 + e;
    const input: RouteInput = {
      loads,
      placement: somePlacement(SHAPE, 8),
      tokens: 3000,
      topK: 8,
      topKGroups: 2,
      policy: 'round-robin',
      seed: 1,
    };
    expectSame(await sim.run(input), routeReference(input), input);
  });

  it('round-robin alternates replicas by batch position, restarting on every rank', async () => {
    const shape: Shape = { layers: 1, experts: 8, replicas: 16, groups: 1, nodes: 2, gpus: 8 };
    const phy2log = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 1, 1, 2, 3, 4, 5, 6, 7]);
    phy2log[10] = 0; // expert 0 in slots 0 (GPU 0) and 10 (GPU 5)
    const placement = placementFromPhy2log(shape, phy2log);
    const loads = new Float32Array(8);
    loads[0] = 1;
    const sim = await simulator(shape);
    // 8 ranks × 5 tokens: positions 0..4 → replicas 0,1,0,1,0 → per rank 3 to GPU 0, 2 to GPU 5.
    const input: RouteInput = { loads, placement, tokens: 40, topK: 1, policy: 'round-robin', seed: 0 };
    const out = await sim.run(input);
    expectSame(out, routeReference(input), input);
    expect(out.tokensPerGpu[0]).toBe(24);
    expect(out.tokensPerGpu[5]).toBe(16);
    // static-local: ranks 0–3 use GPU 0 (own/same node), ranks 4–7 GPU 5: nothing crosses nodes.
    const stat = await sim.run({ ...input, policy: 'static-local' });
    expectSame(stat, routeReference({ ...input, policy: 'static-local' }), input);
    expect(stat.tokensPerGpu[0]).toBe(20);
    expect(stat.tokensPerGpu[5]).toBe(20);
    expect(stat.crossNode[0]).toBe(0);
    const sent = (g: number, c: number) => stat.counters[g * COUNTERS_PER_GPU + c];
    expect(sent(1, 3)).toBe(5); // rank 1 sends its 5 tokens over NVLink to GPU 0
  });

  it('matches the expected tokens per expert on a large run (k = 1)', async () => {
    const sim = await simulator(ONE);
    const loads = Float32Array.from({ length: 16 }, (_, i) => 1 + (i % 8));
    const input: RouteInput = {
      loads,
      placement: identity(),
      tokens: 200_000,
      topK: 1,
      policy: 'random',
      seed: 77,
    };
    const out = await sim.run(input);
    for (let g = 0; g < 8; g++) {
      const p = (1 + g) / 36;
      const sd = Math.sqrt(200_000 * p * (1 - p));
      expect(Math.abs(out.tokensPerGpu[g]! - 200_000 * p)).toBeLessThan(5 * sd);
    }
  });

  it('samples k = 2 without replacement with the successive-sampling inclusion probabilities', async () => {
    // P(e among 2) = p_e + Σ_{f≠e} p_f · p_e / (1 − p_f) for weights p: checks that the second pick
    // skips the first one's interval correctly (a bias there shifts mass between neighbours).
    const sim = await simulator(ONE);
    const weights = [1, 6, 2, 9, 3, 4, 0.5, 8];
    const loads = Float32Array.from({ length: 16 }, (_, i) => weights[i % 8]!);
    const tokens = 200_000;
    const input: RouteInput = { loads, placement: identity(), tokens, topK: 2, policy: 'random', seed: 21 };
    const out = await sim.run(input);
    expectSame(out, routeReference(input), input);
    const total = weights.reduce((a, b) => a + b, 0);
    const p = weights.map((w) => w / total);
    for (let e = 0; e < 8; e++) {
      let incl = p[e]!;
      for (let f = 0; f < 8; f++) if (f !== e) incl += (p[f]! * p[e]!) / (1 - p[f]!);
      const sd = Math.sqrt(tokens * incl * (1 - incl));
      for (const l of [0, 1])
        expect(Math.abs(out.tokensPerGpu[l * 8 + e]! - tokens * incl)).toBeLessThan(5 * sd);
    }
  });

  it('rejects bad input with a UserError', async () => {
    const sim = await simulator(SHAPE);
    const base: RouteInput = {
      loads: skewedLoads(SHAPE, 1),
      placement: somePlacement(SHAPE, 1),
      tokens: 100,
      topK: 4,
      policy: 'random',
      seed: 0,
    };
    await expect(sim.run({ ...base, topK: 17 })).rejects.toThrow(UserError);
    await expect(sim.run({ ...base, topK: 9, topKGroups: 1 })).rejects.toThrow(/do not fit/);
    await expect(sim.run({ ...base, placement: identity() })).rejects.toThrow(UserError);
    const bad = new Float32Array(base.loads);
    bad[3] = Number.NaN;
    await expect(sim.run({ ...base, loads: bad })).rejects.toThrow(/finite/);
  });
});

describe('cost model', () => {
  it('adds the slowest GPU of each phase: compute, dispatch, combine', () => {
    const shape: Shape = { layers: 1, experts: 4, replicas: 4, groups: 1, nodes: 2, gpus: 4 };
    // GPU 0 receives 1000 (200 over NVLink, 300 over the NIC); GPU 3 sends 500 over the NIC.
    const c = new Uint32Array(4 * COUNTERS_PER_GPU);
    c.set([1000, 200, 300, 0, 0], 0);
    c.set([10, 0, 0, 200, 0], 5);
    c.set([0, 0, 0, 0, 500], 15);
    const t = layerTimes(shape, c, H100_COST_MODEL);
    const m = H100_COST_MODEL;
    const dispatchBytes = 7168 * 1 + 224;
    const combineBytes = 7168 * 2;
    const nic = (m.nicGbps / 8) * 1e3; // bytes per µs
    expect(expertUsPerToken(m)).toBeCloseTo((88_080_384 / (1979e12 * 0.4)) * 1e6, 12);
    expect(t.computeUs[0]).toBeCloseTo(1000 * expertUsPerToken(m), 9);
    // The NIC dominates: GPU 3 sends 500 across nodes, more than GPU 0 receives (300).
    expect(t.dispatchUs[0]).toBeCloseTo((500 * dispatchBytes) / nic, 9);
    expect(t.combineUs[0]).toBeCloseTo((500 * combineBytes) / nic, 9);
    expect(t.totalTimeUs).toBeCloseTo(t.computeUs[0]! + t.dispatchUs[0]! + t.combineUs[0]!, 9);
  });
});
