import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyOverrides, loadConfigFile, NO_ENDPOINT_MESSAGE, validateConfig } from '../src/evolve/config.js';
import { runSession } from '../src/evolve/session.js';
import {
  climbingModel,
  commitSequence,
  currentValues,
  loadToyEvaluator,
  makeToyProject,
} from './helpers/evolve-toy.js';
import { FakeOpenAiServer, type FakeReply, type FakeRequest } from './helpers/fake-openai-server.js';

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

describe('adrs evolve against a local OpenAI-compatible server', () => {
  it('improves the seed over several iterations and writes a complete run folder', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl);
    const out = join(p.dir, 'run');
    const r = await runSession({ configPath: p.configPath, out, overrides: { iterations: 8 } });
    expect(r.stats.stopReason).toBe('iterations');
    expect(r.stats.committed).toBe(8);
    expect(r.seed.score).toBe(100 - 16 - 4);
    expect(r.best.score!).toBeGreaterThan(r.seed.score! + 5);
    expect(server.requests.length).toBe(8);
    // Both models of the ensemble were used, as weighted.
    expect(new Set(server.requests.map((q) => q.model))).toEqual(new Set(['toy-a', 'toy-b']));
    const ev = events(out);
    const responses = ev.filter((e) => e.type === 'response');
    expect(responses).toHaveLength(8);
    for (const e of responses) {
      expect(e.reply.usage.prompt_tokens).toBeGreaterThan(0);
      const price = e.reply.model === 'toy-a' ? [1, 2] : [3, 6];
      expect(e.reply.cost_usd).toBeCloseTo(
        (e.reply.usage.prompt_tokens * price[0]! + e.reply.usage.completion_tokens * price[1]!) / 1e6,
        12,
      );
    }
    expect(ev.filter((e) => e.type === 'commit').map((e) => e.iteration)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    expect(ev.some((e) => e.type === 'migration')).toBe(true);
    // The prompt carries the problem, the parent's metrics and artifacts, and the last attempts.
    const last = server.requests.at(-1)!.messages[1]!.content;
    expect(last).toContain('Maximise the toy score.');
    expect(last).toMatch(/score=\d+ ±0; balancedness_next=/);
    expect(last).toContain('### timings');
    expect(last).toContain('# Last attempts and their outcome');
    // best/ holds the program, its metrics, lineage and a reproducer.
    const best = readFileSync(join(out, 'best', 'candidate', 'balancer.ts'), 'utf8');
    expect(best).toMatch(/SPREAD = [2-9]/);
    const lineage = JSON.parse(readFileSync(join(out, 'best', 'lineage.json'), 'utf8'));
    expect(lineage.at(-1).id).toBe('p0');
    const repro = JSON.parse(readFileSync(join(out, 'best', 'reproducer.json'), 'utf8'));
    expect(repro.seed).toBe(7);
    expect(repro.traces.train.sha256).toHaveLength(64);
    // Held-out re-scoring of seed and best.
    expect(r.heldout!.best.score).toBe(r.best.score! - 1);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.performance.evaluator_utilisation).toBeGreaterThanOrEqual(0);
    expect(existsSync(join(out, 'checkpoint.json'))).toBe(true);
  });

  it('sends a patch that fails to apply back once with the precise reason, then refuses it', async () => {
    const script = (q: FakeRequest): FakeReply => {
      const retry = q.messages.length > 2;
      if (q.index === 0) return { text: 'Looks good to me, no change needed.' };
      if (q.index === 1 && retry) return climbingModel(q);
      // Iteration 2: an edit outside the EVOLVE-BLOCK, twice.
      return {
        text: "<<<<<<< SEARCH balancer.ts\nexport const NAME = 'toy';\n=======\nexport const NAME = 'hacked';\n>>>>>>> REPLACE",
      };
    };
    server = await FakeOpenAiServer.start(script);
    const p = makeToyProject(server.baseUrl, {
      search: { parallel: 1, islands: 1, mutations: { diff: 1, rewrite: 0, crossover: 0 } },
    });
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 2 },
    });
    const retry = server.requests[1]!;
    expect(retry.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(retry.messages[3]!.content).toContain(
      "Your edit could not be applied: no '<<<<<<< SEARCH … ======= … >>>>>>> REPLACE' block found",
    );
    const ev = events(r.dir);
    const commits = ev.filter((e) => e.type === 'commit');
    expect(commits[1]).toMatchObject({ iteration: 1, outcome: 'valid' });
    expect(commits[2]).toMatchObject({ iteration: 2, outcome: 'refused' });
    expect(commits[2]!.reason).toMatch(/changes balancer.ts:2-2, outside every EVOLVE-BLOCK/);
    expect(server.requests).toHaveLength(4);
    expect(server.requests[3]!.messages[3]!.content).toMatch(/outside every EVOLVE-BLOCK/);
    expect(r.stats.counters.refused).toBe(1);
  });

  it('retries 429 and 500 with backoff and records the retries', async () => {
    let n = 0;
    server = await FakeOpenAiServer.start((q) => {
      n++;
      if (n === 1) return { status: 429, headers: { 'retry-after': '0' } };
      if (n === 2) return { status: 500 };
      return climbingModel(q);
    });
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 2 },
    });
    const first = events(r.dir).find((e) => e.type === 'response')!;
    expect(first.reply.attempts).toBe(3);
    expect(first.reply.retried).toEqual([
      expect.stringMatching(/^HTTP 429/),
      expect.stringMatching(/^HTTP 500/),
    ]);
    expect(server.requests).toHaveLength(4);
    expect(r.stats.committed).toBe(2);
  });

  it('does not retry a 400 and stops on 401 with one line', async () => {
    server = await FakeOpenAiServer.start(() => ({
      status: 401,
      body: JSON.stringify({ error: { message: 'bad key' } }),
    }));
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    await expect(runSession({ configPath: p.configPath, out: join(p.dir, 'run') })).rejects.toThrow(
      /stopped: the model endpoint refuses calls: toy-[ab]: HTTP 401/,
    );
    expect(server.requests).toHaveLength(1);
  });

  it('stops cleanly at the USD budget', async () => {
    server = await FakeOpenAiServer.start((q) => ({
      ...climbingModel(q),
      usage: { prompt_tokens: 1000, completion_tokens: 500 },
    }));
    // toy-a costs (1000·1 + 500·2)/1e6 = $0.002 a call, toy-b $0.006.
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 100, budgetUsd: 0.02 },
    });
    expect(r.stats.stopReason).toBe('budget');
    expect(r.stats.counters.cost_usd).toBeGreaterThanOrEqual(0.02 - 0.006);
    expect(r.stats.counters.cost_usd).toBeLessThan(0.02 + 0.006);
    expect(r.stats.committed).toBeLessThan(10);
  });

  it('refuses a $0 budget in one line before anything runs, and a free model runs under a positive cap', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    const zero = runSession({
      configPath: p.configPath,
      out: join(p.dir, 'zero'),
      overrides: { budgetUsd: 0 },
    });
    await expect(zero).rejects.toThrow(
      /^--budget-usd must be a number of dollars > 0, got 0 .*omit the flag/,
    );
    await zero.catch((e: Error) => expect(e.message).not.toContain('\n'));
    expect(server.requests).toHaveLength(0);
    expect(existsSync(join(p.dir, 'zero'))).toBe(false);
    // A model priced at 0 (e.g. on a local server) spends nothing, so a cap never stops it.
    const free = makeToyProject(server.baseUrl, {
      search: { parallel: 1, islands: 1 },
      llm: { base_url: server.baseUrl, models: ['local-model'], budget_usd: 0.01, retry_base_s: 0.01 },
    });
    const r = await runSession({
      configPath: free.configPath,
      out: join(free.dir, 'run'),
      overrides: { iterations: 3 },
    });
    expect(r.stats.stopReason).toBe('iterations');
    expect(r.stats.committed).toBe(3);
    expect(r.stats.counters.cost_usd).toBe(0);
  });

  it('never evaluates the same program twice', async () => {
    // Every answer proposes SPREAD = 3 (whatever the parent), with different formatting.
    server = await FakeOpenAiServer.start((q) => {
      const { spread } = currentValues(q);
      const pad = ' '.repeat(q.index % 3);
      return {
        text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${spread};\n=======\nexport const SPREAD = 3;${pad}\n>>>>>>> REPLACE`,
      };
    });
    const p = makeToyProject(server.baseUrl, {
      search: { parallel: 3, islands: 2, mutations: { diff: 1, rewrite: 0, crossover: 0 } },
    });
    const evaluator = await loadToyEvaluator(p);
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 6 },
      evaluator,
    });
    // The seed and SPREAD = 3: the rest are duplicates or no-op edits of the SPREAD = 3 program.
    expect(evaluator.calls()).toBe(2 + 2); // + held-out re-scoring of seed and best
    const outcomes = events(r.dir)
      .filter((e) => e.type === 'commit' && e.iteration > 0)
      .map((e) => e.outcome);
    expect(outcomes.filter((o) => o === 'valid')).toHaveLength(1);
    expect(
      outcomes.filter((o) => o === 'duplicate').length + outcomes.filter((o) => o === 'refused').length,
    ).toBe(5);
    expect(r.stats.counters.evaluations).toBe(2);
  });

  it('replays a finished run without a model and reproduces the same programs', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, {
      search: { parallel: 3, islands: 2, mutations: { diff: 0.5, rewrite: 0.3, crossover: 0.2 } },
    });
    const first = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 7 },
    });
    await server.close();
    server = undefined;
    const replay = await runSession({ replay: first.dir, out: join(p.dir, 'replay') });
    expect(replay.stats.stopReason).toBe('replay-end');
    expect(replay.stats.replayMismatches).toEqual([]);
    expect(replay.stats.replayPlanDivergences).toBe(0);
    expect(commitSequence(replay.dir)).toEqual(commitSequence(first.dir));
    expect(replay.best.hash).toBe(first.best.hash);
  });
});

describe('flags with --resume and --replay', () => {
  it('refuses flags that would change the trajectory before touching the folder, and takes those that extend the run', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    const first = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 2 },
    });
    const configBefore = readFileSync(join(first.dir, 'config.json'), 'utf8');
    const eventsBefore = readFileSync(join(first.dir, 'events.jsonl'), 'utf8');
    const refused: [Parameters<typeof runSession>[0], RegExp][] = [
      [
        { resume: first.dir, overrides: { seed: 8 } },
        /^--seed 8 cannot be given with --resume: it changes the run's seed \(7 → 8\).*start a new run with --config$/,
      ],
      [
        { resume: first.dir, overrides: { model: 'toy-a', iterations: 4 } },
        /^--model toy-a cannot be given with --resume: it changes the run's llm\.models \(toy-a×2, toy-b×1 → toy-a×1\), so/,
      ],
      [{ resume: first.dir, configPath: p.configPath }, /give exactly one of --config FILE/],
      [{ resume: first.dir, out: join(p.dir, 'elsewhere') }, /--out cannot be given with --resume/],
      [
        { replay: first.dir, overrides: { seed: 8, iterations: 9 } },
        /^--replay .* --seed, --iterations would be ignored/,
      ],
    ];
    for (const [options, message] of refused) {
      const run = runSession(options);
      await expect(run).rejects.toThrow(message);
      await run.catch((e: Error) => expect(e.message).not.toContain('\n'));
    }
    expect(readFileSync(join(first.dir, 'config.json'), 'utf8')).toBe(configBefore);
    expect(readFileSync(join(first.dir, 'events.jsonl'), 'utf8')).toBe(eventsBefore);
    expect(existsSync(join(p.dir, 'elsewhere'))).toBe(false);
    // The same seed is no change; stop rules, budget and a moved server extend the run.
    const resumed = await runSession({
      resume: first.dir,
      overrides: { seed: 7, iterations: 4, timeLimit: '1h', budgetUsd: 5, baseUrl: server.baseUrl },
    });
    expect(resumed.stats.committed).toBe(4);
    const config = JSON.parse(readFileSync(join(first.dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ seed: 7, iterations: 4, time_limit_s: 3600, llm: { budget_usd: 5 } });
    const straight = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'straight'),
      overrides: { iterations: 4 },
    });
    const seq = (dir: string) =>
      events(dir)
        .filter((e) => e.type === 'commit')
        .map((e) => [e.iteration, e.hash]);
    expect(seq(first.dir)).toEqual(seq(straight.dir));
  });

  it('refuses --iterations below the iterations committed, and a session that commits nothing reuses the held-out scores', async () => {
    server = await FakeOpenAiServer.start(climbingModel);
    const p = makeToyProject(server.baseUrl, { search: { parallel: 1, islands: 1 } });
    const toy = await loadToyEvaluator(p);
    const splits: string[] = [];
    const evaluator: typeof toy = {
      ...toy,
      evaluate: (files, split) => {
        splits.push(split);
        return toy.evaluate(files, split);
      },
    };
    const heldoutCalls = () => splits.filter((s) => s === 'heldout').length;
    const first = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 4 },
      evaluator,
    });
    expect(heldoutCalls()).toBe(2);
    const files = () =>
      ['config.json', 'events.jsonl', 'summary.json'].map((f) => readFileSync(join(first.dir, f), 'utf8'));
    const before = files();
    const refused = runSession({ resume: first.dir, overrides: { iterations: 3 }, evaluator });
    await expect(refused).rejects.toThrow(
      /^--iterations 3 is fewer than the 4 iterations this run has already committed; give --iterations 4 or more, or leave it out \(the run is set to 4\)$/,
    );
    expect(files()).toEqual(before);

    // Nothing new committed (the same count, or no flag at all): the recorded held-out scores stand.
    splits.length = 0;
    for (const overrides of [{ iterations: 4 }, {}]) {
      const again = await runSession({ resume: first.dir, overrides, evaluator });
      expect(again.stats.committed).toBe(4);
      expect(again.heldout).toEqual(first.heldout);
    }
    expect(splits).toEqual([]);
    expect(events(first.dir).filter((e) => e.type === 'heldout')).toHaveLength(1);
    const summary = JSON.parse(readFileSync(join(first.dir, 'summary.json'), 'utf8'));
    expect(summary.best.heldout).toEqual(first.heldout!.best);

    // A session that commits more re-scores its best.
    const extended = await runSession({ resume: first.dir, overrides: { iterations: 5 }, evaluator });
    expect(extended.stats.committed).toBe(5);
    expect(heldoutCalls()).toBe(2);
    expect(events(first.dir).filter((e) => e.type === 'heldout')).toHaveLength(2);
  });

  it('refuses a resume whose endpoint is gone before rewriting config.json', async () => {
    const p = makeToyProject('http://127.0.0.1:9/v1', { search: { parallel: 1, islands: 1 } });
    const evaluator = await loadToyEvaluator(p);
    const dir = join(p.dir, 'run');
    await expect(
      runSession({ configPath: p.configPath, out: dir, overrides: { iterations: 0 }, evaluator }),
    ).resolves.toBeDefined();
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    config.llm.models = [];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const before = readFileSync(join(dir, 'config.json'), 'utf8');
    await expect(runSession({ resume: dir, overrides: { iterations: 3 } })).rejects.toThrow(
      NO_ENDPOINT_MESSAGE,
    );
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(before);
  });
});

describe('configuration', () => {
  it('refuses to start without a model endpoint, in one line that says how to configure one', async () => {
    const p = makeToyProject('http://unused', { llm: { models: [] } });
    await expect(runSession({ configPath: p.configPath, out: join(p.dir, 'run') })).rejects.toThrow(
      NO_ENDPOINT_MESSAGE,
    );
    expect(NO_ENDPOINT_MESSAGE).not.toContain('\n');
    expect(NO_ENDPOINT_MESSAGE).toMatch(/--base-url/);
  });

  it('a start refused for a missing key, an evaluator that cannot start or a seed with nothing to evolve leaves no run folder', async () => {
    const p = makeToyProject('http://127.0.0.1:9/v1');
    const config = JSON.parse(readFileSync(p.configPath, 'utf8'));
    const variant = (name: string, change: (c: RunEventLike) => void): string => {
      const c = structuredClone(config);
      change(c);
      const path = join(p.dir, `${name}.json`);
      writeFileSync(path, JSON.stringify(c));
      return path;
    };
    delete process.env.ADRS_TEST_UNSET_KEY;
    writeFileSync(
      join(p.dir, 'no-gpu.mjs'),
      "export async function createEvaluator() { throw new Error('no GPU adapter found'); }\n",
    );
    mkdirSync(join(p.dir, 'frozen'));
    writeFileSync(join(p.dir, 'frozen', 'balancer.ts'), 'export default function rebalance() {}\n');
    const cases: [string, RegExp][] = [
      [
        variant('key', (c) => {
          c.llm.api_key_env = 'ADRS_TEST_UNSET_KEY';
        }),
        /^llm\.api_key_env names \$ADRS_TEST_UNSET_KEY, which is not set; export it/,
      ],
      [
        variant('gpu', (c) => {
          c.evaluator.module = 'no-gpu.mjs';
        }),
        /^no GPU adapter found$/,
      ],
      [
        variant('frozen', (c) => {
          c.candidate = 'frozen';
        }),
        /^the seed candidate '.*frozen' has no EVOLVE-BLOCK-START\/END markers, so nothing may evolve$/,
      ],
    ];
    for (const [configPath, message] of cases) {
      const out = join(p.dir, 'runs', 'refused');
      await expect(runSession({ configPath, out })).rejects.toThrow(message);
      expect(existsSync(join(p.dir, 'runs'))).toBe(false);
    }

    // A resume refused for the key leaves its folder as it was.
    const evaluator = await loadToyEvaluator(p);
    const dir = join(p.dir, 'run');
    await runSession({ configPath: p.configPath, out: dir, overrides: { iterations: 0 }, evaluator });
    const recorded = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    recorded.llm.api_key_env = 'ADRS_TEST_UNSET_KEY';
    writeFileSync(join(dir, 'config.json'), JSON.stringify(recorded));
    const before = readFileSync(join(dir, 'config.json'), 'utf8');
    await expect(runSession({ resume: dir, overrides: { iterations: 3 }, evaluator })).rejects.toThrow(
      /^llm\.api_key_env names \$ADRS_TEST_UNSET_KEY/,
    );
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(before);
  });

  it('validates the config with clear errors', () => {
    expect(() => validateConfig({ iteratons: 3 })).toThrow(
      "unknown key 'iteratons' (did you mean 'iterations'?)",
    );
    expect(() => validateConfig({ llm: { concurrency: 0 } })).toThrow(
      'llm.concurrency must be an integer ≥ 1, got 0',
    );
    expect(() => validateConfig({ search: { exploration: 0.7, exploitation: 0.5 } })).toThrow(
      /exploration \+ search.exploitation must be ≤ 1/,
    );
    expect(() => validateConfig({ time_limit: '2 weeks' })).toThrow(/cannot read the duration '2 weeks'/);
    for (const key of ['budget_usd', 'budget_tokens']) {
      expect(() => validateConfig({ llm: { [key]: 0 } })).toThrow(
        `llm.${key} must be a number > 0, or null for no cap (a cap of 0 would stop before the first call), got 0`,
      );
      expect(validateConfig({ llm: { [key]: null } }).llm[key as 'budget_usd']).toBeNull();
    }
    expect(() => applyOverrides(validateConfig({}), { budgetUsd: -1 })).toThrow(/^--budget-usd must be/);
    expect(validateConfig({ time_limit: '1h30m' }).time_limit_s).toBe(5400);
    expect(() => validateConfig({ search: { features: [{ metric: 'x', min: 1, max: 1 }] } })).toThrow(
      /needs min < max/,
    );
  });

  it('loads the example config for the EPLB seed', () => {
    const c = loadConfigFile('examples/eplb/evolve.yaml');
    expect(c.candidate).toMatch(/examples\/eplb$/);
    expect(c.evaluator.heldout_trace).toBeTruthy();
    expect(c.search.features.map((f) => f.metric)).toEqual(['median_ms', 'balancedness_next']);
  });

  it("names the command that generated the example's held-out trace", () => {
    const yaml = readFileSync('examples/eplb/evolve.yaml', 'utf8');
    const command = /`(adrs trace gen [^`]*)`/.exec(yaml)?.[1] ?? '';
    const flag = (name: string) => new RegExp(`--${name} (\\S+)`).exec(command)?.[1];
    const c = loadConfigFile('examples/eplb/evolve.yaml');
    const manifest = JSON.parse(readFileSync(`traces/${c.evaluator.heldout_trace}.json`, 'utf8'));
    expect(flag('name')).toBe(manifest.name);
    expect(Number(flag('seed'))).toBe(manifest.generator.params.seed);
    expect(Number(flag('windows'))).toBe(manifest.generator.params.windows);
    expect(flag('out')).toBe('traces');
  });
});
