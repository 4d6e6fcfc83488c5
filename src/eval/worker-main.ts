/**
 * The sandboxed worker process: holds one Dawn device and runs one candidate's code under Node's
 * permission model, inside bubblewrap where available (see worker-process.ts and sandbox.ts). This
 * file is bundled by esbuild into a single ESM file (worker-bundle.ts) so it runs the same from src/
 * (tests) and dist/ (CLI).
 *
 * Everything the harness relies on is captured before candidate code loads: the standard streams
 * are replaced first (worker-stdio.ts, imported first), the channel's read and write functions and
 * the framing's intrinsics when their modules load (worker-channel.ts, framing.ts), the clock, the
 * queue's onSubmittedWorkDone and the intrinsics the timing path calls here; the JS intrinsics are
 * deep-frozen (harden.ts), the WebGPU prototypes frozen (after wrapping the methods that start GPU
 * work, see trackGpuWork), and once Dawn is loaded process.dlopen, kill, _kill, binding,
 * getBuiltinModule, fetch and WebSocket are locked (lockDown). Code arrives once (`load`); a second
 * `load` is refused. The parent still bounds every time from its own clock, so a candidate that
 * subverts this side gains nothing.
 */
import './worker-stdio.js';
import { acquireGpu, type GpuContext } from '../gpu/device.js';
import { compileModule, ShaderCompileError } from '../gpu/kernels.js';
import type { CandidateContext, Rebalance, RebalanceInput } from './candidate-api.js';
import {
  type CandidateRuntime,
  candidateInput,
  createCandidateRuntime,
  type GpuWaitClock,
  installGpuWaitTiming,
} from './candidate-context.js';
import { installGpuMemoryCap } from './gpu-memory.js';
import { hardenIntrinsics } from './harden.js';
import {
  CANDIDATE_SOURCE_URL,
  type Failure,
  type FromWorker,
  GPU_MEMORY_EXIT,
  type ToWorker,
} from './protocol.js';
import { receive, send as sendFrame } from './worker-channel.js';

const proc = process;
const exit = process.exit.bind(process);
const clock = process.hrtime.bigint;
const toNumber = Number;
const apply = Reflect.apply;
const isView = ArrayBuffer.isView;
const typedArrayProto = Object.getPrototypeOf(Int32Array.prototype) as object;
const tagOf = Object.getOwnPropertyDescriptor(typedArrayProto, Symbol.toStringTag)!.get!;
const lengthOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'length')!.get!;
const Int32 = Int32Array;
const int32Set = Int32Array.prototype.set;
const stringOf = String;
const slice = String.prototype.slice;
const freeze = Object.freeze;
const PromiseOf = Promise;
const arrayPush = Array.prototype.push;
const promiseThen = Promise.prototype.then;

