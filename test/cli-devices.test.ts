import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');

function adrs(env: NodeJS.ProcessEnv, ...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
}

describe('adrs devices', () => {
  it('lists every adapter Dawn sees with what matters for compute', () => {
    const r = adrs({}, 'devices', '--json');
    expect(r.status).toBe(0);
    const { adapters } = JSON.parse(r.stdout);
    expect(adapters.length).toBeGreaterThan(0);
    for (const a of adapters) {
      expect(a).toMatchObject({ backend: expect.any(String), software: expect.any(Boolean) });
      expect(a.name.length).toBeGreaterThan(0);
      expect(typeof a.timestamp_query).toBe('boolean');
      expect(a.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
      expect(a.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    }
  });

  it('exits 1 with one line naming the fix when there is no adapter', () => {
    // No Vulkan driver to load: what a machine without a GPU driver or lavapipe looks like.
    const r = adrs(
      { VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' },
      'devices',
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    // Dawn's own native warnings may precede it; ours is the last line, and there is no JS stack.
    const ours = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('adrs: '));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/no GPU adapter found: install a Vulkan driver/);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(ours[0]);
  });

  it('names the available adapters when --adapter matches none', () => {
    const r = adrs(
      { ADRS_ADAPTER: 'no-such-gpu' },
      'bench',
      '--trace',
      'sglang-r1-prefill-in512',
      '--balancers',
      'none',
    );
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      /no GPU adapter matches 'no-such-gpu' \(available: '.+'\)/,
    );
  });
});
