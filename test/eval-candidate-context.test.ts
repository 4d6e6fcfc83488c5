import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CandidateContext } from '../src/eval/candidate-api.js';
import {
  type CandidateRuntime,
  candidateInput,
  createCandidateRuntime,
  installGpuWaitTiming,
  waitAccounting,
} from '../src/eval/candidate-context.js';
import { openCandidate } from '../src/eval/sources.js';
import { transpileCandidate } from '../src/eval/transpile.js';
import { reflectWgsl, structLayout, usedBindings } from '../src/eval/wgsl-bindings.js';
import { acquireGpu, type GpuContext } from '../src/gpu/device.js';
import { sandboxedWorker } from './helpers/sandboxed-worker.js';

/**
 * The harness-owned GPU helpers of the candidate context on a real device (lavapipe here), each
 * checked against a TypeScript reference, and the time split and history as the sandboxed worker
 * sends them.
 */
const KERNEL = /* wgsl */ `
// A block comment naming out and counts /* nested */ must not count as a use.
struct Params {
  n: u32,
  scale: f32,
  shift: vec2<i32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(1) @binding(0) var<storage, read_write> counts: array<u32>;
@group(0) @binding(3) var<storage, read> other_input: array<f32>;

fn scaled(i: u32) -> f32 {
  return a[i] * params.scale + f32(params.shift.x + params.shift.y);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i < params.n) { out[i] = scaled(i); }
}

// out[i] += a[i] * scale: the order of dispatches and writes shows in the result.
@compute @workgroup_size(64)
fn acc(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i < params.n) { out[i] = out[i] + a[i] * params.scale; }
}

@compute @workgroup_size(64)
fn count(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i < params.n) { counts[i] = counts[i] + i; }
}

@compute @workgroup_size(1)
fn copy_other() {
  out[0] = other_input[0];
}
`;
const N = 100;
const A = Float32Array.from({ length: N }, (_, i) => ((i * 37) % 101) - 50);
const params = (scale: number, n = N) => ({ n, scale, shift: [3, -1] });
const mainRef = (scale: number) => Float32Array.from(A, (v) => Math.fround(Math.fround(v * scale) + 2));

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await acquireGpu();
  installGpuWaitTiming();
});
afterAll(() => gpu?.destroy());

const fresh = (options: Parameters<typeof createCandidateRuntime>[2] = {}): CandidateRuntime =>
  createCandidateRuntime(gpu, { 'k.wgsl': KERNEL }, { waits: installGpuWaitTiming(), ...options });

async function runMain(ctx: CandidateContext, scale: number): Promise<Float32Array> {
  ctx.upload('a', A);
  ctx.buffer('out', N * 4);
  await ctx.dispatch({
    kernel: 'k.wgsl',
    entry: 'main',
    bindings: { params: params(scale), a: 'a', out: 'out' },
    workgroups: [Math.ceil(N / 64)],
  });
  return ctx.read('out', Float32Array);
}

describe('WGSL reflection', () => {
  const m = reflectWgsl(KERNEL);

  it('finds the bindings, structs and compute entry points', () => {
    expect([...m.bindings.keys()].sort()).toEqual(['a', 'counts', 'other_input', 'out', 'params']);
    expect(m.bindings.get('counts')).toMatchObject({
      group: 1,
      binding: 0,
      space: 'storage',
      access: 'read_write',
    });
    expect(m.bindings.get('params')).toMatchObject({ space: 'uniform', type: 'Params' });
    expect(m.entries).toEqual(['main', 'acc', 'count', 'copy_other']);
  });

  it('an entry uses the bindings named in its body and in the functions it calls', () => {
    expect(usedBindings(m, 'main', 'k.wgsl').map((b) => b.name)).toEqual(['params', 'a', 'out']);
    expect(usedBindings(m, 'count', 'k.wgsl').map((b) => b.name)).toEqual(['params', 'counts']);
    expect(() => usedBindings(m, 'mian', 'k.wgsl')).toThrow(
      "k.wgsl has no @compute entry point 'mian' (it has: main, acc, count, copy_other)",
    );
  });

  it('lays out a struct by WGSL alignment rules', () => {
    expect(structLayout(m, 'Params')).toEqual({
      size: 16,
      fields: [
        { name: 'n', offset: 0, kind: 'u32', count: 1 },
        { name: 'scale', offset: 4, kind: 'f32', count: 1 },
        { name: 'shift', offset: 8, kind: 'i32', count: 2 },
      ],
    });
    const v = reflectWgsl('struct S { a: f32, b: vec3f, c: u32, d: vec2u }');
    // b aligns to 16 and takes 12 bytes, so c fits at 28; d aligns to 8 at 32; the size rounds to 16.
    expect(structLayout(v, 'S')).toMatchObject({
      size: 48,
      fields: [{ offset: 0 }, { offset: 16, count: 3 }, { offset: 28 }, { offset: 32, count: 2 }],
    });
    expect(structLayout(reflectWgsl('struct T { a: array<u32, 4> }'), 'T')).toMatch(
      /field 'a' has type array<u32, 4>/,
    );
  });
});

