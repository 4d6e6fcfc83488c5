import { randomInt } from 'node:crypto';
import { generateCalibratedSeries } from '../trace/calibrated.js';
import { GENERATOR_NAME } from '../trace/generate.js';
import { loadTrace } from '../trace/load.js';
import { regenerateTrace } from '../trace/synthetic.js';
import type { Trace } from '../trace/trace.js';
import { DEFAULT_STEPS_PER_WINDOW } from '../trace/windows.js';
import { check } from '../util/errors.js';

/** The series training evaluations are shaped like by default: the bundled training series. */
export const DEFAULT_SERIES_LIKE = 'synthetic-v4-windows';

/**
 * A fresh secret seed for a drawn series (32 bits: the generator's seed is one 32-bit state), from
 * the OS's cryptographic generator.
 */
export function secretSeriesSeed(): number {
  return randomInt(2 ** 32 - 1);
}

/**
 * A series no candidate can carry, drawn with a secret seed and shaped like `like` (a bundled name or
 * a path). A generated trace is redrawn by the generator that made it (v2 for the v4 series: requests
 * with sampling noise, drift and workload shifts fitted on a real per-step series), with its own
 * parameters and anchors and only the seed (and, if given, the window count) changed. Any other trace
 * (a real snapshot or per-step series) gets the calibrated v2 generator in its shape (layers, experts,
 * groups, top-k) and steps per window. The same (like, seed) always gives the same series, so
 * `adrs evolve --resume` and `--replay` score on it again.
 */
export function drawSeries(like: string, seed: number, windows?: number): Trace {
  check(
    Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32,
    `series seed must be an integer in [0, 2^32), got ${seed}`,
  );
  const base = loadTrace(like);
  const m = base.manifest;
  const name = `${m.name}-secret`;
  const g = m.generator;
  if (g?.name === GENERATOR_NAME && g.params && typeof g.params === 'object') {
    const params = {
      ...(g.params as Record<string, unknown>),
      seed,
      ...(windows !== undefined ? { windows } : {}),
    };
    return regenerateTrace({ ...m, name, generator: { ...g, params } });
  }
  return generateCalibratedSeries({
    layers: m.layers,
    experts: m.experts,
    groups: m.groups,
    topK: m.topK,
    topKGroups: m.topKGroups,
    model: m.model,
    windows: windows ?? DRAWN_WINDOWS,
    stepsPerWindow: m.stepsPerWindow ?? DEFAULT_STEPS_PER_WINDOW,
    seed,
    name,
  });
}

/** Windows of a series drawn like a trace that is not itself generated (the bundled training series has 16). */
const DRAWN_WINDOWS = 16;
