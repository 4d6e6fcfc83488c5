import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/evolve/config.js';
import type { ProgramRecord } from '../src/evolve/database.js';
import type { EvaluatorInfo } from '../src/evolve/evaluator.js';
import { type Attempt, buildPrompt, METRIC_MEANINGS, type PromptInput } from '../src/evolve/prompts.js';
import { runSession } from '../src/evolve/session.js';
import { climbingModel, currentValues, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

const SEED = readFileSync('examples/eplb/balancer.ts', 'utf8');
const KERNEL = readFileSync('examples/eplb/kernels/replicate.wgsl', 'utf8');
const API = readFileSync('src/eval/candidate-api.ts', 'utf8');

const METRICS = {
  balancedness_next: 0.89,
  balancedness_same: 0.993,
  median_ms: 9.0,
  p95_ms: 22.4,
  mean_ms: 11.3,
  adrs_score: 80.7,
  ipc_ms: 0.05,
  setup_ms: 120,
  clock_gap_ms: 0.01,
  candidate_ms: 680,
  overhead_ms: 320,
};

const record = (id: string, metrics: Record<string, number> = METRICS, valid = true): ProgramRecord => ({
  id,
  hash: id,
  iteration: 0,
  island: 0,
  parents: [],
  generation: 0,
  mutation: 'seed',
  model: null,
  valid,
  score: valid ? 80.75 : null,
  metrics,
});

const LAVAPIPE: EvaluatorInfo = {
  problem: 'eplb',
  adapter: { name: 'llvmpipe (LLVM 15.0.6, 256 bits)', software: true },
  objective: 'adrs',
};

function input(over: Partial<PromptInput> = {}): PromptInput {
  const attempts: Attempt[] = [
    {
      iteration: 3,
      parent: 'p0',
      mutation: 'diff',
      outcome: 'invalid',
      score: null,
      delta: null,
      reason: 'wgsl: kernels/replicate.wgsl:12:9 error: expected expression',
      artifact: 'wgsl: kernels/replicate.wgsl:12:9 error: expected expression',
      metrics: { eval_ms: 310 },
    },
    {
      iteration: 4,
      parent: 'p0',
      mutation: 'rewrite',
      outcome: 'valid',
      score: 81.2,
      delta: 0.45,
      metrics: { ...METRICS, mean_ms: 9.9, adrs_score: 81.2 },
      artifact: 'timings: median 8.7 ms',
      selection: 'p0 stays the best: re-measured 3+3 times: p4 − p0 = +0.1000, ≤ 2 × SE 0.4000',
    },
  ];
  return {
    mutation: 'diff',
    parent: {
      record: record('p0'),
      files: { 'balancer.ts': SEED, 'kernels/replicate.wgsl': KERNEL },
      artifacts: { timings: 'median 9.0 ms' },
    },
    mate: null,
    top: [],
    diverse: [],
    attempts,
    info: LAVAPIPE,
    runNoise: 0.4,
    ...over,
  };
}

const user = (i: PromptInput, config = defaultConfig()) => buildPrompt(config, i)[1]!.content;

describe('prompts carry what a model needs', () => {
  it('embeds the candidate API as the evaluator defines it, read from src/eval/candidate-api.ts', () => {
    const text = user(input());
    expect(text).toContain('# The candidate API (src/eval/candidate-api.ts');
    // Every declaration of the file, verbatim (whatever other branches add to it).
    const declarations = API.split('\n').filter((l) => /^export (interface|type|function|const)/.test(l));
    expect(declarations.length).toBeGreaterThanOrEqual(4);
    for (const d of declarations) expect(text).toContain(d);
    expect(text).toContain(API.trim());
    // A custom problem gets no EPLB API or rule.
    const custom = user(input({ info: { problem: 'custom', adapter: null, objective: 'toy' } }));
    expect(custom).not.toContain('# The candidate API');
    expect(custom).not.toContain('Time t = the MEAN');
  });

  it('states the exact scoring rule, the objective in use and what relabelling preserves', () => {
    const text = user(input());
    expect(text).toContain('Time t = the MEAN over all timed calls of every pass, outliers included');
    expect(text).toContain('GPU balancedness of placement(k) on window k+1');
    expect(text).toContain('Σ_layers mean_gpu(load) / Σ_layers max_gpu(load)');
    expect(text).toContain('score = 90·b + 5·min(2 ms / t, 2) − (t > 10 ms ? min(0.02·t[ms], 20) : 0)');
    expect(user(input({ info: { ...LAVAPIPE, objective: 'default' } }))).toContain(
      'score = 100 · b · (1 + t / 10 ms)^−0.1',
    );
    expect(text).toMatch(/experts permuted within their groups.*one layer order/);
    expect(text).toContain('state kept between calls');
    expect(text).toContain('compare shares');
    // The selection rule with the configured rounds and z.
    const config = defaultConfig();
    config.selection = { rounds: 4, z: 2.5 };
    expect(user(input(), config)).toMatch(
      /falls short of it by less than 2\.5 standard errors, is re-measured 4 more times against the best, interleaved.*more than 2\.5 standard errors of the difference/,
    );
  });

  it('shows every recent attempt with its metrics, valid or not, and one line per metric shown', () => {
    const text = user(input());
    expect(text).toMatch(
      /iteration 3: diff of p0 → invalid: wgsl: kernels\/replicate\.wgsl:12:9.*\n {2}metrics: eval_ms=310/,
    );
    expect(text).toMatch(
      /iteration 4: rewrite of p0 → valid, score 81\.200 .*\n {2}metrics: .*mean_ms=9\.9000/,
    );
    expect(text).toContain('  first artifact line: timings: median 8.7 ms');
    expect(text).toContain('  selection: p0 stays the best');
    for (const k of [
      'candidate_ms',
      'overhead_ms',
      'clock_gap_ms',
      'ipc_ms',
      'setup_ms',
      'eval_ms',
      'mean_ms',
    ])
      expect(text).toContain(`- ${k}: ${METRIC_MEANINGS[k]}`);
    expect(text).toMatch(/- mean_ms: .*the time t the objective charges/);
    // Only metrics the prompt shows are explained; an unknown one says so.
    expect(text).not.toContain(`- gpu_ms: ${METRIC_MEANINGS.gpu_ms}`);
    const odd = input({
      parent: { ...input().parent, record: record('p0', { ...METRICS, warp_factor: 3 }) },
    });
    expect(user(odd)).toContain('- warp_factor: reported by the evaluator (no description)');
    // Scores carry their noise: the run's estimate where the program has none of its own.
    expect(text).toMatch(/# Current program \(p0\)\nscore=80\.750 ±0\.40000 \(run's noise estimate\)/);
  });

  it("derives its hints from the evaluator's adapter and the measured time split", () => {
    const split = { ...METRICS, host_ms: 2.1, gpu_wait_ms: 8.4, gpu_ms: 0.3 };
    const onLavapipe = user(input({ parent: { ...input().parent, record: record('p0', split) } }));
    expect(onLavapipe).toContain('llvmpipe (LLVM 15.0.6, 256 bits), a software rasteriser');
    expect(onLavapipe).toContain('Moving work into WGSL does not pay here');
    expect(onLavapipe).toContain(
      'Time per call: host 2.1000 ms, waiting for the GPU 8.4000 ms, of which GPU execution 0.30000 ms',
    );
    expect(onLavapipe).toMatch(/spends 80 % of its call time waiting for the GPU/);
    expect(onLavapipe).toContain('- gpu_wait_ms: ');
    const h200: EvaluatorInfo = { ...LAVAPIPE, adapter: { name: 'NVIDIA H200', software: false } };
    const hostBound = { ...METRICS, host_ms: 9, gpu_wait_ms: 1 };
    const onGpu = user(input({ info: h200, parent: { ...input().parent, record: record('p0', hostBound) } }));
    expect(onGpu).toContain('NVIDIA H200, a hardware GPU');
    expect(onGpu).toContain('can pay in WGSL');
    expect(onGpu).not.toContain('does not pay');
    expect(onGpu).toMatch(/spends 90 % of its call time on the host/);
    // p95 over twice the median: outliers raise the charged mean.
    expect(onLavapipe).toMatch(/Its p95 \(22\.400 ms\) is over twice its median/);
  });

  it('stays within a sane size', () => {
    const i = input();
    const many = { ...i, top: [i.parent, i.parent, i.parent], diverse: [i.parent, i.parent] };
    const text = user(many);
    expect(text.length).toBeLessThan(70_000);
    expect(user(i).length).toBeLessThan(40_000);
  });
});

let server: FakeOpenAiServer | undefined;
const saved = { ...process.env };
afterEach(async () => {
  await server?.close();
  server = undefined;
  process.env = { ...saved };
});

describe('prompts through the fake model server', () => {
  it('carry the API, the scoring rule and the metrics of every recent attempt, invalid ones too', async () => {
    process.env.TOY_PROBLEM = 'eplb';
    process.env.TOY_ADAPTER = 'llvmpipe (LLVM 15.0.6, 256 bits)';
    server = await FakeOpenAiServer.start((q) =>
      q.index === 1
        ? {
            text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${currentValues(q).spread};\n=======\nexport const SPREAD = BROKEN;\n>>>>>>> REPLACE`,
          }
        : climbingModel(q),
    );
    const p = makeToyProject(server.baseUrl, {
      search: { islands: 1, parallel: 1, mutations: { diff: 1, rewrite: 0, crossover: 0 } },
      prompt: { top_programs: 1, last_attempts: 5 },
    });
    await runSession({ configPath: p.configPath, out: join(p.dir, 'run'), overrides: { iterations: 4 } });
    const first = server.requests[0]!.messages[1]!.content;
    expect(first).toContain(API.trim());
    expect(first).toContain('Time t = the MEAN over all timed calls');
    expect(first).toContain('Moving work into WGSL does not pay here');
    const last = server.requests.at(-1)!.messages[1]!.content;
    // Attempt 2 was invalid: its first artifact line; attempts 1 and 3 with their metrics.
    expect(last).toMatch(
      /iteration 2: diff of p\d → invalid: compile: balancer\.ts:4:1 error: BROKEN is not defined/,
    );
    const withMetrics = last.match(/\n {2}metrics: .*adrs_score=/g) ?? [];
    expect(withMetrics.length).toBeGreaterThanOrEqual(2);
    expect(last).toContain('- score_noise: ');
    expect(last).toContain('- adrs_score: the adrs objective on these measurements');
  });
});
