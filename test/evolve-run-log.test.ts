import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRunReport } from '../src/evolve/report.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { RunFolder } from '../src/evolve/run-folder.js';
import { eventKey, type RunEvent } from '../src/evolve/run-log/events.js';
import { RunState } from '../src/evolve/run-log/fold.js';
import { readRunLog } from '../src/evolve/run-log/read.js';
import { runSession, type SessionOptions } from '../src/evolve/session.js';
import { TimeSums } from '../src/evolve/timing.js';
import { buildRunPageData } from '../src/report/run-page-data.js';
import { UserError } from '../src/util/errors.js';
import { climbingModel, commitSequence, loadToyEvaluator, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';
import { tempDirs } from './helpers/temp-dirs.js';

// biome-ignore lint/suspicious/noExplicitAny: raw events.jsonl lines, inspected field by field.
type Line = Record<string, any>;

let server: FakeOpenAiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});
const tempDir = tempDirs('adrs-run-log-');
const lines = (dir: string): Line[] =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
const sha = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A new toy run on the climbing model; its server stays up (a resume may ask it) until the test ends. */
const liveRun = async (
  iterations: number,
  search: Record<string, unknown>,
  hooks: Pick<SessionOptions, 'onFolder' | 'onProgress' | 'onActivity'> = {},
): Promise<string> => {
  server = await FakeOpenAiServer.start(climbingModel);
  const p = makeToyProject(server.baseUrl, { search });
  const r = await runSession({
    configPath: p.configPath,
    out: join(p.dir, 'run'),
    overrides: { iterations },
    ...hooks,
  });
  return r.dir;
};

/**
 * A run folder written by adrs at commit 2658b92, before run-log versions: events without `v`,
 * prompts and answers inline, refusals as English reasons only. A climbing model whose 3rd answer
 * edits outside the EVOLVE-BLOCK and whose 5th and 6th search for text that is not there; the
 * temporary project's paths were replaced by /fixture-project.
 */
const V1_FIXTURE = join(import.meta.dirname, 'fixtures', 'evolve-v1-run');
const v1Copy = (): string => {
  const dir = join(tempDir(), 'run');
  cpSync(V1_FIXTURE, dir, { recursive: true });
  return dir;
};

const H = 'a'.repeat(64);
const VALID = [
  { v: 2, type: 'run', mode: 'start', config_seed: 7, t: 0 },
  { v: 2, type: 'prompt', iteration: 1, attempt: 1, model: 'toy-a', messages_sha256: H },
  {
    v: 2,
    type: 'response',
    iteration: 1,
    attempt: 1,
    reply: {
      text_sha256: H,
      model: 'toy-a',
      usage: { prompt_tokens: 10, completion_tokens: 5, estimated: false },
      cost_usd: 0.001,
      latency_ms: 3,
      attempts: 1,
      retried: [],
    },
  },
  { v: 2, type: 'patch', iteration: 1, attempt: 1, ok: false, kind: 'no-match', reason: 'not found' },
  { v: 2, type: 'commit', iteration: 1, outcome: 'refused', hash: null, id: null, score: null },
];
/** A version-2 plan event of iteration 1, its plan's fields as given. */
const planEvent = (plan: Line): Line => ({
  v: 2,
  type: 'plan',
  iteration: 1,
  plan: {
    iteration: 1,
    island: 0,
    parent: 'p0',
    mate: null,
    inspirations: { top: [], diverse: [] },
    mutation: 'diff',
    model: 'toy-a',
    how: 'exploitation',
    ...plan,
  },
});
const logOf = (events: unknown[]): string => events.map((e) => `${JSON.stringify(e)}\n`).join('');

