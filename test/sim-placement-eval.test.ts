import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { type Placement, placementFromPhy2log, placementProblem } from '../src/eplb/placement.js';
import { DEEPSEEK_V3_SHAPE, type Shape } from '../src/eplb/shape.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { type PairMetrics, PLACEMENT_EVAL_TOLERANCE, PlacementEvaluator } from '../src/sim/placement-eval.js';
import { findProfilableKernels, profileKernel } from '../src/sim/profile.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

/** A valid random placement: every expert once plus R−E random extra replicas, slots shuffled. */
function randomPlacement(shape: Shape, rng: Rng): Placement {
  const { layers: L, experts: E, replicas: R } = shape;
  const phy2log = new Int32Array(L * R);
  const row = new Int32Array(R);
  for (let l = 0; l < L; l++) {
    for (let s = 0; s < R; s++) row[s] = s < E ? s : rng.int(E);
    for (let s = R - 1; s > 0; s--) {
      const j = rng.int(s + 1);
      const t = row[s]!;
      row[s] = row[j]!;
      row[j] = t;
    }
    phy2log.set(row, l * R);
  }
  const p = placementFromPhy2log(shape, phy2log);
  expect(placementProblem(p)).toBeNull();
  return p;
}

/** Skewed random loads [W][L][E] with some zero-load experts. */
function randomWindows(shape: Shape, windows: number, rng: Rng): Float32Array {
  const n = shape.layers * shape.experts;
  const loads = new Float32Array(windows * n);
  for (let i = 0; i < loads.length; i++) {
    loads[i] = rng.next() < 0.1 ? 0 : Math.floor(-Math.log(1 - rng.next()) * 1000 * (1 + 4 * rng.next()));
  }
  return loads;
}

const close = (actual: number, expected: number, what: string): void => {
  const scale = Math.max(1, Math.abs(expected));
  if (Math.abs(actual - expected) > PLACEMENT_EVAL_TOLERANCE * scale) {
    throw new Error(`${what}: GPU ${actual} vs reference ${expected}`);
  }
};

/** Checks every pair against balanceMetrics (f64) on the same f32 loads. */
function expectMatchesReference(
  shape: Shape,
  placements: Placement[],
  loads: Float32Array,
  pairs: Array<[number, number]>,
  got: PairMetrics[],
): void {
  const n = shape.layers * shape.experts;
  expect(got.length).toBe(pairs.length);
  pairs.forEach(([p, w], i) => {
    const ref = balanceMetrics(placements[p]!, loads.subarray(w * n, (w + 1) * n));
    const g = got[i]!;
    const tag = `pair ${i} (${p}, ${w})`;
    close(g.gpuBalancedness, ref.gpuBalancedness, `${tag} gpuBalancedness`);
    close(g.slotBalancedness, ref.slotBalancedness, `${tag} slotBalancedness`);
    close(g.interNodeShare, ref.interNodeShare, `${tag} interNodeShare`);
    close(g.sumMaxGpuLoad / ref.sumMaxGpuLoad || 1, 1, `${tag} sumMaxGpuLoad`);
    let total = 0;
    for (let k = 0; k < n; k++) total += loads[w * n + k]!;
    close(g.totalLoad / total || 1, 1, `${tag} totalLoad`);
    close(g.sumMeanGpuLoad / (total / shape.gpus) || 1, 1, `${tag} sumMeanGpuLoad`);
    expect(g.perLayerGpuBalancedness.length).toBe(shape.layers);
    for (let l = 0; l < shape.layers; l++) {
      close(g.perLayerGpuBalancedness[l]!, ref.perLayerGpuBalancedness[l]!, `${tag} layer ${l} GPU`);
      close(g.perLayerSlotBalancedness[l]!, ref.perLayerSlotBalancedness[l]!, `${tag} layer ${l} slot`);
    }
  });
}

/** Every (placement, window) combination, interleaved so neighbours differ in both. */
function allPairs(placements: number, windows: number): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let w = 0; w < windows; w++)
    for (let p = 0; p < placements; p++) pairs.push([(p + w) % placements, w]);
  return pairs;
}

async function checkShape(
  shape: Shape,
  placementCount: number,
  windowCount: number,
  seed: number,
  workgroupSize?: number,
): Promise<void> {
  const rng = new Rng(seed);
  const placements = Array.from({ length: placementCount }, () => randomPlacement(shape, rng));
  const loads = randomWindows(shape, windowCount, rng);
  const pairs = allPairs(placementCount, windowCount);
  const evaluator = await PlacementEvaluator.create(
    gpu,
    shape,
    { placements: placementCount, windows: windowCount, pairs: pairs.length },
    workgroupSize ? { workgroupSize } : {},
  );
  try {
    evaluator.setWindows(loads);
    expectMatchesReference(shape, placements, loads, pairs, await evaluator.evaluate(placements, pairs));
  } finally {
    evaluator.destroy();
  }
}