const send = (message: FromWorker): void => {
  sendFrame(message as unknown as Record<string, unknown>);
};
const locked = (name: PropertyKey, value: unknown): void => {
  Object.defineProperty(process, name, { value, writable: false, enumerable: false, configurable: false });
};
const refuse = (what: string) => () => {
  throw new Error(`candidates may not ${what}`);
};
// Nothing of the harness's flows through these any more, but they stay the harness's.
locked('nextTick', process.nextTick);
locked('emit', process.emit);
locked('_getActiveHandles', refuse('list the process handles'));
locked('_getActiveRequests', refuse('list the process requests'));
/** process.on/addListener/prependListener('message', …) are refused: there is no channel for candidates. */
for (const name of ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener']) {
  const original = (process as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
  locked(name, function (this: unknown, event: unknown, ...rest: unknown[]): unknown {
    if (event === 'message' || event === 'internalMessage' || event === 'disconnect')
      throw new Error('candidates may not listen on the harness channel');
    return apply(original, this, [event, ...rest]);
  });
}

let gpu: GpuContext;
let onDone: () => Promise<undefined>;
/** Set by every call that can start GPU work (see trackGpuWork); cleared once that work is done. */
let gpuBusy = false;
let rebalance: Rebalance | null = null;
let ctx: CandidateContext | null = null;
/** The context's harness side (candidate-context.ts) and the GPU wait clock of the time split. */
let runtime: CandidateRuntime | null = null;
let waits: GpuWaitClock;

async function start(): Promise<void> {
  const adapter = process.argv[2] || undefined;
  gpu = await acquireGpu(adapter ? { adapter } : {});
  // Before onSubmittedWorkDone is captured below and before the prototypes are frozen.
  waits = installGpuWaitTiming();
  const queueDone = GPUQueue.prototype.onSubmittedWorkDone;
  const queue = gpu.device.queue;
  onDone = () => apply(queueDone, queue, []) as Promise<undefined>;
  trackGpuWork();
  capGpuMemory();
  hardenIntrinsics();
  lockDown();
  send({ type: 'ready', adapter: gpu.info.name, uid: proc.getuid?.() ?? -1 });
  await serve();
}

/**
 * Requests, one at a time, until the harness closes the channel. The read blocks: between calls no
 * candidate code (timers, promises) runs, so the only time a candidate gets is inside its calls.
 */
async function serve(): Promise<void> {
  for (;;) {
    await settleAfterReply();
    // No await between this clock read and the blocking read: no candidate code runs unclocked.
    if (repliedAt !== null) carriedMs += toNumber(clock() - repliedAt) / 1e6;
    repliedAt = null;
    let m: Record<string, unknown> | null;
    try {
      m = receive();
    } catch (error) {
      send({ type: 'fatal', message: `harness channel: ${describe(error)}` });
      exit(73);
      return;
    }
    // The harness is gone: so is the worker (bubblewrap also kills it with its parent).
    if (m === null) {
      exit(72);
      return;
    }
    try {
      await handle(m as unknown as ToWorker);
    } catch (error) {
      send({ type: 'fatal', message: `harness error: ${describe(error)}` });
    }
  }
}

/** When the last reply to a candidate-code request went out (null: none since the last call began). */
let repliedAt: bigint | null = null;
/** Time candidate code ran after the last reply, ms: charged to the next call. */
let carriedMs = 0;

/**
 * Candidate code can outlive its call: microtasks queued behind the harness's own continuations run
 * after the reply is sent, and GPU work they submit runs while the parent is between calls. Before
 * the next read (which blocks: nothing runs after it), the worker waits for that GPU work and
 * carries everything since the reply, on the harness's clock, into the next call's time (serve).
 * For a candidate whose code is done when its call is, this is two promise hops.
 */
async function settleAfterReply(): Promise<void> {
  if (repliedAt !== null) await settleGpuWork();
}

/**
 * Waits until the GPU work and the pipeline compilations started so far are done, including those
 * that candidate code (callbacks, microtasks) starts meanwhile: the flag is cleared before each
 * wait, so a submission during it makes one more.
 */
async function settleGpuWork(): Promise<void> {
  while (gpuBusy || compiling > 0) {
    if (gpuBusy) {
      gpuBusy = false;
      await onDone();
    } else await compiled();
  }
}

/**
 * Pipeline compilations (createComputePipelineAsync, createRenderPipelineAsync) not yet settled.
 * Dawn compiles them on its own threads: one left running when a call ends would compile while
 * the worker waits for its next request (no candidate code runs then, but Dawn's threads do), and
 * the next call would find it done, uncharged.
 */
let compiling = 0;
let compiledWaiters: Array<() => void> = [];
const compiled = (): Promise<void> =>
  new PromiseOf<void>((resolve) => {
    apply(arrayPush, compiledWaiters, [resolve]);
  });

/** Whether the candidate's code has arrived (it arrives once). */
let loaded = false;

/**
 * Wraps every WebGPU method that starts work on the device's queue so the harness knows whether a
 * call left GPU work behind: only then does the timed region wait for onSubmittedWorkDone (an idle
 * wait still costs a driver round trip). Installed before the prototypes are frozen, so candidates
 * can neither unwrap them nor reach the originals; work started between calls (timers) is waited
 * for, and charged, at the end of the next call.
 */
function trackGpuWork(): void {
  const wrap = (proto: object | undefined, name: string): void => {
    const original = proto ? (Reflect.get(proto, name) as unknown) : undefined;
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      gpuBusy = true;
      return apply(original as (...a: unknown[]) => unknown, this, args);
    };
    Object.defineProperty(proto, name, { value: wrapped, writable: false, configurable: false });
  };
  const g = globalThis as unknown as Record<string, { prototype: object } | undefined>;
  for (const name of ['submit', 'writeBuffer', 'writeTexture', 'copyExternalImageToTexture'])
    wrap(g.GPUQueue?.prototype, name);
  for (const name of ['mapAsync', 'unmap']) wrap(g.GPUBuffer?.prototype, name);
  const settle = (): void => {
    if (--compiling > 0) return;
    const waiters = compiledWaiters;
    compiledWaiters = [];
    for (let i = 0; i < waiters.length; i++) waiters[i]!();
  };
  for (const name of ['createComputePipelineAsync', 'createRenderPipelineAsync']) {
    const proto = g.GPUDevice?.prototype;
    const original = proto ? (Reflect.get(proto, name) as unknown) : undefined;
    if (typeof original !== 'function') continue;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      const p = apply(original as (...a: unknown[]) => unknown, this, args);
      // Counted only once the creation started (a synchronous throw starts nothing).
      compiling++;
      apply(promiseThen, p, [settle, settle]);
      return p;
    };
    Object.defineProperty(proto, name, { value: wrapped, writable: false, configurable: false });
  }
}

