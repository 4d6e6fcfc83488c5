import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTrace } from '../src/trace/io.js';
import type { Trace } from '../src/trace/trace.js';

// The CLI contract is checked on the real binary (built by `npm test` / `npm ci`), as outside tools use it.
const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');
const dir = mkdtempSync(join(tmpdir(), 'adrs-cli-'));

function adrs(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  return adrsWith({}, ...args);
}

function adrsWith(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 << 20,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const README_WEIGHTS = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];
const README_SHAPE = ['--replicas', '16', '--groups', '4', '--nodes', '2', '--gpus', '8'];

describe('adrs rebalance (CLI contract)', () => {
  it('reproduces the DeepSeek README fixture with --balancer deepseek --json', () => {
    const weights = file('readme.json', JSON.stringify(README_WEIGHTS));
    const r = adrs('rebalance', '--balancer', 'deepseek', '--weights', weights, ...README_SHAPE, '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.balancer).toBe('deepseek');
    expect(out.phy2log).toEqual([
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]);
    expect(out.logcnt).toHaveLength(2);
    expect(out.log2phy[0]).toHaveLength(12);
    expect(out.timing).toMatchObject({ runs: 1 });
  });

  it('runs the default balancer on a bundled trace, timing --repeat calls', () => {
    const r = adrs('rebalance', '--weights', 'sglang-r1-prefill-in512', '--repeat', '5', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.balancer).toBe('forecast');
    expect(out.history_windows).toBe(1);
    expect(out.phy2log).toHaveLength(58);
    expect(out.phy2log[0]).toHaveLength(288);
    expect(out.logcnt[0].reduce((a: number, b: number) => a + b, 0)).toBe(288);
    expect(out.timing.runs).toBe(5);
    expect(out.timing.median_ms).toBeGreaterThan(0);
    expect(out.timing.p95_ms).toBeGreaterThanOrEqual(out.timing.median_ms);
  });

  it('gives the same placement on one thread and on several (layers are split over worker threads)', () => {
    const run = (threads: string) =>
      JSON.parse(
        adrsWith({ ADRS_THREADS: threads }, 'rebalance', '--weights', 'synthetic-v4-windows', '--json')
          .stdout,
      );
    const one = run('1');
    const three = run('3');
    expect(three.phy2log).toEqual(one.phy2log);
    expect(three.logcnt).toEqual(one.logcnt);
    expect(three.log2phy).toEqual(one.log2phy);
  });

  it('caps worker threads at the number of layers, and refuses a bad ADRS_THREADS', () => {
    const weights = file('two-layers.json', JSON.stringify(README_WEIGHTS));
    const many = adrsWith(
      { ADRS_THREADS: '4' },
      'rebalance',
      '--weights',
      weights,
      ...README_SHAPE,
      '--json',
    );
    expect(many.code).toBe(0);
    expect(JSON.parse(many.stdout).phy2log).toHaveLength(2);
    const bad = adrsWith({ ADRS_THREADS: 'x' }, 'rebalance', '--weights', weights, ...README_SHAPE);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe("adrs: ADRS_THREADS must be a positive integer, got 'x'");
  });

  // A per-step trace of 10 steps, 2 per window: 5 windows of the README shape's 2 layers × 12 experts.
  const stepTrace = (): string => {
    const loads = new Float32Array(10 * 24);
    for (let i = 0; i < loads.length; i++) loads[i] = 1 + ((i * 37) % 11);
    const trace: Trace = {
      manifest: {
        format: 'adrs-trace/1',
        name: 'steps',
        model: 'test',
        layers: 2,
        experts: 12,
        groups: 4,
        topK: 2,
        topKGroups: 4,
        steps: 10,
        granularity: 'step',
        stepsPerWindow: 2,
        data: 'steps.bin',
        dtype: 'float32',
        source: 'test fixture',
        attribution: 'test fixture',
      },
      loads,
    };
    return writeTrace(trace, join(dir, 'steps.json'));
  };

  it('--window K gives the balancer windows up to K as its history, at most --history of them', () => {
    const trace = stepTrace();
    const run = (...args: string[]) => {
      const r = adrs('rebalance', '--weights', trace, ...README_SHAPE, '--json', ...args);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout);
    };
    expect(run()).toMatchObject({ balancer: 'forecast', window: 4, history_windows: 5 });
    expect(run('--window', '3', '--history', '2')).toMatchObject({ window: 3, history_windows: 2 });
    expect(run('--window', '0')).toMatchObject({ window: 0, history_windows: 1 });
    // Last-window placement stays selectable; it gets the same history and ignores it.
    expect(run('--balancer', 'bldm-swap', '--window', '2')).toMatchObject({ balancer: 'bldm-swap' });
    const text = adrs('rebalance', '--weights', trace, ...README_SHAPE, '--window', '3', '--history', '3');
    expect(text.stdout).toMatch(/history of 3 windows/);
  });

  it('treats a plain [layers][experts] file as a history of one', () => {
    const weights = file('plain.json', JSON.stringify(README_WEIGHTS));
    const r = adrs('rebalance', '--weights', weights, ...README_SHAPE, '--json', '--history', '8');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).history_windows).toBe(1);
  });

  it("takes the trace's own groups when --groups is left out, as every command does", () => {
    // 12 experts: the import's default routing is one group (8, DeepSeek-V3's, does not divide 12).
    const weights = file('no-groups.json', JSON.stringify(README_WEIGHTS));
    const r = adrs(
      'rebalance',
      '--weights',
      weights,
      '--replicas',
      '16',
      '--nodes',
      '2',
      '--gpus',
      '8',
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).phy2log).toHaveLength(2);
  });

  it('keeps all-zero rows of a plain array as they are', () => {
    const weights = file('zero-row.json', JSON.stringify([Array(12).fill(0), README_WEIGHTS[1]]));
    const r = adrs('rebalance', '--weights', weights, ...README_SHAPE, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).phy2log).toHaveLength(2);
  });

  const bad: Array<[string, () => string[], RegExp]> = [
    [
      'ragged rows',
      () => [
        '--weights',
        file('ragged.json', '[[1,2,3,4],[1,2,3]]'),
        '--replicas',
        '4',
        '--groups',
        '1',
        '--nodes',
        '1',
        '--gpus',
        '2',
      ],
      /row 1 has 3 loads, expected 4/,
    ],
    [
      'negative loads',
      () => [
        '--weights',
        file('neg.json', '[[1,-2,3,4]]'),
        '--replicas',
        '4',
        '--groups',
        '1',
        '--nodes',
        '1',
        '--gpus',
        '2',
      ],
      /negative/,
    ],
    [
      'non-finite loads',
      () => [
        '--weights',
        file('inf.json', '[[1,1e400,3,4]]'),
        '--replicas',
        '4',
        '--groups',
        '1',
        '--nodes',
        '1',
        '--gpus',
        '2',
      ],
      /finite|Infinity/i,
    ],
    [
      'R not divisible by P',
      () => [
        '--weights',
        file('r1.json', JSON.stringify(README_WEIGHTS)),
        '--replicas',
        '15',
        '--groups',
        '4',
        '--nodes',
        '2',
        '--gpus',
        '8',
      ],
      /divisible by gpus/,
    ],
    [
      'R < E',
      () => [
        '--weights',
        file('r2.json', JSON.stringify(README_WEIGHTS)),
        '--replicas',
        '8',
        '--groups',
        '4',
        '--nodes',
        '2',
        '--gpus',
        '8',
      ],
      /at least the number of experts/,
    ],
    [
      'groups not dividing E',
      () => [
        '--weights',
        file('r3.json', JSON.stringify(README_WEIGHTS)),
        '--replicas',
        '16',
        '--groups',
        '5',
        '--nodes',
        '1',
        '--gpus',
        '8',
      ],
      /groups \(5\) must divide/,
    ],
    [
      'an unknown balancer',
      () => [
        '--balancer',
        'nope',
        '--weights',
        file('r4.json', JSON.stringify(README_WEIGHTS)),
        ...README_SHAPE,
      ],
      /unknown balancer 'nope'/,
    ],
    ['a window out of range', () => ['--weights', 'synthetic-v4-windows', '--window', '99'], /out of range/],
    ['a missing file', () => ['--weights', join(dir, 'missing.json')], /no such file/],
    ['a non-integer --repeat', () => ['--weights', 'sglang-r1-prefill-in512', '--repeat', '0'], /--repeat/],
    ['a --history of 0', () => ['--weights', 'sglang-r1-prefill-in512', '--history', '0'], /--history/],
  ];

  it.each(bad)('refuses %s: exit 1 and one line naming the problem, no stack trace', (_, args, message) => {
    const r = adrs('rebalance', ...args());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^adrs: /);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
