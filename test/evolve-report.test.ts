import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyModelEdit } from '../src/evolve/edit.js';
import { buildRunReport, type RunReport } from '../src/evolve/report.js';
import { failureClass } from '../src/evolve/report-classify.js';
import { reportText } from '../src/evolve/report-format.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { legacyRefusalClass } from '../src/evolve/run-log/migrate-v1.js';
import { runSession } from '../src/evolve/session.js';
import {
  climbingModel,
  currentValues,
  makeToyProject,
  TOY_BALANCER,
  TOY_KERNEL,
} from './helpers/evolve-toy.js';
import { FakeOpenAiServer, type FakeReply, type FakeRequest } from './helpers/fake-openai-server.js';

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON lines, inspected field by field.
type Ev = Record<string, any>;

const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');
const readEvents = (dir: string): Ev[] =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Ev);
const report = (dir: string, top = 10): RunReport => buildRunReport(readRunFiles(dir), { top });

/** Every file under `dir` with its size, mtime and content hash: a report must leave all of it alone. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        out[p] = `${st.size}:${st.mtimeMs}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return out;
}

/** Scripted answers by arrival order (one iteration in flight, so arrival order is iteration order). */
const OUTSIDE =
  "<<<<<<< SEARCH balancer.ts\nexport const NAME = 'toy';\n=======\nexport const NAME = 'hacked';\n>>>>>>> REPLACE";
const AMBIGUOUS =
  '<<<<<<< SEARCH\n// EVOLVE-BLOCK-START\n=======\n// EVOLVE-BLOCK-START\n// note\n>>>>>>> REPLACE';
