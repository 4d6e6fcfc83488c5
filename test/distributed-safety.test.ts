import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBrokerUrl, redactText, redactUrl, resolveBrokerUrl } from '../src/distributed/broker-url.js';
import { evaluateBatch } from '../src/distributed/eval-batch.js';
import { validateConfig } from '../src/evolve/config.js';
import { runSession } from '../src/evolve/session.js';
import { traceChecksum } from '../src/evolve/trace-checksum.js';
import { loadTrace } from '../src/trace/load.js';
import {
  bundleCli,
  CLI,
  deferred,
  type HookCall,
  HookServer,
  RedisServer,
  startWorker,
  stopWorker,
  type WorkerChild,
  writeHookEvaluator,
} from './helpers/broker-harness.js';
import { climbingModel, makeToyProject, type ToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';

/** Credentials, data checksums, GPU models and shutdown of the distributed evaluator, on a password-protected redis-server. */

const PASSWORD = 's3cret/Pa ss';
const FAST = ['--lock-s', '1', '--stall-check-s', '0.5'];

let redis: RedisServer;
let model: FakeOpenAiServer;
let hook: HookServer;
let decide: (call: HookCall) => Promise<'go' | 'crash'> | 'go' | 'crash' = () => 'go';
const workers: WorkerChild[] = [];

beforeAll(async () => {
  delete process.env.ADRS_BROKER_URL;
  await bundleCli();
  redis = await RedisServer.start({ password: PASSWORD });
  model = await FakeOpenAiServer.start((q) => climbingModel(q));
  hook = await HookServer.start((call) => decide(call));
});
afterAll(async () => {
  for (const w of workers) await stopWorker(w);
  await hook?.close();
  await model?.close();
  await redis?.stop();
});

const project = (queue: string, extra: Record<string, unknown> = {}, iterations = 3) =>
  makeToyProject(model.baseUrl, {
    iterations,
    search: { islands: 1, parallel: 2, mutations: { diff: 0.7, rewrite: 0.3, crossover: 0 } },
    evaluator: { module: 'toy-evaluator.mjs', workers: 2, broker: { queue }, ...extra },
  });

async function worker(
  p: ToyProject,
  queue: string,
  adapter: string,
  env: Record<string, string> = {},
  extra: string[] = [],
) {
  const w = await startWorker(
    [
      '--evaluator-module',
      writeHookEvaluator(p.dir),
      '--adapter',
      adapter,
      '--queue',
      queue,
      ...FAST,
      ...extra,
    ],
    { ADRS_BROKER_URL: redis.url, BROKER_TEST_HOOK: hook.url, ...env },
  );
  workers.push(w);
  return w;
}

const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));

