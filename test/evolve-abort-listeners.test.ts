import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/evolve/config.js';
import { OpenAiModel, type Timer } from '../src/evolve/llm/openai-client.js';
import type { LanguageModel } from '../src/evolve/llm/types.js';
import { runSession } from '../src/evolve/session.js';
import { AbortFanout, linkedSignal } from '../src/util/abort.js';
import { climbingModel, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer, type FakeReply, type FakeRequest } from './helpers/fake-openai-server.js';

const listeners = (s: AbortSignal) => getEventListeners(s, 'abort').length;

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Fails the first request of every distinct prompt with a retryable error, answers the retry. */
function failOnceThen(answer: (q: FakeRequest) => FakeReply) {
  const seen = new Set<string>();
  return (q: FakeRequest): FakeReply => {
    const key = JSON.stringify(q.messages);
    if (seen.has(key)) return answer(q);
    seen.add(key);
    return { status: 500 };
  };
}

const model = { name: 'm', weight: 1, price_input_per_mtok: 0, price_output_per_mtok: 0 };
const ask = (m: LanguageModel, i: number, signal?: AbortSignal) =>
  m.complete({ iteration: i, attempt: 1, model, messages: [{ role: 'user', content: `call ${i}` }] }, signal);

let server: FakeOpenAiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('abort listeners over a long run', () => {
  it('50 retried calls leave no listener on the run-wide signal', async () => {
    server = await FakeOpenAiServer.start(failOnceThen(() => ({ text: 'ok' })));
    const m = new OpenAiModel({
      ...defaultConfig().llm,
      base_url: server.baseUrl,
      retries: 3,
      retry_base_s: 0,
    });
    const run = new AbortController();
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => ask(m, i, run.signal)));
    // Every call went through the retry path (attempt, backoff sleep, attempt).
    expect(replies.map((r) => r.attempts)).toEqual(Array(50).fill(2));
    expect(server.requests).toHaveLength(100);
    expect(listeners(run.signal)).toBe(0);
  });

  it('the run-wide signal still stops a call in flight and one waiting out its backoff, and leaves nothing behind', async () => {
    const arrived = deferred();
    const held = deferred<FakeReply>();
    server = await FakeOpenAiServer.start((q) => {
      if (q.messages[0]!.content === 'call 1') {
        arrived.resolve();
        return held.promise;
      }
      return { status: 429, headers: { 'retry-after': '3600' } }; // call 2: a backoff of an hour
    });
    // Real timers, except that the test learns when the hour-long backoff has started (and it never fires).
    const backoffStarted = deferred();
    const timer: Timer = (ms, fire) => {
      if (ms === 3_600_000) {
        backoffStarted.resolve();
        return () => {};
      }
      const t = setTimeout(fire, ms);
      return () => clearTimeout(t);
    };
    const m = new OpenAiModel(
      { ...defaultConfig().llm, base_url: server.baseUrl, retries: 3, retry_base_s: 0 },
      { timer },
    );
    const run = new AbortController();
    const inFlight = ask(m, 1, run.signal).catch((e: unknown) => e);
    const backingOff = ask(m, 2, run.signal).catch((e: unknown) => e);
    await Promise.all([arrived.promise, backoffStarted.promise]);
    run.abort(new Error('stop'));
    expect(await inFlight).toBeInstanceOf(Error);
    expect(((await backingOff) as Error).message).toBe('stop');
    held.resolve({ text: 'too late' });
    expect(listeners(run.signal)).toBe(0);
  });

  it('the controller gives each model call its own signal and the run leaves no listener on any of them', async () => {
    server = await FakeOpenAiServer.start(failOnceThen(climbingModel));
    const p = makeToyProject(server.baseUrl);
    const inner = new OpenAiModel({
      ...defaultConfig().llm,
      base_url: server.baseUrl,
      retries: 3,
      retry_base_s: 0,
    });
    const signals: AbortSignal[] = [];
    const recording: LanguageModel = {
      complete(request, signal) {
        signals.push(signal!);
        return inner.complete(request, signal);
      },
    };
    const r = await runSession({
      configPath: p.configPath,
      out: join(p.dir, 'run'),
      overrides: { iterations: 12 },
      model: recording,
    });
    expect(r.stats.committed).toBe(12);
    expect(signals.length).toBeGreaterThanOrEqual(12);
    expect(new Set(signals).size).toBe(signals.length);
    for (const s of signals) expect(listeners(s)).toBe(0);
  });
});

describe('linkedSignal and AbortFanout', () => {
  it('a linked signal follows its parent until released, and release removes the link', () => {
    const parent = new AbortController();
    const a = linkedSignal(parent.signal);
    const b = linkedSignal(parent.signal);
    expect(listeners(parent.signal)).toBe(2);
    a.release();
    expect(listeners(parent.signal)).toBe(1);
    parent.abort(new Error('x'));
    expect(a.signal.aborted).toBe(false);
    expect(b.signal.aborted).toBe(true);
    expect((b.signal.reason as Error).message).toBe('x');
    expect(linkedSignal(parent.signal).signal.aborted).toBe(true);
  });

  it('a fan-out aborts its live children, never listens on its own signal, and forgets released ones', () => {
    const f = new AbortFanout();
    const kids = Array.from({ length: 50 }, () => f.child());
    expect(listeners(f.signal)).toBe(0);
    for (const k of kids.slice(0, 49)) k.release();
    expect(f.inFlight).toBe(1);
    f.abort(new Error('stop'));
    expect(kids[49]!.signal.aborted).toBe(true);
    expect(kids[0]!.signal.aborted).toBe(false);
    expect(f.signal.aborted).toBe(true);
    const late = f.child();
    expect((late.signal.reason as Error).message).toBe('stop');
    expect(f.inFlight).toBe(0);
  });
});
