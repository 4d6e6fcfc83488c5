/**
 * The scoring protocol this branch replaced (src/eval/cascade.ts before it), replayed in-process so
 * a test can show that a hostile candidate WOULD have gained under it: every pass in one process,
 * calls shuffled within a pass, relabellings from the fixed seed 1 (pass 0 and the first warm-up
 * sharing one base relabelling), quality = the worst pass's mean next-window GPU balancedness,
 * time = the slowest pass's median. `withHistory` adds contract 1's history (the windows before the
 * asked one, relabelled as the call is), as the old design would have had to.
 */
import { balanceMetrics } from '../../src/eplb/metrics.js';
import { placementFromPhy2log } from '../../src/eplb/placement.js';
import type { Shape } from '../../src/eplb/shape.js';
import type { RebalanceInput, RebalanceOutput } from '../../src/eval/candidate-api.js';
import { defaultScore } from '../../src/eval/scores.js';
import {
  applyTransform,
  type LoadTransform,
  randomTransform,
  untransformPlacement,
} from '../../src/eval/windows.js';
import { Rng } from '../../src/util/rng.js';

type Rebalance = (input: RebalanceInput) => Promise<RebalanceOutput> | RebalanceOutput;

/** The old stage2Plan (seed 1 by default), verbatim in behaviour. */
export function oldPlan(
  shape: Shape,
  pairs: number,
  repeats: number,
  seed = 1,
): { warmup: LoadTransform[]; passes: Array<{ order: Int32Array; transforms: LoadTransform[] }> } {
  const rng = new Rng(seed);
  const base = randomTransform(shape, rng);
  const rescaled = (): LoadTransform => ({ ...base, scale: 0.5 + 1.5 * rng.next() });
  const warmup = [rescaled(), randomTransform(shape, rng)];
  const passes = [];
  for (let pass = 0; pass < repeats; pass++) {
    const order = Int32Array.from({ length: pairs }, (_, k) => k);
    for (let i = pairs - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const transforms = Array.from({ length: pairs }, () =>
      pass === 0 ? rescaled() : randomTransform(shape, rng),
    );
    passes.push({ order, transforms });
  }
  return { warmup, passes };
}

export interface OldOutcome {
  /** Mean next-window GPU balancedness of each pass. */
  passNext: number[];
  /** Median call time of each pass, ms (measured here, in-process). */
  passMedianMs: number[];
  /** The old charged quality and time, and the old default score on them. */
  balancedness: number;
  medianMs: number;
  defaultScore: number;
}

export async function runOldProtocol(
  rebalance: Rebalance,
  windows: readonly Float32Array[],
  shape: Shape,
  options: { repeats?: number; withHistory?: boolean; historyLength?: number } = {},
): Promise<OldOutcome> {
  const repeats = options.repeats ?? 3;
  const H = options.historyLength ?? 8;
  const pairs = windows.length - 1;
  const plan = oldPlan(shape, pairs, repeats);
  const input = (t: LoadTransform, k: number): RebalanceInput => {
    const loads = applyTransform(t, windows[k]!, shape);
    const history = options.withHistory
      ? Array.from({ length: Math.min(H, k + 1) }, (_, i) =>
          applyTransform(t, windows[k - Math.min(H, k + 1) + 1 + i]!, shape),
        )
      : [loads];
    return { loads, history, shape };
  };
  for (const t of plan.warmup) await rebalance(input(t, 0));
  const passNext: number[] = [];
  const passMedianMs: number[] = [];
  for (const { order, transforms } of plan.passes) {
    const next: number[] = [];
    const times: number[] = [];
    for (const k of order) {
      const t = transforms[k]!;
      const t0 = performance.now();
      const out = await rebalance(input(t, k));
      times.push(performance.now() - t0);
      const p = untransformPlacement(t, placementFromPhy2log(shape, out.phy2log));
      next.push(balanceMetrics(p, windows[k + 1]!).gpuBalancedness);
    }
    passNext.push(next.reduce((a, b) => a + b, 0) / next.length);
    times.sort((a, b) => a - b);
    const n = times.length;
    passMedianMs.push(n % 2 ? times[(n - 1) / 2]! : (times[n / 2 - 1]! + times[n / 2]!) / 2);
  }
  const balancedness = Math.min(...passNext);
  const medianMs = Math.max(...passMedianMs);
  return {
    passNext,
    passMedianMs,
    balancedness,
    medianMs,
    defaultScore: defaultScore(balancedness, medianMs),
  };
}