describe('the run log is validated on read and fails closed in one line naming file:line', () => {
  it('reads a valid version-2 log as it was written', () => {
    expect(readRunLog(logOf(VALID), 'run/events.jsonl').events).toEqual(VALID);
  });

  it('migrates version-1 lines: texts to hashes, a refusal to the class its wording names (other when none)', () => {
    const v1 = [
      {
        type: 'prompt',
        iteration: 1,
        attempt: 1,
        model: 'toy-a',
        messages: [{ role: 'user', content: 'hi' }],
      },
      {
        type: 'patch',
        iteration: 1,
        attempt: 1,
        ok: false,
        reason: 'block 1: the SEARCH text matches 2 places',
      },
      { type: 'patch', iteration: 1, attempt: 2, ok: false, reason: 'the model was rude' },
    ];
    const log = readRunLog(logOf(v1), 'run/events.jsonl');
    const text = JSON.stringify(v1[0]!.messages);
    expect(log.events).toEqual([
      { v: 2, type: 'prompt', iteration: 1, attempt: 1, model: 'toy-a', messages_sha256: sha(text) },
      { ...v1[1], v: 2, kind: 'ambiguous' },
      { ...v1[2], v: 2, kind: 'other' },
    ]);
    expect(log.texts).toEqual(new Map([[sha(text), text]]));
  });

  const malformed: [string, number, (e: Line[]) => void, RegExp][] = [
    [
      'an unknown type',
      2,
      (e) => (e[1] = { v: 2, type: 'thought', iteration: 1 }),
      /unknown event type 'thought'/,
    ],
    ['a missing field', 2, (e) => delete e[1]!.model, /prompt event: missing field 'model'$/],
    ['an ill-typed field', 5, (e) => (e[4]!.score = 'high'), /commit event: score is not a number$/],
    [
      'an ill-typed nested field',
      3,
      (e) => (e[2]!.reply.usage.prompt_tokens = '10'),
      /response event: reply\.usage\.prompt_tokens is not a number ≥ 0$/,
    ],
    ['a missing nested field', 3, (e) => delete e[2]!.reply.cost_usd, /missing field 'reply\.cost_usd'$/],
    [
      'a future version',
      2,
      (e) => (e[1]!.v = 3),
      /written by a newer adrs \(run-log version 3; this one reads up to 2\)/,
    ],
    ['a version that is not one', 2, (e) => (e[1]!.v = '2'), /v is "2", not a run-log version$/],
    ['a line that is not an object', 2, (e) => (e[1] = [1, 2]), /the line is not an event object$/],
    ['a blob name that is not a sha256', 2, (e) => (e[1]!.messages_sha256 = 'abc'), /is not a sha256/],
    ['a patch kind that is not one', 4, (e) => (e[3]!.kind = 'weird'), /kind is "weird", not one of/],
    [
      "a version-2 refusal of kind 'other' (only a version-1 reason can be unplaceable)",
      4,
      (e) => (e[3]!.kind = 'other'),
      /patch event: kind is "other", not one of applied, no-match/,
    ],
    [
      'an applied patch with a refusal kind',
      4,
      (e) => (e[3] = { ...e[3], ok: true, hash: 'ab12ab12ab12ab12', changed: [] }),
      /patch event: ok true with kind 'no-match'$/,
    ],
    ['an unknown commit outcome', 5, (e) => (e[4]!.outcome = 'great'), /outcome is "great", not one of/],
    [
      'a version-1 prompt without its messages',
      2,
      (e) => (e[1] = { type: 'prompt', iteration: 1, attempt: 1, model: 'toy-a' }),
      /prompt event \(version 1\): missing field 'messages'$/,
    ],
    [
      "a type that is a key of every object ('constructor')",
      2,
      (e) => (e[1] = { v: 2, type: 'constructor' }),
      /unknown event type 'constructor'/,
    ],
    [
      "a type that is a key of every object ('__proto__')",
      2,
      (e) => (e[1]!.type = '__proto__'),
      /unknown event type '__proto__'/,
    ],
    [
      'a program hash that is a path',
      2,
      (e) =>
        (e[1] = {
          v: 2,
          type: 'evaluation',
          iteration: 1,
          hash: '../../../etc/x',
          ms: 1,
          result: { valid: false, score: null, metrics: {}, artifacts: {} },
        }),
      /evaluation event: hash is not a program hash \(16 hex digits\)$/,
    ],
    [
      'a negative cost (it would buy budget back)',
      3,
      (e) => (e[2]!.reply.cost_usd = -1000),
      /response event: reply\.cost_usd is not a number ≥ 0$/,
    ],
    [
      'negative tokens',
      3,
      (e) => (e[2]!.reply.usage.completion_tokens = -5),
      /completion_tokens is not a number ≥ 0$/,
    ],
    [
      'a valid commit that names no program',
      5,
      (e) => Object.assign(e[4]!, { outcome: 'valid', score: 99 }),
      /commit event: outcome 'valid' without the program's hash and id$/,
    ],
    [
      'a refusal that names a program',
      5,
      (e) => Object.assign(e[4]!, { hash: 'ab12ab12ab12ab12', id: 'p1' }),
      /commit event: outcome 'refused' names a program/,
    ],
    [
      'an invalid commit with a score',
      5,
      (e) => Object.assign(e[4]!, { outcome: 'invalid', hash: 'ab12ab12ab12ab12', id: 'p1', score: 99 }),
      /commit event: outcome 'invalid' with a score$/,
    ],
    [
      'a plan for another iteration than its event',
      2,
      (e) => (e[1] = planEvent({ iteration: 4 })),
      /plan event: the plan is for iteration 4, the event for 1$/,
    ],
    [
      "a plan whose parent is not a program id ('constructor' would be found on every object)",
      2,
      (e) => (e[1] = planEvent({ parent: 'constructor' })),
      /plan event: plan\.parent is not a program id \(p0, p1, …\)$/,
    ],
    [
      'a new program named like an earlier one (it would replace it)',
      5,
      (e) => Object.assign(e[4]!, { outcome: 'valid', hash: 'ab12ab12ab12ab12', id: 'p0', score: 99 }),
      /commit event: a new program of iteration 1 named 'p0', not 'p1'$/,
    ],
    [
      'a seed after iteration 0',
      5,
      (e) => Object.assign(e[4]!, { outcome: 'seed', hash: 'ab12ab12ab12ab12', id: 'p0', score: 9 }),
      /commit event: a seed at iteration 1$/,
    ],
    [
      'a version-1 prompt whose messages are not a conversation',
      2,
      (e) =>
        (e[1] = { type: 'prompt', iteration: 1, attempt: 1, model: 'toy-a', messages: [{ role: 'system' }] }),
      /prompt event \(version 1\): missing field 'messages\[0\]\.content'$/,
    ],
  ];
  for (const [what, line, spoil, problem] of malformed) {
    it(`refuses ${what}`, () => {
      const events = structuredClone(VALID) as Line[];
      spoil(events);
      let error: unknown;
      try {
        readRunLog(logOf(events), 'run/events.jsonl');
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UserError);
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      expect(message.startsWith(`run/events.jsonl:${line}: `)).toBe(true);
      expect(message).toMatch(problem);
    });
  }

  it('a report and a resume refuse a damaged log the same way, before touching the folder', async () => {
    const dir = v1Copy();
    const path = join(dir, 'events.jsonl');
    const text = readFileSync(path, 'utf8').split('\n');
    const at = text.findIndex((l) => l.includes('"type":"evaluation"'));
    text[at] = text[at]!.replace('"ms":', '"ms":"slow","was":');
    writeFileSync(path, text.join('\n'));
    const expected = `${path}:${at + 1}: evaluation event: ms is not a number`;
    expect(() => readRunFiles(dir)).toThrow(expected);
    const before = readFileSync(path, 'utf8');
    const config = readFileSync(join(dir, 'config.json'), 'utf8');
    await expect(
      runSession({ resume: dir, overrides: { baseUrl: 'http://127.0.0.1:9/v1' } }),
    ).rejects.toThrow(expected);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(config);
  });
});

