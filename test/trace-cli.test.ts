import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeTrace } from '../src/trace/describe.js';
import { loadTrace } from '../src/trace/load.js';
import { runAdrs } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'adrs-trace-cli-'));

/** Runs `adrs trace ...` in-process and returns what it printed; a failed run throws its error line. */
async function run(...args: string[]): Promise<string> {
  const r = await runAdrs(...args);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

describe('adrs trace', () => {
  it('import converts an SGLang snapshot into a trace loadTrace reads back', async () => {
    const src = join(dir, 'snap.json');
    const rows = [Array(16).fill(0), Array.from({ length: 16 }, (_, i) => i + 1)];
    writeFileSync(src, JSON.stringify({ logical_count: rows }));
    const out = JSON.parse(
      await run('trace', 'import', src, '--out', join(dir, 't'), '--name', 'snap1', '--json'),
    );
    expect(out.written).toBe(join(dir, 't', 'snap1.json'));
    const t = loadTrace(out.written);
    expect(t.manifest).toMatchObject({ name: 'snap1', layers: 1, experts: 16, granularity: 'snapshot' });
    expect(Array.from(t.loads)).toEqual(rows[1]);
  });

  it('gen writes the same bytes for the same seed, and info describes the result', async () => {
    const a = join(dir, 'a', 'g.json');
    const b = join(dir, 'b', 'g.json');
    await run('trace', 'gen', '--out', a, '--windows', '2', '--seed', '9');
    await run('trace', 'gen', '--out', b, '--windows', '2', '--seed', '9');
    expect(readFileSync(a.replace('.json', '.bin')).equals(readFileSync(b.replace('.json', '.bin')))).toBe(
      true,
    );
    const info = JSON.parse(await run('trace', 'info', a, '--json'));
    expect(info).toMatchObject({ name: 'g', steps: 2, granularity: 'window', layers: 58, experts: 256 });
    // Generator v2 draws each request's tokens; every layer holds tokens × top-8 hits.
    const tokens = JSON.parse(readFileSync(a, 'utf8')).generator.tokensPerWindow as number[];
    expect(tokens).toHaveLength(2);
    expect(info.total_load).toBe((tokens[0]! + tokens[1]!) * 58 * 8);
    const text = await run('trace', 'info', 'sglang-r1-prefill-in512');
    expect(text).toContain('58 layers × 256 experts');
    expect(text).toContain('1 snapshot;');
  });

  it('describeTrace summarizes skew per statistic', () => {
    const d = describeTrace(loadTrace('sglang-r1-prefill-in4096'));
    expect(d.skew.cv!.median).toBeGreaterThan(0.9);
    expect(d.meanCvPerStep).toHaveLength(1);
  });
});
