import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bldmSwapBalancer } from '../src/eplb/balancers/bldm-swap.js';
import { CALIBRATED_TEMPORAL_PARAMS, generateCalibratedSeries } from '../src/trace/calibrated.js';
import { loadTrace, TRACES_DIR } from '../src/trace/load.js';
import { regenerateTrace } from '../src/trace/synthetic.js';
import { fitTemporalParams } from '../src/trace/temporal-fit.js';
import {
  freshBase,
  generateTemporal,
  type TemporalParams,
  validateTemporalParams,
} from '../src/trace/temporal-model.js';
import { temporalStatistics } from '../src/trace/temporal-stats.js';
import type { Trace, TraceManifest } from '../src/trace/trace.js';
import { traceWindows } from '../src/trace/windows.js';
import { UserError } from '../src/util/errors.js';

const bytes = (t: Trace) => Buffer.from(t.loads.buffer, t.loads.byteOffset, t.loads.byteLength);

/** A per-step trace of `loads` (26×64, top-6, like the real series). */
function stepTrace(loads: Float32Array, steps: number): Trace {
  const manifest: TraceManifest = {
    format: 'adrs-trace/1',
    name: 'generated',
    model: 'test',
    layers: 26,
    experts: 64,
    groups: 1,
    topK: 6,
    topKGroups: 1,
    steps,
    granularity: 'step',
    data: 'generated.bin',
    dtype: 'float32',
    source: 'test',
    attribution: '',
  };
  return { manifest, loads };
}
const SHAPE = { layers: 26, experts: 64, groups: 1, topK: 6 };

describe('generator v2: determinism and what a window holds', () => {
  const opts = { layers: 4, experts: 32, groups: 4, topK: 4, windows: 5, stepsPerWindow: 20 };

  it('same options → identical bytes and manifest; another seed → other loads', () => {
    const a = generateCalibratedSeries({ ...opts, seed: 3 });
    const b = generateCalibratedSeries({ ...opts, seed: 3 });
    const c = generateCalibratedSeries({ ...opts, seed: 4 });
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(a.manifest).toEqual(b.manifest);
    expect(bytes(a).equals(bytes(c))).toBe(false);
  });

  it('each layer of a window holds its tokens × topK integer hits, no expert above one hit per token', () => {
    const t = generateCalibratedSeries({ ...opts, seed: 5 });
    const tokens = (t.manifest.generator as { tokensPerWindow: number[] }).tokensPerWindow;
    expect(tokens).toHaveLength(5);
    for (let w = 0; w < 5; w++) {
      for (let l = 0; l < 4; l++) {
        const row = t.loads.subarray((w * 4 + l) * 32, (w * 4 + l + 1) * 32);
        expect(row.every((v) => Number.isInteger(v) && v >= 0 && v <= tokens[w]!)).toBe(true);
        expect(row.reduce((s, v) => s + v, 0)).toBe(tokens[w]! * 4);
      }
    }
  });

  it('a request never gives one expert more hits than it has tokens', () => {
    const g = generateTemporal(SHAPE, freshBase(SHAPE, 1.5, 1), CALIBRATED_TEMPORAL_PARAMS, {
      seed: 1,
      windows: 200,
      stepsPerWindow: 1,
    });
    let bad = 0;
    for (let s = 0; s < 200; s++)
      for (let i = 0; i < 26 * 64; i++) if (g.loads[s * 26 * 64 + i]! > g.tokens[s]!) bad++;
    expect(bad).toBe(0);
  });

  // synthetic-v4-windows is made the same way (twice the windows: too slow for a test on 2 cores).
  it('regenerates the bundled synthetic-v4-heldout byte for byte from its manifest', () => {
    for (const name of ['synthetic-v4-heldout']) {
      const shipped = loadTrace(name);
      const again = regenerateTrace(shipped.manifest);
      expect(bytes(again).equals(readFileSync(join(TRACES_DIR, `${name}.bin`)))).toBe(true);
      expect(again.manifest).toEqual({ ...shipped.manifest });
    }
  });

  it('bad parameters and inputs are one-line UserErrors', () => {
    expect(() => validateTemporalParams({ ...CALIBRATED_TEMPORAL_PARAMS, driftPersistence: 1 })).toThrow(
      /driftPersistence must be in \[0, 1\)/,
    );
    expect(() => generateCalibratedSeries({ ...opts, groups: 3, seed: 1 })).toThrow(UserError);
    const windowed = generateCalibratedSeries({ ...opts, seed: 1 });
    expect(() => fitTemporalParams(windowed)).toThrow(/the fit needs one step per request/);
  });
});

