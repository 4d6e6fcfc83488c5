/**
 * Held-out quality and time compared separately, each against the noise measured on the same
 * evaluations: re-scoring the same program gives a slightly different time (and, relabelled, a
 * slightly different balancedness), and a report must not present that as a gain or a loss.
 */
export interface HeldOutDelta {
  metric: string;
  seed: number | null;
  best: number | null;
  /** best − seed. */
  delta: number | null;
  /** The difference a re-measurement of one program shows (see heldoutComparison). */
  noise: number | null;
  /** 'better' / 'worse' only when |delta| exceeds the noise; 'noise' otherwise. */
  verdict: 'better' | 'worse' | 'noise' | 'unknown';
}

export interface HeldOutComparison {
  /** The best is the seed itself: every held-out difference is measurement noise. */
  same_program: boolean;
  quality: HeldOutDelta;
  time: HeldOutDelta;
}

const QUALITY = 'balancedness_next';
const TIME = 'median_ms';

/**
 * Quality noise: how far a program's balancedness moves under relabelling
 * (|balancedness_next − balancedness_next_varied|, the larger of seed and best).
 * Time noise: the spread of its call times (p95 − median, the larger of the two), since a
 * repeated measurement of the median moves within that spread on a shared machine.
 */
export function heldoutComparison(
  seed: Record<string, number>,
  best: Record<string, number>,
  sameProgram: boolean,
): HeldOutComparison {
  const num = (m: Record<string, number>, k: string): number | null =>
    typeof m[k] === 'number' && Number.isFinite(m[k]) ? m[k] : null;
  const spread = (m: Record<string, number>, hi: string, lo: string): number | null => {
    const a = num(m, hi);
    const b = num(m, lo);
    return a === null || b === null ? null : Math.abs(a - b);
  };
  const larger = (x: number | null, y: number | null): number | null =>
    x === null ? y : y === null ? x : Math.max(x, y);
  const delta = (metric: string, noise: number | null, higherIsBetter: boolean): HeldOutDelta => {
    const s = num(seed, metric);
    const b = num(best, metric);
    const d = s === null || b === null ? null : b - s;
    let verdict: HeldOutDelta['verdict'] = 'unknown';
    if (d !== null) {
      if (sameProgram || (noise !== null && Math.abs(d) <= noise)) verdict = 'noise';
      else if (noise !== null) verdict = d > 0 === higherIsBetter ? 'better' : 'worse';
    }
    return { metric, seed: s, best: b, delta: d, noise, verdict };
  };
  return {
    same_program: sameProgram,
    quality: delta(
      QUALITY,
      larger(
        spread(seed, QUALITY, 'balancedness_next_varied'),
        spread(best, QUALITY, 'balancedness_next_varied'),
      ),
      true,
    ),
    time: delta(TIME, larger(spread(seed, 'p95_ms', TIME), spread(best, 'p95_ms', TIME)), false),
  };
}

/** One line per side: "quality +0.0123 (better; noise ±0.0004)", "time −0.2 ms (within noise ±1.3 ms)". */
export function comparisonText(c: HeldOutComparison, trace = 'held-out'): string[] {
  const fmt = (d: HeldOutDelta, digits: number, unit: string): string => {
    if (d.delta === null) return `${d.metric} not recorded`;
    const sign = d.delta >= 0 ? '+' : '−';
    const v = `${sign}${Math.abs(d.delta).toFixed(digits)}${unit}`;
    const noise = d.noise === null ? '' : `±${d.noise.toFixed(digits)}${unit}`;
    if (c.same_program) return `${v} (same program re-measured: noise)`;
    if (d.verdict === 'noise') return `${v} (within noise ${noise})`;
    if (d.verdict === 'unknown') return `${v} (noise not measured)`;
    return `${v} (${d.verdict}; noise ${noise})`;
  };
  return [
    `${trace} quality (${c.quality.metric}) best − seed ${fmt(c.quality, 4, '')}`,
    `${trace} time (${c.time.metric}) best − seed ${fmt(c.time, 3, ' ms')}`,
  ];
}
