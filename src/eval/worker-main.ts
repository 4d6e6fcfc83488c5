/**
 * The sandboxed worker process: holds one Dawn device and runs one candidate's code under Node's
 * permission model (see worker-process.ts for the flags). This file is bundled by esbuild into a
 * single ESM file (worker-bundle.ts) so it runs the same from src/ (tests) and dist/ (CLI).
 *
 * Everything the harness relies on is captured before candidate code loads: the clock, the IPC
 * send function, the queue's onSubmittedWorkDone, the intrinsics the timing path calls; the JS
 * intrinsics are deep-frozen (harden.ts), the WebGPU prototypes frozen (after wrapping the methods
 * that start GPU work, see trackGpuWork) and process.dlopen disabled once Dawn is loaded. The parent
 * still bounds every time from its own clock, so a candidate that subverts this side gains nothing.
 */
import { acquireGpu, type GpuContext } from '../gpu/device.js';
import { compileModule, ShaderCompileError } from '../gpu/kernels.js';
import type { CandidateContext, Rebalance } from './candidate-api.js';
import { hardenIntrinsics } from './harden.js';
import { CANDIDATE_SOURCE_URL, type Failure, type FromWorker, type ToWorker } from './protocol.js';

const clock = process.hrtime.bigint;
const toNumber = Number;
const apply = Reflect.apply;
const rawSend = process.send?.bind(process);
if (!rawSend) throw new Error('the evaluation worker must be started with an IPC channel');
// Candidates must not talk to the harness directly.
Object.defineProperty(process, 'send', { value: undefined, writable: false, configurable: false });
const send = (message: FromWorker): void => {
  rawSend(message);
};

let gpu: GpuContext;
let onDone: () => Promise<undefined>;
/** Set by every call that can start GPU work (see trackGpuWork); cleared once that work is done. */
let gpuBusy = false;
let rebalance: Rebalance | null = null;
let ctx: CandidateContext | null = null;

async function start(): Promise<void> {
  const adapter = process.argv[2] || undefined;
  gpu = await acquireGpu(adapter ? { adapter } : {});
  const queueDone = GPUQueue.prototype.onSubmittedWorkDone;
  const queue = gpu.device.queue;
  onDone = () => apply(queueDone, queue, []) as Promise<undefined>;
  trackGpuWork();
  hardenIntrinsics();
  lockDown();
  process.on('message', (m: ToWorker) => {
    chain = chain
      .then(() => handle(m))
      .catch((error: unknown) => {
        send({ type: 'fatal', message: `harness error: ${describe(error)}` });
      });
  });
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
  const refuse = () => {
    throw new Error('candidates may not load native code');
  };
  Object.defineProperty(process, 'dlopen', { value: refuse, writable: false, configurable: false });
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
  ctx = makeContext(kernels);
  return {};
}

function makeContext(kernels: Record<string, string>): CandidateContext {
  const files = Object.keys(kernels).sort();
  const source = (file: string): string => {
    const code = kernels[file];
    if (code === undefined)
      throw new Error(`no kernel '${file}' (the candidate has: ${files.join(', ') || 'none'})`);
    return code;
  };
  return {
    device: gpu.device,
    kernels: files,
    kernelSource: source,
    pipeline: (file, entry, constants) =>
      gpu.kernels.pipeline({
        file: `kernels/${file}`,
        entry,
        code: source(file),
        ...(constants ? { constants } : {}),
      }),
    hasTimestamps: gpu.hasTimestamps,
    cache: new Map(),
  };
}

async function call(m: Extract<ToWorker, { type: 'call' }>): Promise<void> {
  if (!rebalance || !ctx) {
    send({ type: 'result', id: m.id, ms: 0, failure: { kind: 'import', message: 'no candidate loaded' } });
    return;
  }
  const t0 = clock();
  let out: unknown;
  let failure: Failure | undefined;
  try {
    out = await rebalance({ loads: m.loads, shape: m.shape }, ctx);
  } catch (error) {
    failure = failureOf(error);
  }
  // The call is not over until the GPU work it started is.
  try {
    if (gpuBusy) {
      await onDone();
      gpuBusy = false;
    }
    gpu.check();
  } catch (error) {
    failure ??= { kind: 'gpu', message: describe(error) };
  }
  const ms = toNumber(clock() - t0) / 1e6;
  if (failure) {
    send({ type: 'result', id: m.id, ms, failure });
    return;
  }
  let phy2log: unknown;
  let logcnt: unknown;
  try {
    phy2log = (out as { phy2log?: unknown } | null | undefined)?.phy2log;
    logcnt = (out as { logcnt?: unknown } | null | undefined)?.logcnt;
    if (out === null || typeof out !== 'object') {
      throw new Error(`rebalance must return { phy2log, logcnt }, got ${out === null ? 'null' : typeof out}`);
    }
    send({ type: 'result', id: m.id, ms, phy2log, logcnt });
  } catch (error) {
    send({ type: 'result', id: m.id, ms, failure: { kind: 'output', message: describe(error) } });
  }
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
  return { kind, message: detail ? `${message} (${detail})` : message, ...(stack ? { stack } : {}) };
}

/** A one-line description of any thrown value, robust to hostile getters. */
function describe(error: unknown): string {
  try {
    if (error instanceof Error) return `${error.name}: ${String(error.message).split('\n')[0]}`;
    return `thrown value: ${String(error).slice(0, 200)}`;
  } catch {
    return 'an exception that cannot be described';
  }
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
