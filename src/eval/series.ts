import { randomInt } from 'node:crypto';
import type { GeneratorParams } from '../trace/generate.js';
import { loadTrace } from '../trace/load.js';
import { generateTrace } from '../trace/synthetic.js';
import type { Trace } from '../trace/trace.js';
import { DEFAULT_STEPS_PER_WINDOW } from '../trace/windows.js';
import { check } from '../util/errors.js';

/** The series training evaluations are shaped like by default: the bundled training series. */
export const DEFAULT_SERIES_LIKE = 'synthetic-v3-windows';

/**
 * A fresh secret seed for a drawn series (32 bits: the generator's seed is one 32-bit state), from
 * the OS's cryptographic generator.
 */
export function secretSeriesSeed(): number {
  return randomInt(2 ** 32 - 1);
}

/**
 * A series no candidate can carry: drawn from the calibrated generator (src/trace/generate.ts) with a
 * secret seed, shaped like `like` (a bundled name or a path). A generated trace is redrawn with its
 * own generator parameters and anchors and only the seed changed; any other trace (a real snapshot
 * or per-step series) becomes the generator's only anchor, so the drawn series has its layers,
 * experts, groups and routing and its expert-popularity profile, with new windows. The same (like,
 * seed) always gives the same series, so `adrs evolve --resume` and `--replay` score on it again.
 */
export function drawSeries(like: string, seed: number, windows?: number): Trace {
  check(
    Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32,
    `series seed must be an integer in [0, 2^32), got ${seed}`,
  );
  const base = loadTrace(like);
  const g = base.manifest.generator as { params?: Partial<GeneratorParams>; anchors?: string[] } | undefined;
  const name = `${base.manifest.name}-secret`;
  const count = windows !== undefined ? { windows } : {};
  if (g?.params && Array.isArray(g.anchors)) {
    return generateTrace({ ...g.params, ...count, seed, name, anchors: g.anchors });
  }
  return generateTrace({ ...count, ...sampling(base), seed, name, anchors: [base.path ?? like] });
}

/**
 * Tokens per window like the trace's (its sampling noise depends on them): for a per-step trace,
 * its steps per window and its mean routed tokens per step (a step's load in one layer / top-k);
 * for a window trace, its steps per window at the generator's default tokens per step.
 */
function sampling(t: Trace): Partial<GeneratorParams> {
  const m = t.manifest;
  if (m.granularity === 'step') {
    const size = m.layers * m.experts;
    let routed = 0;
    for (let s = 0; s < m.steps; s++) for (let e = 0; e < m.experts; e++) routed += t.loads[s * size + e]!;
    const tokensPerStep = Math.max(1, Math.round(routed / m.steps / m.topK));
    return { stepsPerWindow: m.stepsPerWindow ?? DEFAULT_STEPS_PER_WINDOW, tokensPerStep };
  }
  return m.granularity === 'window' && m.stepsPerWindow !== undefined
    ? { stepsPerWindow: m.stepsPerWindow }
    : {};
}
