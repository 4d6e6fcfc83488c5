import { fixed, formatTable, NO_VALUE } from '../util/table.js';
import {
  type Distribution,
  distribution,
  type LayerSkew,
  matrixSkew,
  SKEW_KEYS,
  type SkewKey,
} from './skew.js';
import { stepLoads, type Trace } from './trace.js';

/** Skew statistics of a set of traces: per-layer distributions, and how skew spreads across layers. */
export interface TraceStatistics {
  /** Per statistic, its distribution over every (step, layer). */
  layers: Record<SkewKey, Distribution>;
  /** Standard deviation across layers of the per-layer CV, one value per step: the per-layer spread. */
  cvSpread: Distribution;
  /** Correlation of log loads between consecutive steps, per layer (drift; absent for one step). */
  nextStepCorrelation?: Distribution;
  steps: number;
}

export function traceStatistics(traces: readonly Trace[]): TraceStatistics {
  const all: LayerSkew[] = [];
  const spread: number[] = [];
  const corr: number[] = [];
  let steps = 0;
  for (const t of traces) {
    const { layers, experts, groups } = t.manifest;
    for (let s = 0; s < t.manifest.steps; s++) {
      const skews = matrixSkew(stepLoads(t, s), layers, experts, groups);
      all.push(...skews);
      spread.push(std(skews.map((k) => k.cv)));
      steps++;
      if (s > 0) {
        const a = stepLoads(t, s - 1);
        const b = stepLoads(t, s);
        for (let l = 0; l < layers; l++) {
          corr.push(
            logCorrelation(
              a.subarray(l * experts, (l + 1) * experts),
              b.subarray(l * experts, (l + 1) * experts),
            ),
          );
        }
      }
    }
  }
  const layers = {} as Record<SkewKey, Distribution>;
  for (const key of SKEW_KEYS) layers[key] = distribution(all.map((k) => k[key]));
  return {
    layers,
    cvSpread: distribution(spread),
    ...(corr.length ? { nextStepCorrelation: distribution(corr) } : {}),
    steps,
  };
}

function std(xs: readonly number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
}

function logCorrelation(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += Math.log1p(a[i]!) / n;
    mb += Math.log1p(b[i]!) / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = Math.log1p(a[i]!) - ma;
    const y = Math.log1p(b[i]!) - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 1;
}

const LABELS: Record<SkewKey | 'cvSpread' | 'nextStepCorrelation', string> = {
  cv: 'CV of expert loads (per layer)',
  maxMean: 'max / mean expert load (per layer)',
  top8Share: 'top-8 experts share (per layer)',
  gini: 'Gini of expert loads (per layer)',
  groupCv: 'CV of group loads (per layer)',
  cvSpread: 'std of per-layer CV across layers (per step)',
  nextStepCorrelation: 'log-load correlation, step k vs k+1 (per layer)',
};

/** A markdown table of real vs generated statistics (mean / median / p10 / p90). */
export function calibrationTable(real: TraceStatistics, generated: TraceStatistics): string {
  const f = (d: Distribution | undefined) =>
    d ? `${fmt(d.mean)} / ${fmt(d.median)} / ${fmt(d.p10)} / ${fmt(d.p90)}` : `${NO_VALUE} (no time axis)`;
  const ratio = (a?: Distribution, b?: Distribution) => (a && b ? fmt(b.median / a.median) : NO_VALUE);
  const row = (label: string, a: Distribution | undefined, b: Distribution | undefined) => [
    label,
    f(a),
    f(b),
    ratio(a, b),
  ];
  const rows = [
    ['statistic', 'real: mean / median / p10 / p90', 'generated: mean / median / p10 / p90', 'median ratio'],
    ...SKEW_KEYS.map((key) => row(LABELS[key], real.layers[key], generated.layers[key])),
    row(LABELS.cvSpread, real.cvSpread, generated.cvSpread),
    row(LABELS.nextStepCorrelation, real.nextStepCorrelation, generated.nextStepCorrelation),
  ];
  return formatTable(rows, { markdown: true, align: ['left', 'left', 'left', 'right'] }).join('\n');
}

const fmt = (x: number) => fixed(x, 3);