/**
 * Bounds the GPU memory the candidate holds by the worker's memory cap (argv[3], MiB; see
 * gpu-memory.ts): past it the worker reports a resource failure and exits, inside the allocation
 * (no candidate code runs after it, so the refusal cannot be caught).
 */
function capGpuMemory(): void {
  const mb = toNumber(proc.argv[3]);
  if (!(mb > 0)) return;
  installGpuMemoryCap(mb * 1024 * 1024, (held) => {
    try {
      send({
        type: 'fatal',
        kind: 'resource',
        message: `GPU memory: the candidate's buffers, textures and query sets reached ${Math.round(held / 1048576)} MiB, over the cap of ${mb} MiB`,
      });
    } finally {
      exit(GPU_MEMORY_EXIT);
    }
  });
}

/** Freezes the WebGPU classes Dawn installed and closes the native-addon door --allow-addons opened. */
function lockDown(): void {
  // The device's error handler is the harness's (GpuContext collects the errors gpu.check() turns
  // into the call's failure). An accessor on the prototype: freezing does not stop its setter, so
  // `ctx.device.onuncapturederror = null` silenced every GPU error of the candidate's. Refused now.
  const device = (globalThis as { GPUDevice?: { prototype: object } }).GPUDevice?.prototype;
  const handler = device ? Object.getOwnPropertyDescriptor(device, 'onuncapturederror') : undefined;
  if (device && handler?.configurable && handler.get)
    Object.defineProperty(device, 'onuncapturederror', {
      get: handler.get,
      set: refuse('replace the GPU error handler'),
      enumerable: handler.enumerable ?? false,
      configurable: false,
    });
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    if (!name.startsWith('GPU')) continue;
    const value = (globalThis as Record<string, unknown>)[name];
    if (typeof value === 'function') {
      Object.freeze(value.prototype);
      Object.freeze(value);
    } else if (value && typeof value === 'object') Object.freeze(value);
  }
  // The instances candidates get: no own properties shadowing the wrapped methods.
  Object.freeze(gpu.device.queue);
  Object.freeze(gpu.device);
  locked('dlopen', refuse('load native code'));
  // Signals: Node's permission model does not restrict them (process.kill(process.ppid) would kill
  // the harness, process.kill(-1) every process of the user). abort/exit only end the worker itself.
  locked('kill', refuse('send signals'));
  locked('_kill', refuse('send signals'));
  // Ways around the bundler's refusal of the network, process and thread modules.
  locked('binding', refuse('use internal bindings'));
  locked('_linkedBinding', refuse('use internal bindings'));
  locked('getBuiltinModule', refuse('load built-in modules at run time'));
  locked('report', undefined);
  for (const name of ['setuid', 'setgid', 'seteuid', 'setegid', 'setgroups', 'initgroups', 'chdir', 'umask'])
    if (name in process) locked(name, refuse('change the process identity or folder'));
  // The harness's own references were captured above; the global binding is locked too.
  // (An accessor in Node: replaced by a locked data property holding the same object.)
  Object.defineProperty(globalThis, 'process', { value: proc, writable: false, configurable: false });
  for (const name of ['fetch', 'WebSocket', 'EventSource']) {
    if (name in globalThis)
      Object.defineProperty(globalThis, name, { value: undefined, writable: false, configurable: false });
  }
}

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'load') {
    if (loaded) {
      send({
        type: 'loaded',
        id: m.id,
        failure: { kind: 'import', message: 'the worker accepts candidate code once' },
      });
      return;
    }
    loaded = true;
    if (typeof m.js !== 'string' || m.kernels === null || typeof m.kernels !== 'object') {
      send({ type: 'loaded', id: m.id, failure: { kind: 'import', message: 'malformed load request' } });
      return;
    }
    const outcome = await load(m.js, m.kernels);
    send({ type: 'loaded', id: m.id, ...outcome });
    // The module's own microtasks may still be queued: what they run is charged to the first call.
    repliedAt = clock();
  } else if (m.type === 'probe') {
    const { layers, experts, replicas } = m.shape;
    send({
      type: 'result',
      id: m.id,
      phy2log: new Int32Array(layers * replicas),
      logcnt: new Int32Array(layers * experts),
      ms: 0,
    });
  } else if (m.type === 'call') await call(m);
}

