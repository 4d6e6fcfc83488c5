import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeVariant } from './helpers/hostile-variants.js';

/**
 * `adrs profile DIR` on the real binary (built by `npm test`), with the seed candidate: per-call
 * split and per-kernel GPU time through ctx.dispatch, with timestamp queries and with the wall-time
 * fallback; bad candidates and options give one-line errors; the project's own kernels still profile.
 */
const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');

function adrs(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 16 << 20,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SMALL = ['--windows', '3', '--passes', '2'];

describe('adrs profile DIR', () => {
  it('reports the time split per call and the GPU time of each ctx.dispatch kernel (--json)', () => {
    const r = adrs('profile', 'examples/eplb', ...SMALL, '--json');
    expect(r.stderr).toContain('outside the sandbox');
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.sandboxed).toBe(false);
    expect(p.candidate).toBe('examples/eplb');
    expect(p.calls).toBe(2 * (3 - 1)); // the first call of each pass is reported apart
    expect(p.first_call_ms).toHaveLength(2);
    expect(p.kernels.map((k: { kernel: string }) => k.kernel)).toEqual(['replicate.wgsl:replicate']);
    const [k] = p.kernels;
    expect(k.dispatches_per_call).toBe(1);
    expect(k.per_call.mean_ms).toBeGreaterThan(0);
    const { total, host, gpu_wait, gpu } = p.per_call;
    expect(host.mean_ms + gpu_wait.mean_ms).toBeCloseTo(total.mean_ms, 6);
    if (p.timestamp_query) {
      expect(p.timing).toBe('timestamp-query');
      // The seed's only GPU work goes through ctx.dispatch: the kernel's time is the call's GPU time.
      expect(gpu.mean_ms).toBeCloseTo(k.per_call.mean_ms, 9);
    } else expect(gpu).toBeNull();
    // The seed places on the latest window: ≈ 0.78–0.81 on the v4 series, where `none` gets ≈ 0.4.
    expect(p.balancedness_next).toBeGreaterThan(0.7);
    expect(p.balancedness_next).toBeLessThanOrEqual(1);
  });

  it('falls back to wall time around onSubmittedWorkDone, labelled, with --no-timestamps', () => {
    const r = adrs('profile', 'examples/eplb', ...SMALL, '--no-timestamps', '--json');
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.timing).toBe('wall (submit → onSubmittedWorkDone)');
    expect(p.per_call.gpu).toBeNull();
    expect(p.kernels[0].per_call.mean_ms).toBeGreaterThan(0);
  });

  it('prints a readable report', () => {
    const r = adrs('profile', 'examples/eplb', '--windows', '3', '--passes', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ran in this process, outside the sandbox');
    expect(r.stdout).toMatch(/waiting for the GPU/);
    expect(r.stdout).toMatch(/replicate\.wgsl:replicate\s+1\.0/);
  });

  it('refuses bad candidates and options in one line', () => {
    const missing = adrs('profile', 'no/such/folder');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n').at(-1)).toMatch(/candidate folder 'no\/such\/folder' not found/);
    const variants = mkdtempSync(join(tmpdir(), 'adrs-profile-variant-'));
    const invalid = adrs('profile', writeVariant(variants, 'out-of-range'), ...SMALL);
    rmSync(variants, { recursive: true, force: true });
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/window 0: invalid placement/);
    const wgsl = adrs('profile', 'test/fixtures/candidates/wgsl-error', ...SMALL);
    expect(wgsl.code).toBe(1);
    expect(wgsl.stderr).toMatch(/kernels\/\w+\.wgsl:\d+:\d+/);
    const kernel = adrs('profile', 'examples/eplb', '--kernel', 'smoke');
    expect(kernel.code).toBe(1);
    expect(kernel.stderr).toContain('--kernel selects one of the project');
  });

  it("keeps profiling the project's own kernels without DIR", () => {
    const r = adrs(
      'profile',
      '--kernel',
      'smoke',
      '--size',
      'small',
      '--repeat',
      '2',
      '--no-reference',
      '--json',
    );
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.profiles.map((x: { kernel: string }) => x.kernel)).toEqual(['smoke']);
  });
});
