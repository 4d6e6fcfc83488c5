import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/evolve/config.js';
import type { Activity } from '../src/evolve/controller.js';
import { OpenAiModel, type Timer } from '../src/evolve/llm/openai-client.js';
import { LlmCallError } from '../src/evolve/llm/types.js';
import { activityText, outcomeText, progressLine } from '../src/evolve/progress.js';
import { stopText } from '../src/evolve/report-format.js';
import { comparisonText, heldoutComparison } from '../src/evolve/report-noise.js';
import { runSession } from '../src/evolve/session.js';
import { climbingModel, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A server that holds every request open and reports when one arrives and when its connection closes. */
async function holdingServer() {
  const arrivals: { closed: Promise<void>; res: ServerResponse }[] = [];
  const waiting: ((n: number) => void)[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const closed = deferred();
    res.on('close', () => closed.resolve());
    req.resume();
    arrivals.push({ closed: closed.promise, res });
    for (const w of waiting.splice(0)) w(arrivals.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    arrivals,
    /** Resolves once `n` requests have arrived. */
    arrived(n: number): Promise<void> {
      if (arrivals.length >= n) return Promise.resolve();
      return new Promise((resolve) => {
        const check = (k: number) => (k >= n ? resolve() : waiting.push(check));
        waiting.push(check);
      });
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Timers fired by the test, not by the clock. */
function manualTimers() {
  const pending: { ms: number; fire: () => void; live: boolean }[] = [];
  let started: (() => void) | null = null;
  const timer: Timer = (ms, fire) => {
    const t = { ms, fire, live: true };
    pending.push(t);
    started?.();
    started = null;
    return () => {
      t.live = false;
    };
  };
  return {
    timer,
    /** Resolves once a timer is pending (at once if one is). */
    next(): Promise<void> {
      if (pending.some((x) => x.live)) return Promise.resolve();
      return new Promise((resolve) => {
        started = resolve;
      });
    },
    fireNext(): number {
      const t = pending.find((x) => x.live)!;
      t.live = false;
      t.fire();
      return t.ms;
    },
  };
}

const model = { name: 'slow', weight: 1, price_input_per_mtok: 0, price_output_per_mtok: 0 };
const ask = (m: OpenAiModel) =>
  m.complete({ iteration: 1, attempt: 1, model, messages: [{ role: 'user', content: 'hi' }] });

describe('model call time limits', () => {
  it('a timed-out attempt aborts its request (the server sees it close) and is retried once at most', async () => {
    const server = await holdingServer();
    const timers = manualTimers();
    const llm = {
      ...defaultConfig().llm,
      base_url: server.baseUrl,
      timeout_s: 300,
      retries: 3,
      retry_base_s: 0,
    };
    const m = new OpenAiModel(llm, { timer: timers.timer });
    try {
      const call = ask(m).then(
        () => null,
        (e: unknown) => e,
      );
      await server.arrived(1);
      expect(timers.fireNext()).toBe(300_000);
      // The abandoned request is cancelled before the retry goes out.
      await server.arrivals[0]!.closed;
      await timers.next();
      expect(timers.fireNext()).toBe(0); // the backoff (retry_base_s 0)
      await server.arrived(2);
      timers.fireNext();
      await server.arrivals[1]!.closed;
      const error = await call;
      expect(error).toBeInstanceOf(LlmCallError);
      expect((error as Error).message).toBe('slow: timed out after 300 s (after 2 attempts)');
      // Not timeout_s × (retries + 1): two attempts only.
      expect(server.arrivals).toHaveLength(2);
    } finally {
      await server.close();
    }
  });

  it('the defaults bound a call by about 2 × timeout_s', () => {
    const d = defaultConfig().llm;
    expect(d.timeout_s).toBe(300);
    expect(d.retries).toBe(3);
  });

  it('an HTTP error names its status once', async () => {
    const server = await FakeOpenAiServer.start(() => ({ status: 400, body: '' }));
    const m = new OpenAiModel({ ...defaultConfig().llm, base_url: server.baseUrl, retries: 0 });
    try {
      const error = (await ask(m).catch((e: unknown) => e)) as Error;
      expect(error.message).toBe('slow: HTTP 400');
      const server2 = await FakeOpenAiServer.start(() => ({
        status: 400,
        body: JSON.stringify({ error: { message: 'max_tokens is too large' } }),
      }));
      const m2 = new OpenAiModel({ ...defaultConfig().llm, base_url: server2.baseUrl, retries: 0 });
      const e2 = (await ask(m2).catch((e: unknown) => e)) as Error;
      expect(e2.message).toBe('slow: HTTP 400: max_tokens is too large');
      await server2.close();
    } finally {
      await server.close();
    }
  });

  it('records the queueing before the request apart from the model latency', async () => {
    let clock = 0;
    const gate = deferred();
    const first = deferred();
    const server = await FakeOpenAiServer.start(async (q) => {
      if (q.index === 0) {
        first.resolve();
        await gate.promise;
      }
      return { text: 'ok' };
    });
    const m = new OpenAiModel(
      { ...defaultConfig().llm, base_url: server.baseUrl, concurrency: 1 },
      { now: () => clock },
    );
    try {
      const a = ask(m);
      await first.promise;
      const b = ask(m); // queued behind a (concurrency 1)
      clock = 50; // a answers at t = 50 ms, b's request goes out then
      gate.resolve();
      const ra = await a;
      clock = 80; // b answers at t = 80 ms (the clock is read when each reply is complete)
      const rb = await b;
      expect(ra).toMatchObject({ queued_ms: 0, latency_ms: 50 });
      expect(rb.queued_ms).toBe(50);
      expect(rb.latency_ms).toBeLessThanOrEqual(30);
    } finally {
      await server.close();
    }
  });
});

describe('plain messages', () => {
  it('says why an iteration was refused (the class the patcher gave the refusal)', () => {
    expect(
      outcomeText('refused', 'the SEARCH text of balancer.ts was not found in the program', 'no-match'),
    ).toBe('refused (no-match)');
    expect(
      outcomeText('refused', 'the edit touches balancer.ts outside every EVOLVE-BLOCK', 'outside-block'),
    ).toBe('refused (outside-block)');
    expect(outcomeText('valid')).toBe('valid');
  });

  it('does not repeat the stop reason', () => {
    expect(stopText('interrupted', 'interrupted (Ctrl-C)')).toBe('interrupted (Ctrl-C)');
    expect(stopText('interrupted', 'interrupted')).toBe('interrupted');
    expect(stopText('iterations', 'reached 12 iterations')).toBe('iterations (reached 12 iterations)');
    expect(stopText('budget', '')).toBe('budget');
  });

  it('shows what each in-flight iteration waits for and since when', () => {
    const list: Activity[] = [
      { iteration: 14, stage: 'evaluation', model: null, since: 7_000 },
      { iteration: 13, stage: 'model', model: 'qwen', since: 0 },
      { iteration: 15, stage: 'evaluation-queued', model: null, since: 9_500 },
    ];
    expect(activityText(list, 42_000)).toBe(
      '#13 model qwen 42s · #14 evaluating 35s · #15 queued for evaluation 33s',
    );
  });

  it('held-out differences of the same program are noise; of two programs, within or beyond the measured noise', () => {
    const seed = { balancedness_next: 0.9, balancedness_next_varied: 0.899, median_ms: 10, p95_ms: 14 };
    const same = heldoutComparison(seed, { ...seed, median_ms: 11.3 }, true);
    expect(same.time.verdict).toBe('noise');
    expect(comparisonText(same)[1]).toBe(
      'held-out time (median_ms) best − seed +1.300 ms (same program re-measured: noise)',
    );
    const two = heldoutComparison(
      seed,
      { balancedness_next: 0.95, balancedness_next_varied: 0.95, median_ms: 12, p95_ms: 13 },
      false,
    );
    expect(two.quality.verdict).toBe('better');
    expect(two.time.verdict).toBe('noise'); // +2 ms within the 4 ms spread of the seed's calls
    const slow = heldoutComparison(seed, { ...seed, median_ms: 30, p95_ms: 31 }, false);
    expect(slow.time.verdict).toBe('worse');
  });
});

describe('the progress hooks of a real run', () => {
  it('report each in-flight iteration’s waits, and the refusal class on the progress line', async () => {
    let n = 0;
    const server = await FakeOpenAiServer.start((q) => {
      n++;
      return q.index <= 1
        ? {
            text: "<<<<<<< SEARCH balancer.ts\nexport const NAME = 'toy';\n=======\nexport const NAME = 'x';\n>>>>>>> REPLACE",
          }
        : climbingModel(q);
    });
    const p = makeToyProject(server.baseUrl, {
      search: { islands: 1, parallel: 1, mutations: { diff: 1, rewrite: 0, crossover: 0 } },
    });
    const stages: string[] = [];
    const lines: string[] = [];
    try {
      await runSession({
        configPath: p.configPath,
        out: join(p.dir, 'run'),
        overrides: { iterations: 3 },
        onActivity: (list) => {
          for (const a of list) stages.push(`${a.iteration}:${a.stage}`);
        },
        onProgress: (pr) => lines.push(progressLine(pr)),
      });
    } finally {
      await server.close();
      rmSync(p.dir, { recursive: true, force: true });
    }
    expect(n).toBeGreaterThan(0);
    expect(stages).toContain('0:evaluation');
    expect(stages).toContain('1:model');
    expect(stages).toContain('2:evaluation');
    // Iteration 1 answered outside the EVOLVE-BLOCK twice, so it was refused: the line says which class.
    expect(lines[0]).toMatch(/^iter 1 \|.*\| last: refused \(outside-block\)$/);
    expect(lines[1]).toMatch(/last: valid$/);
  });
});
