import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { drawSeries } from '../src/eval/series.js';
import { traceChecksum } from '../src/evolve/trace-checksum.js';
import { loadTrace } from '../src/trace/load.js';
import { materialiseProtocolFixture } from './helpers/protocol-fixtures.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');
const FIX = 'test/fixtures/candidates';

function adrs(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the drawn secret series', () => {
  it('is shaped like the named trace, reproducible from its seed, and new for every seed', () => {
    const like = loadTrace('synthetic-v4-windows');
    const a = drawSeries('synthetic-v4-windows', 11, 3);
    const b = drawSeries('synthetic-v4-windows', 11, 3);
    const c = drawSeries('synthetic-v4-windows', 12, 3);
    for (const k of ['layers', 'experts', 'groups', 'topK', 'topKGroups'] as const)
      expect(a.manifest[k]).toBe(like.manifest[k]);
    expect(a.manifest.steps).toBe(3);
    expect(traceChecksum(a)).toBe(traceChecksum(b));
    expect(traceChecksum(a)).not.toBe(traceChecksum(c));
    // None of its windows is one of the public series'.
    const size = like.manifest.layers * like.manifest.experts;
    for (let w = 0; w < 3; w++) {
      const drawn = a.loads.subarray(w * size, (w + 1) * size);
      for (let p = 0; p < like.manifest.steps; p++) {
        const pub = like.loads.subarray(p * size, (p + 1) * size);
        expect(drawn.every((x, i) => x === pub[i])).toBe(false);
      }
    }
  });
});

describe('adrs eval DIR [DIR ...]', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'adrs-protocol-cli-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  // The evaluator bundles only the candidate's folder: this one with its shared modules copied in.
  const remembering = materialiseProtocolFixture(tmp, 'protocol-memory-successor');
  it('scores several candidates side by side; one’s behaviour never changes another’s verdict', () => {
    const common = ['--json', '--windows', '3', '--repeats', '2', '--moe-tokens', '0'];
    const seeds = ['--seed', '0000abcdef01', '--series-seed', '7'];
    const together = adrs('eval', `${FIX}/greedy-cpu`, `${FIX}/throws`, remembering, ...common, ...seeds);
    expect(together.stderr).not.toMatch(/Error/);
    expect(together.code).toBe(0);
    const rows = JSON.parse(together.stdout) as Array<{
      dir: string;
      valid: boolean;
      seed: string;
      series_seed: number;
      artifacts: Record<string, string>;
      metrics: { balancedness_next: number };
    }>;
    expect(rows.map((r) => r.dir)).toEqual([`${FIX}/greedy-cpu`, `${FIX}/throws`, remembering]);
    expect(rows.map((r) => r.valid)).toEqual([true, false, true]);
    expect(rows[1]!.artifacts.exception).toBeDefined();
    for (const r of rows) expect([r.seed, r.series_seed]).toEqual(['0000abcdef01', 7]);
    // Alone, the honest candidate gets exactly the same quality as next to the others.
    const alone = adrs('eval', `${FIX}/greedy-cpu`, ...common, ...seeds);
    expect(alone.code).toBe(0);
    const single = JSON.parse(alone.stdout) as (typeof rows)[number];
    expect(single.valid).toBe(true);
    expect(single.metrics.balancedness_next).toBe(rows[0]!.metrics.balancedness_next);
    // The remembering hostile gains nothing over it.
    expect(rows[2]!.metrics.balancedness_next).toBe(rows[0]!.metrics.balancedness_next);
  });

  it('bad options are one-line errors before any worker starts', () => {
    const bad = adrs('eval', `${FIX}/greedy-cpu`, '--history', '0');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/history must be a positive integer/);
    const objective = adrs('eval', `${FIX}/greedy-cpu`, '--objective', 'speed');
    expect(objective.code).toBe(1);
    const shape = adrs('eval', `${FIX}/greedy-cpu`, '--gpus', '7');
    expect(shape.code).toBe(1);
    expect(shape.stderr.trim().split('\n')).toHaveLength(1);
  });
});
