/**
 * Per-operation abort signals under a long-lived stop signal.
 *
 * A run-wide stop signal lives as long as the run, so anything that listens on it directly and forgets to
 * remove its listener piles up over thousands of model calls. `AbortSignal.any` is no cure on Node 20: each
 * dependent signal stays registered with its source for the source's lifetime (and stays strongly held while
 * it has listeners). So an operation gets its own signal here, and whatever linked it to the parent is undone
 * when the operation settles.
 */

/** A signal that aborts when `parent` does (at once if it already has); `release()` unlinks it from the parent. */
export function linkedSignal(parent?: AbortSignal): { signal: AbortSignal; release: () => void } {
  const own = new AbortController();
  if (!parent) return { signal: own.signal, release: () => {} };
  if (parent.aborted) {
    own.abort(parent.reason);
    return { signal: own.signal, release: () => {} };
  }
  const forward = (): void => own.abort(parent.reason);
  parent.addEventListener('abort', forward, { once: true });
  return { signal: own.signal, release: () => parent.removeEventListener('abort', forward) };
}

/**
 * One stop for many concurrent operations. Each `child()` is aborted with the fan-out but is not a listener on
 * any shared signal: the fan-out keeps the live children itself and drops each on `release()`. So however many
 * calls are in flight at once, the shared signal carries no listeners (no MaxListenersExceededWarning to hide).
 */
export class AbortFanout {
  private readonly root = new AbortController();
  private readonly live = new Set<AbortController>();

  get signal(): AbortSignal {
    return this.root.signal;
  }

  /** Operations in flight (children not yet released); 0 once every operation has settled. */
  get inFlight(): number {
    return this.live.size;
  }

  abort(reason?: unknown): void {
    if (this.root.signal.aborted) return;
    this.root.abort(reason);
    for (const c of this.live) c.abort(this.root.signal.reason);
    this.live.clear();
  }

  child(): { signal: AbortSignal; release: () => void } {
    const c = new AbortController();
    if (this.root.signal.aborted) c.abort(this.root.signal.reason);
    else this.live.add(c);
    return { signal: c.signal, release: () => this.live.delete(c) };
  }
}
