import { describe, expect, it } from 'vitest';
import type { Shape } from '../src/eplb/shape.js';
import { applyTransform, callInput, evalWindows, passPlans, secretSeed } from '../src/eval/windows.js';
import type { Trace, TraceManifest } from '../src/trace/trace.js';
import { DEFAULT_STEPS_PER_WINDOW, traceWindows, windowLoads } from '../src/trace/windows.js';

/** A tiny trace whose step s has load s + 1 on every (layer, expert). */
function trace(granularity: TraceManifest['granularity'], steps: number, stepsPerWindow?: number): Trace {
  const layers = 2;
  const experts = 4;
  const loads = new Float32Array(steps * layers * experts);
  for (let s = 0; s < steps; s++) loads.fill(s + 1, s * layers * experts, (s + 1) * layers * experts);
  const manifest: TraceManifest = {
    format: 'adrs-trace/1',
    name: 'tiny',
    model: 'test',
    layers,
    experts,
    groups: 2,
    topK: 2,
    topKGroups: 2,
    steps,
    granularity,
    ...(stepsPerWindow !== undefined ? { stepsPerWindow } : {}),
    data: 'tiny.bin',
    dtype: 'float32',
    source: 'test',
    attribution: 'test',
  };
  return { manifest, loads };
}

describe('trace windows (src/trace/windows.ts, shared by bench, simulate and eval)', () => {
  it('a window or snapshot trace: each stored matrix is a window, as a view', () => {
    const t = trace('window', 5, 100);
    const w = traceWindows(t);
    expect(w.count).toBe(5);
    expect(w.stepsPerWindow).toBe(1);
    expect(w.windows.buffer).toBe(t.loads.buffer);
    expect(Array.from(windowLoads(w, 3))).toEqual(new Array(8).fill(4));
    expect(traceWindows(trace('snapshot', 2)).count).toBe(2);
  });

  it(`a step trace: sums of its stepsPerWindow steps (default ${DEFAULT_STEPS_PER_WINDOW}), aligned to its end`, () => {
    const t = trace('step', 250);
    const w = traceWindows(t);
    expect(w.stepsPerWindow).toBe(100);
    expect([w.count, w.offset]).toEqual([2, 50]);
    // The last window ends at the last step: window 1 holds steps 150..249 with loads 151..250.
    expect(windowLoads(w, 1)[5]).toBe(((151 + 250) * 100) / 2);
    // Shorter than one window: one window of all its steps.
    const short = traceWindows(trace('step', 40));
    expect([short.count, short.stepsPerWindow]).toEqual([1, 40]);
    const own = traceWindows(trace('step', 7, 3));
    expect(own.count).toBe(2);
    expect(windowLoads(own, 1)[0]).toBe(5 + 6 + 7);
  });

  it('an explicit window size overrides the manifest; a bad one is a one-line error', () => {
    const w = traceWindows(trace('window', 6), 2);
    expect(w.count).toBe(3);
    expect(windowLoads(w, 2)[0]).toBe(5 + 6);
    expect(() => traceWindows(trace('window', 6), 0)).toThrow(/steps per window must be a positive integer/);
    expect(() => windowLoads(w, 3)).toThrow(/window 3 is outside \[0, 3\)/);
  });

  it('the evaluator uses the same windows and needs two of them', () => {
    const t = trace('step', 300);
    const ev = evalWindows(t);
    expect(ev).toHaveLength(3);
    expect(Array.from(ev[2]!)).toEqual(Array.from(windowLoads(traceWindows(t), 2)));
    expect(evalWindows(t, 2)).toHaveLength(2);
    expect(() => evalWindows(trace('step', 150))).toThrow(/gives 1 window\(s\); evaluation needs at least 2/);
  });
});

describe('the chronological plan (src/eval/windows.ts)', () => {
  const shape: Shape = { layers: 3, experts: 8, groups: 2, replicas: 8, nodes: 1, gpus: 2 };
  // Window w: load 100·w + (layer · 8 + expert) + 1, all distinct.
  const windows = Array.from({ length: 6 }, (_, w) =>
    Float32Array.from({ length: 24 }, (_, i) => 100 * w + i + 1),
  );

  it('call k sees windows up to k only, oldest first, under its pass’s one relabelling', () => {
    const [plan] = passPlans(shape, 5, 1, 'abcdef012345');
    for (let k = 0; k < 5; k++) {
      const { loads, history } = callInput(windows, k, 3, plan!, shape);
      expect(history).toHaveLength(Math.min(3, k + 1));
      expect(Array.from(history[history.length - 1]!)).toEqual(Array.from(loads));
      expect(history[history.length - 1]).not.toBe(loads);
      const t = { ...plan!.transform, scale: plan!.scales[k]! };
      history.forEach((h, i) => {
        expect(Array.from(h)).toEqual(
          Array.from(applyTransform(t, windows[k - history.length + 1 + i]!, shape)),
        );
      });
    }
  });

  it('passes differ, a seed reproduces its plan, and fresh seeds are secret and distinct', () => {
    const a = passPlans(shape, 4, 2, '000000000001');
    const b = passPlans(shape, 4, 2, '000000000001');
    expect(a).toEqual(b);
    expect(Array.from(a[0]!.transform.expertOf)).not.toEqual(Array.from(a[1]!.transform.expertOf));
    expect(a[0]!.scales[0]).not.toBe(a[0]!.scales[1]);
    const seeds = new Set(Array.from({ length: 20 }, () => secretSeed()));
    expect(seeds.size).toBe(20);
    for (const s of seeds) expect(s).toMatch(/^[0-9a-f]{12}$/);
  });
});
