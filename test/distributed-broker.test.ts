import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBrokerUrl } from '../src/distributed/broker-url.js';
import { runSession } from '../src/evolve/session.js';
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

/**
 * Distributed evaluation end to end: a real redis-server, real `adrs worker` processes (the toy
 * evaluator behind a hook, so the test knows when a worker is mid-evaluation), a real controller.
 * Lock and stall-check times are set short through the workers' flags: they bound how fast a dead
 * worker's job is noticed, and nothing in the test waits on a clock.
 */

// biome-ignore lint/suspicious/noExplicitAny: events are free-form JSON lines, inspected field by field.
type Ev = Record<string, any>;
const events = (dir: string): Ev[] =>
  existsSync(join(dir, 'events.jsonl'))
    ? readFileSync(join(dir, 'events.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Ev];
          } catch {
            return [];
          }
        })
    : [];
const sequence = (dir: string) =>
  events(dir)
    .filter((e) => e.type === 'commit')
    .map((e) => [e.iteration, e.outcome, e.hash, e.score]);
const evaluations = (dir: string) => events(dir).filter((e) => e.type === 'evaluation');

const FAST = ['--lock-s', '1', '--stall-check-s', '0.5'];

let redis: RedisServer;
let model: FakeOpenAiServer;
let hook: HookServer;
/** Per test: how the hook answers. */
let decide: (call: HookCall) => Promise<'go' | 'crash'> | 'go' | 'crash' = () => 'go';
const workers: WorkerChild[] = [];

beforeAll(async () => {
  delete process.env.ADRS_BROKER_URL;
  await bundleCli();
  redis = await RedisServer.start();
  model = await FakeOpenAiServer.start((q) => climbingModel(q));
  hook = await HookServer.start((call) => decide(call));
});
afterAll(async () => {
  for (const w of workers) await stopWorker(w);
  await hook?.close();
  await model?.close();
  await redis?.stop();
});

async function toyWorkers(p: ToyProject, n: number, extra: string[] = [], queue = 'adrs-eval') {
  const module = writeHookEvaluator(p.dir);
  const started = await Promise.all(
    Array.from({ length: n }, () =>
      startWorker(
        [
          '--broker',
          redis.url,
          '--evaluator-module',
          module,
          '--adapter',
          'toy-gpu',
          '--queue',
          queue,
          ...FAST,
          ...extra,
        ],
        { BROKER_TEST_HOOK: hook.url },
      ),
    ),
  );
  workers.push(...started);
  return started;
}

const project = (iterations: number, parallel: number, slots: number, queue: string | null, rewrite = 0.3) =>
  makeToyProject(model.baseUrl, {
    iterations,
    search: {
      islands: 2,
      migration_interval: 3,
      parallel,
      mutations: { diff: 1 - rewrite, rewrite, crossover: 0 },
    },
    evaluator: { module: 'toy-evaluator.mjs', workers: slots, ...(queue ? { broker: { queue } } : {}) },
  });

