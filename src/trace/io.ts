import { existsSync, readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { check, UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import { TRACE_NAME_PATTERN, type Trace, type TraceManifest } from './trace.js';

export const TRACE_FORMAT = 'adrs-trace/1';
const LITTLE_ENDIAN = endianness() === 'LE';

/** Checks a parsed manifest field by field; `file` names it in every message. */
export function validateManifest(m: unknown, file: string): asserts m is TraceManifest {
  check(
    m !== null && typeof m === 'object' && !Array.isArray(m),
    `${file}: not a trace manifest (expected a JSON object)`,
  );
  const o = m as Record<string, unknown>;
  check(
    o.format === TRACE_FORMAT,
    `${file}: format is ${JSON.stringify(o.format)}, expected "${TRACE_FORMAT}" (re-import the data with \`adrs trace import\`)`,
  );
  check(
    typeof o.name === 'string' && TRACE_NAME_PATTERN.test(o.name),
    `${file}: name must be letters, digits, '.', '_' or '-', got ${JSON.stringify(o.name)}`,
  );
  for (const key of ['layers', 'experts', 'steps', 'groups', 'topK', 'topKGroups'] as const) {
    check(
      Number.isInteger(o[key]) && (o[key] as number) >= 1,
      `${file}: ${key} must be a positive integer, got ${JSON.stringify(o[key])}`,
    );
  }
  const experts = o.experts as number;
  const groups = o.groups as number;
  check(experts % groups === 0, `${file}: groups (${groups}) must divide experts (${experts})`);
  check((o.topK as number) <= experts, `${file}: topK (${o.topK}) exceeds experts (${experts})`);
  check(
    (o.topKGroups as number) <= groups,
    `${file}: topKGroups (${o.topKGroups}) exceeds groups (${groups})`,
  );
  check(
    o.granularity === 'snapshot' || o.granularity === 'window' || o.granularity === 'step',
    `${file}: granularity must be "snapshot", "window" or "step", got ${JSON.stringify(o.granularity)}`,
  );
  if (o.granularity === 'window') {
    check(
      Number.isInteger(o.stepsPerWindow) && (o.stepsPerWindow as number) >= 1,
      `${file}: a window trace needs stepsPerWindow (a positive integer), got ${JSON.stringify(o.stepsPerWindow)}`,
    );
  }
  check(o.dtype === 'float32', `${file}: dtype must be "float32", got ${JSON.stringify(o.dtype)}`);
  check(
    typeof o.data === 'string' && o.data.length > 0 && basename(o.data) === o.data,
    `${file}: data must be a file name next to the manifest, got ${JSON.stringify(o.data)}`,
  );
  for (const key of ['model', 'source', 'attribution'] as const) {
    check(typeof o[key] === 'string', `${file}: ${key} must be a string, got ${JSON.stringify(o[key])}`);
  }
}

/** Checks that every load is finite and non-negative; names the first bad one by step/layer/expert. */
export function validateLoads(
  loads: Float32Array,
  m: Pick<TraceManifest, 'layers' | 'experts'>,
  file: string,
): void {
  for (let i = 0; i < loads.length; i++) {
    const v = loads[i]!;
    // One comparison covers NaN, ±Infinity and negatives on the fast path.
    if (v >= 0 && v < Number.POSITIVE_INFINITY) continue;
    const step = Math.floor(i / (m.layers * m.experts));
    const layer = Math.floor(i / m.experts) % m.layers;
    const what = Number.isNaN(v) ? 'NaN' : v < 0 ? `negative (${v})` : String(v);
    throw new UserError(
      `${file}: load at step ${step}, layer ${layer}, expert ${i % m.experts} is ${what}; loads must be finite and non-negative`,
    );
  }
}

/** Reads a trace from its manifest path (`<name>.json`, data in the sibling file it names). */
export function readTrace(manifestPath: string): Trace {
  const file = resolve(manifestPath);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UserError(
      `${manifestPath}: cannot read the manifest (${(error as Error).message.split('\n')[0]})`,
    );
  }
  return readTraceWithManifest(parsed, file);
}

/** Reads the data file of an already-parsed manifest. */
export function readTraceWithManifest(manifest: unknown, manifestPath: string): Trace {
  validateManifest(manifest, manifestPath);
  const dataPath = join(dirname(manifestPath), manifest.data);
  check(
    existsSync(dataPath),
    `${manifestPath}: its data file ${manifest.data} is missing; keep the .json and .bin together`,
  );
  const expected = manifest.steps * manifest.layers * manifest.experts * 4;
  const size = statSync(dataPath).size;
  check(
    size === expected,
    `${dataPath}: ${size} bytes, but the manifest's ${manifest.steps}×${manifest.layers}×${manifest.experts} float32 need ${expected}; the files do not belong together (re-import)`,
  );
  const bytes = readFileSync(dataPath);
  const loads = new Float32Array(manifest.steps * manifest.layers * manifest.experts);
  if (LITTLE_ENDIAN) {
    new Uint8Array(loads.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < loads.length; i++) loads[i] = view.getFloat32(i * 4, true);
  }
  validateLoads(loads, manifest, dataPath);
  return { manifest, loads, path: manifestPath };
}

/**
 * Writes `<name>.bin` then `<name>.json` (each atomically, data first so a manifest never points at a
 * missing file). `out` is a folder or a `.json` path. Returns the manifest path.
 */
export function writeTrace(trace: Trace, out: string): string {
  const m = trace.manifest;
  const manifestPath = extname(out) === '.json' ? out : join(out, `${m.name}.json`);
  const name = basename(manifestPath, '.json');
  const manifest: TraceManifest = { ...m, name, data: `${name}.bin`, format: TRACE_FORMAT, dtype: 'float32' };
  validateManifest(manifest, manifestPath);
  check(
    trace.loads.length === m.steps * m.layers * m.experts,
    `trace '${m.name}' holds ${trace.loads.length} loads, but its manifest says ${m.steps}×${m.layers}×${m.experts}`,
  );
  validateLoads(trace.loads, m, manifestPath);
  let bytes: Uint8Array;
  if (LITTLE_ENDIAN) {
    bytes = new Uint8Array(trace.loads.buffer, trace.loads.byteOffset, trace.loads.byteLength);
  } else {
    bytes = new Uint8Array(trace.loads.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < trace.loads.length; i++) view.setFloat32(i * 4, trace.loads[i]!, true);
  }
  writeFileAtomic(join(dirname(manifestPath), manifest.data), bytes);
  writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifestPath;
}
