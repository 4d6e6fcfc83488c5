/**
 * Time sums by what the time went to, on one injected clock (tests drive it): the controller's
 * overhead (planning, prompting, patching, committing) and its evaluator busy time. A timed call
 * that throws is still counted: the time was spent.
 */
export class TimeSums<K extends string> {
  private readonly ms = new Map<K, number>();
  constructor(private readonly now: () => number) {}

  /** Runs `fn` and adds its duration to `key`. */
  time<T>(key: K, fn: () => T): T {
    const t = this.now();
    try {
      return fn();
    } finally {
      this.add(key, this.now() - t);
    }
  }

  /** Awaits `fn`, adds its duration to `key`, and returns the value with the duration. */
  async timeAsync<T>(key: K, fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
    const t = this.now();
    try {
      const value = await fn();
      const ms = this.now() - t;
      this.add(key, ms);
      return { value, ms };
    } catch (error) {
      this.add(key, this.now() - t);
      throw error;
    }
  }

  add(key: K, ms: number): void {
    this.ms.set(key, (this.ms.get(key) ?? 0) + ms);
  }

  total(key: K): number {
    return this.ms.get(key) ?? 0;
  }
}
