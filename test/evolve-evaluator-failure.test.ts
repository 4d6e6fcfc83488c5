import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Evaluator, Split } from '../src/evolve/evaluator.js';
import { runSession } from '../src/evolve/session.js';
import { climbingModel, loadToyEvaluator, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON lines, inspected field by field.
type RunEventLike = Record<string, any>;

let server: FakeOpenAiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const events = (dir: string) =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as RunEventLike);

const commits = (dir: string) =>
  events(dir)
    .filter((e) => e.type === 'commit')
    .map((e) => [e.iteration, e.outcome, e.hash]);

/**
 * The toy evaluator, except that evaluate() rejects (the evaluation could not run, as the pool does
 * when a worker does not start or the device is lost) the first `times` times a program matches.
 */
function failing(
  inner: Evaluator,
  matches: (files: Record<string, string>, split: Split) => boolean,
  times: number,
): Evaluator & { failed: () => number } {
  let failed = 0;
  return {
    ...inner,
    failed: () => failed,
    async evaluate(files, split) {
      if (failed < times && matches(files, split)) {
        failed++;
        throw new Error('could not start an evaluation worker: spawn EAGAIN\n    at WorkerProcess.spawn');
      }
      return inner.evaluate(files, split);
    },
  };
}

const spread = (n: number) => (files: Record<string, string>) =>
  files['balancer.ts']!.includes(`SPREAD = ${n};`);

const LINEAR = { search: { parallel: 1, islands: 1, mutations: { diff: 1, rewrite: 0, crossover: 0 } } };

describe('when the evaluator itself fails', () => {
  it('retries once, and a retry that works costs the program nothing', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, LINEAR);
    const evaluator = failing(await loadToyEvaluator(p), spread(3), 1);
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 3 },
      evaluator,
    });
    expect(evaluator.failed()).toBe(1);
    expect(r.stats.stopReason).toBe('iterations');
    const ev = events(r.dir);
    expect(ev.filter((e) => e.type === 'evaluator_error')).toEqual([
      expect.objectContaining({
        iteration: 2,
        retrying: true,
        error: 'could not start an evaluation worker: spawn EAGAIN',
      }),
    ]);
    expect(ev.find((e) => e.type === 'commit' && e.iteration === 2)).toMatchObject({
      outcome: 'valid',
      score: 100 - 4 - 4,
    });
  });

  it('stops resumably after a second failure without storing a verdict, and the resumed run evaluates the program afresh', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, LINEAR);
    const healthy = await loadToyEvaluator(p);
    const broken = failing(healthy, spread(3), 2);
    const out = join(p.dir, 'run');
    const run = runSession({
      configPath: p.configPath,
      out,
      overrides: { iterations: 4 },
      evaluator: broken,
    });
    await expect(run).rejects.toThrow(
      /^stopped: the evaluator failed twice on the program of iteration 2 \(not the program's fault\): could not start an evaluation worker: spawn EAGAIN \(the run folder can be resumed with --resume\)$/,
    );
    expect(broken.failed()).toBe(2);
    const ev = events(out);
    const failure = ev.filter((e) => e.type === 'evaluator_error');
    expect(failure.map((e) => [e.iteration, e.retrying])).toEqual([
      [2, true],
      [2, false],
    ]);
    // No verdict for the program: neither an evaluation event nor a stored program, and no commit.
    const hash = failure[0]!.hash as string;
    expect(ev.some((e) => e.type === 'evaluation' && e.hash === hash)).toBe(false);
    expect(existsSync(join(out, 'programs', `${hash}.json`))).toBe(false);
    expect(commits(out).map((c) => c[0])).toEqual([0, 1]);
    expect(ev.at(-1)).toMatchObject({ type: 'stop', reason: 'evaluator-error' });

    // Resumed once the evaluator works: the program is evaluated and the run is the one it would have been.
    const calls = healthy.calls();
    const resumed = await runSession({ resume: out, evaluator: healthy });
    expect(resumed.stats.committed).toBe(4);
    expect(healthy.calls()).toBeGreaterThan(calls);
    expect(commits(out)[2]).toEqual([2, 'valid', hash]);
    const straight = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'straight'),
      overrides: { iterations: 4 },
      evaluator: healthy,
    });
    expect(commits(out)).toEqual(commits(straight.dir));
    expect(resumed.best.hash).toBe(straight.best.hash);
  });

  it('says so, not "the seed fails evaluation", when the seed cannot be evaluated; resume starts over', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, LINEAR);
    const healthy = await loadToyEvaluator(p);
    const out = join(p.dir, 'run');
    await expect(
      runSession({ configPath: p.configPath, out, evaluator: failing(healthy, spread(1), 2) }),
    ).rejects.toThrow(/^stopped: the evaluator failed twice on the program of iteration 0 .*--resume\)$/);
    expect(server.requests).toHaveLength(0);
    const resumed = await runSession({ resume: out, overrides: { iterations: 2 }, evaluator: healthy });
    expect(resumed.seed.score).toBe(100 - 16 - 4);
    expect(resumed.stats.committed).toBe(2);
  });

  it('stops resumably when re-scoring on the held-out trace fails twice', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, LINEAR);
    const healthy = await loadToyEvaluator(p);
    const out = join(p.dir, 'run');
    const heldout = (_: Record<string, string>, split: Split) => split === 'heldout';
    await expect(
      runSession({
        configPath: p.configPath,
        out,
        overrides: { iterations: 2 },
        evaluator: failing(healthy, heldout, 4),
      }),
    ).rejects.toThrow(
      /^stopped: the evaluator failed twice re-scoring on the held-out trace: could not start .*--resume\)$/,
    );
    const resumed = await runSession({ resume: out, evaluator: healthy });
    expect(resumed.heldout!.seed.score).toBe(100 - 16 - 4 - 1);
    expect(resumed.stats.committed).toBe(2);
    expect(events(out).filter((e) => e.type === 'heldout')).toHaveLength(1);
  });
});
