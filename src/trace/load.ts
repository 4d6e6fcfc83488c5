import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, UserError } from '../util/errors.js';
import { type ImportOptions, importDocument } from './import.js';
import { readTraceWithManifest, TRACE_FORMAT, validateLoads } from './io.js';
import { TRACE_NAME_PATTERN, type Trace } from './trace.js';
import { type TraceWindows, traceWindows, windowLoads } from './windows.js';

/** traces/ at the package root: the same relative path from src/trace and from dist/trace. */
export const TRACES_DIR = fileURLToPath(new URL('../../traces/', import.meta.url));

/** Names of the traces shipped in traces/ (manifests only), sorted. */
export function listBundledTraces(): string[] {
  if (!existsSync(TRACES_DIR)) return [];
  return readdirSync(TRACES_DIR)
    .filter((f) => f.endsWith('.json') && TRACE_NAME_PATTERN.test(f))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** The manifest path of a bundled trace, or undefined. */
export function bundledTracePath(name: string): string | undefined {
  if (!TRACE_NAME_PATTERN.test(name)) return undefined;
  const path = join(TRACES_DIR, `${name}.json`);
  return existsSync(path) ? path : undefined;
}

/**
 * The one entry point for loads: a bundled trace name (see `listBundledTraces`), a path to an
 * adrs-trace manifest (or its .bin), an SGLang snapshot, an OpenEvolve/ADRS expert-load.json, or a
 * plain JSON array [layers][experts]. Every problem is a one-line UserError naming the file.
 */
export function loadTrace(
  pathOrName: string,
  opts: Partial<Pick<ImportOptions, 'name' | 'routing'>> = {},
): Trace {
  check(pathOrName.length > 0, 'no trace given: name a bundled trace or a file');
  let file = resolve(pathOrName);
  if (!existsSync(file)) {
    const bundled = bundledTracePath(pathOrName);
    if (!bundled) {
      const names = listBundledTraces();
      throw new UserError(
        `${pathOrName}: no such file, and not a bundled trace (bundled: ${names.length ? names.join(', ') : 'none'})`,
      );
    }
    file = bundled;
  }
  check(statSync(file).isFile(), `${pathOrName}: is a folder; name a trace file (.json)`);
  // The binary half of a trace: read it through its manifest.
  if (extname(file) === '.bin') file = file.replace(/\.bin$/, '.json');
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UserError(`${pathOrName}: not readable JSON (${(error as Error).message.split('\n')[0]})`);
  }
  if (doc !== null && typeof doc === 'object' && 'format' in doc) {
    check(
      (doc as { format: unknown }).format === TRACE_FORMAT,
      `${pathOrName}: format ${JSON.stringify((doc as { format: unknown }).format)} is not "${TRACE_FORMAT}"`,
    );
    return readTraceWithManifest(doc, file);
  }
  const trace = importDocument(doc, {
    name: opts.name ?? nameFromFile(file),
    label: pathOrName,
    ...(opts.routing ? { routing: opts.routing } : {}),
  });
  // Values beyond float32's range become Infinity on conversion: catch them here.
  validateLoads(trace.loads, trace.manifest, pathOrName);
  return { ...trace, path: file };
}

/** A trace name from a file name: "prefill_in512.json" → "prefill-in512". */
export function nameFromFile(file: string): string {
  const stem = basename(file, extname(file))
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/_/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '');
  return stem.length > 0 ? stem : 'trace';
}

/** One load window of a trace, with where it came from. */
export interface WindowSelection {
  /** [layers × experts] row-major (a view). */
  loads: Float32Array;
  window: number;
  layers: number;
  experts: number;
  trace: Trace;
  windows: TraceWindows;
}

/**
 * Picks window `index` of a trace (`--window K`; windows as traceWindows forms them: a step trace's
 * steps summed, each stored matrix of a window or snapshot trace); negative counts from the end;
 * default the last. Out of range is a UserError that says what range exists.
 */
export function selectWindow(trace: Trace, index?: number): WindowSelection {
  const windows = traceWindows(trace);
  const { layers, experts, name } = trace.manifest;
  const k = index === undefined ? windows.count - 1 : index;
  check(Number.isInteger(k), `--window must be an integer, got ${index}`);
  const window = k < 0 ? windows.count + k : k;
  const n = windows.count;
  check(
    window >= 0 && window < n,
    `window ${k} is out of range: trace '${name}' has ${n} window${n === 1 ? '' : 's'} (0–${n - 1}, or -1 for the last)`,
  );
  return { loads: windowLoads(windows, window), window, layers, experts, trace, windows };
}

/** `loadTrace` then `selectWindow`: the load matrix a balancer consumes. */
export function loadLoads(pathOrName: string, index?: number): WindowSelection {
  return selectWindow(loadTrace(pathOrName), index);
}
