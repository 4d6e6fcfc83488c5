/**
 * The gpu_wait_ms part of a call's time split (CallSplit in candidate-api.ts): how long the call
 * was waiting for the GPU, from wrappers around the WebGPU methods that wait.
 */

/** Wall time during which a GPU wait (mapAsync, onSubmittedWorkDone) was pending, per call. */
export interface GpuWaitClock {
  begin(): void;
  /** Ms waited since begin(). */
  end(): number;
}

/**
 * The accounting behind the wait clock, on an injected clock: enter/leave bracket one wait; the
 * time counted between begin() and end() is the union of the wait intervals (overlapping waits
 * count once), clipped to [begin, end].
 */
export function waitAccounting(now: () => number): GpuWaitClock & { enter(): void; leave(): void } {
  let pending = 0;
  let since = 0;
  let total = 0;
  let active = false;
  return {
    enter() {
      if (pending++ === 0) since = now();
    },
    leave() {
      if (pending === 0) return;
      if (--pending === 0 && active) total += now() - since;
    },
    begin() {
      total = 0;
      active = true;
      since = now();
    },
    end() {
      if (pending > 0 && active) {
        const t = now();
        total += t - since;
        since = t;
      }
      active = false;
      return total;
    },
  };
}

let installedClock: GpuWaitClock | null = null;

/**
 * Wraps GPUBuffer.prototype.mapAsync and GPUQueue.prototype.onSubmittedWorkDone (once per process)
 * to time how long a wait was pending (waitAccounting). The worker installs it before it captures
 * onSubmittedWorkDone for its own wait and before the prototypes are frozen (trackGpuWork then
 * wraps these wrappers). Everything it calls is captured here, before candidate code exists; its
 * figures are diagnostics, never charged.
 */
export function installGpuWaitTiming(): GpuWaitClock {
  if (installedClock) return installedClock;
  const hr = process.hrtime.bigint;
  const toNumber = Number;
  const apply = Reflect.apply;
  const then = Promise.prototype.then;
  const account = waitAccounting(() => toNumber(hr()) / 1e6);
  const { enter, leave } = account;
  const wrap = (proto: object | undefined, name: string): void => {
    const original = proto ? (Reflect.get(proto, name) as unknown) : undefined;
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      const p = apply(original as (...a: unknown[]) => unknown, this, args);
      enter();
      try {
        apply(then, p, [leave, leave]);
      } catch {
        leave();
      }
      return p;
    };
    Object.defineProperty(proto, name, { value: wrapped, writable: true, configurable: true });
  };
  const g = globalThis as unknown as Record<string, { prototype: object } | undefined>;
  wrap(g.GPUBuffer?.prototype, 'mapAsync');
  wrap(g.GPUQueue?.prototype, 'onSubmittedWorkDone');
  installedClock = { begin: account.begin, end: account.end };
  return installedClock;
}
