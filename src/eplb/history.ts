import { assert, check } from '../util/errors.js';
import { DEFAULT_HISTORY } from './balancer.js';

/** Something that holds windows in time order: count, and window k's loads. */
export interface WindowSource {
  count: number;
  window(k: number): Float32Array;
}

/**
 * The history a balancer gets for window k: windows max(0, k − H + 1) … k, oldest first, the latest
 * (window k) last — fewer than H at the start of a series.
 */
export function historyUpTo(source: WindowSource, k: number, H = DEFAULT_HISTORY): Float32Array[] {
  check(Number.isInteger(H) && H >= 1, `history must be a positive integer, got ${H}`);
  // Callers pick k from the series they hold (a --window is checked where it is read).
  assert(Number.isInteger(k) && k >= 0 && k < source.count, `window ${k} is outside [0, ${source.count})`);
  const out: Float32Array[] = [];
  for (let j = Math.max(0, k - H + 1); j <= k; j++) out.push(source.window(j));
  return out;
}

/**
 * Checks a history against the latest loads: at least one window, each of `size` values, the last
 * equal to `loads` (the contract every caller keeps); returns it, or [loads] when it is absent.
 */
export function checkedHistory(
  loads: Float32Array,
  history: readonly Float32Array[] | undefined,
  size: number,
): readonly Float32Array[] {
  if (history === undefined) return [loads];
  check(history.length >= 1, 'history must hold at least the latest window');
  for (let t = 0; t < history.length; t++) {
    check(
      history[t]!.length === size,
      `history window ${t} must hold ${size} values, got ${history[t]!.length}`,
    );
  }
  const last = history[history.length - 1]!;
  if (last !== loads) {
    for (let i = 0; i < size; i++) {
      // Object.is: NaN-safe and exact; the latest window is the loads, value for value.
      assert(Object.is(last[i], loads[i]), 'the last history window must hold the same values as loads');
    }
  }
  return history;
}