describe('broker URLs', () => {
  it('parses redis:// and rediss:// (TLS), and never shows the password', () => {
    const a = parseBrokerUrl('rediss://adrs:p%40ss@10.0.0.5:6380/2');
    expect(a.connection).toMatchObject({
      host: '10.0.0.5',
      port: 6380,
      db: 2,
      username: 'adrs',
      password: 'p@ss',
    });
    expect(a.connection.tls).toEqual({ servername: '10.0.0.5' });
    expect(a.display).toBe('rediss://adrs:***@10.0.0.5:6380/2');
    expect(parseBrokerUrl('redis://h').connection).toMatchObject({ host: 'h', port: 6379, db: 0 });
    expect(parseBrokerUrl('redis://h').connection.tls).toBeUndefined();
    expect(redactUrl('redis://:pw@h:1')).toBe('redis://:***@h:1');
    expect(redactText('auth failed for pw at redis://:pw@h:1', parseBrokerUrl('redis://:pw@h:1'))).toBe(
      'auth failed for *** at redis://:***@h:1',
    );
    expect(() => parseBrokerUrl('http://:pw@h')).toThrow(/must start with redis:\/\/ or rediss:\/\//);
    expect(() => parseBrokerUrl('http://:pw@h')).not.toThrow(/pw/);
    expect(() => parseBrokerUrl('redis://:pw@h/x')).toThrow(/database/);
  });

  it('takes the URL from the flag, then the config, then ADRS_BROKER_URL; a recorded redacted URL needs the password from the environment', () => {
    const env = { ADRS_BROKER_URL: 'redis://:pw@h:1' };
    expect(resolveBrokerUrl('redis://f:1', 'redis://c:1', env)).toBe('redis://f:1');
    expect(resolveBrokerUrl(undefined, 'redis://c:1', env)).toBe('redis://c:1');
    expect(resolveBrokerUrl(undefined, null, env)).toBe('redis://:pw@h:1');
    expect(resolveBrokerUrl(undefined, null, {})).toBeNull();
    expect(resolveBrokerUrl(undefined, 'redis://:***@h:1', env)).toBe('redis://:pw@h:1');
    expect(() => resolveBrokerUrl(undefined, 'redis://:***@other:1', env)).toThrow(/password redacted/);
  });
});

describe('evaluator.broker', () => {
  it('is a URL or {url, queue, adapters}; unknown keys and values are one-line errors', () => {
    expect(validateConfig({ evaluator: { broker: 'redis://h:1' } }).evaluator.broker).toEqual({
      url: 'redis://h:1',
      queue: 'adrs-eval',
      adapters: 'same',
    });
    expect(
      validateConfig({ evaluator: { broker: { queue: 'h100', adapters: 'any' } } }).evaluator.broker,
    ).toEqual({
      url: null,
      queue: 'h100',
      adapters: 'any',
    });
    expect(validateConfig({}).evaluator.broker).toBeNull();
    expect(() => validateConfig({ evaluator: { broker: { queeu: 'x' } } })).toThrow(
      /unknown key 'evaluator.broker.queeu' \(did you mean 'evaluator.broker.queue'\?\)/,
    );
    expect(() => validateConfig({ evaluator: { broker: { adapters: 'mixed' } } })).toThrow(
      /evaluator.broker.adapters must be one of same, any/,
    );
  });

  it('ADRS_BROKER_URL alone does not send a run to the broker: --broker or evaluator.broker does', async () => {
    const p = makeToyProject(model.baseUrl, { iterations: 2 });
    process.env.ADRS_BROKER_URL = 'redis://127.0.0.1:1';
    try {
      const r = await runSession({ configPath: p.configPath, out: join(p.dir, 'local') });
      expect(r.stats.committed).toBe(2);
      await expect(
        runSession({ configPath: p.configPath, out: join(p.dir, 'broker'), broker: '' }),
      ).rejects.toThrow(/^cannot reach the broker at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
    } finally {
      delete process.env.ADRS_BROKER_URL;
    }
  });
});

describe('adrs worker and the broker evaluator', () => {
  it('a wrong password is one line without the password; the right one (from ADRS_BROKER_URL) runs, and no file or message holds it', async () => {
    const bad = spawn(process.execPath, [CLI, 'worker', '--evaluator-module', 'x.mjs'], {
      env: { ...process.env, ADRS_BROKER_URL: redis.url.replace(encodeURIComponent(PASSWORD), 'wrong-pw') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    bad.stderr!.on('data', (d) => (err += d));
    const code = await new Promise((r) => bad.once('exit', r));
    expect(code).toBe(1);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^adrs: cannot reach the broker at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: WRONGPASS/);
    expect(err).not.toContain('wrong-pw');

    const p = project('q-secret');
    const w = await worker(p, 'q-secret', 'toy-gpu');
    const out = join(p.dir, 'run');
    const r = await runSession({ configPath: p.configPath, out, broker: redis.url });
    expect(r.stats.committed).toBe(3);
    for (const f of filesUnder(out)) {
      const text = readFileSync(f, 'utf8');
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(encodeURIComponent(PASSWORD));
    }
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).evaluator.broker.url).toBe(
      `redis://:***@127.0.0.1:${redis.port}`,
    );
    expect(w.output()).toContain(`at redis://:***@127.0.0.1:${redis.port}`);
    expect(w.output()).toContain('adapter toy-gpu');
    expect(w.output()).not.toContain(encodeURIComponent(PASSWORD));
    // Resuming with the password only in the environment: the recorded URL is redacted.
    process.env.ADRS_BROKER_URL = redis.url;
    try {
      const resumed = await runSession({ resume: out, overrides: { iterations: 4 } });
      expect(resumed.stats.committed).toBe(4);
    } finally {
      delete process.env.ADRS_BROKER_URL;
    }
    await expect(runSession({ resume: out, overrides: { iterations: 5 } })).rejects.toThrow(
      /password redacted/,
    );
  });

  it('a worker whose trace has another sha256 refuses the job with a clear error; the same data is accepted', async () => {
    const trace = loadTrace('synthetic-v3-windows');
    const sha = traceChecksum(trace);
    const p = project('q-trace', { trace: 'synthetic-v3-windows' }, 1);
    // (--trace-dir traces: the bundled CLI of the tests does not sit where it finds bundled traces.)
    await worker(
      p,
      'q-trace',
      'toy-gpu',
      {
        BROKER_TEST_TRACES: JSON.stringify({
          train: { name: 'synthetic-v3-windows', sha256: 'f'.repeat(64) },
        }),
      },
      ['--trace-dir', 'traces'],
    );
    await expect(
      runSession({ configPath: p.configPath, out: join(p.dir, 'other-data'), broker: redis.url }),
    ).rejects.toThrow(
      new RegExp(
        `refuses the job: the run's train trace 'synthetic-v3-windows' has sha256 ${sha.slice(0, 12)}…, this machine's 'synthetic-v3-windows' has ffffffffffff…; give every worker the same trace file`,
      ),
    );
    const q = project('q-trace-ok', { trace: 'synthetic-v3-windows' }, 1);
    await worker(
      q,
      'q-trace-ok',
      'toy-gpu',
      { BROKER_TEST_TRACES: JSON.stringify({ train: { name: 'synthetic-v3-windows', sha256: sha } }) },
      ['--trace-dir', 'traces'],
    );
    const ok = await runSession({
      configPath: q.configPath,
      out: join(q.dir, 'same-data'),
      broker: redis.url,
    });
    expect(ok.stats.committed).toBe(1);
  });

  it("a job naming a file outside the worker's --trace-dir is refused without reading it (hostile job)", async () => {
    const p = project('q-hostile');
    await worker(p, 'q-hostile', 'toy-gpu');
    const connection = parseBrokerUrl(redis.url).connection;
    const queue = new Queue('q-hostile', { connection });
    const events = new QueueEvents('q-hostile', { connection });
    await events.waitUntilReady();
    try {
      const job = await queue.add('evaluate', {
        format: 'adrs-eval-job/1',
        run: 'hostile',
        split: 'train',
        hash: '0',
        files: { 'balancer.ts': 'export const SPREAD = 1;' },
        settings: {
          timeout_s: 10,
          memory_mb: null,
          objective: 'adrs',
          windows: null,
          repeats: null,
          trace: '/etc/passwd',
          heldout_trace: null,
        },
        expect: { name: 'x', sha256: '0'.repeat(64) },
      });
      const failure = await job.waitUntilFinished(events).then(
        () => 'completed',
        (e: Error) => e.message,
      );
      expect(failure).toMatch(
        /the job's trace 'passwd' is neither a bundled trace nor a \.json file in this worker's --trace-dir/,
      );
      expect(failure).not.toMatch(/root/);
      const malformed = await queue.add('evaluate', { format: 'adrs-eval-job/1', split: 'train' });
      expect(await malformed.waitUntilFinished(events).catch((e: Error) => e.message)).toMatch(
        /^malformed job \(run or hash\)/,
      );
    } finally {
      await events.close();
      await queue.close();
    }
  });

  it('refuses a verdict timed on another GPU model, unless evaluator.broker.adapters is any', async () => {
    const p = project('q-mixed', {}, 1);
    const a = await worker(p, 'q-mixed', 'gpu-a');
    const out = join(p.dir, 'mixed');
    expect((await runSession({ configPath: p.configPath, out, broker: redis.url })).stats.committed).toBe(1);
    a.child.kill('SIGINT');
    expect((await a.exited).code).toBe(0);
    await worker(p, 'q-mixed', 'gpu-b');
    await expect(
      runSession({ resume: out, broker: redis.url, overrides: { iterations: 3 } }),
    ).rejects.toThrow(
      /measured program \w+ on 'gpu-b', but this run's times come from 'gpu-a'; give each GPU model its own queue/,
    );

    const q = project('q-any', { broker: { queue: 'q-any', adapters: 'any' } }, 4);
    await worker(q, 'q-any', 'gpu-a');
    await worker(q, 'q-any', 'gpu-b');
    const r = await runSession({ configPath: q.configPath, out: join(q.dir, 'any'), broker: redis.url });
    expect(r.stats.committed).toBe(4);
  });

  it('Ctrl-C (SIGINT) mid-evaluation: the worker finishes the job in hand, delivers its verdict and exits 0', async () => {
    const p = project('q-sigint');
    const w = await worker(p, 'q-sigint', 'toy-gpu');
    const started = deferred<HookCall>();
    const release = deferred<'go'>();
    decide = (call) => {
      started.resolve(call);
      return release.promise;
    };
    const batch = evaluateBatch([p.candidate], {
      url: redis.url,
      queue: 'q-sigint',
      settings: {
        timeout_s: 10,
        memory_mb: null,
        objective: 'adrs',
        trace: null,
        windows: null,
        repeats: null,
      },
    });
    expect((await started.promise).pid).toBe(w.pid);
    w.child.kill('SIGINT');
    await new Promise<void>((r) => {
      const check = () =>
        w.output().includes('finishing the jobs in hand') ? r() : w.child.stderr!.once('data', check);
      check();
    });
    release.resolve('go');
    const [res] = await batch;
    expect(res!.result).toMatchObject({
      valid: true,
      score: 80,
      adapter: 'toy-gpu',
      worker: expect.stringMatching(new RegExp(`/${w.pid}$`)),
    });
    expect((await w.exited).code).toBe(0);
    decide = () => 'go';
  });

  it('Ctrl-C twice mid-evaluation hands the job back: the worker leaves at once and another worker delivers the verdict', async () => {
    const p = project('q-handback');
    const first = await worker(p, 'q-handback', 'toy-gpu');
    const started = deferred<HookCall>();
    decide = (call) => {
      if (call.pid === first.pid) {
        started.resolve(call);
        return new Promise(() => {}); // never finishes here
      }
      return 'go';
    };
    const batch = evaluateBatch([p.candidate], {
      url: redis.url,
      queue: 'q-handback',
      settings: {
        timeout_s: 10,
        memory_mb: null,
        objective: 'adrs',
        trace: null,
        windows: null,
        repeats: null,
      },
    });
    await started.promise;
    first.child.kill('SIGINT');
    await new Promise<void>((r) => {
      const check = () =>
        first.output().includes('finishing the jobs in hand') ? r() : first.child.stderr!.once('data', check);
      check();
    });
    first.child.kill('SIGINT');
    expect((await first.exited).code).toBe(130);
    expect(first.output()).toContain('handing back the jobs in hand');
    const second = await worker(p, 'q-handback', 'toy-gpu');
    const [res] = await batch;
    expect(res!.result).toMatchObject({
      valid: true,
      worker: expect.stringMatching(new RegExp(`/${second.pid}$`)),
    });
    decide = () => 'go';
  });

  it('adrs eval DIR DIR --broker: one job per folder, results in the folders’ order; several folders without a broker is one line', async () => {
    const p = project('q-eval');
    // The folders are scored on the trace given by a path on the controller's side; the worker has
    // its own copy elsewhere, found by file name in its --trace-dir and checked by sha256.
    const trace = join(process.cwd(), 'traces', 'synthetic-v3-windows.json');
    const sha = traceChecksum(loadTrace(trace));
    const copies = join(p.dir, 'worker-traces');
    mkdirSync(copies);
    for (const ext of ['json', 'bin'])
      cpSync(trace.replace(/json$/, ext), join(copies, `synthetic-v3-windows.${ext}`));
    await worker(
      p,
      'q-eval',
      'toy-gpu',
      { BROKER_TEST_TRACES: JSON.stringify({ train: { name: 'synthetic-v3-windows', sha256: sha } }) },
      ['--trace-dir', copies],
    );
    const second = join(p.dir, 'second');
    cpSync(p.candidate, second, { recursive: true });
    const ts = readFileSync(join(second, 'balancer.ts'), 'utf8').replace('SPREAD = 1', 'SPREAD = 5');
    await import('node:fs').then((fs) => fs.writeFileSync(join(second, 'balancer.ts'), ts));
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(process.execPath, [CLI, 'eval', ...args], {
          env: { ...process.env, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        c.stdout!.on('data', (d) => (out += d));
        c.stderr!.on('data', (d) => (err += d));
        c.once('exit', (code) => resolve({ code, out, err }));
      });
    const r = await run(
      [p.candidate, second, '--broker', '', '--queue', 'q-eval', '--trace', trace, '--json'],
      {
        ADRS_BROKER_URL: redis.url,
      },
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const results = JSON.parse(r.out);
    expect(results.map((x: { dir: string; score: number }) => [x.dir, x.score])).toEqual([
      [p.candidate, 80],
      [second, 96],
    ]);
    // An empty --broker with no $ADRS_BROKER_URL is one line, before anything is queued.
    const none = await run([p.candidate, second, '--broker', ''], { ADRS_BROKER_URL: '' });
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/^adrs: --broker needs a URL, or ADRS_BROKER_URL set\n$/);
  });
});
