import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BalanceMetrics, balanceMetrics } from '../src/eplb/metrics.js';
import { type Placement, placementFromPhy2log, placementProblem } from '../src/eplb/placement.js';
import { GpuScorer } from '../src/eval/gpu-scorer.js';
import { EvaluatorPool } from '../src/eval/index.js';
import { deploymentShape } from '../src/eval/pool.js';
import {
  applyTransform,
  callInput,
  evalWindows,
  passPlans,
  randomTransform,
  untransformPlacement,
} from '../src/eval/windows.js';
import { PLACEMENT_EVAL_TOLERANCE } from '../src/sim/placement-eval.js';
import { loadTrace } from '../src/trace/load.js';
import { Rng } from '../src/util/rng.js';
import greedy from './fixtures/candidates/greedy-cpu/balancer.js';

/**
 * The harness computes every metric on its own GPU device (GpuScorer → PlacementEvaluator); the
 * CPU balanceMetrics stays the reference. Relative agreement within PLACEMENT_EVAL_TOLERANCE.
 */
const trace = loadTrace('synthetic-v4-windows');
const shape = deploymentShape({ trace });
const windows = evalWindows(trace, 5);

const expectClose = (gpu: number | null, cpu: number, what: string): void => {
  expect(gpu, what).not.toBeNull();
  const rel = Math.abs(gpu! - cpu) / Math.max(Math.abs(cpu), 1e-12);
  if (rel > PLACEMENT_EVAL_TOLERANCE)
    throw new Error(`${what}: GPU ${gpu} vs balanceMetrics ${cpu} (rel ${rel})`);
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const place = async (loads: Float32Array): Promise<Placement> => {
  const out = await greedy({ loads, history: [loads], shape });
  const p = placementFromPhy2log(shape, out.phy2log);
  expect(placementProblem(p)).toBeNull();
  return p;
};

describe('harness metrics on the GPU', () => {
  let pool: EvaluatorPool;
  let scorer: GpuScorer;
  beforeAll(async () => {
    [pool, scorer] = await Promise.all([
      EvaluatorPool.create({ workers: 1, timeoutS: 60 }),
      GpuScorer.create(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([pool?.close(), scorer?.close()]);
  });

  it('an evaluation’s metrics equal balanceMetrics on the same placements', async () => {
    const r = await pool.evaluate('test/fixtures/candidates/greedy-cpu', {
      trace,
      objective: 'default',
      windows: 4,
      repeats: 2,
    });
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
    // Each pass's placements as the harness made them: the pass's relabelling (from the reported
    // secret seed) applied to each window, the placement mapped back.
    const plans = passPlans(shape, 4, 2, r.seed);
    const next: BalanceMetrics[] = [];
    const same: BalanceMetrics[] = [];
    for (const plan of plans) {
      for (let k = 0; k < 4; k++) {
        const input = callInput(windows, k, 8, plan, shape);
        const p = untransformPlacement(plan.transform, await place(input.loads));
        next.push(balanceMetrics(p, windows[k + 1]!));
        same.push(balanceMetrics(p, windows[k]!));
      }
    }
    const m = r.metrics;
    // Every metric is the mean over all passes' windows.
    expectClose(m.balancedness_next, mean(next.map((x) => x.gpuBalancedness)), 'balancedness_next');
    expectClose(m.balancedness_same, mean(same.map((x) => x.gpuBalancedness)), 'balancedness_same');
    expectClose(
      m.slot_balancedness_next,
      mean(next.map((x) => x.slotBalancedness)),
      'slot_balancedness_next',
    );
    expectClose(m.inter_node_share_next, mean(next.map((x) => x.interNodeShare)), 'inter_node_share_next');
    expect(r.seed).toMatch(/^[0-9a-f]{12}$/);
    expect(m.balancedness_next!).toBeGreaterThan(0.5);
  });

  it('relabelled placements, mapped back, score on the resident windows as on the relabelled ones', async () => {
    const rng = new Rng(3);
    const placements: Placement[] = [];
    const expected: BalanceMetrics[] = [];
    for (let k = 0; k < 4; k++) {
      const t = randomTransform(shape, rng);
      const p = await place(applyTransform(t, windows[k]!, shape));
      expected.push(balanceMetrics(p, applyTransform(t, windows[k + 1]!, shape)));
      placements.push(untransformPlacement(t, p));
      expect(placementProblem(placements[k]!)).toBeNull();
    }
    const got = await scorer.score(
      trace,
      windows,
      shape,
      placements,
      placements.map((_, k) => [k, k + 1] as const),
    );
    got.forEach((g, k) => {
      expectClose(g.gpuBalancedness, expected[k]!.gpuBalancedness, `window ${k} GPU balancedness`);
      expectClose(g.slotBalancedness, expected[k]!.slotBalancedness, `window ${k} slot balancedness`);
      expectClose(g.interNodeShare, expected[k]!.interNodeShare, `window ${k} inter-node share`);
    });
  });

  it('serializes concurrent calls and keeps one evaluator per trace and shape', async () => {
    const p = await place(windows[0]!);
    const calls = Array.from({ length: 6 }, (_, i) =>
      scorer.score(trace, windows.slice(0, 2 + (i % 3)), shape, [p], [[0, 1]]),
    );
    const results = await Promise.all(calls);
    const ref = balanceMetrics(p, windows[1]!).gpuBalancedness;
    for (const [g] of results) expectClose(g!.gpuBalancedness, ref, 'concurrent call');
  });
});
