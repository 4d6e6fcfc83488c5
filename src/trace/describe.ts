import { distribution, type LayerSkew, matrixSkew, SKEW_KEYS } from './skew.js';
import { stepLoads, type Trace } from './trace.js';

/**
 * Shape, provenance, total load and per-layer skew of a trace (`adrs trace info`): the manifest
 * without its data file's name and its generator's timeline (a value per step), and the skew
 * statistics over every step × layer.
 */
export function describeTrace(trace: Trace) {
  const m = trace.manifest;
  let total = 0;
  for (const v of trace.loads) total += v;
  const perStep: number[] = [];
  const skews: LayerSkew[] = [];
  for (let s = 0; s < m.steps; s++) {
    const step = matrixSkew(stepLoads(trace, s), m.layers, m.experts, m.groups);
    skews.push(...step);
    perStep.push(step.reduce((a, k) => a + k.cv, 0) / step.length);
  }
  const skew = Object.fromEntries(SKEW_KEYS.map((k) => [k, distribution(skews.map((x) => x[k]))]));
  const { data: _data, generator, ...manifest } = m;
  return {
    path: trace.path,
    ...manifest,
    generator: generator ? { ...generator, timeline: undefined } : undefined,
    totalLoad: total,
    meanLoadPerStep: total / m.steps,
    skew,
    meanCvPerStep: perStep,
  };
}
