import { describe, expect, it } from 'vitest';
import { errorReport } from '../src/cli/report-error.js';
import { historyUpTo } from '../src/eplb/history.js';
import { assert, check, UserError } from '../src/util/errors.js';

describe('check and assert', () => {
  it('check throws a UserError (one line for the user), assert a plain Error (a bug)', () => {
    expect(() => check(false, 'bad --flag')).toThrow(UserError);
    let thrown: unknown;
    try {
      assert(false, 'broken invariant');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).not.toBeInstanceOf(UserError);
    expect((thrown as Error).name).toBe('Error');
    expect(errorReport(thrown, false)).toMatch(/^adrs: broken invariant\n\(an internal error/);
    expect(() => check(true, 'x')).not.toThrow();
    expect(() => assert(1, 'x')).not.toThrow();
  });

  it('a converted invariant reports as a bug, the input check beside it as the user’s', () => {
    const source = { count: 2, window: () => new Float32Array(1) };
    expect(() => historyUpTo(source, 5, 2)).toThrow(/^window 5 is outside \[0, 2\)$/);
    expect(() => historyUpTo(source, 5, 2)).not.toThrow(UserError);
    expect(() => historyUpTo(source, 1, 0)).toThrow(UserError);
  });
});