describe('generator v2: the fit recovers the parameters a series was generated with', () => {
  const known: TemporalParams = {
    ...CALIBRATED_TEMPORAL_PARAMS,
    tokensLogMedian: 3.5,
    tokensLogSd: 1.1,
    tokensTailFrom: 200,
    tokensTailShare: 0.1,
    tokensTailIndex: 1.2,
    concentration: 150,
    workloadSd: 0.4,
    workloadSwitch: 0.1,
    driftSd: 0.12,
    driftPersistence: 0.99,
    baseSd: 0.25,
  };
  // The median over three series: the slow drift leaves few independent stretches in 2000 steps,
  // so one series' estimate of it varies by ±40%.
  const series = [1, 2, 3].map((seed) =>
    generateTemporal(SHAPE, freshBase(SHAPE, known.baseSd, seed), known, {
      seed,
      windows: 2000,
      stepsPerWindow: 1,
    }),
  );
  const fits = series.map(
    (g) => fitTemporalParams(stepTrace(g.loads, 2000), { tokensPerStep: Array.from(g.tokens) }).params,
  );
  const fit = Object.fromEntries(
    Object.keys(known).map((k) => [
      k,
      fits.map((f) => f[k as keyof TemporalParams]).sort((a, b) => a - b)[1]!,
    ]),
  ) as unknown as TemporalParams;
  const g = series[0]!;

  it.each([
    ['tokensLogMedian', 0.03],
    ['tokensLogSd', 0.1],
    ['tokensTailIndex', 0.15],
    ['tokensTailFrom', 0.1],
    ['concentration', 0.15],
    ['workloadSd', 0.15],
    ['workloadSwitch', 0.35],
    ['baseSd', 0.2],
    ['driftSd', 0.35],
    ['driftPersistence', 0.01],
  ] as const)('%s within ±%s (relative)', (key, tolerance) => {
    expect(Math.abs(fit[key] / known[key] - 1)).toBeLessThan(tolerance);
  });

  it('the hits-only token estimate (no tokens file) is the same', () => {
    const again = fitTemporalParams(stepTrace(g.loads, 2000)).params;
    expect(again.tokensLogMedian).toBeCloseTo(fits[0]!.tokensLogMedian, 6);
    expect(again.concentration).toBeCloseTo(fits[0]!.concentration, 3);
  });
});

const REAL_DIR = resolve('../shared/traces/deepseek-v2-lite-routing');
const REAL = join(REAL_DIR, 'deepseek-v2-lite-routing.json');
const hasReal = existsSync(REAL);

describe.skipIf(!hasReal)(
  'generator v2 against the real DeepSeek-V2-Lite series (skipped: ../shared/traces/deepseek-v2-lite-routing is absent)',
  () => {
    const real = hasReal ? loadTrace(REAL) : undefined;
    const tokens = hasReal
      ? (JSON.parse(readFileSync(join(REAL_DIR, 'tokens-per-step.json'), 'utf8')) as number[])
      : [];

    it('the shipped calibrated parameters are what the fit returns on the real series', () => {
      const fit = fitTemporalParams(real!, { tokensPerStep: tokens }).params;
      for (const [k, v] of Object.entries(CALIBRATED_TEMPORAL_PARAMS))
        expect(fit[k as keyof TemporalParams], k).toBeCloseTo(v, 4);
    });

    it('windows of 100 requests: share correlation, next-window balancedness and the gain from averaging match', async () => {
      const deployment = { ...SHAPE, replicas: 80, gpus: 8, nodes: 1 };
      const r = await temporalStatistics(traceWindows(real!, 100), bldmSwapBalancer, deployment);
      const gen = [];
      for (const seed of [1, 2, 3]) {
        const p = CALIBRATED_TEMPORAL_PARAMS;
        const g = generateTemporal(SHAPE, freshBase(SHAPE, p.baseSd, seed), p, {
          seed,
          windows: real!.manifest.steps,
          stepsPerWindow: 1,
        });
        const t = stepTrace(g.loads, real!.manifest.steps);
        gen.push(await temporalStatistics(traceWindows(t, 100), bldmSwapBalancer, deployment));
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
      expect(Math.abs(median(gen.map((s) => s.lag1ShareCorrelation)) - r.lag1ShareCorrelation)).toBeLessThan(
        0.1,
      );
      expect(Math.abs(median(gen.map((s) => s.nextWindow.last)) - r.nextWindow.last)).toBeLessThan(0.03);
      for (const f of ['mean4', 'mean8', 'ewma'] as const) {
        const rg = r.gainPoints[f];
        const gg = median(gen.map((s) => s.gainPoints[f]));
        expect(rg, `real ${f}`).toBeGreaterThan(0);
        expect(gg, `generated ${f}`).toBeGreaterThan(0);
        expect(gg / rg, f).toBeGreaterThan(1 / 3);
        expect(gg / rg, f).toBeLessThan(3);
      }
    });
  },
);
