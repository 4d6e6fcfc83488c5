/**
 * The sandboxed worker process: holds one Dawn device and runs one candidate's code under Node's
 * permission model (see worker-process.ts for the flags). This file is bundled by esbuild into a
 * single ESM file (worker-bundle.ts) so it runs the same from src/ (tests) and dist/ (CLI).
 *
 * Everything the harness relies on is captured before candidate code loads: the clock, the IPC
 * send function, the queue's onSubmittedWorkDone, the intrinsics the timing path calls; the JS
 * intrinsics are deep-frozen (harden.ts), the WebGPU prototypes frozen (after wrapping the methods
 * that start GPU work, see trackGpuWork), and once Dawn is loaded process.dlopen, kill, _kill,
 * binding, getBuiltinModule, fetch and WebSocket are locked (lockDown); the IPC channel is taken
 * out of reach at module start (before Dawn, before any candidate code). The parent
 * still bounds every time from its own clock, so a candidate that subverts this side gains nothing.
 */
import { acquireGpu, type GpuContext } from '../gpu/device.js';
import { compileModule, ShaderCompileError } from '../gpu/kernels.js';
import type { CandidateContext, Rebalance } from './candidate-api.js';
import {
  type CandidateRuntime,
  candidateInput,
  createCandidateRuntime,
  type GpuWaitClock,
  installGpuWaitTiming,
} from './candidate-context.js';
import { hardenIntrinsics } from './harden.js';
import { CANDIDATE_SOURCE_URL, type Failure, type FromWorker, type ToWorker } from './protocol.js';

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

/**
 * The IPC channel, taken out of the candidate's reach before any candidate code exists: Node's
 * process.send looks up `this._send` and `this.channel` at call time, so the harness keeps the
 * internal _send and calls it with a private receiver; process.emit is wrapped so that messages
 * from the parent reach only the harness (not process.on('message') listeners, not _events). Then
 * send, _send, channel, _channel and the handle listings that would expose the pipe are locked.
 */
const proc = process as unknown as Record<string, unknown>;
const internalSend = proc._send as ((...a: unknown[]) => unknown) | undefined;
if (typeof internalSend !== 'function' || typeof process.send !== 'function')
  throw new Error('the evaluation worker must be started with an IPC channel');
const sendReceiver = { connected: true, channel: true, emit: () => false };
const noop = (): void => {};
const send = (message: FromWorker): void => {
  apply(internalSend, sendReceiver, [message, undefined, {}, noop]);
};
let onParentMessage: (m: ToWorker) => void = noop;
/** The parent's token, learnt from its first message (before candidate code loads); later messages must carry it. */
let parentToken: string | null = null;
const originalEmit = process.emit;
const emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
  if (event === 'message') {
    const m = args[0] as ToWorker & { token?: unknown };
    if (parentToken === null && typeof m?.token === 'string') parentToken = m.token;
    if (m?.token === parentToken) onParentMessage(m);
    return true;
  }
  return apply(originalEmit, this, [event, ...args]) as boolean;
};
// Node only reads the channel while a 'message' listener exists; this one never sees a message.
process.on('message', noop);
// A worker never outlives its harness: the channel closes when the harness dies (even by SIGKILL).
// While candidate code spins no JavaScript runs; the launcher's kernel-side guard covers that.
process.on('disconnect', () => process.exit(72));
const locked = (name: PropertyKey, value: unknown): void => {
  Object.defineProperty(process, name, { value, writable: false, enumerable: false, configurable: false });
};
const refuse = (what: string) => () => {
  throw new Error(`candidates may not ${what}`);
};
locked('emit', emit);
locked('send', undefined);
locked('_send', undefined);
// Node's reader checks `process.channel` is truthy before it delivers a message, and looks at its
// queue of messages that arrived while nobody listened (always empty: the harness listens): a stand-in.
const realChannel = process.channel as unknown as object;
const pendingKey = Object.getOwnPropertySymbols(realChannel).find(
  (k) => k.description === 'kPendingMessages',
);
const channelStandIn = Object.freeze(pendingKey ? { [pendingKey]: [] } : {});
locked('channel', channelStandIn);
locked('_channel', channelStandIn);
for (const key of Object.getOwnPropertySymbols(process)) {
  if (key.description === 'kChannelHandle') locked(key, null); // the raw pipe
}
locked('disconnect', refuse('close the harness channel'));
locked('_getActiveHandles', refuse('list the process handles'));
locked('_getActiveRequests', refuse('list the process requests'));
/** process.on/addListener/prependListener('message', …) are refused: the channel is the harness's. */
for (const name of ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener']) {
  const original = proc[name] as (...a: unknown[]) => unknown;
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
  hardenIntrinsics();
  lockDown();
  onParentMessage = (m: ToWorker) => {
    chain = chain
      .then(() => handle(m))
      .catch((error: unknown) => {
        send({ type: 'fatal', message: `harness error: ${describe(error)}` });
      });
  };
  send({ type: 'ready', adapter: gpu.info.name });
}

let chain: Promise<void> = Promise.resolve();

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
}

/** Freezes the WebGPU classes Dawn installed and closes the native-addon door --allow-addons opened. */
function lockDown(): void {
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
  for (const name of ['fetch', 'WebSocket', 'EventSource']) {
    if (name in globalThis)
      Object.defineProperty(globalThis, name, { value: undefined, writable: false, configurable: false });
  }
}

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'load') send({ type: 'loaded', id: m.id, ...(await load(m.js, m.kernels)) });
  else if (m.type === 'probe') {
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
    out = await rebalance(candidateInput(m), ctx);
    // Read inside the timed region: a getter is candidate code too.
    if (out !== null && typeof out === 'object') {
      phy2log = (out as { phy2log?: unknown }).phy2log;
      logcnt = (out as { logcnt?: unknown }).logcnt;
    }
  } catch (error) {
    failure = failureOf(error);
  }
  // The call is not over until the GPU work it started is.
  try {
    runtime.flush(); // passes ctx.dispatch recorded and nothing submitted yet
    if (gpuBusy) {
      await onDone();
      gpuBusy = false;
    }
    gpu.check();
  } catch (error) {
    failure ??= { kind: 'gpu', message: describe(error) };
  }
  const ms = toNumber(clock() - t0) / 1e6;
  const split = runtime.endCall(ms);
  if (failure) {
    send({ type: 'result', id: m.id, ms, split, failure });
    return;
  }
  try {
    if (out === null || typeof out !== 'object') {
      throw new Error(`rebalance must return { phy2log, logcnt }, got ${out === null ? 'null' : typeof out}`);
    }
    const { layers, experts, replicas } = m.shape;
    send({
      type: 'result',
      id: m.id,
      ms,
      split,
      phy2log: ownInt32(phy2log, layers * replicas),
      logcnt: ownInt32(logcnt, layers * experts),
    });
  } catch (error) {
    send({ type: 'result', id: m.id, ms, split, failure: { kind: 'output', message: describe(error) } });
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

process.on('uncaughtException', (error) => {
  try {
    send({ type: 'fatal', message: `uncaught exception outside the call: ${describe(error)}` });
  } finally {
    process.exit(70);
  }
});

start().catch((error: unknown) => {
  send({ type: 'fatal', message: describe(error) });
  process.exit(71);
});