describe('a version-1 run folder (before run-log versions) still reports, replays and resumes', () => {
  it('reports it: no disagreement, refusal classes recovered from the wording, accounting from the inline answers', () => {
    const dir = v1Copy();
    const files = readRunFiles(dir);
    const r = buildRunReport(files);
    expect(r.disagreements).toEqual([]);
    expect(r.status).toMatchObject({ state: 'finished', reason: 'iterations' });
    expect(r.iterations).toMatchObject({ committed: 6, outcomes: { valid: 2, duplicate: 3, refused: 1 } });
    expect(r.best?.id).toBe('p1');
    expect(r.lineage.map((s) => s.id)).toEqual(['p0', 'p1']);
    expect(r.accounting.patches).toMatchObject({
      answers: 8,
      applied: 5,
      applied_first: 4,
      fixed_after_sendback: 1,
      refused_answers: { 'outside-block': 1, 'no-match': 2, other: 0 },
      refused: { 'no-match': 1, other: 0 },
    });
    const raw = lines(dir).filter((e) => e.type === 'response');
    expect(r.accounting.total.calls).toBe(raw.length);
    expect(r.accounting.total.prompt_tokens).toBe(raw.reduce((a, e) => a + e.reply.usage.prompt_tokens, 0));
    expect(r.heldout?.for_best).toBe('p1');
    const page = buildRunPageData(files, r);
    expect(page.refusalsByClass).toEqual({ 'outside-block': 1, 'no-match': 2 });
    expect(page.curve.heldout.at(-1)).toBe(r.heldout!.best.score);
    // The inline texts are readable by their hash, as version 2 names them.
    const first = raw[0]!.reply.text as string;
    expect(files.blobs.get('responses', sha(first))).toBe(first);
  });

  it('replays it with the same programs, and the replay writes a version-2 log with blobs of the same texts', async () => {
    const dir = v1Copy();
    const evaluator = await loadToyEvaluator(makeToyProject('http://127.0.0.1:9/v1'));
    const replay = await runSession({ replay: dir, out: join(tempDir(), 'replay'), evaluator });
    expect(replay.stats.stopReason).toBe('replay-end');
    expect(replay.stats.replayMismatches).toEqual([]);
    expect(replay.stats.replayPlanDivergences).toBe(0);
    expect(commitSequence(replay.dir)).toEqual(commitSequence(dir));
    const replayed = lines(replay.dir);
    expect(replayed.every((e) => e.v === 2)).toBe(true);
    const texts = lines(dir)
      .filter((e) => e.type === 'response')
      .map((e) => sha(e.reply.text));
    expect(replayed.filter((e) => e.type === 'response').map((e) => e.reply.text_sha256)).toEqual(texts);
    expect(readdirSync(join(replay.dir, 'responses')).sort()).toEqual(
      [...new Set(texts)].map((h) => `${h}.txt`).sort(),
    );
    const kinds = replayed.filter((e) => e.type === 'patch').map((e) => e.kind);
    expect(kinds).toEqual([
      'applied',
      'applied',
      'outside-block',
      'applied',
      'no-match',
      'no-match',
      'applied',
      'applied',
    ]);
    expect(buildRunReport(readRunFiles(replay.dir)).disagreements).toEqual([]);
  });

  it('resumes it: version-1 lines stay as they were, new lines are version 2, and the whole reports cleanly', async () => {
    const dir = v1Copy();
    const before = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    server = await FakeOpenAiServer.start(climbingModel);
    const evaluator = await loadToyEvaluator(makeToyProject(server.baseUrl));
    const r = await runSession({
      resume: dir,
      overrides: { iterations: 9, baseUrl: server.baseUrl },
      evaluator,
    });
    expect(r.stats.committed).toBe(9);
    const text = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    expect(text.startsWith(before)).toBe(true);
    const added = text
      .slice(before.length)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(added.length).toBeGreaterThan(0);
    expect(added.every((e) => e.v === 2)).toBe(true);
    const report = buildRunReport(readRunFiles(dir));
    expect(report.disagreements).toEqual([]);
    expect(report.iterations.committed).toBe(9);
    expect(report.run.sessions).toBe(2);
  });
  it('resumes it killed mid-iteration: the inline prompts and answers are reused, and the programs are those of the whole run', async () => {
    const dir = v1Copy();
    const full = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    // Killed before iteration 4 was committed (its two answers logged) and before any checkpoint.
    const all = full.split('\n');
    const cut = all.findIndex((l) => l.includes('"type":"commit","iteration":4'));
    writeFileSync(join(dir, 'events.jsonl'), `${all.slice(0, cut).join('\n')}\n`);
    for (const f of ['checkpoint.json', 'summary.json', 'best']) rmSync(join(dir, f), { recursive: true });
    server = await FakeOpenAiServer.start(climbingModel);
    const project = makeToyProject(server.baseUrl);
    // Without a checkpoint the resume starts from the seed folder: the toy project's, the same files.
    const config = join(dir, 'config.json');
    writeFileSync(config, readFileSync(config, 'utf8').replaceAll('/fixture-project', project.dir));
    const evaluator = await loadToyEvaluator(project);
    const r = await runSession({ resume: dir, overrides: { baseUrl: server.baseUrl }, evaluator });
    expect(r.stats.committed).toBe(6);
    // Only iterations 5 and 6 were asked; 1–4 were answered from the version-1 log.
    expect(server.requests.length).toBe(2);
    const fixture = join(tempDir(), 'whole');
    cpSync(V1_FIXTURE, fixture, { recursive: true });
    expect(commitSequence(dir)).toEqual(commitSequence(fixture));
    expect(buildRunReport(readRunFiles(dir)).disagreements).toEqual([]);
  });
});

