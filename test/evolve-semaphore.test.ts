import { describe, expect, it } from 'vitest';
import { Semaphore } from '../src/evolve/llm/semaphore.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('Semaphore', () => {
  it('hands a released slot to the waiter, so a caller arriving before the waiter resumes cannot exceed the limit', async () => {
    const gate = new Semaphore(2);
    let running = 0;
    let peak = 0;
    const task = (done: Promise<void>) => async () => {
      running++;
      peak = Math.max(peak, running);
      await done;
      running--;
    };
    const h1 = deferred();
    const h2 = deferred();
    const never = deferred();
    // Two holders fill the gate; two waiters queue behind them.
    const holder1 = gate.run(task(h1.promise));
    const holder2 = gate.run(task(h2.promise));
    const waiters = [gate.run(task(never.promise)), gate.run(task(never.promise))];
    // A third caller arrives as soon as holder 1 is done: in the microtask after holder 1's
    // release, before holder 2's waiter has resumed.
    const late = holder1.then(() => gate.run(task(Promise.resolve())));
    h1.resolve();
    h2.resolve();
    await holder2;
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(peak).toBe(2);
    expect(gate.busy).toBe(2);
    // The late caller queues behind the two waiters, which now hold both slots.
    expect(running).toBe(2);
    never.resolve();
    await Promise.all([...waiters, late]);
    expect(gate.busy).toBe(0);
    expect(peak).toBe(2);
  });

  it('serves waiters first come, first served and frees the slot when the task throws', async () => {
    const gate = new Semaphore(1);
    const order: string[] = [];
    const hold = deferred();
    const first = gate.run(async () => {
      await hold.promise;
      throw new Error('boom');
    });
    const rest = ['a', 'b', 'c'].map((name) =>
      gate.run(async () => {
        order.push(name);
      }),
    );
    hold.resolve();
    await expect(first).rejects.toThrow('boom');
    await Promise.all(rest);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(gate.busy).toBe(0);
  });
});
