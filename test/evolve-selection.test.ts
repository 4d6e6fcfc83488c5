import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/evolve/config.js';
import { buildRunReport } from '../src/evolve/report.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { decide, interleavedOrder } from '../src/evolve/selection.js';
import { runSession } from '../src/evolve/session.js';
import { buildRunPageData } from '../src/report/run-page-data.js';
import { currentValues, loadToyEvaluator, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer, type FakeRequest } from './helpers/fake-openai-server.js';

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON lines, inspected field by field.
type RunEventLike = Record<string, any>;
const events = (dir: string) =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RunEventLike);

const SIDES = {
  challenger: { id: 'p1', hash: 'c', first_score: 81 },
  incumbent: { id: 'p0', hash: 'i', score: 80 },
};

describe('the comparison rule', () => {
  it('interleaves ABBA and promotes only a difference beyond z standard errors', () => {
    const order = interleavedOrder(3);
    expect(order).toEqual(['incumbent', 'challenger', 'challenger', 'incumbent', 'incumbent', 'challenger']);
    const run = { ss: 0, dof: 0 };
    const at = (i: number[], c: number[]): { score: number | null; noise: number | null }[] =>
      order.map((side) => ({ score: side === 'incumbent' ? i.shift()! : c.shift()!, noise: null }));
    // Noise ±0.3 on both, true gain 0.2: SE = σ·√(2/3) ≈ 0.25, so 0.2 < 2·SE is kept out.
    const small = decide({
      iteration: 1,
      ...SIDES,
      order,
      results: at([80, 80.3, 79.7], [80.5, 79.9, 80.2]),
      run,
      z: 2,
    });
    expect(small.difference).toBeCloseTo(0.2, 10);
    expect(small.noise).toBeCloseTo(0.3, 10);
    expect(small.decision).toBe('keep');
    expect(small.reason).toMatch(/≤ 2 × SE/);
    // The same noise, a gain of 1: promoted.
    const real = decide({
      iteration: 1,
      ...SIDES,
      order,
      results: at([80, 80.3, 79.7], [81, 81.3, 80.7]),
      run,
      z: 2,
    });
    expect(real.decision).toBe('promote');
    // Rounds that agree by chance do not beat the run's own estimate, nor the evaluator's score_noise.
    const lucky = at([80, 80, 80], [80.5, 80.5, 80.5]);
    expect(decide({ iteration: 1, ...SIDES, order, results: lucky, run, z: 2 }).decision).toBe('promote');
    const withRun = decide({ iteration: 1, ...SIDES, order, results: lucky, run: { ss: 1.8, dof: 4 }, z: 2 });
    expect(withRun).toMatchObject({ decision: 'keep', noise_source: 'run' });
    const reported = lucky.map((r) => ({ ...r, noise: 0.5 }));
    expect(decide({ iteration: 1, ...SIDES, order, results: reported, run, z: 2 })).toMatchObject({
      decision: 'keep',
      noise_source: 'evaluator',
    });
    // A challenger invalid on re-measurement does not reproduce: kept out whatever its scores.
    const flaky = at([80, 80, 80], [90, 90, 90]);
    flaky[1] = { score: null, noise: null };
    expect(decide({ iteration: 1, ...SIDES, order, results: flaky, run, z: 2 }).decision).toBe('keep');
  });

  it('is configured by selection.rounds and selection.z', () => {
    expect(validateConfig({}).selection).toEqual({ rounds: 3, z: 2 });
    expect(validateConfig({ selection: { rounds: 0 } }).selection.rounds).toBe(0);
    expect(() => validateConfig({ selection: { rounds: 1 } })).toThrow(
      /selection.rounds must be 0 \(off\) or ≥ 2/,
    );
    expect(() => validateConfig({ selection: { round: 3 } })).toThrow(/unknown key 'selection.round'/);
  });
});

/**
 * The toy with injected, deterministic noise (TOY_NOISE: each program's measurement offsets, in
 * order). Iteration 1 moves SPREAD 1 → 9: the same true score as the seed (80), measured +1.5 the
 * first time. Iteration 2 sets SPREAD = 5: a real gain (96). Iteration 3 sets WIDTH 1 → 5: the same
 * true score as p2, measured +1.0 the first time.
 */
const NOISE = {
  '1,1': [0, 0.2, -0.2, 0.1],
  '9,1': [1.5, -0.3, 0.2, -0.1],
  '5,1': [0.1, -0.2, 0.2, 0],
  '5,5': [1.0, -0.1, 0.1, -0.3],
};

