import { describe, expect, it } from 'vitest';
import { brokerResultLines } from '../src/cli/commands/eval.js';
import { NO_VALUE } from '../src/util/table.js';

describe('adrs eval --broker, a verdict as text', () => {
  it('shows the score, the worker and every artifact line, and the shared glyph for a missing value', () => {
    const lines = brokerResultLines(
      'cands/a',
      {
        valid: false,
        stage: 1,
        score: null,
        metrics: { adrs_score: 0.5, median_ms: 1.25 },
        artifacts: { wgsl: 'line 1\nline 2' },
        adapter: 'llvmpipe',
        worker: 'host-1',
      },
      'synthetic-v3-windows',
    );
    expect(lines).toEqual([
      'cands/a: INVALID (stage 1) on synthetic-v3-windows, llvmpipe (worker host-1)',
      `  score: ${NO_VALUE}   adrs 0.500, default ${NO_VALUE}; median 1.250 ms per call`,
      '  wgsl:',
      '    line 1',
      '    line 2',
    ]);
  });
});