describe('prompts and answers are content-addressed blobs, checked on read', () => {
  /** Three iterations, and no model afterwards: what reads the folder cannot ask one. */
  const finishedRun = async () => {
    const dir = await liveRun(3, { parallel: 1, islands: 1 });
    await server!.close();
    server = undefined;
    return dir;
  };

  it('names each prompt and answer by the sha256 of its blob, written before the event', async () => {
    const dir = await finishedRun();
    const events = lines(dir);
    const prompts = events.filter((e) => e.type === 'prompt');
    expect(prompts.length).toBe(3);
    for (const e of prompts) {
      expect(e.messages).toBeUndefined();
      const text = readFileSync(join(dir, 'prompts', `${e.messages_sha256}.json`), 'utf8');
      expect(sha(text)).toBe(e.messages_sha256);
      expect(JSON.parse(text)[0].role).toBe('system');
    }
    for (const e of events.filter((x) => x.type === 'response')) {
      expect(e.reply.text).toBeUndefined();
      const text = readFileSync(join(dir, 'responses', `${e.reply.text_sha256}.txt`), 'utf8');
      expect(sha(text)).toBe(e.reply.text_sha256);
    }
  });

  it('a replay refuses an answer changed after it was written, and a missing prompt', async () => {
    const dir = await finishedRun();
    const answer = lines(dir).find((e) => e.type === 'response')!.reply.text_sha256 as string;
    const path = join(dir, 'responses', `${answer}.txt`);
    writeFileSync(path, readFileSync(path, 'utf8').replace('SPREAD = 2', 'SPREAD = 5'));
    const evaluator = await loadToyEvaluator(makeToyProject('http://127.0.0.1:9/v1'));
    await expect(runSession({ replay: dir, out: join(tempDir(), 'replay'), evaluator })).rejects.toThrow(
      `${path} does not match its sha256; it was changed after it was written, so the run folder cannot be trusted`,
    );
    const prompt = lines(dir).find((e) => e.type === 'prompt')!.messages_sha256 as string;
    rmSync(join(dir, 'prompts', `${prompt}.json`));
    expect(() => new RunFolder(dir).blobs.messages(prompt)).toThrow(/prompts\/[0-9a-f]{64}\.json is missing/);
    // The report says a named file is gone (it checks presence; the hash is checked where a text is used).
    expect(buildRunReport(readRunFiles(dir)).disagreements).toEqual([
      `prompts/: 1 file(s) named in events.jsonl are missing (${prompt.slice(0, 16)})`,
    ]);
  });
});