const shape = (layers: number, experts: number, replicas: number, gpus: number, nodes: number): Shape => ({
  layers,
  experts,
  replicas,
  gpus,
  nodes,
  groups: 1,
});

describe('PlacementEvaluator (kernels/placement-eval.wgsl) against balanceMetrics', () => {
  it('matches on random placements and loads at several shapes', async () => {
    await checkShape(shape(4, 16, 24, 8, 2), 5, 3, 1);
    await checkShape(shape(7, 60, 96, 12, 3), 4, 4, 2);
    await checkShape(shape(3, 130, 200, 10, 1), 3, 2, 3); // more slots and experts than threads
    await checkShape(shape(2, 16, 64, 4, 4), 3, 2, 4); // 16 slots per GPU, many replicas per expert
  });

  it('matches for every workgroup size (1 to 256 threads, the host picks 8 or 64)', async () => {
    for (const wg of [1, 8, 64, 256]) {
      await checkShape(shape(11, 60, 96, 12, 3), 3, 2, 20 + wg, wg); // 11 layers: a partial chunk of 8
      await checkShape(shape(3, 130, 200, 10, 1), 2, 2, 30 + wg, wg);
    }
  });

  it('matches at the DeepSeek-V3 shape', async () => {
    await checkShape(DEEPSEEK_V3_SHAPE, 3, 2, 5);
  });

  it('handles one slot per GPU (R = P) and R = E', async () => {
    await checkShape(shape(3, 8, 8, 8, 2), 3, 3, 6); // R/P = 1 and R = E
    await checkShape(shape(3, 16, 16, 4, 2), 3, 3, 7); // R = E with 4 slots per GPU
    await checkShape(shape(2, 8, 16, 16, 4), 2, 2, 8); // R/P = 1 with replicas
  });

  it('handles zero-load experts, a single hot expert and an all-zero layer', async () => {
    const s = shape(4, 32, 48, 8, 2);
    const rng = new Rng(9);
    const placements = [randomPlacement(s, rng), randomPlacement(s, rng)];
    const n = s.layers * s.experts;
    const loads = randomWindows(s, 3, rng);
    // window 0: layer 1 all on expert 5, layer 2 all zero, layer 3 only even experts loaded
    loads.fill(0, 1 * s.experts, 3 * s.experts);
    loads[1 * s.experts + 5] = 12345;
    for (let e = 1; e < s.experts; e += 2) loads[3 * s.experts + e] = 0;
    // window 2: entirely zero
    loads.fill(0, 2 * n, 3 * n);
    const pairs: Array<[number, number]> = [
      [0, 0],
      [1, 0],
      [1, 2],
      [0, 1],
      [0, 2],
    ];
    const evaluator = await PlacementEvaluator.create(gpu, s, {
      placements: 2,
      windows: 3,
      pairs: pairs.length,
    });
    try {
      evaluator.setWindows(loads);
      const got = await evaluator.evaluate(placements, pairs);
      expectMatchesReference(s, placements, loads, pairs, got);
      expect(got[2]!.gpuBalancedness).toBe(1);
      expect(got[2]!.interNodeShare).toBe(0);
      expect(got[0]!.perLayerGpuBalancedness[2]).toBe(1);
    } finally {
      evaluator.destroy();
    }
  });

  it('mixes placements and windows freely, repeats, and a grid taller than 65535 workgroups', async () => {
    const s = shape(64, 8, 8, 4, 2);
    const rng = new Rng(10);
    const placements = Array.from({ length: 5 }, () => randomPlacement(s, rng));
    const loads = randomWindows(s, 7, rng);
    const pairs: Array<[number, number]> = Array.from({ length: 1100 }, () => [rng.int(5), rng.int(7)]);
    const evaluator = await PlacementEvaluator.create(gpu, s, { placements: 5, windows: 7, pairs: 1100 });
    try {
      evaluator.setWindows(loads);
      expectMatchesReference(s, placements, loads, pairs, await evaluator.evaluate(placements, pairs));
    } finally {
      evaluator.destroy();
    }
  });

  it('reuses its buffers between calls of the same size and grows only when needed', async () => {
    const s = shape(4, 16, 24, 8, 2);
    const rng = new Rng(11);
    const placements = Array.from({ length: 4 }, () => randomPlacement(s, rng));
    const loads = randomWindows(s, 3, rng);
    const evaluator = await PlacementEvaluator.create(gpu, s, { placements: 4, windows: 3, pairs: 12 });
    const createBuffer = vi.spyOn(gpu.device, 'createBuffer');
    const createBindGroup = vi.spyOn(gpu.device, 'createBindGroup');
    try {
      evaluator.setWindows(loads);
      const pairs = allPairs(4, 3);
      await evaluator.evaluate(placements, pairs);
      await evaluator.evaluate(placements, pairs.slice(0, 5));
      await evaluator.evaluate(
        placements.slice(0, 2),
        pairs.filter(([p]) => p < 2),
      );
      expect(createBuffer).not.toHaveBeenCalled();
      expect(createBindGroup).not.toHaveBeenCalled();

      // More pairs than the capacity: grows once, keeps the resident windows, stays correct.
      const many = [...pairs, ...pairs];
      const got = await evaluator.evaluate(placements, many);
      expect(createBuffer).toHaveBeenCalled();
      expect(evaluator.capacity.pairs).toBeGreaterThanOrEqual(many.length);
      expectMatchesReference(s, placements, loads, many, got);
      createBuffer.mockClear();
      await evaluator.evaluate(placements, many);
      expect(createBuffer).not.toHaveBeenCalled();
    } finally {
      createBuffer.mockRestore();
      createBindGroup.mockRestore();
      evaluator.destroy();
    }
  });

  it('can skip the per-layer readback', async () => {
    const s = shape(4, 16, 24, 8, 2);
    const rng = new Rng(12);
    const placements = [randomPlacement(s, rng)];
    const loads = randomWindows(s, 2, rng);
    const evaluator = await PlacementEvaluator.create(gpu, s, { placements: 1, windows: 2, pairs: 2 });
    try {
      evaluator.setWindows(loads);
      const pairs: Array<[number, number]> = [
        [0, 0],
        [0, 1],
      ];
      const full = await evaluator.evaluate(placements, pairs);
      const summary = await evaluator.evaluate(placements, pairs, { perLayer: false });
      expect(summary.map((m) => m.gpuBalancedness)).toEqual(full.map((m) => m.gpuBalancedness));
      expect(summary[0]!.perLayerGpuBalancedness.length).toBe(0);
      expect(evaluator.lastCallStats()!.readBackBytes).toBeLessThan(2 * 4 * (8 + 2 * s.layers));
      if (gpu.hasTimestamps) expect(evaluator.lastGpuMs()).toBeGreaterThanOrEqual(0);
      else expect(evaluator.lastGpuMs()).toBeUndefined();
    } finally {
      evaluator.destroy();
    }
  });

  it('refuses bad input with a UserError instead of a wrong answer', async () => {
    const s = shape(2, 8, 12, 4, 2);
    const rng = new Rng(13);
    const good = randomPlacement(s, rng);
    const evaluator = await PlacementEvaluator.create(gpu, s, { placements: 1, windows: 1, pairs: 1 });
    try {
      await expect(evaluator.evaluate([good], [[0, 0]])).rejects.toThrow(/setWindows/);
      expect(() => evaluator.setWindows(new Float32Array(5))).toThrow(UserError);
      const negative = randomWindows(s, 1, rng);
      negative[3] = -1;
      expect(() => evaluator.setWindows(negative)).toThrow(/not a finite non-negative/);
      evaluator.setWindows(randomWindows(s, 1, rng));
      await expect(evaluator.evaluate([good], [[0, 1]])).rejects.toThrow(/out of range/);
      await expect(evaluator.evaluate([good], [[1, 0]])).rejects.toThrow(/out of range/);
      const bad = { ...good, phy2log: good.phy2log.slice() };
      bad.phy2log[5] = 99;
      await expect(evaluator.evaluate([bad], [[0, 0]])).rejects.toThrow(/outside \[0, 8\)/);
      const other = randomPlacement(shape(2, 8, 16, 4, 2), rng);
      await expect(evaluator.evaluate([other], [[0, 0]])).rejects.toThrow(/shape/);
      // The evaluator still works after refusing input.
      expect((await evaluator.evaluate([good], [[0, 0]]))[0]!.gpuBalancedness).toBeGreaterThan(0);
    } finally {
      evaluator.destroy();
    }
  });
});