async function load(js: string, kernels: Record<string, string>): Promise<{ failure?: Failure }> {
  for (const [file, code] of Object.entries(kernels)) {
    try {
      await compileModule(gpu.device, `kernels/${file}`, code);
    } catch (error) {
      if (error instanceof ShaderCompileError) {
        return { failure: { kind: 'wgsl', message: error.message, diagnostics: error.diagnostics } };
      }
      return { failure: { kind: 'wgsl', message: `kernels/${file}: ${describe(error)}` } };
    }
  }
  try {
    const url = `data:text/javascript;base64,${Buffer.from(`${js}\n//# sourceURL=${CANDIDATE_SOURCE_URL}\n`).toString('base64')}`;
    const mod = (await import(url)) as { default?: unknown };
    if (typeof mod.default !== 'function') {
      return {
        failure: {
          kind: 'import',
          message: `balancer.ts must export a default function rebalance(input, ctx), found ${typeof mod.default}`,
        },
      };
    }
    rebalance = mod.default as Rebalance;
  } catch (error) {
    return { failure: failureOf(error) };
  }
  runtime = createCandidateRuntime(gpu, kernels, { waits });
  ctx = runtime.ctx;
  return {};
}

/** Sends a call's reply and notes when: candidate code running after it is the next call's. */
function reply(message: FromWorker): void {
  send(message);
  repliedAt = clock();
}

