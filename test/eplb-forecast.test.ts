import { describe, expect, it } from 'vitest';
import { bldmSwapBalancer } from '../src/eplb/balancers/bldm-swap.js';
import { forecastBalancer } from '../src/eplb/balancers/forecast.js';
import { FORECAST_RATES, forecastScenarios, forecastShares, windowShares } from '../src/eplb/forecast.js';
import { historyUpTo } from '../src/eplb/history.js';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { type Placement, placementProblem } from '../src/eplb/placement.js';
import { defaultBalancer } from '../src/eplb/registry.js';
import type { Shape } from '../src/eplb/shape.js';
import { Rng } from '../src/util/rng.js';
import { noisySeries } from './helpers/noisy-series.js';

async function placeSeries(
  balancer: typeof forecastBalancer,
  shape: Shape,
  series: Float32Array[],
  H = 8,
): Promise<Placement[]> {
  const prepared = await balancer.prepare(shape, { history: H });
  try {
    const src = { count: series.length, window: (k: number) => series[k]! };
    const out: Placement[] = [];
    for (let k = 0; k < series.length; k++) {
      out.push(await prepared.rebalance(series[k]!, historyUpTo(src, k, H)));
    }
    return out;
  } finally {
    prepared.dispose?.();
  }
}

/** Next-window GPU balancedness, ratio of sums over windows from..end. */
function nextBalancedness(placements: Placement[], series: Float32Array[], from: number): number {
  let mean = 0;
  let max = 0;
  for (let k = from; k + 1 < series.length; k++) {
    const m = balanceMetrics(placements[k]!, series[k + 1]!);
    const { gpus: P } = placements[k]!.shape;
    max += m.sumMaxGpuLoad;
    let total = 0;
    for (const v of series[k + 1]!) total += v;
    mean += total / P;
  }
  return mean / max;
}

const SHAPE: Shape = { layers: 6, experts: 32, replicas: 40, groups: 4, nodes: 1, gpus: 8 };

describe('forecast (the default, history-aware balancer)', () => {
  it('is the default balancer; bldm-swap (last window) stays selectable', () => {
    expect(defaultBalancer().name).toBe('forecast');
    expect(bldmSwapBalancer.name).toBe('bldm-swap');
  });

  it('beats last-window placement on a series with sampling noise and slow drift', async () => {
    for (const seed of [1, 2, 3]) {
      const series = noisySeries(SHAPE, 30, 1000, seed);
      const f = nextBalancedness(await placeSeries(forecastBalancer, SHAPE, series), series, 8);
      const last = nextBalancedness(await placeSeries(bldmSwapBalancer, SHAPE, series), series, 8);
      expect(f).toBeGreaterThan(last + 0.01);
    }
  });

  const edgeShapes: Array<[string, Shape]> = [
    ['R = E (no redundancy)', { layers: 3, experts: 16, replicas: 16, groups: 4, nodes: 2, gpus: 4 }],
    ['one slot per GPU', { layers: 2, experts: 8, replicas: 8, groups: 1, nodes: 2, gpus: 8 }],
    ['many replicas per expert', { layers: 2, experts: 4, replicas: 64, groups: 1, nodes: 1, gpus: 8 }],
    ['one GPU', { layers: 2, experts: 6, replicas: 8, groups: 1, nodes: 1, gpus: 1 }],
    ['26×64 on 8 GPUs, R = 80', { layers: 26, experts: 64, replicas: 80, groups: 1, nodes: 1, gpus: 8 }],
  ];

  it.each(edgeShapes)(
    'returns valid placements for %s, from histories of one to many, zero loads included',
    async (_, shape) => {
      const { layers: L, experts: E } = shape;
      const series = noisySeries(shape, 10, 50 * E, 5);
      const zero = new Float32Array(L * E);
      const zeroLayer = series[3]!.slice();
      zeroLayer.fill(0, 0, E);
      const cases: Float32Array[][] = [
        [series[0]!], // a history of one
        [zero], // all zero
        [zero, zero, zero],
        [series[0]!, zero, series[1]!], // a zero window inside the history
        [series[1]!, series[2]!, zeroLayer], // a layer without load in the latest window
        series, // longer than the balancer's cap of 8
      ];
      const prepared = await forecastBalancer.prepare(shape, {});
      try {
        for (const hist of cases) {
          const p = await prepared.rebalance(hist[hist.length - 1]!, hist);
          expect(placementProblem(p)).toBeNull();
        }
        // Without a history: the latest window alone.
        expect(placementProblem(await prepared.rebalance(series[4]!))).toBeNull();
      } finally {
        prepared.dispose?.();
      }
    },
  );

  it('is deterministic, within one preparation and across preparations', async () => {
    const series = noisySeries(SHAPE, 12, 2000, 9);
    const a = await placeSeries(forecastBalancer, SHAPE, series);
    const b = await placeSeries(forecastBalancer, SHAPE, series);
    for (let k = 0; k < series.length; k++)
      expect(Array.from(b[k]!.phy2log)).toEqual(Array.from(a[k]!.phy2log));
    const prepared = await forecastBalancer.prepare(SHAPE, {});
    const hist = series.slice(2, 10);
    const first = await prepared.rebalance(hist[7]!, hist);
    await prepared.rebalance(series[0]!);
    const again = await prepared.rebalance(hist[7]!, hist);
    prepared.dispose?.();
    expect(Array.from(again.phy2log)).toEqual(Array.from(first.phy2log));
  });

  it('does not depend on the scale of each window (callers may rescale loads per call)', async () => {
    const series = noisySeries(SHAPE, 8, 2000, 4);
    // Powers of two: exact in float32, so shares are bit-identical.
    const scaled = series.map((w, t) => Float32Array.from(w, (v) => v * 2 ** (t % 3) * 8));
    const prepared = await forecastBalancer.prepare(SHAPE, {});
    const a = await prepared.rebalance(series[7]!, series);
    const b = await prepared.rebalance(scaled[7]!, scaled);
    prepared.dispose?.();
    expect(Array.from(b.phy2log)).toEqual(Array.from(a.phy2log));
  });

  it('refuses a history whose last window is not the loads, or of the wrong size', async () => {
    const series = noisySeries(SHAPE, 3, 1000, 2);
    const prepared = await forecastBalancer.prepare(SHAPE, {});
    expect(() => prepared.rebalance(series[2]!, [series[0]!, series[1]!])).toThrow(/last history window/);
    expect(() => prepared.rebalance(series[2]!, [new Float32Array(5), series[2]!])).toThrow(
      /window 0 must hold/,
    );
    expect(() => prepared.rebalance(series[2]!, [])).toThrow(/at least the latest/);
    prepared.dispose?.();
    await expect(
      Promise.resolve().then(() => forecastBalancer.prepare(SHAPE, { history: 0 })),
    ).rejects.toThrow(/history must be a positive integer/);
  });
});