function scripted(q: FakeRequest): FakeReply {
  switch (q.index) {
    case 0:
      return { status: 429, headers: { 'retry-after': '0' } };
    case 2:
      return { text: 'Looks fine as it is.' }; // malformed, then fixed on the second answer
    case 4:
    case 5:
      return { text: OUTSIDE }; // refused twice: outside the EVOLVE-BLOCK
    case 6: {
      const { spread } = currentValues(q);
      return {
        text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${spread};\n=======\nexport const SPREAD = BROKEN;\n>>>>>>> REPLACE`,
      };
    }
    case 7:
      return { text: AMBIGUOUS }; // ambiguous, then fixed
    default:
      return climbingModel(q);
  }
}

let server: FakeOpenAiServer;
let dir: string;
let base: string;

beforeAll(async () => {
  server = await FakeOpenAiServer.start(scripted);
  const p = makeToyProject(server.baseUrl, {
    search: {
      islands: 2,
      parallel: 1,
      migration_interval: 4,
      mutations: { diff: 0.7, rewrite: 0.3, crossover: 0 },
    },
  });
  base = p.dir;
  dir = join(p.dir, 'run');
  await runSession({ configPath: p.configPath, out: dir, overrides: { iterations: 12 } });
});

afterAll(async () => {
  await server.close();
  rmSync(base, { recursive: true, force: true });
});

describe('adrs report on a finished run', () => {
  it("matches the run's own events: tokens, cost, retries, refusals, evaluations, lineage", () => {
    const before = snapshot(dir);
    const r = report(dir);
    expect(snapshot(dir)).toEqual(before);
    const ev = readEvents(dir);
    expect(r.disagreements).toEqual([]);
    expect(r.status).toMatchObject({ state: 'finished', reason: 'iterations' });
    expect(r.iterations.committed).toBe(12);
    expect(r.run).toMatchObject({ seed: 7, mode: 'start', sessions: 1, objective: 'adrs' });

    // Model accounting, per model and in total, straight from the response events.
    const responses = ev.filter((e) => e.type === 'response').map((e) => e.reply);
    for (const name of ['toy-a', 'toy-b']) {
      const mine = responses.filter((x) => x.model === name);
      const acc = r.accounting.models.find((m) => m.model === name)!;
      expect(acc.calls).toBe(mine.length);
      expect(acc.prompt_tokens).toBe(mine.reduce((a, x) => a + x.usage.prompt_tokens, 0));
      expect(acc.completion_tokens).toBe(mine.reduce((a, x) => a + x.usage.completion_tokens, 0));
      expect(acc.cost_usd).toBeCloseTo(
        mine.reduce((a, x) => a + x.cost_usd, 0),
        12,
      );
    }
    expect(r.accounting.total.calls).toBe(server.requests.length - 1); // one request was a 429, retried
    expect(r.accounting.total.http_retries).toBe(1);
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(r.accounting.total.cost_usd).toBeCloseTo(summary.counters.cost_usd, 12);
    expect(r.accounting.total.prompt_tokens).toBe(summary.counters.prompt_tokens);

    // Edits: the scripted malformed, outside-block and ambiguous answers, by class.
    const patches = ev.filter((e) => e.type === 'patch');
    expect(r.accounting.patches.answers).toBe(patches.length);
    expect(r.accounting.patches.applied).toBe(patches.filter((e) => e.ok).length);
    expect(r.accounting.patches.refused_answers).toMatchObject({
      malformed: 1,
      'outside-block': 2,
      ambiguous: 1,
    });
    expect(r.accounting.patches.refused).toMatchObject({ 'outside-block': 1, malformed: 0 });
    expect(r.accounting.patches.fixed_after_sendback).toBe(2);
    const commits = ev.filter((e) => e.type === 'commit' && e.iteration > 0);
    expect(r.iterations.outcomes.refused).toBe(commits.filter((e) => e.outcome === 'refused').length);
    expect(r.accounting.duplicates).toBe(commits.filter((e) => e.outcome === 'duplicate').length);
    expect(r.accounting.duplicates).toBe(summary.counters.duplicates);

    // Evaluations: the BROKEN program is invalid with a compile artifact.
    const evaluations = ev.filter((e) => e.type === 'evaluation');
    expect(r.accounting.evaluations.total).toBe(evaluations.length);
    expect(r.accounting.evaluations.invalid_by_class).toEqual({ compile: 1 });
    expect(r.accounting.evaluations.valid).toBe(evaluations.length - 1);

    // Best, seed and held-out: the same as the session's summary.
    expect(r.best).toMatchObject({ id: summary.best.id, score: summary.best.score });
    expect(r.seed).toMatchObject({ id: 'p0', score: 80 });
    expect(r.heldout).toMatchObject({ stale: false, for_best: summary.best.id });
    expect(r.heldout!.best.score).toBe(summary.best.heldout.score);
    expect(r.gain.train).toBe(summary.best.score - 80);
    expect(r.gain.heldout).toBe(summary.best.heldout.score - summary.seed.heldout.score);
    expect(r.gain.overfitting).toBe(false);
    // Held-out quality and time, each against its noise (the toy's held-out time equals its training time).
    expect(r.heldout!.comparison.same_program).toBe(false);
    expect(r.heldout!.comparison.quality.delta).toBeCloseTo(
      r.heldout!.best.metrics.balancedness_next! - 0.8,
      12,
    );

    // Model latency and queueing, apart: every reply records its queueing (one iteration in flight: ~0).
    expect(responses.every((x) => typeof x.queued_ms === 'number')).toBe(true);
    expect(r.accounting.total.mean_queued_ms).toBeCloseTo(
      responses.reduce((a, x) => a + x.queued_ms, 0) / responses.length,
      9,
    );

    // Lineage: best/lineage.json, seed first, each step with its plan's mutation and model.
    const lineage = JSON.parse(readFileSync(join(dir, 'best', 'lineage.json'), 'utf8')).reverse();
    expect(r.lineage.map((s) => [s.id, s.mutation, s.model, s.score])).toEqual(
      lineage.map((s: Ev) => [s.id, s.mutation, s.model, s.score]),
    );
    const plans = new Map(ev.filter((e) => e.type === 'plan').map((e) => [e.iteration, e.plan]));
    for (const step of r.lineage.slice(1)) {
      expect(step.parent).toBe(plans.get(step.iteration).parent);
      expect(step.answers).toBe(patches.filter((e) => e.iteration === step.iteration).length);
    }

    // Top programs ranked by score, islands from the checkpoint, best-so-far never decreasing.
    const scores = r.top.map((p) => p.score!);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(r.top[0]!.id).toBe(r.best!.id);
    expect(r.islands).toHaveLength(2);
    expect(r.islands[0]!.cells_total).toBe(100);
    expect(r.migrations).toBe(3);
    expect(r.progress[0]).toEqual({ iteration: 0, best: 80 });
    expect(r.progress.at(-1)).toEqual({ iteration: 12, best: r.best!.score });
    expect(r.progress.length).toBe(10);
    for (let i = 1; i < r.progress.length; i++)
      expect(r.progress[i]!.best!).toBeGreaterThanOrEqual(r.progress[i - 1]!.best!);

    const text = reportText(r);
    expect(text).toContain('finished: iterations (reached 12 iterations)');
    // The toy evaluator measures no noise (no relabelled balancedness, no p95): the report says so.
    expect(text).toContain('training quality (balancedness_next) best − seed +0.1500 (noise not measured)');
    expect(text).toContain('4 refused (ambiguous 1, outside EVOLVE-BLOCK 2, malformed 1)');
    expect(text).toContain('1 refused (outside EVOLVE-BLOCK 1)');
    expect(text).toContain('2 sent back once and fixed');
    expect(text).toContain('files agree: checkpoint.json, programs/, best/, summary.json match events.jsonl');
  });

  it('--json and --top through the CLI; bad input exits 1 with one line', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [BIN, 'report', ...args], { encoding: 'utf8' });
    const ok = run(dir, '--json', '--top', '3');
    expect(ok.status).toBe(0);
    const json = JSON.parse(ok.stdout) as RunReport;
    expect(json.top).toHaveLength(3);
    expect(json).toEqual(JSON.parse(JSON.stringify({ ...report(dir, 3), status: json.status })));
    const text = run(dir);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('best vs seed');

    const file = join(base, 'evolve.json');
    const empty = join(base, 'empty');
    mkdirSync(empty, { recursive: true });
    const broken = join(base, 'broken');
    cpSync(dir, broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), '{"seed": 7,');
    for (const [target, message] of [
      [join(base, 'nowhere'), /does not exist/],
      [file, /is not a folder/],
      [empty, /is not a run folder \(no config\.json\/events\.jsonl\)/],
      [broken, /config\.json cannot be read as JSON/],
    ] as const) {
      const r = run(target);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it('says so when the files disagree instead of choosing', () => {
    const copy = join(base, 'tampered');
    cpSync(dir, copy, { recursive: true });
    const metrics = JSON.parse(readFileSync(join(copy, 'best', 'metrics.json'), 'utf8'));
    writeFileSync(join(copy, 'best', 'metrics.json'), JSON.stringify({ ...metrics, id: 'p0', score: 80 }));
    const lines = readFileSync(join(copy, 'events.jsonl'), 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"type":"response"'));
    const e = JSON.parse(lines[i]!);
    e.reply.cost_usd *= 2;
    lines[i] = JSON.stringify(e);
    writeFileSync(join(copy, 'events.jsonl'), lines.join('\n'));
    const evaluated = readEvents(copy).find((x) => x.type === 'evaluation' && x.iteration > 0)!;
    rmSync(join(copy, 'programs', `${evaluated.hash}.json`));
    const r = report(copy);
    expect(r.best!.id).toBe(metrics.id); // events decide
    expect(r.disagreements.join('\n')).toMatch(
      /best\/metrics\.json says the best is p0 \(score 80\); events\.jsonl says p\d+/,
    );
    expect(r.disagreements.join('\n')).toMatch(
      /recorded at \$[\d.e-]+ but its tokens at the config's prices cost/,
    );
    expect(r.disagreements.join('\n')).toMatch(/checkpoint\.json counters\.cost_usd/);
    expect(r.disagreements.join('\n')).toMatch(/programs\/: 1 evaluated program\(s\) not stored/);
    expect(reportText(r)).toMatch(/THE FILES DISAGREE \(\d+\):/);
  });

  it('a run killed while appending its held-out scores: the torn line is ignored and reported', () => {
    const copy = join(base, 'torn');
    cpSync(dir, copy, { recursive: true });
    const text = readFileSync(join(copy, 'events.jsonl'), 'utf8');
    const lastLine = text.slice(text.lastIndexOf('\n', text.length - 2) + 1);
    expect(lastLine).toContain('"type":"heldout"');
    // The kill lands mid-line, before best/ and summary.json are written.
    writeFileSync(join(copy, 'events.jsonl'), text.slice(0, text.length - Math.floor(lastLine.length / 2)));
    rmSync(join(copy, 'summary.json'));
    rmSync(join(copy, 'best'), { recursive: true });
    const intact = report(dir);
    const r = report(copy);
    expect(r.events.torn_final_line_bytes).toBe(Math.ceil(lastLine.length / 2));
    expect(r.heldout).toBeNull();
    expect(r.status.state).toBe('finished');
    expect(r.accounting).toEqual(intact.accounting);
    expect(r.lineage).toEqual(intact.lineage);
    expect(r.disagreements).toEqual([]);
    expect(r.notes.join('\n')).toMatch(/ends in an incomplete line \(\d+ bytes/);
    expect(r.notes.join('\n')).toMatch(/best\/metrics\.json is missing/);
  });
});

describe('adrs report on a run still in progress', () => {
  it('reports the live folder, a torn copy of it, and flags a gain that vanishes on the held-out trace', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // Iteration 4's request (the 4th, with one iteration at a time) is sent after its prompt is logged.
    let asked4!: () => void;
    const asking4 = new Promise<void>((r) => {
      asked4 = r;
    });
    const live = await FakeOpenAiServer.start(async (q) => {
      if (q.index === 3) asked4();
      if (q.index >= 3) await gate;
      return climbingModel(q);
    });
    try {
      const p = makeToyProject(live.baseUrl, { search: { islands: 1, parallel: 1 } });
      // Held-out scores that ignore the program: any training gain vanishes there.
      const mod = readFileSync(p.evaluatorModule, 'utf8');
      writeFileSync(p.evaluatorModule, mod.replace('r.score -= 1;', 'r.score = 50;'));
      const out = join(p.dir, 'run');
      const session = runSession({ configPath: p.configPath, out, overrides: { iterations: 5 } });
      await asking4;
      expect(readRunFiles(out).events.some((e) => e.type === 'prompt' && e.iteration === 4)).toBe(true);
      const r = report(out);
      expect(r.status.state).toBe('in-progress-or-killed');
      expect(r.iterations.committed).toBe(3);
      expect(r.disagreements).toEqual([]);
      expect(r.heldout).toBeNull();
      expect(reportText(r)).toMatch(
        /in progress, or killed: no stop event after the last start; last event \d+ s ago/,
      );

      const torn = join(p.dir, 'torn');
      cpSync(out, torn, { recursive: true });
      const half = '{"type":"response","iteration":4,"attempt":1,"reply":{"te';
      appendFileSync(join(torn, 'events.jsonl'), half);
      const t = report(torn);
      expect(t.events.torn_final_line_bytes).toBe(half.length);
      expect(t.accounting).toEqual(r.accounting);
      expect(reportText(t)).toMatch(/killed mid-write \(torn final event\).*--resume/);

      release();
      await session;
      const done = report(out);
      expect(done.status.state).toBe('finished');
      expect(done.gain.train!).toBeGreaterThan(0);
      expect(done.gain.heldout).toBe(0);
      expect(done.gain.overfitting).toBe(true);
      expect(reportText(done)).toContain('OVERFITTING: the training gain vanishes on the held-out trace');

      // Resumed for more iterations: two sessions read as one run, and the files still agree.
      await runSession({ resume: out, overrides: { iterations: 8 } });
      const resumed = report(out);
      expect(resumed.run.sessions).toBe(2);
      expect(resumed.iterations.committed).toBe(8);
      expect(resumed.status).toMatchObject({ state: 'finished', reason: 'iterations' });
      expect(resumed.disagreements).toEqual([]);
      expect(resumed.accounting.total.calls).toBe(live.requests.length);
      rmSync(p.dir, { recursive: true, force: true });
    } finally {
      release();
      await live.close();
    }
  });
});

describe('refusal and failure classes', () => {
  const files = { 'balancer.ts': TOY_BALANCER, 'kernels/toy.wgsl': TOY_KERNEL };
  const sr = (search: string, replace: string, file = 'balancer.ts') =>
    `<<<<<<< SEARCH ${file}\n${search}\n=======\n${replace}\n>>>>>>> REPLACE`;
  it('the patcher gives every refusal its class, and a version-1 log recovers the same class from the wording', () => {
    const cases: [string, 'diff' | 'rewrite', string][] = [
      ['no edit here', 'diff', 'malformed'],
      ['no edit here', 'rewrite', 'malformed'],
      ['<<<<<<< SEARCH balancer.ts\nexport const SPREAD = 1;\n>>>>>>> REPLACE', 'diff', 'malformed'],
      [sr('', 'x'), 'diff', 'malformed'],
      ['<<<<<<< BLOCK balancer.ts#1\nexport const SPREAD = 2;\n', 'rewrite', 'malformed'],
      [sr('export const SPREAD = 9;', 'export const SPREAD = 2;'), 'diff', 'no-match'],
      [sr('export const SPREAD = 1;', 'export const SPREAD = 2;', 'nope.ts'), 'diff', 'no-match'],
      ['<<<<<<< BLOCK balancer.ts#9\nexport const SPREAD = 2;\n>>>>>>> END', 'rewrite', 'no-match'],
      [AMBIGUOUS, 'diff', 'ambiguous'],
      [OUTSIDE, 'diff', 'outside-block'],
      [
        sr('export const SPREAD = 1;', 'export const SPREAD = 1;\n// EVOLVE-BLOCK-END'),
        'diff',
        'outside-block',
      ],
      [sr('export const SPREAD = 1;', 'export const SPREAD = 1;'), 'diff', 'unchanged'],
    ];
    for (const [text, mutation, cls] of cases) {
      const r = applyModelEdit(files, text, mutation);
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect([text, r.kind]).toEqual([text, cls]);
      expect([text, legacyRefusalClass(r.reason)]).toEqual([text, cls]);
    }
    expect(legacyRefusalClass('the edit leaves the program unchanged (same code after normalisation)')).toBe(
      'unchanged',
    );
  });

  it('names an invalid evaluation by its first artifact that is a cause', () => {
    const bad = (artifacts: Record<string, string>) => ({
      valid: false,
      score: null,
      metrics: {},
      artifacts,
    });
    expect(failureClass(bad({ output: 'printed', wgsl: 'kernels/a.wgsl:3:1 error' }))).toBe('wgsl');
    expect(failureClass(bad({ timeout: 'killed after 120 s' }))).toBe('timeout');
    expect(failureClass(bad({}))).toBe('no-score');
  });
});

describe('a run whose best is the seed', () => {
  it('reports no gain, and the held-out difference of the seed with itself as noise', async () => {
    const srv = await FakeOpenAiServer.start(() => ({ text: OUTSIDE }));
    const p = makeToyProject(srv.baseUrl, { search: { islands: 1, parallel: 1 } });
    try {
      const d = join(p.dir, 'run');
      await runSession({ configPath: p.configPath, out: d, overrides: { iterations: 2 } });
      const r = report(d);
      expect(r.best!.id).toBe('p0');
      expect(r.heldout!.comparison.same_program).toBe(true);
      expect(r.heldout!.comparison.time.verdict).toBe('noise');
      const text = reportText(r);
      expect(text).toContain('no gain: the best is the seed');
      expect(text).toContain('a re-measurement of one program (noise)');
      expect(text).toMatch(
        /held-out time \(median_ms\) best − seed \+0\.000 ms \(same program re-measured: noise\)/,
      );
      expect(text).not.toMatch(/gain [-+]\d/);
      expect(text).toContain('model ms/call');
      expect(text).toContain('queued ms/call');
    } finally {
      await srv.close();
      rmSync(p.dir, { recursive: true, force: true });
    }
  });
});
