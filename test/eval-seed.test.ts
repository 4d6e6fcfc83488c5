import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvaluatorPool } from '../src/eval/index.js';
import { loadTrace } from '../src/trace/load.js';

const trace = loadTrace('synthetic-v4-windows');
let pool: EvaluatorPool;
beforeAll(async () => {
  pool = await EvaluatorPool.create({ workers: 1, timeoutS: 60 });
});
afterAll(() => pool?.close());

describe('seed candidate (examples/eplb)', () => {
  it('is valid through stage 2 with both scores', async () => {
    const r = await pool.evaluate('examples/eplb', { trace, objective: 'default', windows: 6 });
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
    expect(r.stage).toBe(2);
    expect(r.metrics.windows).toBe(6);
    expect(r.metrics.balancedness_next).toBeGreaterThan(0.8);
    expect(r.score).toBe(r.metrics.default_score);
    expect(r.metrics.adrs_score).toBeGreaterThan(0);
    expect(r.metrics.median_ms).toBeGreaterThan(0);
    // Charged time is the mean of every timed call; each score comes with its noise.
    expect(r.metrics.passes).toBe(2);
    expect(r.metrics.calls).toBe(2 * (6 - 2)); // two untimed warm-up calls per pass
    expect(r.metrics.history).toBe(8);
    expect(r.metrics.mean_ms).toBeGreaterThan(0);
    expect(r.metrics.default_score).toBeCloseTo(
      100 * r.metrics.balancedness_next! * (1 + r.metrics.mean_ms! / 10) ** -0.1,
      9,
    );
    expect(r.metrics.score_noise).toBe(r.metrics.default_score_noise);
    expect(r.metrics.score_noise).toBeGreaterThanOrEqual(0);
    expect(r.seed).toMatch(/^[0-9a-f]{12}$/);
    // The modelled MoE time of its next-window placements beats the load-unaware placement's.
    expect(r.metrics.moe_windows).toBe(2);
    expect(r.metrics.moe_time_ms!).toBeGreaterThan(0);
    expect(r.metrics.moe_time_ms!).toBeLessThan(r.metrics.moe_time_none_ms!);
    expect(r.metrics.moe_score!).toBeGreaterThan(100);
  });

  it('evaluates the same candidate from in-memory files, scored on the ADRS objective', async () => {
    const files = {
      'balancer.ts': readFileSync('examples/eplb/balancer.ts', 'utf8'),
      'kernels/replicate.wgsl': readFileSync('examples/eplb/kernels/replicate.wgsl', 'utf8'),
    };
    const r = await pool.evaluate({ files }, { trace, objective: 'adrs', windows: 2, repeats: 2 });
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
    expect(r.score).toBe(r.metrics.adrs_score);
    expect(r.metrics.calls).toBe(2); // 2 passes × (2 windows − 1 untimed warm-up call)
  });

  it('marks both languages with EVOLVE-BLOCK markers', () => {
    for (const f of ['examples/eplb/balancer.ts', 'examples/eplb/kernels/replicate.wgsl']) {
      const text = readFileSync(f, 'utf8');
      expect(text).toContain('// EVOLVE-BLOCK-START');
      expect(text).toContain('// EVOLVE-BLOCK-END');
    }
  });
});