describe('a prompt blob is read back as a conversation or refused', () => {
  it('refuses a prompt whose hash matches but whose messages are not a conversation (resume would send them)', () => {
    const blobs = new RunFolder(tempDir()).blobs;
    const good = blobs.putMessages([{ role: 'user', content: 'hi' }]);
    expect(blobs.messages(good)).toEqual([{ role: 'user', content: 'hi' }]);
    const bad = blobs.put(
      'prompts',
      JSON.stringify([
        { role: 'user', content: 'hi' },
        { role: 'tool', content: 1 },
      ]),
    );
    expect(() => blobs.messages(bad)).toThrow(
      `${blobs.path('prompts', bad)}: messages[1].role is "tool", not one of system, user, assistant; the run folder is damaged`,
    );
  });
});

describe('stored programs are checked against their hash where their code is used', () => {
  it('a replay refuses a seed program changed after it was written, and the report names it', async () => {
    const r = { dir: await liveRun(1, { parallel: 1, islands: 1 }) };
    const seed = lines(r.dir).find((e) => e.type === 'commit' && e.iteration === 0)!.hash as string;
    const path = join(r.dir, 'programs', `${seed}.json`);
    writeFileSync(path, readFileSync(path, 'utf8').replace('SPREAD = 1', 'SPREAD = 4'));
    const evaluator = await loadToyEvaluator(makeToyProject('http://127.0.0.1:9/v1'));
    await expect(runSession({ replay: r.dir, out: join(tempDir(), 'replay'), evaluator })).rejects.toThrow(
      `${path} does not hold the program ${seed}; it was changed after it was written`,
    );
    expect(buildRunReport(readRunFiles(r.dir)).disagreements).toContain(
      `programs/: 1 stored program(s) whose code does not match their hash (${seed})`,
    );
  });
});

