import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench } from '../src/benchmark/run-bench.js';
import type { Balancer } from '../src/eplb/balancer.js';
import { bldmSwapBalancer } from '../src/eplb/balancers/bldm-swap.js';
import { deepseekBalancer } from '../src/eplb/balancers/deepseek.js';
import { forecastBalancer } from '../src/eplb/balancers/forecast.js';
import type { Shape } from '../src/eplb/shape.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import type { Trace } from '../src/trace/trace.js';
import { noisySeries } from './helpers/noisy-series.js';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
});
afterAll(() => gpu?.destroy());

const SHAPE: Shape = { layers: 4, experts: 32, replicas: 40, groups: 4, nodes: 1, gpus: 8 };
const WINDOWS = 14;

function windowTrace(): Trace {
  const series = noisySeries(SHAPE, WINDOWS, 1000, 11);
  const loads = new Float32Array(WINDOWS * SHAPE.layers * SHAPE.experts);
  for (const [k, w] of series.entries()) loads.set(w, k * w.length);
  return {
    manifest: {
      format: 'adrs-trace/1',
      name: 'noisy',
      model: 'test',
      layers: SHAPE.layers,
      experts: SHAPE.experts,
      groups: SHAPE.groups,
      topK: 2,
      topKGroups: SHAPE.groups,
      steps: WINDOWS,
      granularity: 'window',
      stepsPerWindow: 100,
      data: 'noisy.bin',
      dtype: 'float32',
      source: 'test fixture',
      attribution: 'test fixture',
    },
    loads,
  };
}

/** A balancer that records the history length of every call and places like bldm-swap. */
function recording(lengths: number[], latestIsLoads: boolean[]): Balancer {
  return {
    name: 'recording',
    summary: 'records its history',
    runsOn: 'cpu',
    prepare: async (shape, ctx) => {
      const inner = await bldmSwapBalancer.prepare(shape, ctx);
      return {
        rebalance: (loads, history) => {
          lengths.push(history?.length ?? 0);
          latestIsLoads.push(history !== undefined && history[history.length - 1] === loads);
          return inner.rebalance(loads, history);
        },
        dispose: () => inner.dispose?.(),
      };
    },
  };
}

describe('adrs bench with history', () => {
  it('passes windows up to k as history, and frames the balancers with oracle and last-window rows', async () => {
    const lengths: number[] = [];
    const latest: boolean[] = [];
    const report = await runBench(gpu, {
      traces: [windowTrace()],
      balancers: [forecastBalancer, deepseekBalancer, recording(lengths, latest)],
      repeat: 3,
      tokens: 256,
      policy: 'round-robin',
      rebalanceInterval: 3000,
      deployment: { replicas: SHAPE.replicas, nodes: SHAPE.nodes, gpus: SHAPE.gpus },
      history: 5,
      headroom: true,
      seed: 1,
      command: 'test',
    });
    expect(report.config.history).toBe(5);
    expect(report.rows.map((r) => r.balancer)).toEqual([
      'oracle',
      'last-window',
      'forecast',
      'deepseek',
      'recording',
    ]);
    // The placing pass: one call per window in time order, history growing to the cap of 5.
    expect(lengths.slice(0, WINDOWS)).toEqual([1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
    expect(latest.every(Boolean)).toBe(true);
    const row = (name: string) => report.rows.find((r) => r.balancer === name)!;
    const next = (name: string) => row(name).balancedness_next!;
    // The oracle is the ceiling; on a noisy series the forecast beats the last window.
    for (const name of ['last-window', 'forecast', 'deepseek', 'recording']) {
      expect(next('oracle')).toBeGreaterThan(next(name));
    }
    expect(next('forecast')).toBeGreaterThan(next('last-window'));
    // The recording balancer is bldm-swap, history ignored: the last-window row exactly.
    expect(next('recording')).toBeCloseTo(next('last-window'), 6);
    const spread = row('forecast').balancedness_next_spread!;
    expect(spread.n).toBe(WINDOWS - 1);
    expect(spread.q1).toBeLessThanOrEqual(spread.median);
    expect(spread.median).toBeLessThanOrEqual(spread.q3);
  });
});
