import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

/**
 * The worker's code as one self-contained ESM file in a private temporary folder, plus the folder
 * of the only package it loads from disk (webgpu, with Dawn's native addon).
 *
 * Why a bundle: the worker must run as a plain Node process under the permission model, both when
 * the project runs compiled (dist/eval/worker-main.js) and when tests run the TypeScript sources
 * (src/eval/worker-main.ts, which Node 20 cannot execute). esbuild turns either into the same single
 * file in ~50 ms, and the sandbox then needs read access to exactly two places: that file and webgpu.
 */
export interface WorkerBundle {
  /** The bundled worker entry (worker.mjs). */
  entry: string;
  /** The folder holding it (removed by the pool on close). */
  dir: string;
  /** The webgpu package folder (Dawn's JS wrapper and native addon). */
  webgpuDir: string;
}

export async function buildWorkerBundle(): Promise<WorkerBundle> {
  const here = dirname(fileURLToPath(import.meta.url));
  const source = ['worker-main.ts', 'worker-main.js'].map((f) => join(here, f)).find((f) => existsSync(f));
  if (!source) throw new Error(`evaluation worker entry not found next to ${here}`);
  const require = createRequire(import.meta.url);
  const webgpuEntry = require.resolve('webgpu');
  const webgpuDir = dirname(webgpuEntry);
  const result = await build({
    entryPoints: [source],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    // Dawn is a native addon: load it from its installed location by absolute URL.
    plugins: [
      {
        name: 'webgpu-absolute',
        setup(b) {
          b.onResolve({ filter: /^webgpu$/ }, () => ({
            path: pathToFileURL(webgpuEntry).href,
            external: true,
          }));
        },
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'adrs-eval-'));
  const entry = join(dir, 'worker.mjs');
  writeFileSync(entry, result.outputFiles[0]!.contents, { mode: 0o644 });
  // Readable (not writable) by the unprivileged uid workers run under when the harness is root.
  chmodSync(dir, 0o755);
  return { entry, dir, webgpuDir };
}