async function call(m: Extract<ToWorker, { type: 'call' }>): Promise<void> {
  if (!rebalance || !ctx || !runtime) {
    send({ type: 'result', id: m.id, ms: 0, failure: { kind: 'import', message: 'no candidate loaded' } });
    return;
  }
  const t0 = clock();
  runtime.beginCall();
  let out: unknown;
  let failure: Failure | undefined;
  let phy2log: unknown;
  let logcnt: unknown;
  try {
    const given = candidateInput(m);
    const input: RebalanceInput = {
      loads: given.loads,
      history: freeze(given.history) as Float32Array[],
      shape: freeze(given.shape),
    };
    out = await rebalance(input, ctx);
    // Read inside the timed region: a getter is candidate code too.
    if (out !== null && typeof out === 'object') {
      phy2log = (out as { phy2log?: unknown }).phy2log;
      logcnt = (out as { logcnt?: unknown }).logcnt;
    }
  } catch (error) {
    failure = failureOf(error);
  }
  // The call is not over until the GPU work it started is, including work that candidate code
  // (timers, callbacks) submits while the harness waits: flag cleared before each wait, so a
  // submission during it makes one more.
  try {
    runtime.flush(); // passes ctx.dispatch recorded and nothing submitted yet
    await settleGpuWork();
    gpu.check();
  } catch (error) {
    failure ??= { kind: 'gpu', message: describe(error) };
  }
  // Plus what candidate code ran after the previous reply (see settleAfterReply).
  const ms = toNumber(clock() - t0) / 1e6 + carriedMs;
  carriedMs = 0;
  const split = runtime.endCall(ms);
  if (failure) {
    reply({ type: 'result', id: m.id, ms, split, failure });
    return;
  }
  try {
    if (out === null || typeof out !== 'object') {
      throw new Error(`rebalance must return { phy2log, logcnt }, got ${out === null ? 'null' : typeof out}`);
    }
    const { layers, experts, replicas } = m.shape;
    reply({
      type: 'result',
      id: m.id,
      ms,
      split,
      phy2log: ownInt32(phy2log, layers * replicas),
      logcnt: ownInt32(logcnt, layers * experts),
    });
  } catch (error) {
    reply({ type: 'result', id: m.id, ms, split, failure: { kind: 'output', message: describe(error) } });
  }
}

/**
 * What travels back to the harness is bounded by the harness, not the candidate: a real Int32Array
 * of the expected length is copied into a fresh one (a view would carry its whole, possibly huge,
 * buffer), anything else becomes a short description the parent reports.
 */
function ownInt32(value: unknown, length: number): Int32Array | string {
  if (!isView(value)) return describeValue(value);
  const tag = apply(tagOf, value, []) as string | undefined;
  if (tag !== 'Int32Array') return tag ?? 'DataView';
  const n = apply(lengthOf, value, []) as number;
  if (n !== length) return `Int32Array of ${n}`;
  const copy = new Int32(length);
  apply(int32Set, copy, [value]);
  return copy;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return stringOf(value);
  return Array.isArray(value) ? 'Array' : typeof value;
}

function failureOf(error: unknown): Failure {
  const message = describe(error);
  let stack: string | undefined;
  let code: unknown;
  try {
    stack = error instanceof Error ? String(error.stack) : undefined;
    code = (error as { code?: unknown } | null)?.code;
  } catch {}
  const kind = code === 'ERR_ACCESS_DENIED' || code === 'ERR_DLOPEN_DISABLED' ? 'sandbox' : 'exception';
  let detail = '';
  if (kind === 'sandbox') {
    try {
      const e = error as { permission?: unknown; resource?: unknown };
      detail = [e.permission, e.resource].filter((x) => typeof x === 'string').join(' ');
    } catch {}
  }
  return {
    kind,
    message: clip(detail ? `${message} (${clip(detail, 400)})` : message, 2000),
    ...(stack ? { stack: clip(stack, 8000) } : {}),
  };
}

/** A one-line description of any thrown value, robust to hostile getters. */
function describe(error: unknown): string {
  try {
    if (error instanceof Error)
      return clip(
        `${clip(stringOf(error.name), 200)}: ${clip(stringOf(error.message), 4000).split('\n')[0]}`,
        2000,
      );
    return `thrown value: ${clip(stringOf(error), 200)}`;
  } catch {
    return 'an exception that cannot be described';
  }
}

/** At most n characters of a candidate-made string (with intrinsics captured before candidate code). */
function clip(text: string, n: number): string {
  return text.length > n ? (apply(slice, text, [0, n]) as string) : text;
}

proc.on('uncaughtException', (error) => {
  try {
    send({ type: 'fatal', message: `uncaught exception outside the call: ${describe(error)}` });
  } finally {
    exit(70);
  }
});

start().catch((error: unknown) => {
  try {
    send({ type: 'fatal', message: describe(error) });
  } finally {
    exit(71);
  }
});
