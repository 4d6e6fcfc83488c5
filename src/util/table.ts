/**
 * The one way human output shows tables and missing values (bench, eval, profile, simulate, the run
 * report): columns padded to their widest cell, numbers right-aligned, and one glyph for "no value".
 */

/** The glyph of a missing value (no GPU time, no next window, no held-out trace, …) in every human output. */
export const NO_VALUE = '—';

/** `x` with `digits` decimals, or NO_VALUE when there is none (null, undefined, NaN, ±∞). */
export function fixed(x: number | null | undefined, digits: number): string {
  return x === null || x === undefined || !Number.isFinite(x) ? NO_VALUE : x.toFixed(digits);
}

/**
 * How a column is aligned: 'left', 'right', or 'auto': right when every cell below the header is a
 * number (digits with an optional sign, $, %, thousands commas) or NO_VALUE, else left.
 */
export type Align = 'left' | 'right' | 'auto';

export interface TableOptions {
  /** Per column; columns past the list take the last entry. Default: the first column left, the rest right. */
  align?: readonly Align[];
  /** Put before each line (e.g. '  ' under a heading). */
  indent?: string;
  /** A Markdown table: `| a | b |` with the alignment row under the header (bench results, the README). */
  markdown?: boolean;
}

const NUMBER = /^[-+$]?[\d.,]+%?$/;

/** The rows (the first is the header) as lines of padded columns, two spaces apart (or Markdown). */
export function formatTable(rows: readonly (readonly string[])[], options: TableOptions = {}): string[] {
  if (rows.length === 0) return [];
  const columns = Math.max(...rows.map((r) => r.length));
  const cell = (r: readonly string[], c: number): string => r[c] ?? '';
  // A row shorter than the header counts as numbers there (it has nothing that is not).
  const numeric = (r: readonly string[], c: number): boolean =>
    r[c] === undefined || r[c] === NO_VALUE || NUMBER.test(r[c]!);
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...rows.map((r) => cell(r, c).length)));
  const spec = options.align ?? ['left', 'right'];
  const right = widths.map((_, c) => {
    const a = spec[Math.min(c, spec.length - 1)]!;
    if (a !== 'auto') return a === 'right';
    return rows.slice(1).every((r) => numeric(r, c));
  });
  const pad = (r: readonly string[]) =>
    widths.map((w, c) => (right[c] ? cell(r, c).padStart(w) : cell(r, c).padEnd(w)));
  const indent = options.indent ?? '';
  if (options.markdown) {
    const line = (r: readonly string[]) => `${indent}| ${pad(r).join(' | ')} |`;
    const rule = `${indent}|${widths.map((w, c) => `${'-'.repeat(w + 1)}${right[c] ? ':' : '-'}`).join('|')}|`;
    return [line(rows[0]!), rule, ...rows.slice(1).map(line)];
  }
  return rows.map((r) => `${indent}${pad(r).join('  ')}`.trimEnd());
}
