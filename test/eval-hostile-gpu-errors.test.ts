import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorkerBundle, type WorkerBundle } from '../src/eval/worker-bundle.js';
import { WorkerProcess } from '../src/eval/worker-process.js';

/**
 * The GPU errors of a call make it fail (gpu.check() in the worker, from the device's error handler).
 * The handler is an accessor of the GPUDevice prototype, and freezing the prototype does not stop
 * its setter: a candidate that assigned ctx.device.onuncapturederror silenced every GPU error.
 */
const INVALID =
  'ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });';
const candidate = (before: string) => `
export default async function rebalance(input, ctx) {
  const { layers: L, experts: E, replicas: R } = input.shape;
  ${before}
  ${INVALID}
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) for (let s = 0; s < R; s++) { phy2log[l * R + s] = s % E; logcnt[l * E + (s % E)]++; }
  return { phy2log, logcnt };
}
`;
const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
const loads = Float32Array.from({ length: 24 }, (_, i) => 1 + i);

describe('hostile: silencing GPU errors', () => {
  let bundle: WorkerBundle;
  const workers: WorkerProcess[] = [];
  beforeAll(async () => {
    bundle = await buildWorkerBundle();
  });
  afterAll(() => {
    for (const w of workers) w.kill();
    if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  });
  const call = async (js: string) => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    workers.push(worker);
    const loaded = await worker.request({ type: 'load', js, kernels: {} });
    expect((loaded as { failure?: unknown }).failure).toBeUndefined();
    const reply = await worker.request({ type: 'call', loads, shape, history: [loads] } as never);
    return (reply as { failure?: { kind: string; message: string } }).failure;
  };

  it('a GPU validation error fails the call', async () => {
    expect((await call(candidate('')))?.kind).toBe('gpu');
  });

  it('replacing the device’s error handler is refused', async () => {
    const failure = await call(candidate('ctx.device.onuncapturederror = null;'));
    expect(failure?.kind).toBe('exception');
    expect(failure?.message).toMatch(/candidates may not replace the GPU error handler/);
  });

  it('so is calling the prototype’s setter directly: the GPU error still fails the call', async () => {
    const bypass =
      "try { Reflect.apply(Object.getOwnPropertyDescriptor(Object.getPrototypeOf(ctx.device), 'onuncapturederror').set, ctx.device, [null]); } catch {}";
    expect((await call(candidate(bypass)))?.kind).toBe('gpu');
  });
});
