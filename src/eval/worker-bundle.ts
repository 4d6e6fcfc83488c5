import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
  /**
   * The folder holding it (removed by the pool on close; one left by a harness that was killed is
   * removed by the next buildWorkerBundle on this machine, see sweepStaleBundles).
   */
  dir: string;
  /** The webgpu package folder (Dawn's JS wrapper and native addon). */
  webgpuDir: string;
}

export async function buildWorkerBundle(): Promise<WorkerBundle> {
  sweepStaleBundles();
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
  const dir = ownedTempDir();
  const entry = join(dir, 'worker.mjs');
  writeFileSync(entry, result.outputFiles[0]!.contents, { mode: 0o644 });
  // Readable (not writable) by the unprivileged uid workers run under when the harness is root.
  chmodSync(dir, 0o755);
  return { entry, dir, webgpuDir };
}

const BUNDLE_PREFIX = 'adrs-eval-';

/**
 * A private temporary folder of this harness process (0700), with the owner record that lets the
 * next run remove it if this process is killed before it does (sweepStaleBundles). Used for the
 * worker bundle and for each transpile's output folder.
 */
export function ownedTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), BUNDLE_PREFIX));
  const owner = processIdentity(process.pid);
  if (owner) writeFileSync(join(dir, OWNER_FILE), JSON.stringify(owner), { mode: 0o644 });
  return dir;
}
/** Who made a bundle folder: the harness process, named so that a reused pid is not mistaken for it. */
const OWNER_FILE = 'owner.json';

interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22). */
  start: string;
  boot: string;
  /** The pid namespace the pid belongs to. */
  pidns: string;
}

/** A live process's identity, or undefined where it is gone (or this is not Linux). */
function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses); starttime is field 22.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    if (!start) return undefined;
    return {
      pid,
      start,
      boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
      pidns: readlinkSync('/proc/self/ns/pid'),
    };
  } catch {
    return undefined;
  }
}

/**
 * Removes bundle folders whose harness is gone (killed before it could remove its own): those with
 * an owner record from an earlier boot, or from this pid namespace whose process no longer runs.
 * Folders without a record, or of a harness that may be alive (another pid namespace), are left.
 * Best effort: never fails the caller.
 */
export function sweepStaleBundles(root: string = tmpdir()): string[] {
  const removed: string[] = [];
  const self = processIdentity(process.pid);
  if (!self) return removed;
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(BUNDLE_PREFIX));
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = join(root, name);
    try {
      if (!lstatSync(dir).isDirectory()) continue;
      const file = join(dir, OWNER_FILE);
      if (lstatSync(file).size > 4096) continue;
      const owner = JSON.parse(readFileSync(file, 'utf8')) as Partial<ProcessIdentity>;
      if (typeof owner.pid !== 'number' || typeof owner.start !== 'string' || typeof owner.boot !== 'string')
        continue;
      const stale =
        owner.boot !== self.boot ||
        (owner.pidns === self.pidns && processIdentity(owner.pid)?.start !== owner.start);
      if (!stale) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {}
  }
  return removed;
}
