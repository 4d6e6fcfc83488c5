import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { check, UserError } from '../util/errors.js';
import { warn } from '../util/warn.js';
import type { Shape } from './shape.js';

/**
 * A balancer whose layers are independent: it fills phy2log/logcnt rows [from, to) from the loads.
 * Implementations keep their scratch per instance, so each thread owns one.
 */
export interface LayerKernel {
  run(loads: Float32Array, phy2log: Int32Array, logcnt: Int32Array, from: number, to: number): void;
}

/** What a worker thread receives: the shape and the shared buffers it reads and writes. */
export interface LayerWorkerData {
  shape: Shape;
  loads: SharedArrayBuffer;
  phy2log: SharedArrayBuffer;
  logcnt: SharedArrayBuffer;
  control: SharedArrayBuffer;
  index: number;
  errors: MessagePort;
}

// Control words per worker: the generation to run, the generation done, the layer range, a failure flag.
const GEN = 0;
const DONE = 1;
const FROM = 2;
const TO = 3;
const FAILED = 4;
const WORDS = 8;
/** How long the main thread waits for a worker before declaring it dead. */
const WORKER_TIMEOUT_MS = 10_000;
/** Fewer layers than this per thread do not repay the wake-up of a thread. */
const MIN_LAYERS_PER_THREAD = 8;
const MAX_THREADS = 4;

/**
 * Runs a LayerKernel over all layers on the calling thread plus worker threads that share the input and
 * output buffers (SharedArrayBuffer) and are woken with Atomics — a few microseconds a call, no message
 * passing on the hot path. The calling thread blocks until every range is done, so a call stays a plain
 * synchronous function with the same result as a single-threaded run (layers are independent).
 *
 * Worker threads need the compiled worker module (`workerUrl`, a .js file); when it is absent (running
 * from TypeScript sources under a test runner), or `threads` is 1, everything runs on the calling thread.
 */
export class LayerParallel {
  private readonly loads: Float32Array;
  private readonly phy2log: Int32Array;
  private readonly logcnt: Int32Array;
  private readonly control: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly errorPorts: MessagePort[] = [];
  private readonly ranges: Array<[number, number]>;
  private generation = 0;
  private disposed = false;
  /** Why a worker thread died, if one did: every later call then runs on the calling thread. */
  private broken: string | null = null;

  private constructor(
    private readonly shape: Shape,
    private readonly local: LayerKernel,
    threads: number,
  ) {
    const { layers: L, experts: E, replicas: R } = shape;
    this.loads = new Float32Array(new SharedArrayBuffer(4 * L * E));
    this.phy2log = new Int32Array(new SharedArrayBuffer(4 * L * R));
    this.logcnt = new Int32Array(new SharedArrayBuffer(4 * L * E));
    this.control = new Int32Array(new SharedArrayBuffer(4 * WORDS * Math.max(1, threads - 1)));
    this.ranges = splitRanges(L, threads);
  }

  /** The number of threads worth using for `layers` layers on this machine (ADRS_THREADS overrides). */
  static defaultThreads(layers: number): number {
    const forced = process.env.ADRS_THREADS;
    if (forced !== undefined && forced !== '') {
      const n = Number(forced);
      if (!Number.isInteger(n) || n < 1) {
        throw new UserError(`ADRS_THREADS must be a positive integer, got '${forced}'`);
      }
      return Math.min(n, layers);
    }
    return Math.max(
      1,
      Math.min(availableParallelism(), MAX_THREADS, Math.floor(layers / MIN_LAYERS_PER_THREAD)),
    );
  }

  static async create(
    shape: Shape,
    kernel: (shape: Shape) => LayerKernel,
    workerUrl: URL,
    threads = LayerParallel.defaultThreads(shape.layers),
  ): Promise<LayerParallel> {
    // A thread needs at least one layer; the worker module exists only in the compiled package.
    const wanted = Math.max(1, Math.min(threads, shape.layers));
    const usable = wanted > 1 && existsSync(fileURLToPath(workerUrl)) ? wanted : 1;
    const runner = new LayerParallel(shape, kernel(shape), usable);
    await runner.startWorkers(workerUrl, usable - 1);
    return runner;
  }

  get threads(): number {
    return this.ranges.length;
  }

