import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorkerBundle, type WorkerBundle } from '../src/eval/worker-bundle.js';
import { WorkerDeath, WorkerProcess } from '../src/eval/worker-process.js';

/**
 * GPU memory is memory too. The worker's caps (V8 heap, resident set) do not see a discrete GPU's
 * memory, and buffers the driver allocates lazily (lavapipe, untouched) do not show in the resident
 * set either: a candidate could take the whole GPU's memory, making the harness's scorer and every
 * other worker on the GPU fail. The worker counts the bytes of the GPU buffers, textures and query
 * sets a candidate holds and refuses an allocation past the cap.
 */
const MEMORY_MB = 512;
const BUFFER_MB = 128;

/** The hostile candidate (plain ESM): holds ever more untouched GPU buffers, then answers validly. */
const HOARD = `
const kept = [];
export default async function rebalance(input, ctx) {
  const { layers: L, experts: E, replicas: R } = input.shape;
  let error = null;
  try {
    for (let i = 0; i < ${(4 * MEMORY_MB) / BUFFER_MB}; i++)
      kept.push(ctx.device.createBuffer({ size: ${BUFFER_MB} * 1024 * 1024, usage: GPUBufferUsage.STORAGE }));
  } catch (e) { error = e; }
  if (error) throw error;
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) for (let s = 0; s < R; s++) { phy2log[l * R + s] = s % E; logcnt[l * E + (s % E)]++; }
  return { phy2log, logcnt };
}
`;

/** The same with textures (2048 × 4096 rgba32float: 128 MiB each). */
const TEXTURES = HOARD.replace(
  `ctx.device.createBuffer({ size: ${BUFFER_MB} * 1024 * 1024, usage: GPUBufferUsage.STORAGE })`,
  "ctx.device.createTexture({ size: [2048, 4096], format: 'rgba32float', usage: GPUTextureUsage.STORAGE_BINDING })",
);

/** Allocates and destroys: what it destroys no longer counts. */
const CHURN = `
export default async function rebalance(input, ctx) {
  const { layers: L, experts: E, replicas: R } = input.shape;
  for (let i = 0; i < ${(4 * MEMORY_MB) / BUFFER_MB}; i++)
    ctx.device.createBuffer({ size: ${BUFFER_MB} * 1024 * 1024, usage: GPUBufferUsage.STORAGE }).destroy();
  const phy2log = new Int32Array(L * R);
  const logcnt = new Int32Array(L * E);
  for (let l = 0; l < L; l++) for (let s = 0; s < R; s++) { phy2log[l * R + s] = s % E; logcnt[l * E + (s % E)]++; }
  return { phy2log, logcnt };
}
`;

const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
const loads = Float32Array.from({ length: 24 }, (_, i) => 1 + i);

describe('hostile: GPU memory', () => {
  let bundle: WorkerBundle;
  const workers: WorkerProcess[] = [];
  beforeAll(async () => {
    bundle = await buildWorkerBundle();
  });
  afterAll(() => {
    for (const w of workers) w.kill();
    if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  });
  const run = async (js: string) => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: MEMORY_MB });
    workers.push(worker);
    const loaded = await worker.request({ type: 'load', js, kernels: {} });
    expect((loaded as { failure?: unknown }).failure).toBeUndefined();
    return (await worker.request({ type: 'call', loads, shape, history: [loads] } as never)) as {
      failure?: { kind: string; message: string };
    };
  };

  it('holding GPU buffers past the memory cap kills the worker with a resource death', async () => {
    const death = await run(HOARD).then(
      () => null,
      (error: unknown) => error,
    );
    expect(death).toBeInstanceOf(WorkerDeath);
    expect((death as WorkerDeath).kind).toBe('resource');
    expect((death as WorkerDeath).message).toMatch(/GPU memory.*over the cap of 512 MiB/);
  });

  it('so does holding textures past the cap', async () => {
    expect(TEXTURES).not.toBe(HOARD);
    const death = await run(TEXTURES).then(
      () => null,
      (error: unknown) => error,
    );
    expect(death).toBeInstanceOf(WorkerDeath);
    expect((death as WorkerDeath).kind).toBe('resource');
  });

  it('buffers it destroys no longer count', async () => {
    const reply = await run(CHURN);
    expect(reply.failure).toBeUndefined();
  });
});
