import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvalResult, EvaluatorPool } from '../src/eval/index.js';
import { loadTrace } from '../src/trace/load.js';
import { type VariantName, writeVariant } from './helpers/hostile-variants.js';

/**
 * Candidates that cheat or fail on their answers: exceptions, malformed placements, remembered
 * answers, work left running on the GPU, compile errors. Each comes back invalid with an artifact
 * that points at the problem, and the pool stays healthy.
 */
const FIXTURES = 'test/fixtures/candidates';
const trace = loadTrace('synthetic-v4-windows');
// One relabelling seed for every evaluation here, so a hostile and its honest variant see the same inputs.
const opts = {
  trace,
  objective: 'default' as const,
  windows: 3,
  repeats: 2,
  seed: '5eed5eed5eed',
  moeTokens: 0,
};
let pool: EvaluatorPool;
/** Where the valid-naive variants are written (test/helpers/hostile-variants.ts). */
let variants: string;

beforeAll(async () => {
  pool = await EvaluatorPool.create({ workers: 2, timeoutS: 30, memoryMb: 1024 });
  variants = mkdtempSync(join(tmpdir(), 'adrs-hostile-output-'));
});
afterAll(async () => {
  await pool?.close();
  if (variants) rmSync(variants, { recursive: true, force: true });
});

const evaluate = (name: string): Promise<EvalResult> => pool.evaluate(join(FIXTURES, name), opts);
const evaluateVariant = (name: VariantName): Promise<EvalResult> =>
  pool.evaluate(writeVariant(variants, name), opts);
type Edit = (text: string) => string;
const same: Edit = (t) => t;
const files = (name: string, edit = same, editKernel = same): Record<string, string> => {
  const dir = join(FIXTURES, name);
  return {
    'balancer.ts': edit(readFileSync(join(dir, 'balancer.ts'), 'utf8')),
    'kernels/spin.wgsl': editKernel(readFileSync(join(dir, 'kernels/spin.wgsl'), 'utf8')),
  };
};

describe('hostile and broken answers', () => {
  it('an exception reports the candidate’s own stack lines, mapped to balancer.ts', async () => {
    const r = await evaluate('throws');
    expect(r.valid).toBe(false);
    expect(r.stage).toBe(1);
    const lines = r.artifacts.exception!.split('\n');
    expect(lines[0]).toMatch(/^stage 1, tiny case .*: RangeError: no expert 3 in 24 loads$/);
    expect(lines[1]).toMatch(/^ {4}at pick \(balancer\.ts:9:21\)$/);
    expect(lines[2]).toMatch(/^ {4}at rebalance \(balancer\.ts:16:3\)$/);
    expect(lines).toHaveLength(3); // no harness frames
  });

  it('wrong shapes, out-of-range ids and an expert with no replica fail validation', async () => {
    const [shape, range, missing] = await Promise.all(
      (['wrong-shape', 'out-of-range', 'missing-expert'] as const).map(evaluateVariant),
    );
    expect(shape!.artifacts.validation).toMatch(
      /phy2log must be an Int32Array of 2×16 = 32 entries, got Int32Array of 31/,
    );
    expect(range!.artifacts.validation).toMatch(/layer 0: slot 0 holds expert 12, outside \[0, 12\)/);
    expect(missing!.artifacts.validation).toMatch(/layer 0: expert 0 has no replica/);
    for (const r of [shape!, range!, missing!]) expect(r.valid).toBe(false);
  });

  it('caching answers between calls gains nothing: they are scored as the stale placements they are', async () => {
    // Time only moves forward in a worker, so a remembered answer is an old window's placement
    // (a legitimate, if poor, policy: never rebalance); it is scored on the next window like any other.
    const r = await evaluate('caching');
    const honest = await evaluate('greedy-cpu');
    expect(r.artifacts).toEqual({});
    expect(r.valid && honest.valid).toBe(true);
    expect(r.metrics.balancedness_next!).toBeLessThan(honest.metrics.balancedness_next!);
  });

  it('returning before its GPU work is done neither stops the clock nor passes a stale answer', async () => {
    const pipelined = await evaluate('early-return');
    // The timing half runs a spin ten times the fixture's, so that the kernel is most of a call's time.
    const longSpin: Edit = (t) => t.replace('4000000u', '40000000u');
    const honest = (awaitGpu: boolean) =>
      files(
        'early-return',
        (t) =>
          t
            .replace('const AWAIT_GPU = false;', `const AWAIT_GPU = ${awaitGpu};`)
            .replace('const PIPELINE = true;', 'const PIPELINE = false;'),
        longSpin,
      );
    expect(longSpin(files('early-return')['kernels/spin.wgsl']!)).toContain('40000000u');
    // One after the other: timings of concurrent evaluations on a loaded CPU (lavapipe) are not comparable.
    const early = await pool.evaluate({ files: honest(false) }, opts);
    const waited = await pool.evaluate({ files: honest(true) }, opts);
    // The stale answer is scored as what it is: the previous window's placement, no better.
    expect(pipelined.valid && early.valid && waited.valid).toBe(true);
    expect(pipelined.metrics.balancedness_next!).toBeLessThan(waited.metrics.balancedness_next!);
    expect(early.metrics.balancedness_next).toBe(waited.metrics.balancedness_next);
    // The call that returns early pays for the kernel all the same. Checked within each evaluation's
    // own calls (timings of two evaluations, even one after the other, drift apart on a loaded CPU):
    // the charged time contains the call's GPU wait, and for the early call that wait (the harness's
    // final wait: the candidate did not wait) is much of it, the kernel dwarfing the host work. Had
    // the clock stopped at the return, the wait would be 0, or outside (larger than) the charged time.
    for (const r of [early, waited]) {
      const { mean_ms, gpu_wait_ms } = r.metrics;
      expect(gpu_wait_ms).not.toBeNull();
      expect(mean_ms!).toBeGreaterThanOrEqual(gpu_wait_ms!);
      expect(gpu_wait_ms!).toBeGreaterThan(0.3 * mean_ms!);
    }
  });

  it('TypeScript errors come back with file:line:col', async () => {
    const text = readFileSync(join(FIXTURES, 'ts-error/balancer.txt'), 'utf8');
    const r = await pool.evaluate({ files: { 'balancer.ts': text } }, opts);
    expect(r.valid).toBe(false);
    expect(r.stage).toBe(1);
    expect(r.artifacts.transpile).toMatch(/^balancer\.ts:4:13: Unexpected ";"/);
  });

  it('WGSL errors come back with file:line:col', async () => {
    const r = await evaluate('wgsl-error');
    expect(r.valid).toBe(false);
    expect(r.artifacts.wgsl).toMatch(/^kernels\/broken\.wgsl:5:\d+: /);
  });

  it('imports outside the candidate are refused at transpile time', async () => {
    const r = await pool.evaluate(
      {
        files: {
          'balancer.ts': "import { loadTrace } from '../../src/trace/load.js';\nexport default loadTrace;\n",
        },
      },
      opts,
    );
    expect(r.artifacts.transpile).toMatch(
      /^balancer\.ts:1:27: imports outside the candidate folder are not allowed/,
    );
  });

  it('cannot patch the intrinsics or WebGPU methods the worker’s clock relies on', async () => {
    const r = await evaluate('tamper-harness');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('stays healthy', async () => {
    const r = await evaluate('valid-naive');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });
});
