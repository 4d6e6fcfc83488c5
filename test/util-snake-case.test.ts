import { describe, expect, it } from 'vitest';
import { snakeKeys } from '../src/util/snake-case.js';

describe('snakeKeys on maps keyed by data', () => {
  it('keeps their keys and converts the field names of their values', () => {
    expect(
      snakeKeys({ files: { 'kernels/myKernel.wgsl': { sizeBytes: 3 } }, metrics: { medianMs: 1 } }),
    ).toEqual({ files: { 'kernels/myKernel.wgsl': { size_bytes: 3 } }, metrics: { medianMs: 1 } });
  });

  it("keeps the run report's tallies by failure class, which are a custom evaluator's artifact names", () => {
    const report = {
      iterations: { outcomes: { committed: 2 } },
      accounting: {
        patches: { refused: { 'no-match': 1 }, refused_answers: { 'no-match': 1 } },
        evaluations: { invalid_by_class: { compileError: 2 } },
      },
    };
    expect(snakeKeys(report)).toEqual({
      iterations: { outcomes: { committed: 2 } },
      accounting: {
        patches: { refused: { 'no-match': 1 }, refused_answers: { 'no-match': 1 } },
        evaluations: { invalid_by_class: { compileError: 2 } },
      },
    });
  });

  it('leaves values alone: strings, arrays of numbers, typed arrays, nulls', () => {
    const typed = new Float32Array([1, 2]);
    expect(snakeKeys({ aB: 'camelCase', cD: [1, 2], eF: typed, gH: null })).toEqual({
      a_b: 'camelCase',
      c_d: [1, 2],
      e_f: typed,
      g_h: null,
    });
  });
});