describe('the seed (examples/eplb)', () => {
  const inside = (file: string): string => {
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf('// EVOLVE-BLOCK-START');
    const end = text.indexOf('// EVOLVE-BLOCK-END');
    expect(start).toBeGreaterThan(0);
    return text.slice(start, end);
  };

  it('keeps its whole GPU path (buffers, bindings, dispatch, readback, the kernel and its params) inside EVOLVE-BLOCKs', () => {
    const ts = inside('examples/eplb/balancer.ts');
    for (const call of ['ctx.upload(', 'ctx.buffer(', 'ctx.dispatch(', 'ctx.read('])
      expect(ts).toContain(call);
    const wgsl = inside('examples/eplb/kernels/replicate.wgsl');
    const m = reflectWgsl(wgsl);
    expect([...m.bindings.keys()]).toEqual(['params', 'loads', 'logcnt']);
    // The kernel receives the whole shape, not a padding word.
    expect(m.structs.get('Params')!.map(([name]) => name)).toEqual([
      'layers',
      'experts',
      'replicas',
      'gpus',
      'nodes',
      'groups',
    ]);
  });
});

describe('candidate context helpers', () => {
  it('keeps buffers by name and size, and replaces them when either changes', () => {
    const { ctx } = fresh();
    const b1 = ctx.buffer('x', 64);
    expect(ctx.buffer('x', 64)).toBe(b1);
    const b2 = ctx.buffer('x', 100);
    expect(b2).not.toBe(b1);
    expect(b2.size).toBe(112);
    expect(ctx.buffer('x', 100, 'uniform')).not.toBe(b2);
    const u1 = ctx.upload('y', new Float32Array(8));
    expect(ctx.upload('y', new Float32Array(8))).toBe(u1);
    expect(ctx.upload('y', new Float32Array(4))).toBe(u1);
    expect(ctx.upload('y', new Float32Array(16))).not.toBe(u1);
  });

  it('dispatches with bindings resolved by WGSL name and params packed from a record (matches the TS reference)', async () => {
    const { ctx } = fresh();
    expect(Array.from(await runMain(ctx, 1.5))).toEqual(Array.from(mainRef(1.5)));
    // Changed params are rewritten; the rest is reused.
    expect(Array.from(await runMain(ctx, -2))).toEqual(Array.from(mainRef(-2)));
    // A typed array and a raw GPUBuffer as bindings; a name the entry does not use is ignored.
    const raw = ctx.device.createBuffer({
      size: N * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const packed = new ArrayBuffer(16);
    new Uint32Array(packed, 0, 1)[0] = N;
    new Float32Array(packed, 4, 1)[0] = 0.5;
    new Int32Array(packed, 8, 2).set([0, 0]);
    await ctx.dispatch({
      kernel: 'k.wgsl',
      entry: 'main',
      bindings: { params: new Uint8Array(packed), a: A, out: raw, counts: 'unused' },
      workgroups: Math.ceil(N / 64),
    });
    ctx.buffer('copy', N * 4);
    ctx.submit();
    const encoder = ctx.device.createCommandEncoder();
    encoder.copyBufferToBuffer(raw, 0, ctx.buffer('copy', N * 4), 0, N * 4);
    ctx.device.queue.submit([encoder.finish()]);
    expect(Array.from(await ctx.read('copy', Float32Array))).toEqual(
      Array.from(A, (v) => Math.fround(v * 0.5)),
    );
    raw.destroy();
  });

  it('keeps program order between uploads, param changes and dispatches before one readback', async () => {
    const { ctx } = fresh();
    ctx.upload('a', A);
    ctx.upload('out', new Float32Array(N));
    const acc = (scale: number) =>
      ctx.dispatch({
        kernel: 'k.wgsl',
        entry: 'acc',
        bindings: { params: params(scale), a: 'a', out: 'out' },
        workgroups: [2],
      });
    await acc(1);
    await acc(2); // new params while the first pass is still recorded
    ctx.upload(
      'a',
      Float32Array.from(A, (v) => 10 * v),
    ); // a new input while both are recorded
    await acc(1);
    const expected = Float32Array.from(A, (v) => {
      let x = Math.fround(v * 1);
      x = Math.fround(x + Math.fround(v * 2));
      return Math.fround(x + Math.fround(Math.fround(10 * v) * 1));
    });
    expect(Array.from(await ctx.read('out', Float32Array))).toEqual(Array.from(expected));
    // A second group: counts[i] += i twice.
    ctx.upload('counts', new Uint32Array(N));
    for (let k = 0; k < 2; k++)
      await ctx.dispatch({
        kernel: 'k.wgsl',
        entry: 'count',
        bindings: { params: params(1), counts: 'counts' },
        workgroups: [2],
      });
    expect(Array.from(await ctx.read('counts', Uint32Array))).toEqual(
      Array.from({ length: N }, (_, i) => 2 * i),
    );
  });

  it('reads back Int32, Uint32 and Float32 values exactly, into a given array or a prefix', async () => {
    const { ctx } = fresh();
    const ints = Int32Array.from({ length: 37 }, (_, i) => (i % 2 ? -1 : 1) * i * 1000003);
    ctx.upload('i', ints);
    expect(Array.from(await ctx.read('i', Int32Array))).toEqual(Array.from(ints));
    expect(Array.from(await ctx.read('i', Uint32Array, 3))).toEqual([0, 4294967296 - 1000003, 2000006]);
    const into = new Int32Array(5);
    expect(await ctx.read('i', into)).toBe(into);
    expect(Array.from(into)).toEqual(Array.from(ints.subarray(0, 5)));
    const floats = Float32Array.from([0.1, -3.5, 1e30, 0]);
    ctx.upload('f', floats);
    expect(Array.from(await ctx.read('f', Float32Array))).toEqual(Array.from(floats));
    // Concurrent reads of one buffer each get their own staging.
    const [r1, r2] = await Promise.all([ctx.read('f', Float32Array), ctx.read('f', Float32Array)]);
    expect(Array.from(r1)).toEqual(Array.from(r2));
  });

  it('allocates no GPU objects on repeated calls of the same sizes', async () => {
    const counts = new Map<string, number>();
    const device = new Proxy(gpu.device, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (typeof prop === 'string' && prop.startsWith('create'))
            counts.set(prop, (counts.get(prop) ?? 0) + 1);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const rt = createCandidateRuntime(
      { device, kernels: gpu.kernels, hasTimestamps: gpu.hasTimestamps },
      { 'k.wgsl': KERNEL },
    );
    const call = async () => {
      rt.beginCall();
      const out = await runMain(rt.ctx, 1.5);
      rt.flush();
      rt.endCall(1);
      return out;
    };
    await call();
    const after = new Map(counts);
    for (let i = 0; i < 3; i++) expect(Array.from(await call())).toEqual(Array.from(mainRef(1.5)));
    for (const kind of ['createBuffer', 'createBindGroup', 'createComputePipelineAsync', 'createQuerySet'])
      expect(counts.get(kind) ?? 0, kind).toBe(after.get(kind) ?? 0);
    expect(after.get('createBuffer')).toBeGreaterThan(0);
  });

  it('refuses wrong names and values with errors that say what to change', async () => {
    const { ctx } = fresh();
    ctx.upload('a', A);
    ctx.buffer('out', N * 4);
    const base = { kernel: 'k.wgsl', entry: 'main', workgroups: [2] };
    const good = { params: params(1), a: 'a', out: 'out' };
    const fails = (spec: object) => expect(ctx.dispatch({ ...base, ...spec } as never)).rejects;
    await fails({ bindings: { ...good, nope: 'a' } }).toThrow(
      "ctx.dispatch(k.wgsl:main): kernels/k.wgsl declares no binding 'nope' (it declares: params, a, out, counts, other_input; main uses: params, a, out)",
    );
    await fails({ bindings: { params: params(1), out: 'out' } }).toThrow(
      /bindings has no 'a', which main uses \(@group\(0\) @binding\(1\)/,
    );
    await fails({ bindings: { ...good, a: 'b' } }).toThrow(
      /no ctx buffer named 'b' \(ctx buffers: 'a', 'out'\); create it with ctx.buffer\('b', bytes\)/,
    );
    await fails({ bindings: { ...good, params: { n: 1, scale: 1 } } }).toThrow(
      /needs a value for 'shift' \(its fields, in order: n, scale, shift\)/,
    );
    await fails({ bindings: { ...good, params: { ...params(1), scael: 2 } } }).toThrow(
      /has no field 'scael'/,
    );
    await fails({ bindings: { ...good, params: { ...params(1), n: -1 } } }).toThrow(
      /is a u32: give an integer/,
    );
    await fails({ bindings: { ...good, params: 'a' } }).toThrow(/ctx buffer 'a' lacks 'uniform' usage/);
    await fails({ bindings: good, entry: 'mian' }).toThrow(/no @compute entry point 'mian'/);
    await fails({ bindings: good, kernel: 'x.wgsl' }).toThrow(
      "no kernel 'x.wgsl' (the candidate has: k.wgsl)",
    );
    await fails({ bindings: good, workgroups: [1.5] }).toThrow(/workgroups\[0\] must be an integer/);
    await expect(ctx.read('missing', Int32Array)).rejects.toThrow(
      /ctx.read\("missing"\): no ctx buffer named 'missing'/,
    );
    await expect(ctx.read('a', Int32Array, 1000)).rejects.toThrow(/1000 elements do not fit/);
    expect(() => ctx.buffer('', 4)).toThrow(/non-empty string/);
    expect(() => ctx.buffer('z', 0)).toThrow(/bytes must be an integer/);
    // A size whose 16-byte rounding passes the device's limit is the same one-line error, not a GPU error later.
    const limit = gpu.device.limits.maxBufferSize;
    expect(() => ctx.buffer('z', Math.floor(limit / 16) * 16 + 1)).toThrow(/bytes must be an integer in 1…/);
    // Nothing went wrong on the device.
    expect(() => gpu.check()).not.toThrow();
  });
});

describe('time split', () => {
  it('counts overlapping waits once, and only within the call', () => {
    let t = 0;
    const w = waitAccounting(() => t);
    w.enter(); // before the call: not counted
    t = 5;
    w.begin();
    t = 7;
    w.leave(); // 2 ms of it inside the call
    w.enter();
    t = 8;
    w.enter(); // overlapping
    t = 10;
    w.leave();
    t = 11;
    w.leave();
    t = 20;
    w.enter();
    t = 23;
    expect(w.end()).toBe(2 + 4 + 3); // 5→7, 7→11 (two overlapping waits), 20→23 (open until end())
    w.leave();
  });

  it('reports GPU waits, host time and timestamp GPU time of ctx.dispatch passes', async ({ skip }) => {
    const rt = fresh();
    rt.beginCall();
    expect(rt.endCall(0.5)).toEqual({ host_ms: 0.5, gpu_wait_ms: 0, gpu_ms: null });
    rt.beginCall();
    const t0 = performance.now();
    await runMain(rt.ctx, 1);
    rt.flush();
    const ms = performance.now() - t0;
    const split = rt.endCall(ms);
    expect(split.gpu_wait_ms).toBeGreaterThan(0);
    expect(split.host_ms + split.gpu_wait_ms).toBeCloseTo(ms, 6);
    if (!gpu.hasTimestamps) skip('the adapter has no timestamp queries');
    expect(split.gpu_ms).toBeGreaterThan(0);
    expect(rt.dispatches()).toEqual([{ label: 'k.wgsl:main', gpuMs: split.gpu_ms, source: 'timestamp' }]);
  });

  it('gpu_ms is null for a pass not read back in the call; profiling resolves it afterwards', async ({
    skip,
  }) => {
    if (!gpu.hasTimestamps) skip('the adapter has no timestamp queries');
    const rt = fresh();
    rt.ctx.upload('counts', new Uint32Array(N));
    rt.beginCall();
    await rt.ctx.dispatch({
      kernel: 'k.wgsl',
      entry: 'count',
      bindings: { params: params(1), counts: 'counts' },
      workgroups: 2,
    });
    rt.flush();
    expect(rt.endCall(1).gpu_ms).toBeNull();
    await rt.resolveLeftovers();
    expect(rt.dispatches()[0]!.source).toBe('timestamp');
    expect(rt.gpuMs()).toBeGreaterThan(0);
  });

  it('without timestamps, profiling times each dispatch from submit to done (labelled wall)', async () => {
    const rt = fresh({ timestamps: false, waitEachDispatch: true });
    rt.beginCall();
    expect(Array.from(await runMain(rt.ctx, 1))).toEqual(Array.from(mainRef(1)));
    rt.flush();
    expect(rt.endCall(1).gpu_ms).toBeNull();
    const [d] = rt.dispatches();
    expect(d!.source).toBe('wall');
    expect(d!.gpuMs).toBeGreaterThan(0);
  });
});

describe('through the sandboxed worker', () => {
  const sandbox = sandboxedWorker();

  it('gives the candidate its history and replies with the time split of each call', async () => {
    const seed = openCandidate('examples/eplb');
    const compiled = await transpileCandidate(seed.dir);
    // The seed, wrapped: it refuses a call whose history is not the one sent.
    const exported = /export\s*\{\s*(\w+) as default\s*\};?/.exec(compiled.js);
    expect(exported).not.toBeNull();
    const js = `${compiled.js.replace(exported![0], '')}
export default async function (input, ctx) {
  if (input.history.length !== 2 || input.history[1][0] !== input.loads[0]) throw new Error('history not passed');
  return ${exported![1]}(input, ctx);
}`;
    const loaded = await sandbox.worker.request({ type: 'load', js, kernels: seed.kernels });
    expect(loaded).toMatchObject({ type: 'loaded' });
    expect((loaded as { failure?: unknown }).failure).toBeUndefined();
    const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
    const loads = Float32Array.from({ length: 24 }, (_, i) => 1 + ((i * 7) % 13));
    const older = loads.map((v) => v + 1);
    const reply = (await sandbox.worker.request({
      type: 'call',
      loads,
      shape,
      history: [older, loads],
    } as never)) as {
      failure?: unknown;
      ms: number;
      split?: { host_ms: number; gpu_wait_ms: number; gpu_ms: number | null };
      logcnt?: unknown;
    };
    expect(reply.failure).toBeUndefined();
    expect(reply.logcnt).toBeInstanceOf(Int32Array);
    const split = reply.split!;
    expect(split.gpu_wait_ms).toBeGreaterThan(0);
    expect(split.host_ms + split.gpu_wait_ms).toBeCloseTo(reply.ms, 6);
    if (gpu.hasTimestamps) expect(split.gpu_ms).toBeGreaterThan(0);
    // A call message without history (an older harness) gives a history of one: the wrapper refuses it.
    const bare = (await sandbox.worker.request({ type: 'call', loads, shape })) as {
      failure?: { message: string };
    };
    expect(bare.failure?.message).toContain('history not passed');
    expect(candidateInput({ loads, shape }).history).toEqual([loads]);
  });
});
