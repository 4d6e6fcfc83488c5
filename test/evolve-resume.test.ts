import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSession } from '../src/evolve/session.js';
import { bundleCli } from './helpers/cli-bundle.js';
import { climbingModel, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

// The CLI bundled for a real child process (inside the repo so `openai` etc. resolve).
const BUNDLE_DIR = join('node_modules', '.cache', 'adrs-evolve-test');
const CLI = join(BUNDLE_DIR, 'evolve-cli.mjs');

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON lines, inspected field by field.
type RunEventLike = Record<string, any>;

let server: FakeOpenAiServer;
beforeAll(async () => {
  await bundleCli(CLI);
  server = await FakeOpenAiServer.start(async (q) => {
    const h = hold;
    if (h) {
      // The child logs an iteration's prompt before it sends the request: its messages name the iteration.
      const asked = JSON.stringify(q.messages);
      // Its messages are the blob prompts/<messages_sha256>.json, on disk before the event names it.
      const prompt = events(h.out).find(
        (e) =>
          e.type === 'prompt' &&
          readFileSync(join(h.out, 'prompts', `${e.messages_sha256}.json`), 'utf8') === asked,
      );
      if (!prompt) throw new Error('a request without a logged prompt');
      if (prompt.iteration > h.upTo) {
        h.held.add(prompt.iteration);
        if (h.held.size === h.inFlight) h.reached();
        await h.released;
      }
    }
    return climbingModel(q);
  });
});
afterAll(async () => {
  hold?.release();
  await server?.close();
});

/** While set, the requests of the child's iterations after `upTo` are held unanswered: its run stalls there. */
let hold: {
  out: string;
  upTo: number;
  held: Set<number>;
  inFlight: number;
  reached: () => void;
  released: Promise<void>;
  release: () => void;
} | null = null;

/**
 * Answers the requests of iterations 1 … `upTo` of the run in `out`, holds later ones, and resolves once
 * `inFlight` iterations are held. The controller plans iteration k + parallel only after committing
 * iteration k, so with `inFlight` = search.parallel every slot waits on the model and exactly iterations
 * 1 … `upTo` are committed, whatever order the parallel requests arrive in.
 */
function stallAfter(
  out: string,
  upTo: number,
  inFlight: number,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  let reached!: () => void;
  let release!: () => void;
  const stalled = new Promise<void>((r) => {
    reached = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  hold = { out, upTo, held: new Set(), inFlight, reached, released, release };
  const exitedEarly = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr()}`))),
  );
  return Promise.race([stalled, exitedEarly]);
}

/** Answers the held requests (to a dead or stopped child) and every later one. */
function unhold(): void {
  hold?.release();
  hold = null;
}

const events = (dir: string) =>
  existsSync(join(dir, 'events.jsonl'))
    ? readFileSync(join(dir, 'events.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as RunEventLike];
          } catch {
            return [];
          }
        })
    : [];

function runCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const sequence = (dir: string) =>
  events(dir)
    .filter((e) => e.type === 'commit')
    .map((e) => [e.iteration, e.outcome, e.hash]);

describe('resume after kill -9', () => {
  it('continues exactly where a SIGKILLed child stopped, without re-evaluating or duplicating anything', async () => {
    const p = makeToyProject(server.baseUrl, {
      iterations: 12,
      search: {
        islands: 2,
        migration_interval: 4,
        parallel: 3,
        mutations: { diff: 0.6, rewrite: 0.4, crossover: 0 },
      },
    });
    const out = join(p.dir, 'killed');
    const child = runCli(['evolve', '--config', p.configPath, '--out', out, '--quiet']);
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Kill once six iterations are committed and the next three are in flight (waiting on the model).
    await stallAfter(out, 6, 3, child, () => stderr);
    child.kill('SIGKILL');
    await exited;
    unhold();
    const before = events(out);
    const committedBefore = Math.max(...before.filter((e) => e.type === 'commit').map((e) => e.iteration));
    expect(committedBefore).toBe(6);
    // The kill landed with later iterations already planned (in flight).
    expect(before.some((e) => e.type === 'plan' && e.iteration > committedBefore)).toBe(true);
    const callsBefore = server.requests.length;

    const resumed = await runSession({ resume: out });
    expect(resumed.stats.stopReason).toBe('iterations');
    const after = events(out);
    // Nothing logged twice: one plan/prompt/response/patch per (iteration, attempt), one evaluation per program.
    const keys = after
      .filter((e) => ['plan', 'prompt', 'response', 'patch', 'evaluation', 'commit'].includes(e.type))
      .map((e) =>
        e.type === 'evaluation' ? `evaluation:${e.hash}` : `${e.type}:${e.iteration}:${e.attempt ?? ''}`,
      );
    expect(new Set(keys).size).toBe(keys.length);
    expect(after.filter((e) => e.type === 'commit').map((e) => e.iteration)).toEqual([...Array(13).keys()]);
    // Responses recorded before the kill were reused: the resumed session only asked for the rest.
    const answeredBefore = before.filter((e) => e.type === 'response').length;
    expect(server.requests.length - callsBefore).toBeLessThanOrEqual(
      after.filter((e) => e.type === 'response').length - answeredBefore + 3,
    );
    expect(after.filter((e) => e.type === 'response').length).toBe(
      new Set(after.filter((e) => e.type === 'response').map((e) => `${e.iteration}:${e.attempt}`)).size,
    );

    // The same run without the kill produces the same sequence of programs.
    const straight = await runSession({ configPath: p.configPath, out: join(p.dir, 'straight') });
    expect(sequence(out)).toEqual(sequence(straight.dir));
    expect(resumed.best.hash).toBe(straight.best.hash);
  });

  it('exits 1 with one line when no model endpoint is configured', async () => {
    const p = makeToyProject('http://unused', { llm: { base_url: null, models: [] } });
    const child = runCli(['evolve', '--config', p.configPath, '--out', join(p.dir, 'run')]);
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(
      /^adrs: no model endpoint configured: set llm.base_url .* or pass --base-url URL --model NAME/,
    );
  });

  it('stops gracefully on SIGINT with a checkpoint that resumes', async () => {
    const p = makeToyProject(server.baseUrl, { iterations: 50, search: { parallel: 2, islands: 1 } });
    const out = join(p.dir, 'interrupted');
    const child = runCli(['evolve', '--config', p.configPath, '--out', out, '--quiet']);
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    // Interrupt with three iterations committed and the next two waiting on the model.
    await stallAfter(out, 3, 2, child, () => stderr);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGINT');
    const code = await exited;
    unhold();
    expect(code).toBe(0);
    const ev = events(out);
    expect(ev.at(-1)).toMatchObject({ type: 'stop', reason: 'interrupted' });
    const cp = JSON.parse(readFileSync(join(out, 'checkpoint.json'), 'utf8'));
    expect(cp.committed).toBe(3);
    expect(cp.committed).toBe(Math.max(...ev.filter((e) => e.type === 'commit').map((e) => e.iteration)));
    const resumed = await runSession({ resume: out, overrides: { iterations: cp.committed + 2 } });
    expect(resumed.stats.committed).toBe(cp.committed + 2);
  });
});
