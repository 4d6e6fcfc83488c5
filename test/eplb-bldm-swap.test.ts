import { describe, expect, it } from 'vitest';
import { bldmSwapBalancer } from '../src/eplb/balancers/bldm-swap.js';
import { deepseekBalancer } from '../src/eplb/balancers/deepseek.js';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { type Placement, placementProblem } from '../src/eplb/placement.js';
import { DEEPSEEK_V3_SHAPE, type Shape } from '../src/eplb/shape.js';
import { listBundledTraces, loadTrace } from '../src/trace/load.js';
import { stepLoads } from '../src/trace/trace.js';
import { Rng } from '../src/util/rng.js';

async function place(shape: Shape, loads: Float32Array): Promise<Placement> {
  const prepared = await bldmSwapBalancer.prepare(shape, {});
  try {
    return await prepared.rebalance(loads);
  } finally {
    prepared.dispose?.();
  }
}

const realSnapshots = listBundledTraces().filter((n) => n.startsWith('sglang-r1-'));

describe('bldm-swap (last-window packing; the default forecast balancer packs with it)', () => {
  it('ships the eight real snapshots it is judged on', async () => {
    expect(realSnapshots).toHaveLength(8);
  });

  it.each(realSnapshots)('reaches GPU balancedness ≥ 0.998 on %s (R=288, G=8, N=4, P=32)', async (name) => {
    const trace = loadTrace(name);
    const loads = stepLoads(trace, 0);
    const placement = await place(DEEPSEEK_V3_SHAPE, loads);
    expect(placementProblem(placement)).toBeNull();
    const m = balanceMetrics(placement, loads);
    expect(m.gpuBalancedness).toBeGreaterThanOrEqual(0.998);
    // Every layer, not just the sum, is balanced.
    expect(Math.min(...m.perLayerGpuBalancedness)).toBeGreaterThan(0.99);
  });

  it('is deterministic and reuses its scratch across calls and shapes of loads', async () => {
    const shape = DEEPSEEK_V3_SHAPE;
    const prepared = await bldmSwapBalancer.prepare(shape, {});
    const a = loadTrace(realSnapshots[0]!).loads;
    const b = loadTrace(realSnapshots[1]!).loads;
    const first = await prepared.rebalance(a);
    await prepared.rebalance(b);
    const again = await prepared.rebalance(a);
    prepared.dispose?.();
    expect(Array.from(again.phy2log)).toEqual(Array.from(first.phy2log));
  });

  const edgeShapes: Array<[string, Shape]> = [
    ['one slot per GPU', { layers: 3, experts: 8, replicas: 8, groups: 1, nodes: 2, gpus: 8 }],
    ['R = E', { layers: 3, experts: 16, replicas: 16, groups: 4, nodes: 2, gpus: 4 }],
    ['README fixture shape', { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 }],
    ['many replicas per expert', { layers: 2, experts: 4, replicas: 64, groups: 1, nodes: 1, gpus: 8 }],
  ];

  it.each(edgeShapes)('returns valid placements for %s, including degenerate loads', async (_, shape) => {
    const { layers: L, experts: E } = shape;
    const rng = new Rng(7);
    const cases: Float32Array[] = [
      Float32Array.from({ length: L * E }, () => Math.floor(rng.next() * 1000)),
      new Float32Array(L * E), // all zero
      Float32Array.from({ length: L * E }, (_, i) => (i % E === 0 ? 1000 : 0)), // all load on one expert
      Float32Array.from({ length: L * E }, (_, i) => (i % E < E / 2 ? 0 : 5)), // half the experts idle
    ];
    for (const loads of cases) {
      const placement = await place(shape, loads);
      expect(placementProblem(placement)).toBeNull();
      const m = balanceMetrics(placement, loads);
      expect(m.gpuBalancedness).toBeGreaterThan(0);
      expect(m.gpuBalancedness).toBeLessThanOrEqual(1 + 1e-12);
    }
  });

  it('refuses loads of the wrong size in one line', async () => {
    const prepared = await bldmSwapBalancer.prepare(DEEPSEEK_V3_SHAPE, {});
    expect(() => prepared.rebalance(new Float32Array(10))).toThrow(
      /loads must hold 58×256 = 14848 values, got 10/,
    );
    prepared.dispose?.();
  });

  it('gives the hottest expert the most replicas (apportionment)', async () => {
    const shape: Shape = { layers: 1, experts: 4, replicas: 8, groups: 1, nodes: 1, gpus: 4 };
    const placement = await place(shape, Float32Array.from([100, 10, 10, 40]));
    // D'Hondt: 100,40,50,33.3 → extras to 0 (100), 0 (50), 3 (40), 0 (33.3) → counts [4,1,1,2].
    expect(Array.from(placement.logcnt)).toEqual([4, 1, 1, 2]);
  });

  it('beats the DeepSeek baseline on heavy-tailed loads, overall and layer by layer', async () => {
    const shape: Shape = { layers: 12, experts: 64, replicas: 144, groups: 8, nodes: 2, gpus: 16 };
    const rng = new Rng(3);
    const loads = Float32Array.from({ length: shape.layers * shape.experts }, () =>
      Math.exp(1.5 * rng.normal()),
    );
    const ours = balanceMetrics(await place(shape, loads), loads);
    const baseline = balanceMetrics(
      (await (await deepseekBalancer.prepare(shape, {})).rebalance(loads)) as Placement,
      loads,
    );
    expect(ours.gpuBalancedness).toBeGreaterThan(0.999);
    expect(ours.gpuBalancedness).toBeGreaterThan(baseline.gpuBalancedness);
    for (let l = 0; l < shape.layers; l++) {
      expect(ours.perLayerGpuBalancedness[l]).toBeGreaterThanOrEqual(baseline.perLayerGpuBalancedness[l]!);
    }
  });
});
