import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceStatistics } from '../src/trace/calibration.js';
import { DEFAULT_GENERATOR_PARAMS, generateLoads, type Timeline } from '../src/trace/generate.js';
import { loadTrace, TRACES_DIR } from '../src/trace/load.js';
import { layerSkew } from '../src/trace/skew.js';
import { defaultAnchorNames, generateTrace, regenerateTrace } from '../src/trace/synthetic.js';
import { stepLoads, type Trace } from '../src/trace/trace.js';
import { UserError } from '../src/util/errors.js';

const bytes = (t: Trace) => Buffer.from(t.loads.buffer, t.loads.byteOffset, t.loads.byteLength);

describe('synthetic generator: determinism', () => {
  it('same seed → identical bytes and manifest; different seed → different loads', () => {
    const a = generateTrace({ seed: 11, windows: 4 });
    const b = generateTrace({ seed: 11, windows: 4 });
    const c = generateTrace({ seed: 12, windows: 4 });
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(a.manifest).toEqual(b.manifest);
    expect(bytes(a).equals(bytes(c))).toBe(false);
  });

  it('regenerates the bundled synthetic-v3-windows byte for byte from its manifest', () => {
    const shipped = loadTrace('synthetic-v3-windows');
    const again = regenerateTrace(shipped.manifest);
    expect(bytes(again).equals(readFileSync(join(TRACES_DIR, 'synthetic-v3-windows.bin')))).toBe(true);
    expect(again.manifest).toEqual({ ...shipped.manifest });
  });
});

describe('synthetic generator: window loads are sampled token routings', () => {
  const p = { ...DEFAULT_GENERATOR_PARAMS, seed: 5, windows: 6, stepsPerWindow: 10, tokensPerStep: 512 };
  const t = generateTrace(p);

  it('every layer of every window holds exactly steps × tokens × topK integer hits, none above one per token', () => {
    const { layers, experts, topK } = t.manifest;
    const tokens = p.stepsPerWindow * p.tokensPerStep;
    let bad = 0;
    for (let w = 0; w < p.windows; w++) {
      const m = stepLoads(t, w);
      for (let l = 0; l < layers; l++) {
        let sum = 0;
        for (let e = 0; e < experts; e++) {
          const v = m[l * experts + e]!;
          if (!(Number.isInteger(v) && v >= 0 && v <= tokens)) bad++;
          sum += v;
        }
        expect(sum).toBe(tokens * topK);
      }
    }
    expect(bad).toBe(0);
    expect(t.manifest).toMatchObject({
      granularity: 'window',
      stepsPerWindow: 10,
      steps: 6,
      layers: 58,
      experts: 256,
    });
  });

  it('records regime switches and bursts in the timeline, and they change the loads', () => {
    const anchors = ['sglang-r1-prefill-in512', 'sglang-r1-prefill-in4096'].map((n) => loadTrace(n));
    const calm = { ...p, windows: 8, regimeSwitch: 0, burstRate: 0, driftSd: 0 };
    const switching = generateLoads(anchors, { ...calm, regimeSwitch: 1 });
    expect(switching.timeline.switches.length).toBe(8);
    expect(new Set(switching.timeline.regime).size).toBe(2);
    const bursty = generateLoads(anchors, {
      ...calm,
      burstRate: 1,
      burstFactor: [8, 8],
      burstExperts: [2, 2],
    });
    expect(bursty.timeline.bursts.length).toBe(8);
    const still = generateLoads(anchors, calm);
    const meanMaxMean = (g: { loads: Float32Array }) => {
      let s = 0;
      for (let i = 0; i < 8 * 58; i++) s += layerSkew(g.loads.subarray(i * 256, (i + 1) * 256), 8).maxMean;
      return s / (8 * 58);
    };
    expect(meanMaxMean(bursty)).toBeGreaterThan(1.2 * meanMaxMean(still));
    expect((still.timeline as Timeline).switches).toEqual([]);
  });

  it('rejects bad parameters and mismatched anchors with one-line UserErrors', () => {
    const a = loadTrace('sglang-r1-prefill-in512');
    expect(() => generateLoads([a], { ...p, windows: 0 })).toThrow(/--windows must be a positive integer/);
    expect(() => generateLoads([a], { ...p, stepsPerWindow: 10_000, tokensPerStep: 10_000 })).toThrow(
      UserError,
    );
    const small: Trace = {
      manifest: { ...a.manifest, name: 'small', layers: 1 },
      loads: a.loads.slice(0, 256),
    };
    expect(() => generateLoads([a, small], p)).toThrow(/anchors must share a shape/);
  });
});

describe('synthetic generator: calibration against the real snapshots', () => {
  // Generated over enough windows to visit every workload; bands: medians within ±15% of the real
  // snapshots', p10/p90 within ±25%, the across-layer spread within ±35%.
  const real = traceStatistics(defaultAnchorNames().map((n) => loadTrace(n)));
  const gen = traceStatistics([generateTrace({ seed: 3, windows: 160 })]);

  it.each(['cv', 'maxMean', 'top8Share', 'gini', 'groupCv'] as const)('%s per layer', (key) => {
    const r = real.layers[key];
    const g = gen.layers[key];
    expect(g.median / r.median).toBeGreaterThan(0.85);
    expect(g.median / r.median).toBeLessThan(1.15);
    expect(g.p10 / r.p10).toBeGreaterThan(0.75);
    expect(g.p10 / r.p10).toBeLessThan(1.25);
    expect(g.p90 / r.p90).toBeGreaterThan(0.75);
    expect(g.p90 / r.p90).toBeLessThan(1.25);
  });

  it('spread of skew across layers, and slow drift between windows', () => {
    expect(gen.cvSpread.median / real.cvSpread.median).toBeGreaterThan(0.65);
    expect(gen.cvSpread.median / real.cvSpread.median).toBeLessThan(1.35);
    // Consecutive windows are similar but not identical (drift, bursts, switches).
    expect(gen.nextStepCorrelation!.median).toBeGreaterThan(0.9);
    expect(gen.nextStepCorrelation!.median).toBeLessThan(0.9999);
    expect(gen.nextStepCorrelation!.p10).toBeLessThan(gen.nextStepCorrelation!.median);
  });
});
