import { describe, expect, it } from 'vitest';
import { randomPlacement } from '../src/eplb/balancers/baselines.js';
import { balanceMetrics } from '../src/eplb/metrics.js';
import type { Shape } from '../src/eplb/shape.js';
import { gpuLoadsOf } from '../src/eval/cascade.js';
import { Rng } from '../src/util/rng.js';

describe('gpuLoadsOf: the GPU loads a report draws', () => {
  it("agrees with balanceMetrics' per-layer GPU balancedness on random placements", () => {
    const shape: Shape = { layers: 5, experts: 16, replicas: 24, groups: 4, nodes: 2, gpus: 8 };
    const rng = new Rng(7);
    for (let trial = 0; trial < 5; trial++) {
      const loads = Float32Array.from({ length: shape.layers * shape.experts }, () =>
        Math.floor(100 * rng.next() ** 3),
      );
      const placement = randomPlacement(shape, rng);
      const g = gpuLoadsOf(shape, placement, loads, 3);
      expect(g).toMatchObject({ window: 3, layers: 5, gpus: 8 });
      expect(g.loads).toHaveLength(5 * 8);
      const m = balanceMetrics(placement, loads);
      for (let l = 0; l < shape.layers; l++) {
        const row = g.loads.slice(l * 8, (l + 1) * 8);
        const total = loads.slice(l * 16, (l + 1) * 16).reduce((a, b) => a + b, 0);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(total, 3);
        const max = Math.max(...row);
        const b = max > 0 ? row.reduce((a, x) => a + x, 0) / 8 / max : 1;
        expect(b).toBeCloseTo(m.perLayerGpuBalancedness[l]!, 4);
      }
    }
  });
});
