import { rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { buildWorkerBundle, type WorkerBundle } from '../../src/eval/worker-bundle.js';
import { WorkerProcess } from '../../src/eval/worker-process.js';

/**
 * One sandboxed evaluation worker for the enclosing describe block (or file): started before its
 * tests, killed and its bundle removed after them. Read `.worker` inside the tests.
 */
export function sandboxedWorker(memoryMb = 1024): {
  readonly worker: WorkerProcess;
  readonly bundle: WorkerBundle;
} {
  let bundle: WorkerBundle | undefined;
  let worker: WorkerProcess | undefined;
  beforeAll(async () => {
    bundle = await buildWorkerBundle();
    worker = await WorkerProcess.spawn({ bundle, memoryMb });
  });
  afterAll(() => {
    worker?.kill();
    if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  });
  return {
    get worker() {
      if (!worker) throw new Error('the sandboxed worker is used outside its tests');
      return worker;
    },
    get bundle() {
      if (!bundle) throw new Error('the worker bundle is used outside its tests');
      return bundle;
    },
  };
}
