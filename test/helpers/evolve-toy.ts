import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Evaluator } from '../../src/evolve/evaluator.js';
import type { FakeReply, FakeRequest } from './fake-openai-server.js';

/**
 * A toy problem for the evolution driver's tests: two constants, one in TypeScript and one in WGSL,
 * each inside an EVOLVE-BLOCK; the score peaks at SPREAD = 5 and WIDTH = 3. The evaluator is a
 * plain JS module (the `evaluator.module` plug-in path), so a child process can load it as well.
 */
export const TOY_BALANCER = `// Fixed header: edits here are refused.
export const NAME = 'toy';
// EVOLVE-BLOCK-START
export const SPREAD = 1;
// EVOLVE-BLOCK-END
export default function rebalance() {
  return SPREAD;
}
`;

export const TOY_KERNEL = `// EVOLVE-BLOCK-START
const WIDTH: u32 = 1u;
// EVOLVE-BLOCK-END
@compute @workgroup_size(1) fn main() {}
`;

const EVALUATOR_JS = `
export let calls = 0;
export function score(files, split = 'train') {
  const ts = files['balancer.ts'] ?? '';
  const wgsl = files['kernels/toy.wgsl'] ?? '';
  if (ts.includes('BROKEN')) {
    return { valid: false, stage: 1, score: null, metrics: {}, artifacts: { compile: 'balancer.ts:4:1 error: BROKEN is not defined' } };
  }
  const spread = Number(/SPREAD = (-?\\d+)/.exec(ts)?.[1] ?? NaN);
  const width = Number(/WIDTH: u32 = (\\d+)u/.exec(wgsl)?.[1] ?? NaN);
  if (!Number.isFinite(spread) || !Number.isFinite(width)) {
    return { valid: false, stage: 1, score: null, metrics: {}, artifacts: { validation: 'SPREAD or WIDTH missing' } };
  }
  const s = 100 - (spread - 5) ** 2 - (width - 3) ** 2;
  // Injected measurement noise (TOY_NOISE): for the program with these constants, the offsets of its
  // 1st, 2nd, … training measurement, cycled: deterministic, whatever the order of evaluations.
  const noise = process.env.TOY_NOISE ? JSON.parse(process.env.TOY_NOISE) : null;
  let offset = 0;
  if (noise && split !== 'heldout') {
    const key = spread + ',' + width;
    const k = (measured.get(key) ?? 0);
    measured.set(key, k + 1);
    const seq = noise[key] ?? noise['*'] ?? [0];
    offset = seq[k % seq.length];
  }
  const score = s + offset;
  const metrics = { balancedness_next: s / 100, balancedness_same: s / 100, median_ms: 0.1 * (1 + Math.abs(spread)), adrs_score: score };
  // Without injected noise every score is exact, and the toy says so (score_noise 0); with it, the
  // controller estimates the noise from re-measurements unless TOY_SCORE_NOISE reports one.
  if (!noise) metrics.score_noise = 0;
  else if (process.env.TOY_SCORE_NOISE) metrics.score_noise = Number(process.env.TOY_SCORE_NOISE);
  return { valid: true, stage: 2, score, metrics, artifacts: { timings: 'median 0.1 ms' } };
}
const measured = new Map();
export async function createEvaluator(options) {
  const delay = Number(process.env.TOY_EVAL_DELAY_MS ?? 0);
  return {
    workers: options.evaluator.workers,
    async evaluate(files, split) {
      calls++;
      if (delay) await new Promise((r) => setTimeout(r, delay));
      const r = score(files, split);
      if (split === 'heldout' && r.valid) { r.score -= 1; r.metrics.adrs_score = r.score; }
      return r;
    },
    hasHeldOut: () => true,
    // TOY_PROBLEM=eplb: the toy stands in for the EPLB evaluator, so prompts carry its API and scoring rule.
    describe: () => ({
      problem: process.env.TOY_PROBLEM === 'eplb' ? 'eplb' : 'custom',
      adapter: process.env.TOY_ADAPTER ? { name: process.env.TOY_ADAPTER, software: /llvmpipe|lavapipe/i.test(process.env.TOY_ADAPTER) } : null,
      objective: process.env.TOY_PROBLEM === 'eplb' ? 'adrs' : 'toy',
    }),
    traces: () => ({ train: { name: 'toy-train', sha256: '0'.repeat(64) }, heldout: { name: 'toy-heldout', sha256: '1'.repeat(64) } }),
    async close() {},
  };
}
`;

