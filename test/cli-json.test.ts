import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DATA_KEYED, snakeCase, snakeKeys } from '../src/util/snake-case.js';
import { runAdrs } from './helpers/cli.js';
import { climbingModel, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

// GPU commands run as the real binary (one GPU device per process); the others in this process.
const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');
const dir = mkdtempSync(join(tmpdir(), 'adrs-cli-json-'));

function adrs(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`adrs ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Every key of a JSON document that is not snake_case, with its path. The keys of maps keyed by data
 * are skipped, not their values; a hyphen is allowed, as in the run report's refusal classes
 * ('no-match'), enum values used as keys.
 */
function notSnake(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => notSnake(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(/^[a-z0-9_-]+$/.test(k) ? [] : [`${path}.${k}`]),
    ...(DATA_KEYED.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.entries(v).flatMap(([dk, dv]) => notSnake(dv, `${path}.${k}.${dk}`))
      : notSnake(v, `${path}.${k}`)),
  ]);
}

const weights = join(dir, 'weights.json');
writeFileSync(
  weights,
  JSON.stringify([
    [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
    [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
  ]),
);

let server: FakeOpenAiServer | undefined;
afterAll(async () => {
  await server?.close();
});

describe('snake_case keys in every JSON the CLI writes', () => {
  it('converts field names, not values or data-keyed maps', () => {
    expect(
      ['rebalanceInterval', 'top8Share', 'maxComputeWorkgroupSizeX', 'p95_ms', 'log2phy'].map(snakeCase),
    ).toEqual(['rebalance_interval', 'top8_share', 'max_compute_workgroup_size_x', 'p95_ms', 'log2phy']);
    expect(
      snakeKeys({ gpuMs: 1, files: { 'kernels/myKernel.wgsl': 'x' }, list: [{ runsOn: 'gpu' }] }),
    ).toEqual({
      gpu_ms: 1,
      files: { 'kernels/myKernel.wgsl': 'x' },
      list: [{ runs_on: 'gpu' }],
    });
    expect(notSnake({ a: { bC: 1 } })).toEqual(['$.a.bC']);
  });

  it.each([
    ['devices', ['devices', '--json']],
    [
      'simulate',
      ['simulate', '--trace', 'sglang-r1-prefill-in512', '--tokens', '1024', '--compare-cpu', '--json'],
    ],
    [
      'rebalance',
      ['rebalance', '--weights', weights, ...'--replicas 16 --groups 4 --nodes 2 --gpus 8 --json'.split(' ')],
    ],
    ['profile', ['profile', '--size', 'small', '--repeat', '1', '--kernel', 'route-sim', '--json']],
    [
      'bench',
      [
        'bench',
        '--trace',
        'synthetic-v4-windows',
        '--repeat',
        '1',
        '--balancers',
        'none',
        '--tokens',
        '256',
        '--json',
      ],
    ],
    [
      'eval',
      [
        'eval',
        'test/fixtures/candidates/greedy-cpu',
        '--trace',
        'synthetic-v4-windows',
        '--windows',
        '2',
        '--repeats',
        '2',
        '--json',
      ],
    ],
  ])(
    '%s --json',
    (_, args) => {
      const doc = JSON.parse(adrs(...args));
      expect(Object.keys(doc).length).toBeGreaterThan(0);
      expect(notSnake(doc)).toEqual([]);
    },
    120_000,
  );

  it('bench --out writes the same snake_case report as --json', () => {
    const out = join(dir, 'bench.json');
    const printed = JSON.parse(
      adrs(
        'bench',
        '--trace',
        'sglang-r1-prefill-in512',
        '--repeat',
        '1',
        '--balancers',
        'none',
        '--no-headroom',
        '--tokens',
        '256',
        '--json',
        '--out',
        out,
      ),
    );
    const written = JSON.parse(readFileSync(out, 'utf8'));
    expect(notSnake(written)).toEqual([]);
    expect(Object.keys(written.rows[0]).sort()).toEqual(Object.keys(printed.rows[0]).sort());
    expect(written.rows[0]).toMatchObject({ runs_on: 'cpu', balancer: 'none' });
    expect(written.config).toMatchObject({ rebalance_interval: 3000, replicas: 288 });
  }, 120_000);

  it('trace info, trace list, evolve and report --json, in this process', async () => {
    for (const args of [
      ['trace', 'info', 'synthetic-v4-windows', '--json'],
      ['trace', 'list', '--json'],
    ]) {
      const r = await runAdrs(...args);
      expect(r.code, r.stderr).toBe(0);
      expect(notSnake(JSON.parse(r.stdout)), args.join(' ')).toEqual([]);
    }
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl);
    const run = join(p.dir, 'run');
    const evolve = await runAdrs(
      'evolve',
      '--config',
      p.configPath,
      '--out',
      run,
      '--iterations',
      '2',
      '--json',
    );
    expect(evolve.code, evolve.stderr).toBe(0);
    const result = JSON.parse(evolve.stdout);
    expect(result.stats).toMatchObject({ stop_reason: 'iterations', committed: 2 });
    expect(notSnake(result)).toEqual([]);
    const report = await runAdrs('report', run, '--json');
    expect(report.code, report.stderr).toBe(0);
    expect(notSnake(JSON.parse(report.stdout))).toEqual([]);
  });
});
