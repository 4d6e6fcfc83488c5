import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readTrace, writeTrace } from '../src/trace/io.js';
import { listBundledTraces, loadLoads, loadTrace, selectWindow } from '../src/trace/load.js';
import { stepLoads, type Trace } from '../src/trace/trace.js';
import { UserError } from '../src/util/errors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'adrs-trace-io-'));
});

const writeJson = (name: string, value: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
};

/** A small deterministic [layers][experts] matrix with distinct values. */
const matrix = (layers: number, experts: number, salt = 0): number[][] =>
  Array.from({ length: layers }, (_, l) =>
    Array.from({ length: experts }, (_, e) => (l * 31 + e * 7 + salt) % 97),
  );

function expectUserError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(UserError);
  const message = (caught as Error).message;
  expect(message).toMatch(pattern);
  expect(message).not.toContain('\n');
}

describe('trace format round trip', () => {
  it('writes .bin and .json and reads back identical loads and manifest', () => {
    const src = loadTrace(writeJson('plain3d.json', [matrix(3, 12, 1), matrix(3, 12, 2)]));
    const manifestPath = writeTrace(src, join(dir, 'out'));
    expect(manifestPath).toBe(join(dir, 'out', 'plain3d.json'));
    const back = readTrace(manifestPath);
    expect(back.manifest).toEqual({ ...src.manifest, data: 'plain3d.bin' });
    expect(Array.from(back.loads)).toEqual(Array.from(src.loads));
    expect(readFileSync(join(dir, 'out', 'plain3d.bin')).byteLength).toBe(2 * 3 * 12 * 4);
    // Little-endian on disk, whatever the host.
    const bytes = readFileSync(join(dir, 'out', 'plain3d.bin'));
    expect(bytes.readFloatLE(4)).toBe(src.loads[1]);
    // loadTrace reads our own format too, from the manifest or from the .bin.
    expect(Array.from(loadTrace(manifestPath).loads)).toEqual(Array.from(src.loads));
    expect(loadTrace(join(dir, 'out', 'plain3d.bin')).manifest.name).toBe('plain3d');
  });

  it('honours a .json output path as the trace name', () => {
    const src = loadTrace(writeJson('p.json', matrix(2, 4)));
    const path = writeTrace(src, join(dir, 'named', 'renamed.json'));
    const back = readTrace(path);
    expect(back.manifest.name).toBe('renamed');
    expect(back.manifest.data).toBe('renamed.bin');
  });
});

describe('importers', () => {
  it('SGLang snapshot: drops the leading all-zero dense layers, keeps later zero rows', () => {
    const rows = [Array(8).fill(0), Array(8).fill(0), ...matrix(2, 8), Array(8).fill(0), ...matrix(1, 8, 5)];
    const t = loadTrace(writeJson('sglang.json', { logical_count: rows }));
    expect(t.manifest).toMatchObject({ layers: 4, experts: 8, steps: 1, granularity: 'snapshot' });
    expect(Array.from(t.loads)).toEqual(rows.slice(2).flat());
  });

  it('expert-load.json: one step per load_history entry', () => {
    const history = [0, 1, 2].map((s) => ({ logical_expert_load: matrix(3, 256, s) }));
    const t = loadTrace(writeJson('expert-load.json', { load_history: history }));
    expect(t.manifest).toMatchObject({ layers: 3, experts: 256, steps: 3, granularity: 'step' });
    // 256 experts → DeepSeek-V3/R1 routing facts.
    expect(t.manifest).toMatchObject({ model: 'DeepSeek-V3/R1', groups: 8, topK: 8, topKGroups: 4 });
    expect(Array.from(stepLoads(t, 2))).toEqual(matrix(3, 256, 2).flat());
  });

  it('plain [layers][experts] array: one step, all-zero rows kept', () => {
    const rows = [Array(12).fill(0), ...matrix(2, 12)];
    const t = loadTrace(writeJson('weights.json', rows));
    expect(t.manifest).toMatchObject({ layers: 3, experts: 12, steps: 1, groups: 1, model: 'unknown' });
    expect(Array.from(t.loads)).toEqual(rows.flat());
    expect(t.manifest.name).toBe('weights');
  });
});