describe('adrs evolve --broker with adrs worker processes', () => {
  let killedRun = '';
  let killedProject: ToyProject;

  it('a worker killed with -9 mid-evaluation: its job is taken by another, every iteration commits, one verdict per program, the same run as a local one', async () => {
    const p = project(8, 3, 3, 'q-kill');
    killedProject = p;
    const ws = await toyWorkers(p, 3, [], 'q-kill');
    const victim = deferred<HookCall>();
    let killed: number | null = null;
    decide = (call) => {
      // The first program after the seed (SPREAD 1, WIDTH 1): kill its worker while it is evaluating.
      if (killed === null && !(call.spread === 1 && call.width === 1)) {
        killed = call.pid;
        process.kill(call.pid, 'SIGKILL');
        victim.resolve(call);
        return new Promise(() => {});
      }
      return 'go';
    };
    const out = join(p.dir, 'distributed');
    const r = await runSession({ configPath: p.configPath, out, broker: redis.url });
    killedRun = out;
    const v = await victim.promise;
    const dead = ws.find((w) => w.pid === v.pid)!;
    expect((await dead.exited).signal).toBe('SIGKILL');

    expect(r.stats.stopReason).toBe('iterations');
    expect(
      events(out)
        .filter((e) => e.type === 'commit')
        .map((e) => e.iteration),
    ).toEqual([...Array(9).keys()]);
    // One verdict per program: one evaluation event per hash.
    const hashes = evaluations(out).map((e) => e.hash);
    expect(new Set(hashes).size).toBe(hashes.length);
    // The killed evaluation was done again by another worker, and that verdict is the one recorded.
    const again = hook.calls.filter((c) => c.spread === v.spread && c.width === v.width && c.pid !== v.pid);
    expect(again.length).toBeGreaterThanOrEqual(1);
    const victimEval = evaluations(out).find(
      (e) =>
        e.result.worker &&
        !e.result.worker.endsWith(`/${v.pid}`) &&
        again.some((c) => e.result.worker.endsWith(`/${c.pid}`)),
    );
    expect(victimEval).toBeDefined();
    // Every verdict says where it was measured.
    for (const e of evaluations(out)) expect(e.result.adapter).toBe('toy-gpu');
    // The config recorded in the run names the broker, and broker.json holds the run's queue identity.
    const recorded = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(recorded.evaluator.broker).toEqual({ url: redis.url, queue: 'q-kill', adapters: 'same' });
    expect(JSON.parse(readFileSync(join(out, 'broker.json'), 'utf8'))).toMatchObject({ adapter: 'toy-gpu' });

    // The same config evaluated locally gives the same run: commit order decides, not who evaluated.
    const local = project(8, 3, 3, null);
    const localRun = await runSession({ configPath: local.configPath, out: join(local.dir, 'local') });
    expect(localRun.stats.committed).toBe(8);
    expect(sequence(out)).toEqual(sequence(localRun.dir));
  });

  it('a candidate that kills its worker every time becomes invalid after --max-tries workers, with an artifact', async () => {
    const p = project(6, 2, 2, 'q-crash');
    const module = writeHookEvaluator(p.dir);
    const args = [
      '--broker',
      redis.url,
      '--evaluator-module',
      module,
      '--adapter',
      'toy-gpu',
      '--queue',
      'q-crash',
      '--max-tries',
      '2',
      ...FAST,
    ];
    // A supervisor (as systemd would): a worker that dies is replaced.
    let stopped = false;
    const supervise = async (): Promise<void> => {
      const w = await startWorker(args, { BROKER_TEST_HOOK: hook.url });
      workers.push(w);
      void w.exited.then(() => {
        if (!stopped) void supervise();
      });
    };
    await Promise.all([supervise(), supervise()]);
    decide = (call) => (call.spread === 2 && call.width === 1 ? 'crash' : 'go');
    hook.calls.length = 0;
    const out = join(p.dir, 'crash');
    const r = await runSession({ configPath: p.configPath, out, broker: redis.url });
    stopped = true;
    expect(r.stats.committed).toBe(6);
    expect(hook.calls.filter((c) => c.spread === 2 && c.width === 1)).toHaveLength(2);
    const crash = evaluations(out).filter((e) => e.result.artifacts.crash);
    expect(crash).toHaveLength(1);
    expect(crash[0]!.result).toMatchObject({ valid: false, score: null });
    expect(crash[0]!.result.artifacts.crash).toMatch(/lost with its worker 2 times/);
    const commit = events(out).find((e) => e.type === 'commit' && e.hash === crash[0]!.hash);
    expect(commit).toMatchObject({ outcome: 'invalid' });
  });

  it('a controller killed with -9 resumes: the jobs it had queued are used, not evaluated again', async () => {
    const p = project(6, 3, 3, 'q-resume', 0.5);
    await toyWorkers(p, 1, [], 'q-resume');
    // Hold every evaluation after the seed, so jobs are running and queued when the controller dies.
    const held: { call: HookCall; go: () => void }[] = [];
    decide = (call) => {
      if (call.spread === 1 && call.width === 1) return 'go';
      const d = deferred<'go'>();
      held.push({ call, go: () => d.resolve('go') });
      return d.promise;
    };
    const out = join(p.dir, 'controller-killed');
    // Listening before the controller starts, so no job's arrival is missed.
    const queueEvents = new QueueEvents('q-resume', { connection: parseBrokerUrl(redis.url).connection });
    await queueEvents.waitUntilReady();
    const twoQueued = deferred();
    let waiting = 0;
    queueEvents.on('waiting', () => {
      if (++waiting === 3) twoQueued.resolve(); // the seed's job and two more
    });
    let completed = 0;
    const twoDone = deferred();
    queueEvents.on('completed', () => {
      if (++completed === 3) twoDone.resolve(); // the seed's and two more
    });
    hook.calls.length = 0;
    const child = spawn(
      process.execPath,
      [CLI, 'evolve', '--config', p.configPath, '--out', out, '--quiet', '--broker', redis.url],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => child.once('exit', r));
    // One worker slot: the first job after the seed is running (held), the next waits in the queue.
    await twoQueued.promise;
    child.kill('SIGKILL');
    await exited;
    expect(stderr).toBe('');
    expect(events(out).filter((e) => e.type === 'commit')).toHaveLength(1); // only the seed
    // The worker finishes the running job and the queued one with no controller listening.
    decide = () => 'go';
    for (const h of held) h.go();
    await twoDone.promise;
    await queueEvents.close();
    const callsBefore = hook.calls.length;
    const resumed = await runSession({ resume: out, broker: redis.url });
    expect(resumed.stats.committed).toBe(6);
    // No program was evaluated twice by the workers, and the run has one verdict per program.
    const byProgram = hook.calls.map((c) => `${c.spread},${c.width}|${c.split}`);
    expect(new Set(byProgram).size).toBe(byProgram.length);
    const hashes = evaluations(out).map((e) => e.hash);
    expect(new Set(hashes).size).toBe(hashes.length);
    // The results computed while no controller ran were taken, not recomputed: at most the rest ran.
    expect(hook.calls.length - callsBefore).toBeLessThanOrEqual(hashes.length - 1 - 2);
    expect(hook.calls.length).toBe(hashes.length);
  });

  it('--replay of a distributed run needs no broker and reproduces it', async () => {
    await redis.stop();
    const replay = await runSession({ replay: killedRun, out: join(killedProject.dir, 'replay') });
    expect(replay.stats.replayMismatches).toEqual([]);
    expect(sequence(join(killedProject.dir, 'replay'))).toEqual(sequence(killedRun));
  });
});