describe('adrs profile kernels (src/sim/profile.ts)', () => {
  it('profiles every registered kernel at the small size with consistent figures', async () => {
    for (const kernel of findProfilableKernels('all')) {
      const p = await profileKernel(gpu, kernel, { size: 'small', seed: 1, repeat: 2, reference: true });
      expect(p.kernel).toBe(kernel.name);
      expect(p.items).toBeGreaterThan(0);
      expect(p.dispatches).toBeGreaterThan(0);
      expect(p.wallMs.runs).toBe(2);
      expect(p.gpuMs === null).toBe(!gpu.hasTimestamps);
      expect(p.bytes.uploaded).toBeGreaterThan(0);
      expect(p.bytes.readBack).toBeGreaterThan(0);
      expect(p.perSecond.wall).toBeCloseTo((p.items * 1000) / p.wallMs.median_ms, 6);
      expect(p.reference?.perSecond).toBeGreaterThan(0);
    }
    const batched = await profileKernel(gpu, findProfilableKernels('placement-eval')[0]!, {
      size: 'small',
      batch: 3,
      seed: 2,
      repeat: 1,
      reference: false,
    });
    expect(batched.items).toBe(3);
    expect(batched.bytes.readBack).toBe(3 * 4 * (8 + 2 * 4) + (gpu.hasTimestamps ? 16 : 0));
    expect(batched.reference).toBeNull();
    expect(() => findProfilableKernels('nope')).toThrow(/unknown kernel 'nope'/);
  });
});