describe('the forecast', () => {
  const L = 2;
  const E = 8;

  it('chooses the latest window (rate 1) on a series that moves steadily, a long mean on pure noise', () => {
    // Steady drift: expert 0's share grows window by window; the latest window is the best guess.
    const drift = Array.from({ length: 8 }, (_, t) =>
      Float32Array.from({ length: L * E }, (_, i) => (i % E === 0 ? 10 + 10 * t : 10)),
    );
    const fd = forecastShares(drift, L, E);
    expect(Array.from(fd.rate)).toEqual([1, 1]);
    // Noise around a fixed profile: the plain mean is the best guess, so the slowest rates win.
    const rng = new Rng(3);
    const noisy = Array.from({ length: 8 }, () =>
      Float32Array.from({ length: L * E }, (_, i) => 100 + 10 * (i % E) + 30 * rng.normal()),
    );
    const fn = forecastShares(noisy, L, E);
    for (const r of fn.rate) expect(r).toBeLessThanOrEqual(0.25);
    // Shares: every layer sums to 1.
    for (let l = 0; l < L; l++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += fn.shares[l * E + e]!;
      expect(s).toBeCloseTo(1, 12);
    }
  });

  it('is the latest window for a history of one, with one scenario and no error estimate', () => {
    const w = Float32Array.from({ length: L * E }, (_, i) => i + 1);
    const f = forecastShares([w], L, E);
    expect(Array.from(f.shares)).toEqual(Array.from(windowShares(w, L, E)));
    expect(f.errorTerms).toBe(0);
    expect(f.errorVariance.every((v) => v === 0)).toBe(true);
    expect(forecastScenarios([w], f, L, E).count).toBe(1);
    expect(FORECAST_RATES[0]).toBe(1);
  });

  it('builds one scenario per past one-step error, never negative', () => {
    const rng = new Rng(8);
    const hist = Array.from({ length: 5 }, () => Float32Array.from({ length: L * E }, () => rng.int(50)));
    const f = forecastShares(hist, L, E);
    const sc = forecastScenarios(hist, f, L, E);
    expect(sc.count).toBe(5);
    expect(sc.shares.every((v) => v >= 0)).toBe(true);
    // Scenario 0 is the forecast itself.
    for (let l = 0; l < L; l++) {
      for (let e = 0; e < E; e++) expect(sc.shares[l * 5 * E + e]).toBe(f.shares[l * E + e]);
    }
    // Scenario t ≥ 1: the forecast moved by the error of the forecast from windows 0 … t−1, exactly.
    for (let t = 1; t < 5; t++) {
      const before = forecastShares(hist.slice(0, t), L, E).shares;
      const actual = windowShares(hist[t]!, L, E);
      for (let l = 0; l < L; l++) {
        for (let e = 0; e < E; e++) {
          const i = l * E + e;
          expect(sc.shares[(l * 5 + t) * E + e]).toBe(Math.max(0, f.shares[i]! + actual[i]! - before[i]!));
        }
      }
    }
  });
});