export interface ToyProject {
  dir: string;
  candidate: string;
  evaluatorModule: string;
  configPath: string;
}

/** Writes the toy candidate, its evaluator module and a config pointing at `baseUrl`. */
export function makeToyProject(baseUrl: string, extra: Record<string, unknown> = {}): ToyProject {
  const dir = mkdtempSync(join(tmpdir(), 'adrs-evolve-'));
  const candidate = join(dir, 'seed');
  mkdirSync(join(candidate, 'kernels'), { recursive: true });
  writeFileSync(join(candidate, 'balancer.ts'), TOY_BALANCER);
  writeFileSync(join(candidate, 'kernels', 'toy.wgsl'), TOY_KERNEL);
  const evaluatorModule = join(dir, 'toy-evaluator.mjs');
  writeFileSync(evaluatorModule, EVALUATOR_JS);
  const config = {
    problem: 'Maximise the toy score.',
    candidate: 'seed',
    seed: 7,
    iterations: 6,
    llm: {
      base_url: baseUrl,
      models: [
        { name: 'toy-a', weight: 2, price_input_per_mtok: 1, price_output_per_mtok: 2 },
        { name: 'toy-b', weight: 1, price_input_per_mtok: 3, price_output_per_mtok: 6 },
      ],
      retries: 3,
      retry_base_s: 0.01,
      timeout_s: 10,
      concurrency: 4,
    },
    search: {
      islands: 2,
      migration_interval: 3,
      parallel: 2,
      mutations: { diff: 0.7, rewrite: 0.3, crossover: 0 },
    },
    evaluator: { module: 'toy-evaluator.mjs', workers: 2 },
    ...extra,
  };
  const configPath = join(dir, 'evolve.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return { dir, candidate, evaluatorModule, configPath };
}

export async function loadToyEvaluator(project: ToyProject): Promise<Evaluator & { calls(): number }> {
  const mod = await import(pathToFileURL(project.evaluatorModule).href);
  const e = await mod.createEvaluator({ evaluator: { workers: 2 } });
  return { ...e, calls: () => mod.calls };
}

/** The current program's constants as the prompt shows them. */
export function currentValues(req: FakeRequest): { spread: number; width: number; rewrite: boolean } {
  const user = req.messages.find((m) => m.role === 'user')!.content;
  const current = user.slice(user.indexOf('# Current program'));
  return {
    spread: Number(/SPREAD = (-?\d+)/.exec(current)?.[1]),
    width: Number(/WIDTH: u32 = (\d+)u/.exec(current)?.[1]),
    rewrite: user.includes('>>>>>>> END') && user.includes('Rewrite the EVOLVE-BLOCK'),
  };
}

/** A model that climbs: each answer moves SPREAD (diff) or WIDTH (rewrite) one step toward the optimum. */
export function climbingModel(req: FakeRequest): FakeReply {
  const { spread, width, rewrite } = currentValues(req);
  if (rewrite) {
    const w = width < 3 ? width + 1 : width > 3 ? width - 1 : width + 1;
    return {
      text: `Widen the kernel.\n<<<<<<< BLOCK kernels/toy.wgsl#1\nconst WIDTH: u32 = ${w}u;\n>>>>>>> END\n`,
    };
  }
  const s = spread < 5 ? spread + 1 : spread - 1;
  return {
    text: `Move SPREAD toward the optimum.\n\`\`\`ts\n<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${spread};\n=======\nexport const SPREAD = ${s};\n>>>>>>> REPLACE\n\`\`\`\n`,
  };
}

/** A run's commits as (iteration, outcome, program hash, score), from its events.jsonl: what a replay must reproduce. */
export function commitSequence(dir: string): unknown[][] {
  return readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(
      (l) =>
        JSON.parse(l) as { type: string; iteration: number; outcome: string; hash: string; score: number },
    )
    .filter((e) => e.type === 'commit')
    .map((e) => [e.iteration, e.outcome, e.hash, e.score]);
}