describe('TimeSums', () => {
  it('adds the time of each call to its key on the injected clock, also when the call throws', async () => {
    let now = 0;
    const sums = new TimeSums<'a' | 'b'>(() => now);
    const advance = <T>(ms: number, value: T): T => {
      now += ms;
      return value;
    };
    expect(sums.time('a', () => advance(5, 'x'))).toBe('x');
    expect(() =>
      sums.time('a', () => {
        now += 2;
        throw new Error('boom');
      }),
    ).toThrow('boom');
    const r = await sums.timeAsync('b', async () => advance(7, 1));
    expect(r).toEqual({ value: 1, ms: 7 });
    await expect(
      sums.timeAsync('b', async () => {
        now += 3;
        throw new Error('late');
      }),
    ).rejects.toThrow('late');
    expect([sums.total('a'), sums.total('b')]).toEqual([7, 10]);
  });
});

describe('one fold for resume, replay and report: a repeated event is read as the controller wrote it', () => {
  it('uses the first of a repeated answer (paid once) and says the log repeats itself', () => {
    const events = structuredClone(VALID) as Line[];
    const again = structuredClone(events[2]!);
    again.reply.cost_usd = 5;
    events.splice(3, 0, again);
    const run = RunState.fold(readRunLog(logOf(events), 'events.jsonl').events);
    expect(run.spent).toEqual({ usd: 0.001, prompt_tokens: 10, completion_tokens: 5, calls: 1 });
    expect(run.response(1, 1)?.cost_usd).toBe(0.001);
    expect(run.anomalies).toEqual(['events.jsonl: response:1:1 is logged twice (line 4); the first is used']);
  });

  it('counts a repeated migration once', () => {
    const migration = { v: 2, type: 'migration', iteration: 3 };
    const run = RunState.fold(readRunLog(logOf([migration, migration]), 'events.jsonl').events);
    expect(run.migrations).toBe(1);
  });
});