  private async startWorkers(url: URL, count: number): Promise<void> {
    const started: Array<Promise<void>> = [];
    for (let i = 0; i < count; i++) {
      const channel = new MessageChannel();
      const data: LayerWorkerData = {
        shape: this.shape,
        loads: this.loads.buffer as SharedArrayBuffer,
        phy2log: this.phy2log.buffer as SharedArrayBuffer,
        logcnt: this.logcnt.buffer as SharedArrayBuffer,
        control: this.control.buffer as SharedArrayBuffer,
        index: i,
        errors: channel.port2,
      };
      const worker = new Worker(url, { workerData: data, transferList: [channel.port2] });
      // Idle workers must not keep the process alive.
      worker.unref();
      this.workers.push(worker);
      this.errorPorts.push(channel.port1);
      started.push(
        new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        }),
      );
    }
    await Promise.all(started);
    // From now on a thread that dies (an uncaught error, out of memory) degrades the runner to the
    // calling thread instead of stalling every later call.
    for (const worker of this.workers) {
      worker.removeAllListeners('error');
      worker.on('error', (error: Error) => this.markBroken(error.message));
      worker.on('exit', (code) => this.markBroken(`exited with code ${code}`));
    }
  }

  private markBroken(reason: string): void {
    if (this.disposed || this.broken) return;
    this.broken = reason;
    warn(`a balancer worker thread stopped (${reason}); continuing on one thread`);
  }

  /** Runs every layer; returns fresh (unshared) phy2log and logcnt arrays. */
  run(loads: Float32Array): { phy2log: Int32Array; logcnt: Int32Array } {
    const { control, ranges } = this;
    const { layers: L, experts: E } = this.shape;
    check(loads.length === L * E, `loads must hold ${L}×${E} = ${L * E} values, got ${loads.length}`);
    if (this.broken && this.workers.length > 0) this.stopWorkers();
    if (this.workers.length === 0) {
      const phy2log = new Int32Array(this.phy2log.length);
      const logcnt = new Int32Array(this.logcnt.length);
      this.local.run(loads, phy2log, logcnt, 0, this.shape.layers);
      return { phy2log, logcnt };
    }
    this.loads.set(loads);
    const gen = ++this.generation;
    for (let w = 0; w < this.workers.length; w++) {
      const c = w * WORDS;
      const [from, to] = ranges[w + 1]!;
      control[c + FROM] = from;
      control[c + TO] = to;
      Atomics.store(control, c + GEN, gen);
      Atomics.notify(control, c + GEN);
    }
    const [from, to] = ranges[0]!;
    this.local.run(this.loads, this.phy2log, this.logcnt, from, to);
    for (let w = 0; w < this.workers.length; w++) this.awaitWorker(w, gen);
    return { phy2log: this.phy2log.slice(), logcnt: this.logcnt.slice() };
  }

  private awaitWorker(w: number, gen: number): void {
    const c = w * WORDS;
    const deadline = performance.now() + WORKER_TIMEOUT_MS;
    let done = Atomics.load(this.control, c + DONE);
    while (done !== gen) {
      if (performance.now() > deadline) {
        this.markBroken('it stopped answering');
        throw new Error('a balancer worker thread stopped answering');
      }
      Atomics.wait(this.control, c + DONE, done, 50);
      done = Atomics.load(this.control, c + DONE);
    }
    if (Atomics.load(this.control, c + FAILED)) {
      Atomics.store(this.control, c + FAILED, 0);
      const message = receiveMessageOnPort(this.errorPorts[w]!)?.message;
      throw new Error(`balancer worker thread failed: ${String(message ?? 'unknown error')}`);
    }
  }

  dispose(): void {
    this.disposed = true;
    this.stopWorkers();
  }

  private stopWorkers(): void {
    for (let w = 0; w < this.workers.length; w++) {
      Atomics.store(this.control, w * WORDS + GEN, -1);
      Atomics.notify(this.control, w * WORDS + GEN);
      this.errorPorts[w]!.close();
      void this.workers[w]!.terminate();
    }
    this.workers.length = 0;
    this.errorPorts.length = 0;
  }
}

/**
 * The worker thread's loop (call it from the worker module): run the assigned range each time the
 * generation moves, until it becomes −1.
 */
export function serveLayers(data: LayerWorkerData, kernel: LayerKernel, ready: () => void): void {
  const control = new Int32Array(data.control);
  const loads = new Float32Array(data.loads);
  const phy2log = new Int32Array(data.phy2log);
  const logcnt = new Int32Array(data.logcnt);
  const c = data.index * WORDS;
  let seen = 0;
  ready();
  for (;;) {
    Atomics.wait(control, c + GEN, seen);
    const gen = Atomics.load(control, c + GEN);
    if (gen < 0) return;
    if (gen === seen) continue;
    seen = gen;
    try {
      kernel.run(loads, phy2log, logcnt, control[c + FROM]!, control[c + TO]!);
    } catch (error) {
      Atomics.store(control, c + FAILED, 1);
      data.errors.postMessage(error instanceof Error ? error.message : String(error));
    }
    Atomics.store(control, c + DONE, gen);
    Atomics.notify(control, c + DONE);
  }
}

/** Splits [0, layers) into `parts` contiguous ranges of near-equal size. */
export function splitRanges(layers: number, parts: number): Array<[number, number]> {
  const n = Math.max(1, Math.min(parts, layers));
  return Array.from({ length: n }, (_, i) => [
    Math.floor((i * layers) / n),
    Math.floor(((i + 1) * layers) / n),
  ]);
}
