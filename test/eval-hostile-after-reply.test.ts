import { describe, expect, it } from 'vitest';
import { sandboxedWorker } from './helpers/sandboxed-worker.js';

/**
 * Work shifted past the end of a call. A call's clock stops before the reply is sent; candidate
 * code queued behind the harness's own continuations (a chain of microtasks that outlives the
 * call) then ran after the reply, unclocked, while the parent was busy between calls. The worker
 * now charges whatever candidate code runs between a reply and the next request to the next call.
 */
const BURN_MS = 20;
const FREE_HOPS = 5;
const BURNING_HOPS = 10;
/** Enough calls for the chain to end (each harness hop lets one of its hops run). */
const CALLS = 4 * (FREE_HOPS + BURNING_HOPS);

/** The hostile candidate (plain ESM, as the transpiler emits it): a valid placement, then the chain. */
const CHAIN = `
const burn = (ms) => { const t = performance.now(); while (performance.now() - t < ms) {} };
let first = true;
export default async function rebalance(input) {
  const { layers: L, experts: E, replicas: R } = input.shape;
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) for (let s = 0; s < R; s++) { phy2log[l * R + s] = s % E; logcnt[l * E + (s % E)]++; }
  if (first) {
    first = false;
    // The first hops pass the harness's continuation after this call; the later ones burn.
    let hops = 0;
    const step = () => {
      hops++;
      if (hops > ${FREE_HOPS}) burn(${BURN_MS});
      if (hops < ${FREE_HOPS + BURNING_HOPS}) queueMicrotask(step);
    };
    queueMicrotask(step);
  }
  return { phy2log, logcnt };
}
`;

describe('hostile: work after the reply', () => {
  const sandbox = sandboxedWorker();

  it('a microtask chain that outlives its call is charged (to the next call)', async () => {
    const loaded = await sandbox.worker.request({ type: 'load', js: CHAIN, kernels: {} });
    expect((loaded as { failure?: unknown }).failure).toBeUndefined();
    const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
    const loads = Float32Array.from({ length: 24 }, (_, i) => 1 + i);
    let charged = 0;
    for (let i = 0; i < CALLS; i++) {
      const reply = (await sandbox.worker.request({
        type: 'call',
        loads,
        shape,
        history: [loads],
      } as never)) as {
        failure?: unknown;
        ms: number;
        split?: { host_ms: number };
      };
      expect(reply.failure).toBeUndefined();
      // The split adds up to the charged time.
      expect(reply.split!.host_ms).toBeLessThanOrEqual(reply.ms);
      charged += reply.ms;
    }
    // Every burning hop ran on the worker's clock (it can only measure more than the fixture burned).
    expect(charged).toBeGreaterThanOrEqual(BURNING_HOPS * BURN_MS);
  });
});

/**
 * Compilation shifted past the end of a call. Dawn compiles an async pipeline on its own threads: a
 * candidate that started one and returned had it compile while the worker waited for its next
 * request, and found it done (its cost uncharged) in the next call. The call now ends only once the
 * compilations it started have settled. (Before, the compilation's callback could not run before
 * the next call: no candidate code runs between calls, so the next call always found it pending.)
 */
const COMPILE_LATER = `
let compiling = null;
let settled = false;
export default async function rebalance(input, ctx) {
  const { layers: L, experts: E, replicas: R } = input.shape;
  if (compiling === null) {
    const module = ctx.device.createShaderModule({ code: ctx.kernelSource('k.wgsl') });
    compiling = ctx.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    compiling.then(() => { settled = true; }, () => { settled = true; });
  } else if (!settled) {
    throw new Error('the pipeline started in the previous call was still compiling when this call began');
  }
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) for (let s = 0; s < R; s++) { phy2log[l * R + s] = s % E; logcnt[l * E + (s % E)]++; }
  return { phy2log, logcnt };
}
`;
const KERNEL = `@group(0) @binding(0) var<storage, read_write> d: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { d[g.x] = d[g.x] * 2.0; }`;

describe('hostile: compilation after the reply', () => {
  const sandbox = sandboxedWorker();

  it('a pipeline compilation a call started is over (and charged) before its reply', async () => {
    const loaded = await sandbox.worker.request({
      type: 'load',
      js: COMPILE_LATER,
      kernels: { 'k.wgsl': KERNEL },
    });
    expect((loaded as { failure?: unknown }).failure).toBeUndefined();
    const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
    const loads = Float32Array.from({ length: 24 }, (_, i) => 1 + i);
    for (let i = 0; i < 2; i++) {
      const reply = (await sandbox.worker.request({
        type: 'call',
        loads,
        shape,
        history: [loads],
      } as never)) as {
        failure?: { message: string };
      };
      expect(reply.failure?.message).toBeUndefined();
    }
  });
});
