import { bldmSwapBalancer } from '../eplb/balancers/bldm-swap.js';
import type { Shape } from '../eplb/shape.js';
import { formatTable } from '../util/table.js';
import { freshBase, generateTemporal, type TemporalParams } from './temporal-model.js';
import { EWMA_RATE, type FORECASTS, type TemporalStatistics, temporalStatistics } from './temporal-stats.js';
import type { Trace } from './trace.js';
import { traceWindows } from './windows.js';

/**
 * Real against generated temporal statistics: the real per-step series cut into windows of each
 * size, and `seeds` series of the same shape and length drawn from `params` (fresh base of the
 * fitted spread), placed with bldm-swap on `deployment` and scored on the next window.
 */
export interface TemporalCalibrationRow {
  windowSize: number;
  real: TemporalStatistics;
  generated: TemporalStatistics[];
}

export async function temporalCalibration(
  real: Trace,
  params: TemporalParams,
  deployment: Pick<Shape, 'replicas' | 'gpus' | 'nodes'>,
  opts: { seeds: number[]; windowSizes: number[] },
): Promise<TemporalCalibrationRow[]> {
  const m = real.manifest;
  const shape = { layers: m.layers, experts: m.experts, groups: m.groups, topK: m.topK };
  const eplb: Shape = { ...shape, ...deployment };
  const generated = opts.seeds.map((seed) => {
    const g = generateTemporal(shape, freshBase(shape, params.baseSd, seed), params, {
      seed,
      windows: m.steps,
      stepsPerWindow: 1,
    });
    return { manifest: { ...m, name: `generated-${seed}` }, loads: g.loads } as Trace;
  });
  const rows: TemporalCalibrationRow[] = [];
  for (const w of opts.windowSizes) {
    rows.push({
      windowSize: w,
      real: await temporalStatistics(traceWindows(real, w), bldmSwapBalancer, eplb),
      generated: await Promise.all(
        generated.map((t) => temporalStatistics(traceWindows(t, w), bldmSwapBalancer, eplb)),
      ),
    });
  }
  return rows;
}

const LABELS: Record<string, string> = {
  lag1: 'lag-1 correlation of expert shares',
  last: 'next-window balancedness, last window',
  mean2: 'gain (points): mean of last 2',
  mean4: 'gain (points): mean of last 4',
  mean8: 'gain (points): mean of last 8',
  ewma: `gain (points): EWMA, rate ${EWMA_RATE}`,
};

/** Markdown: one block per window size; generated = median [min, max] over seeds. */
export function temporalCalibrationTable(rows: readonly TemporalCalibrationRow[]): string {
  const out: string[] = [];
  const pick = (s: TemporalStatistics, key: string): number =>
    key === 'lag1'
      ? s.lag1ShareCorrelation
      : key === 'last'
        ? s.nextWindow.last
        : s.gainPoints[key as Exclude<(typeof FORECASTS)[number], 'last'>];
  for (const r of rows) {
    const table = [
      [
        `windows of ${r.windowSize} steps (${r.real.windows} windows)`,
        'real',
        `generated: median [min, max] over ${r.generated.length} seeds`,
      ],
    ];
    for (const key of ['lag1', 'last', 'mean2', 'mean4', 'mean8', 'ewma']) {
      const g = r.generated.map((s) => pick(s, key)).sort((a, b) => a - b);
      const digits = key === 'lag1' || key === 'last' ? 3 : 2;
      const med = g.length % 2 ? g[(g.length - 1) / 2]! : (g[g.length / 2 - 1]! + g[g.length / 2]!) / 2;
      table.push([
        LABELS[key]!,
        pick(r.real, key).toFixed(digits),
        `${med.toFixed(digits)} [${g[0]!.toFixed(digits)}, ${g[g.length - 1]!.toFixed(digits)}]`,
      ]);
    }
    out.push(...formatTable(table, { markdown: true, align: ['left', 'right', 'left'] }), '');
  }
  return out.join('\n');
}
