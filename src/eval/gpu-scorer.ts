import { noneBalancer } from '../eplb/balancers/baselines.js';
import type { Placement } from '../eplb/placement.js';
import type { Shape } from '../eplb/shape.js';
import { acquireGpu, type GpuContext } from '../gpu/device.js';
import { type PairMetrics, PlacementEvaluator } from '../sim/placement-eval.js';
import { RouteSimulator } from '../sim/route-sim.js';
import type { Trace } from '../trace/trace.js';
import { assert } from '../util/errors.js';

/** (trace, shape) evaluators kept with their windows on the GPU; the least recently used goes first. */
const MAX_CACHED = 4;

interface Entry {
  trace: Trace;
  key: string;
  evaluator: PlacementEvaluator;
  /** Leading windows of the trace resident on the GPU. */
  windows: number;
  /** The route simulator of this shape (made on first use) and the `none` placement's time per (window, tokens). */
  simulator?: Promise<RouteSimulator>;
  noneMs: Map<string, number>;
}

/** Seed of the MoE-time simulation's token sampling: the same tokens for every candidate, so their times compare. */
const MOE_SEED = 7;

/**
 * The harness's own metrics, computed on the parent's GPU device by the placement evaluator
 * (src/sim/placement-eval.ts): one device for the whole pool, one evaluator per (trace, shape) with
 * the trace's windows uploaded once, and evaluate calls serialized (they must not overlap). Callers
 * validate placements (placementProblem) before they get here. A lost device (a candidate's hang
 * can reset a real GPU) is replaced and the call retried once.
 */
export class GpuScorer {
  private entries: Entry[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private lost = false;
  private closed = false;

  private constructor(
    private gpu: GpuContext,
    private readonly adapter: string | undefined,
  ) {
    this.watch();
  }

  static async create(adapter?: string): Promise<GpuScorer> {
    return new GpuScorer(await acquireGpu(adapter !== undefined ? { adapter } : {}), adapter);
  }

  get adapterName(): string {
    return this.gpu.info.name;
  }

  /**
   * Metrics of each (placement, window) pair; windows index `windows`, the trace's leading windows
   * (evalWindows(trace, n)), which stay on the GPU for later calls on the same trace and shape.
   */
  score(
    trace: Trace,
    windows: readonly Float32Array[],
    shape: Shape,
    placements: readonly Placement[],
    pairs: ReadonlyArray<readonly [number, number]>,
  ): Promise<PairMetrics[]> {
    return this.exclusive(async () => {
      try {
        return await this.scoreNow(trace, windows, shape, placements, pairs);
      } catch (error) {
        if (!this.lost || this.closed) throw error;
        await this.replaceDevice();
        return await this.scoreNow(trace, windows, shape, placements, pairs);
      }
    });
  }

  /**
   * Modelled MoE time (ms, all layers; src/sim route simulator with vLLM's round-robin replica
   * choice) of `tokens` tokens per layer routed by window w through placement p, for each [p, w]
   * pair, and the same for the load-unaware `none` placement (cached per window).
   */
  moeTimes(
    trace: Trace,
    windows: readonly Float32Array[],
    shape: Shape,
    placements: readonly Placement[],
    pairs: ReadonlyArray<readonly [number, number]>,
    tokens: number,
    topK: number,
    topKGroups: number,
  ): Promise<Array<{ ms: number; noneMs: number }>> {
    return this.exclusive(async () => {
      assert(!this.closed, 'the GPU scorer is closed');
      const entry = await this.entry(trace, shape, placements.length, pairs.length);
      entry.simulator ??= RouteSimulator.create(this.gpu, shape, { maxTokens: 1 << 24 });
      const sim = await entry.simulator;
      const none = await noneBalancer.prepare(shape, {});
      const run = async (placement: Placement, w: number) => {
        const r = await sim.run({
          loads: windows[w]!,
          placement,
          tokens,
          topK,
          topKGroups,
          policy: 'round-robin',
          seed: MOE_SEED + w,
        });
        return r.totalTimeUs / 1000;
      };
      const out: Array<{ ms: number; noneMs: number }> = [];
      for (const [p, w] of pairs) {
        const key = `${w}/${tokens}`;
        let noneMs = entry.noneMs.get(key);
        if (noneMs === undefined) {
          noneMs = await run(await none.rebalance(windows[w]!), w);
          entry.noneMs.set(key, noneMs);
        }
        out.push({ ms: await run(placements[p]!, w), noneMs });
      }
      return out;
    });
  }

  /** Destroys the evaluators and the device (the process can then exit). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => undefined);
    this.dropEntries();
    this.gpu.destroy();
  }

  private async scoreNow(
    trace: Trace,
    windows: readonly Float32Array[],
    shape: Shape,
    placements: readonly Placement[],
    pairs: ReadonlyArray<readonly [number, number]>,
  ): Promise<PairMetrics[]> {
    assert(!this.closed, 'the GPU scorer is closed');
    const entry = await this.entry(trace, shape, placements.length, pairs.length);
    if (entry.windows < windows.length) {
      const size = shape.layers * shape.experts;
      const all = new Float32Array(windows.length * size);
      windows.forEach((w, i) => {
        all.set(w, i * size);
      });
      entry.evaluator.setWindows(all);
      entry.windows = windows.length;
    }
    return entry.evaluator.evaluate(placements, pairs, { perLayer: false });
  }

  private async entry(trace: Trace, shape: Shape, placements: number, pairs: number): Promise<Entry> {
    const key = `${shape.layers}/${shape.experts}/${shape.groups}/${shape.replicas}/${shape.nodes}/${shape.gpus}`;
    const i = this.entries.findIndex((e) => e.trace === trace && e.key === key);
    if (i >= 0) {
      const [hit] = this.entries.splice(i, 1);
      this.entries.push(hit!);
      return hit!;
    }
    const evaluator = await PlacementEvaluator.create(this.gpu, shape, {
      placements: Math.max(1, placements),
      windows: 1,
      pairs: Math.max(1, pairs),
    });
    const entry: Entry = { trace, key, evaluator, windows: 0, noneMs: new Map() };
    this.entries.push(entry);
    while (this.entries.length > MAX_CACHED) destroyEntry(this.entries.shift()!);
    return entry;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private watch(): void {
    const gpu = this.gpu;
    void gpu.device.lost.then((info) => {
      if (info.reason !== 'destroyed' && gpu === this.gpu) this.lost = true;
    });
  }

  private async replaceDevice(): Promise<void> {
    this.dropEntries();
    try {
      this.gpu.destroy();
    } catch {}
    this.gpu = await acquireGpu(this.adapter !== undefined ? { adapter: this.adapter } : {});
    this.lost = false;
    this.watch();
  }

  private dropEntries(): void {
    for (const e of this.entries) destroyEntry(e);
    this.entries = [];
  }
}

function destroyEntry(e: Entry): void {
  e.evaluator.destroy();
  void e.simulator?.then(
    (s) => s.destroy(),
    () => undefined,
  );
}