describe('a resume after a kill at each step of an iteration continues the same run', () => {
  /**
   * A live run of 3 iterations, one at a time, migrating at iteration 3, and its checkpoint after
   * each commit: the folder a kill during iteration i leaves is this one cut back (crashAt) with
   * the checkpoint of i − 1.
   */
  const runToCut = async () => {
    const checkpoints: string[] = [];
    let out = '';
    const search = {
      islands: 2,
      migration_interval: 3,
      parallel: 1,
      mutations: { diff: 1, rewrite: 0, crossover: 0 },
    };
    await liveRun(3, search, {
      onFolder: (dir) => {
        out = dir;
      },
      // The seed's commit reports no progress: its checkpoint is there once iteration 1 waits.
      onActivity: (inflight) => {
        if (inflight.some((a) => a.iteration === 1))
          checkpoints[0] ??= readFileSync(join(out, 'checkpoint.json'), 'utf8');
      },
      onProgress: (pr) => {
        checkpoints[pr.committed] = readFileSync(join(out, 'checkpoint.json'), 'utf8');
      },
    });
    const whole = join(tempDir(), 'whole');
    cpSync(out, whole, { recursive: true });
    return { dir: out, whole, checkpoint2: checkpoints[2]!, checkpoints, asked: server!.requests.length };
  };
  /** Keeps the events before the first line `at` matches (plus `torn`), the given checkpoint, no summary or best/. */
  const crashAt = (
    dir: string,
    checkpoint: string,
    at: (e: Line) => boolean,
    torn = (_line: string) => '',
  ) => {
    const path = join(dir, 'events.jsonl');
    const all = readFileSync(path, 'utf8').trim().split('\n');
    const cut = all.findIndex((l) => at(JSON.parse(l) as Line));
    expect(cut).toBeGreaterThan(0);
    writeFileSync(path, `${all.slice(0, cut).join('\n')}\n${torn(all[cut]!)}`);
    writeFileSync(join(dir, 'checkpoint.json'), checkpoint);
    for (const f of ['summary.json', 'best']) rmSync(join(dir, f), { recursive: true });
    return all[cut]!;
  };
  const resume = (dir: string) => runSession({ resume: dir, overrides: { baseUrl: server!.baseUrl } });
  const keys = (dir: string): string[] =>
    lines(dir)
      .map((e) => eventKey(e as RunEvent))
      .filter((k): k is string => k !== null);
  const expectSameRun = (dir: string, whole: string) => {
    expect(commitSequence(dir)).toEqual(commitSequence(whole));
    const k = keys(dir);
    expect(new Set(k).size).toBe(k.length);
    expect(buildRunReport(readRunFiles(dir)).disagreements).toEqual([]);
  };

  it('killed while appending the commit (a torn last line): nothing is asked or evaluated again', async () => {
    const { dir, whole, checkpoint2, asked } = await runToCut();
    crashAt(
      dir,
      checkpoint2,
      (e) => e.type === 'commit' && e.iteration === 3,
      (line) => line.slice(0, line.length >> 1),
    );
    const r = await resume(dir);
    expect(r.stats.committed).toBe(3);
    expect(r.stats.evaluationsThisSession).toBe(0);
    expect(server!.requests.length).toBe(asked);
    expectSameRun(dir, whole);
  });

  it('killed after the migration but before the commit: the migration is logged once', async () => {
    const { dir, whole, checkpoint2, asked } = await runToCut();
    crashAt(dir, checkpoint2, (e) => e.type === 'commit' && e.iteration === 3);
    expect(lines(dir).at(-1)).toMatchObject({ type: 'migration', iteration: 3 });
    await resume(dir);
    expect(server!.requests.length).toBe(asked);
    expect(lines(dir).filter((e) => e.type === 'migration')).toHaveLength(1);
    expectSameRun(dir, whole);
  });

  it('killed between storing a program and logging its evaluation: the stored result is the one the log records', async () => {
    const { dir, whole, checkpoints } = await runToCut();
    // Iteration 1 evaluates the run's one new program (2 and 3 find it again).
    const evaluation = crashAt(dir, checkpoints[0]!, (e) => e.type === 'evaluation' && e.iteration === 1);
    const hash = (JSON.parse(evaluation) as Line).hash as string;
    // The measurement the kill left stored differs (a noisy evaluator measures again on resume).
    const path = join(dir, 'programs', `${hash}.json`);
    const stored = JSON.parse(readFileSync(path, 'utf8')) as Line;
    stored.result.score += 0.5;
    writeFileSync(path, JSON.stringify(stored));
    const r = await resume(dir);
    expect(r.stats.evaluationsThisSession).toBe(1);
    expectSameRun(dir, whole);
  });

  it('refuses a logged plan that names a program the run had not committed', async () => {
    const { dir, checkpoint2 } = await runToCut();
    crashAt(dir, checkpoint2, (e) => e.type === 'prompt' && e.iteration === 3);
    const path = join(dir, 'events.jsonl');
    writeFileSync(
      path,
      readFileSync(path, 'utf8').replace(
        '"iteration":3,"island":0,"parent":"p0"',
        '"iteration":3,"island":0,"parent":"p9"',
      ),
    );
    await expect(resume(dir)).rejects.toThrow(
      'events.jsonl: the plan of iteration 3 names p9, which the run had not committed when it was planned; the run folder is damaged',
    );
  });

  it('refuses, before touching the folder, a checkpoint ahead of the log (commits the log lost)', async () => {
    const { dir } = await runToCut();
    const checkpoint3 = readFileSync(join(dir, 'checkpoint.json'), 'utf8');
    crashAt(dir, checkpoint3, (e) => e.type === 'commit' && e.iteration === 3);
    const events = readFileSync(join(dir, 'events.jsonl'), 'utf8');
    await expect(resume(dir)).rejects.toThrow(
      `${join(dir, 'events.jsonl')} ends at iteration 2, but checkpoint.json is at iteration 3: the log lost commits`,
    );
    expect(readFileSync(join(dir, 'events.jsonl'), 'utf8')).toBe(events);
  });

  it('killed between writing an answer blob and its event: asked again, and the blob it names is sound', async () => {
    const { dir, whole, checkpoint2, asked } = await runToCut();
    const line = crashAt(dir, checkpoint2, (e) => e.type === 'response' && e.iteration === 3);
    const hash = (JSON.parse(line) as Line).reply.text_sha256 as string;
    // The orphan blob as a writer that is not atomic would leave it: cut short.
    const blob = join(dir, 'responses', `${hash}.txt`);
    writeFileSync(blob, readFileSync(blob, 'utf8').slice(0, 10));
    await resume(dir);
    expect(server!.requests.length).toBe(asked + 1);
    const answers = lines(dir).filter((e) => e.type === 'response' && e.iteration === 3);
    expect(answers.map((e) => e.reply.text_sha256)).toEqual([hash]);
    expect(sha(new RunFolder(dir).blobs.get('responses', hash))).toBe(hash);
    expectSameRun(dir, whole);
  });
});