describe('bad input is a one-line UserError naming the file and problem', () => {
  it('ragged rows', () => {
    const rows = matrix(4, 256);
    rows[3] = rows[3]!.slice(1);
    expectUserError(
      () => loadTrace(writeJson('ragged.json', rows)),
      /ragged\.json: row 3 has 255 loads, expected 256/,
    );
  });
  it('negative, non-finite and non-numeric loads', () => {
    const neg = matrix(2, 4);
    neg[1]![2] = -1;
    expectUserError(
      () => loadTrace(writeJson('neg.json', neg)),
      /neg\.json: row 1, expert 2 is -1; loads must be finite/,
    );
    expectUserError(
      () => loadTrace(writeJson('str.json', [[1, '2']])),
      /str\.json: row 0, expert 1 is "2", not a number/,
    );
    expectUserError(
      () => loadTrace(writeJson('huge.json', '[[1, 1e39]]')),
      /huge\.json: load at step 0, layer 0, expert 1 is Infinity/,
    );
  });
  it('empty and unknown shapes', () => {
    expectUserError(() => loadTrace(writeJson('empty.json', [])), /empty\.json: the array is empty/);
    expectUserError(() => loadTrace(writeJson('obj.json', { weights: [] })), /obj\.json: unknown JSON shape/);
    expectUserError(() => loadTrace(writeJson('num.json', 3)), /num\.json: unknown JSON shape/);
    expectUserError(() => loadTrace(writeJson('bad.json', '{oops')), /bad\.json: not readable JSON/);
    expectUserError(
      () =>
        loadTrace(
          writeJson('allzero.json', {
            logical_count: [
              [0, 0],
              [0, 0],
            ],
          }),
        ),
      /every layer of logical_count is zero/,
    );
    expectUserError(
      () => loadTrace(writeJson('nohist.json', { load_history: [] })),
      /load_history must be a non-empty array/,
    );
  });
  it('unknown names list the bundled traces', () => {
    expectUserError(
      () => loadTrace('no-such-trace'),
      /no-such-trace: no such file, and not a bundled trace \(bundled: .*sglang-r1-prefill-in512/,
    );
  });
  it('manifest problems: format, sizes vs byte length, dtype, bad data', () => {
    const src = loadTrace(writeJson('m.json', matrix(2, 4)));
    const path = writeTrace(src, join(dir, 'm'));
    const manifest = JSON.parse(readFileSync(path, 'utf8'));
    const variant = (name: string, change: Record<string, unknown>) => {
      const p = join(dir, 'm', `${name}.json`);
      writeFileSync(p, JSON.stringify({ ...manifest, ...change }));
      return p;
    };
    expectUserError(
      () => loadTrace(variant('fmt', { format: 'adrs-trace/9' })),
      /format "adrs-trace\/9" is not "adrs-trace\/1"/,
    );
    expectUserError(
      () => readTrace(variant('steps', { steps: 3 })),
      /m\.bin: 32 bytes, but the manifest's 3×2×4 float32 need 96/,
    );
    expectUserError(() => loadTrace(variant('dtype', { dtype: 'float16' })), /dtype must be "float32"/);
    expectUserError(
      () => loadTrace(variant('missing', { data: 'gone.bin' })),
      /its data file gone\.bin is missing/,
    );
    const nan = new Float32Array([1, 2, 3, 4, 5, Number.NaN, 7, 8]);
    writeFileSync(join(dir, 'm', 'nan.bin'), new Uint8Array(nan.buffer));
    expectUserError(
      () => loadTrace(variant('nanm', { data: 'nan.bin' })),
      /nan\.bin: load at step 0, layer 1, expert 1 is NaN/,
    );
  });
});

const layerTotal = (t: Trace, l: number, step = 0): number =>
  stepLoads(t, step)
    .subarray(l * t.manifest.experts, (l + 1) * t.manifest.experts)
    .reduce((a, b) => a + b, 0);

describe('bundled traces and step selection', () => {
  it('ships the eight SGLang DeepSeek-R1 snapshots (58×256) and the synthetic window series', () => {
    const names = listBundledTraces();
    const real = names.filter((n) => n.startsWith('sglang-r1-prefill-'));
    expect(real).toHaveLength(8);
    for (const name of real) {
      const t: Trace = loadTrace(name);
      expect(t.manifest).toMatchObject({
        layers: 58,
        experts: 256,
        steps: 1,
        granularity: 'snapshot',
        groups: 8,
        topK: 8,
      });
      expect(t.manifest.attribution).toContain('SGLang');
      for (let l = 0; l < 58; l++) expect(layerTotal(t, l)).toBeGreaterThan(0);
    }
    // The in512 run routed 2^23 tokens × top-8 through every MoE layer.
    const in512 = loadTrace('sglang-r1-prefill-in512');
    for (let l = 0; l < 58; l++) expect(layerTotal(in512, l)).toBe(2 ** 26);
    const syn = loadTrace('synthetic-v4-windows');
    expect(syn.manifest).toMatchObject({
      layers: 58,
      experts: 256,
      steps: 16,
      granularity: 'window',
      stepsPerWindow: 100,
    });
  });

  it('picks a window by index, from the end, default the last; out of range is a UserError', () => {
    const t = loadTrace('synthetic-v4-windows');
    expect(selectWindow(t).window).toBe(15);
    expect(selectWindow(t, 3).window).toBe(3);
    expect(selectWindow(t, -2).window).toBe(14);
    expect(Array.from(selectWindow(t, 3).loads)).toEqual(Array.from(stepLoads(t, 3)));
    expectUserError(
      () => selectWindow(t, 16),
      /window 16 is out of range: trace 'synthetic-v4-windows' has 16 windows \(0–15/,
    );
    expectUserError(() => selectWindow(t, 1.5), /--window must be an integer/);
    const one = loadLoads('sglang-r1-prefill-in512');
    expect(one).toMatchObject({ window: 0, layers: 58, experts: 256 });
    expect(one.loads.length).toBe(58 * 256);
  });

  it('windows of a per-step trace are sums of its steps, for every command alike', () => {
    const steps = 250;
    const doc = {
      load_history: Array.from({ length: steps }, (_, s) => ({ logical_expert_load: [[s, 1, 0, 2]] })),
    };
    const file = join(dir, 'history.json');
    writeFileSync(file, JSON.stringify(doc));
    const t = loadTrace(file);
    expect(t.manifest.granularity).toBe('step');
    const last = loadLoads(file);
    // 250 steps → 2 windows of 100 aligned to the end (the first 50 steps are dropped): the default,
    // window 1, is the latest load, steps 150..249.
    expect(last.window).toBe(1);
    expect(Array.from(last.loads)).toEqual([((150 + 249) * 100) / 2, 100, 0, 200]);
  });
});