function scriptedModel(q: FakeRequest) {
  const { spread } = currentValues(q);
  if (q.index === 2) {
    return {
      text: '<<<<<<< SEARCH kernels/toy.wgsl\nconst WIDTH: u32 = 1u;\n=======\nconst WIDTH: u32 = 5u;\n>>>>>>> REPLACE',
    };
  }
  const to = q.index === 0 ? 9 : 5;
  return {
    text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${spread};\n=======\nexport const SPREAD = ${to};\n>>>>>>> REPLACE`,
  };
}

let server: FakeOpenAiServer | undefined;
const saved = { ...process.env };
beforeEach(() => {
  process.env.TOY_NOISE = JSON.stringify(NOISE);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  process.env = { ...saved };
});

const toyConfig = (selection: Record<string, unknown>) => ({
  // One island, the best of the archive as parent: each edit starts from the highest measurement.
  search: {
    islands: 1,
    parallel: 1,
    exploration: 0,
    exploitation: 1,
    mutations: { diff: 1, rewrite: 0, crossover: 0 },
  },
  selection,
});

describe('selection that noise cannot fool, through the fake model server', () => {
  it('refuses a noise-level "improvement", promotes a real one, and records each comparison', async () => {
    server = await FakeOpenAiServer.start(scriptedModel);
    const p = makeToyProject(server.baseUrl, toyConfig({ rounds: 3, z: 2 }));
    const evaluator = await loadToyEvaluator(p);
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 3 },
      evaluator,
    });
    const ev = events(r.dir);
    expect(ev.filter((e) => e.type === 'commit').map((e) => [e.outcome, e.score, e.best])).toEqual([
      ['seed', 80, undefined],
      ['valid', 81.5, 'p0'], // one lucky measurement: not the best
      ['valid', 96.1, 'p2'], // a real gain
      ['valid', 97, 'p2'], // lucky again: p2 stays
    ]);
    expect(r.best.id).toBe('p2');
    const comparisons = ev.filter((e) => e.type === 'comparison');
    expect(comparisons.map((c) => [c.iteration, c.challenger.id, c.incumbent.id, c.decision])).toEqual([
      [1, 'p1', 'p0', 'keep'],
      [2, 'p2', 'p0', 'promote'],
      [3, 'p3', 'p2', 'keep'],
    ]);
    // The re-measurements are the injected ones (the first, lucky measurement left out), in ABBA order.
    expect(comparisons[0]).toMatchObject({
      order: ['incumbent', 'challenger', 'challenger', 'incumbent', 'incumbent', 'challenger'],
      incumbent_scores: [80.2, 79.8, 80.1],
      challenger_scores: [79.7, 80.2, 79.9],
    });
    expect(comparisons[0].difference).toBeCloseTo(-0.1, 10);
    // Training measurements: 4 first evaluations + 3 comparisons × 6; then seed and best held out.
    expect(evaluator.calls()).toBe(4 + 18 + 2);
    expect(r.stats.remeasurementsThisSession).toBe(18);
    expect(r.stats.comparisons).toEqual({ promoted: 1, kept: 2 });
    // The next prompt shows the decision and the measured noise.
    const last = server.requests.at(-1)!.messages[1]!.content;
    expect(last).toMatch(/iteration 1: diff of p0 → valid, score 81\.5.*\n {2}metrics: .*adrs_score=81\.5/);
    expect(last).toMatch(
      /selection: p0 stays the best: re-measured 3\+3 times: p1 − p0 = -0\.1000, ≤ 2 × SE/,
    );
    expect(last).toMatch(/selection: became the best/);
    expect(last).toMatch(/# Current program \(p2\)\nscore=96\.100 ±0\.\d+;/);
    expect(last).toContain(
      "A program whose score beats the best's, or falls short of it by less than 2 standard errors",
    );
    // adrs report agrees with the events: the best is the promoted program, not the highest score.
    const files = readRunFiles(r.dir);
    const report = buildRunReport(files);
    expect(report.disagreements).toEqual([]);
    expect(report.best!.id).toBe('p2');
    // …and so do its notes and the HTML page's best-score curve: a program kept out is no new best.
    expect(report.notes.join('\n')).not.toMatch(/has since found/);
    const curve = buildRunPageData(files, report).curve;
    expect(curve.best[curve.iteration.indexOf(1)]).toBe(report.seed!.score);
    expect(curve.best.at(-1)).toBe(report.best!.score);
  });

  it('without re-measurement the lucky program becomes the best (what the rule prevents)', async () => {
    server = await FakeOpenAiServer.start(scriptedModel);
    const p = makeToyProject(server.baseUrl, toyConfig({ rounds: 0 }));
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 3 },
    });
    expect(r.best.id).toBe('p3');
    expect(events(r.dir).some((e) => e.type === 'comparison')).toBe(false);
  });

  it('re-measures a real gain whose first measurement fell below the best within the noise', async () => {
    // The evaluator reports σ = 0.6. Iteration 1 sets WIDTH = 2 (true 83, +3 over the seed), measured
    // 2.5 low the first time: 80.5 against the seed's 80.8, a loss well within 2·σ·√2. Iteration 2
    // sets SPREAD = -3 (true 35): far below, never re-measured.
    process.env.TOY_NOISE = JSON.stringify({ '1,1': [0.8, 0.1, -0.1, 0], '1,2': [-2.5, 0.2, -0.2, 0.1] });
    process.env.TOY_SCORE_NOISE = '0.6';
    server = await FakeOpenAiServer.start((q) =>
      q.index === 0
        ? {
            text: '<<<<<<< SEARCH kernels/toy.wgsl\nconst WIDTH: u32 = 1u;\n=======\nconst WIDTH: u32 = 2u;\n>>>>>>> REPLACE',
          }
        : {
            text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${currentValues(q).spread};\n=======\nexport const SPREAD = -3;\n>>>>>>> REPLACE`,
          },
    );
    const p = makeToyProject(server.baseUrl, toyConfig({ rounds: 3, z: 2 }));
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 2 },
    });
    const ev = events(r.dir);
    expect(ev.filter((e) => e.type === 'commit').map((e) => [e.score, e.best])).toEqual([
      [80.8, undefined],
      [80.5, 'p1'],
      [35, 'p1'],
    ]);
    const [c, ...more] = ev.filter((e) => e.type === 'comparison');
    expect(more).toEqual([]);
    expect(c).toMatchObject({ iteration: 1, decision: 'promote', noise_source: 'evaluator' });
    expect(c.difference).toBeCloseTo(3 + 0.1 / 3, 10);
    expect(buildRunReport(readRunFiles(r.dir)).disagreements).toEqual([]);
    // One measurement alone would have kept the seed.
    server.requests.length = 0;
    const plain = makeToyProject(server.baseUrl, toyConfig({ rounds: 0 }));
    const r0 = await runSession({
      configPath: plain.configPath,
      out: join(plain.dir, 'run'),
      overrides: { iterations: 2 },
    });
    expect(r0.best.id).toBe('p0');
  });

  it('resume reuses a recorded decision without re-measuring; replay reproduces every decision', async () => {
    server = await FakeOpenAiServer.start(scriptedModel);
    const p = makeToyProject(server.baseUrl, toyConfig({ rounds: 3, z: 2 }));
    const dir = join(p.dir, 'run');
    const evaluator = await loadToyEvaluator(p);
    const aside = join(p.dir, 'checkpoint-at-2.json');
    const first = await runSession({
      configPath: p.configPath,
      out: dir,
      overrides: { iterations: 3 },
      evaluator,
      onProgress: (q) => {
        if (q.committed === 2) copyFileSync(join(dir, 'checkpoint.json'), aside);
      },
    });
    const original = events(dir);
    // As if killed after iteration 3's comparison was logged, before its commit.
    const cut = original.findIndex((e) => e.type === 'comparison' && e.iteration === 3);
    writeFileSync(
      join(dir, 'events.jsonl'),
      `${original
        .slice(0, cut + 1)
        .map((e) => JSON.stringify(e))
        .join('\n')}\n`,
    );
    copyFileSync(aside, join(dir, 'checkpoint.json'));
    const calls = evaluator.calls();
    const resumed = await runSession({ resume: dir, evaluator });
    expect(evaluator.calls() - calls).toBe(2); // the held-out scores only: nothing re-measured
    expect(resumed.stats.remeasurementsThisSession).toBe(0);
    expect(resumed.best.id).toBe('p2');
    const after = events(dir);
    expect(after.filter((e) => e.type === 'comparison')).toHaveLength(3);
    const commits = (list: RunEventLike[]) =>
      list.filter((e) => e.type === 'commit').map((e) => [e.iteration, e.hash, e.score, e.best]);
    expect(commits(after)).toEqual(commits(original));

    await server.close();
    server = undefined;
    // Replay: re-scores every program (the injected noise has moved on), reuses every decision.
    const replay = await runSession({ replay: first.dir, out: join(p.dir, 'replay') });
    expect(replay.stats.replayMismatches).toEqual([]);
    expect(replay.stats.remeasurementsThisSession).toBe(0);
    const replayed = events(replay.dir).filter((e) => e.type === 'comparison');
    expect(replayed.map((c) => [c.iteration, c.decision, c.replayed])).toEqual([
      [1, 'keep', true],
      [2, 'promote', true],
      [3, 'keep', true],
    ]);
    expect(replay.best.hash).toBe(first.best.hash);
    expect(buildRunReport(readRunFiles(replay.dir)).best!.id).toBe('p2');
  });
});
