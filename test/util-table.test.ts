import { describe, expect, it } from 'vitest';
import { fixed, formatTable, NO_VALUE } from '../src/util/table.js';

describe('formatTable', () => {
  const rows = [
    ['kernel', 'items', 'GPU ms'],
    ['route-sim', '131072 tokens', '1.25'],
    ['smoke', '4 floats', NO_VALUE],
  ];

  it('pads columns to their widest cell: the first left, the rest right, two spaces apart', () => {
    expect(formatTable(rows)).toEqual([
      'kernel             items  GPU ms',
      'route-sim  131072 tokens    1.25',
      'smoke           4 floats       —',
    ]);
  });

  it('takes an alignment per column (the last repeating) and an indent', () => {
    expect(formatTable(rows, { align: ['left', 'left', 'right'], indent: '  ' })).toEqual([
      '  kernel     items          GPU ms',
      '  route-sim  131072 tokens    1.25',
      '  smoke      4 floats            —',
    ]);
  });

  it("'auto' right-aligns the columns of numbers (the missing-value glyph counts), header included", () => {
    const t = formatTable(
      [
        ['id', 'score', 'model'],
        ['p1', '0.5000', 'qwen'],
        ['p22', NO_VALUE, 'a-long-name'],
        ['p3', '$1,234', ''],
      ],
      { align: ['auto'] },
    );
    expect(t).toEqual(['id    score  model', 'p1   0.5000  qwen', 'p22       —  a-long-name', 'p3   $1,234']);
  });

  it('writes Markdown with the alignment row under the header', () => {
    expect(formatTable(rows, { align: ['left', 'left', 'right'], markdown: true })).toEqual([
      '| kernel    | items         | GPU ms |',
      '|-----------|---------------|-------:|',
      '| route-sim | 131072 tokens |   1.25 |',
      '| smoke     | 4 floats      |      — |',
    ]);
  });

  it('has nothing to show for no rows', () => {
    expect(formatTable([])).toEqual([]);
  });
});

describe('fixed', () => {
  it('shows a number with its decimals and every kind of missing value as the one glyph', () => {
    expect(fixed(0.123456, 4)).toBe('0.1235');
    for (const x of [null, undefined, Number.NaN, Number.POSITIVE_INFINITY])
      expect(fixed(x, 2)).toBe(NO_VALUE);
    expect(NO_VALUE).toBe('—');
  });
});
