/**
 * LayerParallel with real worker threads. Threads need the compiled worker modules, which exist only
 * in dist/ (`npm test` builds first): the runner is loaded from there, so the threads really start.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LayerKernel, LayerParallel as LayerParallelType } from '../src/eplb/layer-parallel.js';
import type { Shape } from '../src/eplb/shape.js';
import { Rng } from '../src/util/rng.js';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const shape: Shape = { layers: 24, experts: 64, replicas: 80, groups: 8, nodes: 2, gpus: 8 };

let LayerParallel: typeof LayerParallelType;
let BldmSwapLayers: new (shape: Shape) => LayerKernel;
const bldmWorker = pathToFileURL(join(DIST, 'eplb/balancers/bldm-swap-worker.js'));
let scratch: string;

beforeAll(async () => {
  if (!existsSync(join(DIST, 'eplb/layer-parallel.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  ({ LayerParallel } = await import(pathToFileURL(join(DIST, 'eplb/layer-parallel.js')).href));
  ({ BldmSwapLayers } = await import(pathToFileURL(join(DIST, 'eplb/balancers/bldm-swap.js')).href));
  scratch = mkdtempSync(join(tmpdir(), 'adrs-layer-parallel-'));
});
afterAll(() => scratch && rmSync(scratch, { recursive: true, force: true }));

function skewedLoads(seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: shape.layers * shape.experts }, () =>
    Math.floor(1000 * rng.next() ** 4),
  );
}

describe('LayerParallel on worker threads', () => {
  it('gives the same placement on 1, 2 and 3 threads, and really uses them', async () => {
    const results: string[] = [];
    for (const threads of [1, 2, 3]) {
      const runner = await LayerParallel.create(shape, (s) => new BldmSwapLayers(s), bldmWorker, threads);
      try {
        expect(runner.threads).toBe(threads);
        const out: string[] = [];
        for (const seed of [1, 2, 3]) {
          const { phy2log, logcnt } = runner.run(skewedLoads(seed));
          out.push(`${Array.from(phy2log).join(',')}|${Array.from(logcnt).join(',')}`);
        }
        results.push(out.join('\n'));
      } finally {
        runner.dispose();
      }
    }
    expect(results[1]).toBe(results[0]);
    expect(results[2]).toBe(results[0]);
  });

  it("reports a kernel's exception thrown on a worker thread, and the next call still answers", async () => {
    const worker = join(scratch, 'throwing-worker.mjs');
    writeFileSync(
      worker,
      [
        "import { parentPort, workerData } from 'node:worker_threads';",
        `import { serveLayers } from ${JSON.stringify(pathToFileURL(join(DIST, 'eplb/layer-parallel.js')).href)};`,
        "serveLayers(workerData, { run() { throw new Error('kernel exploded'); } }, () => parentPort.postMessage('ready'));",
      ].join('\n'),
    );
    const runner = await LayerParallel.create(shape, (s) => new BldmSwapLayers(s), pathToFileURL(worker), 2);
    try {
      expect(runner.threads).toBe(2);
      expect(() => runner.run(skewedLoads(1))).toThrow(/balancer worker thread failed: kernel exploded/);
      expect(() => runner.run(skewedLoads(2))).toThrow(/kernel exploded/);
    } finally {
      runner.dispose();
    }
  });
});
