/**
 * Throughput of distributed evaluation (issue 12) on one machine: a private redis-server, N local
 * `adrs worker` processes, the controller in this process, a scripted model answering every call
 * at once with a distinct valid edit (so every iteration is a new program to evaluate).
 *
 * 1. Queue overhead: a no-op evaluator (the toy problem's, returning at once) on 1 worker;
 *    enqueue→result latency of sequential evaluations through the broker evaluator.
 * 2. Iterations per minute of `adrs evolve --broker` with 1, 2 and 4 worker processes, each
 *    evaluation taking EVAL_MS (the toy evaluator waits that long: a stand-in for a GPU evaluation
 *    that does not load this machine's 2 shared cores).
 * 3. GPU=1: the same with the real sandboxed GPU pool (lavapipe here) on the EPLB seed.
 *
 * Run:
 *   npm run build && npx esbuild bench/distributed-throughput.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=dist/eval/bench-distributed.mjs && XDG_RUNTIME_DIR=/tmp node dist/eval/bench-distributed.mjs
 * Env: ITERATIONS (24), EVAL_MS (1000), SAMPLES (200), WORKERS ("1,2,4"), GPU (0), GPU_ITERATIONS (12).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBrokerEvaluator } from '../src/distributed/broker-evaluator.js';
import { parseBrokerUrl } from '../src/distributed/broker-url.js';
import { MemoryRunState } from '../src/distributed/run-state.js';
import { defaultConfig } from '../src/evolve/config.js';
import { runSession } from '../src/evolve/session.js';
import { summarizeTimes } from '../src/util/stats.js';
import {
  bundleCli,
  RedisServer,
  startWorker,
  stopWorker,
  type WorkerChild,
} from '../test/helpers/broker-harness.js';
import { makeToyProject, TOY_BALANCER, TOY_KERNEL } from '../test/helpers/evolve-toy.js';
import { FakeOpenAiServer } from '../test/helpers/fake-openai-server.js';

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const iterations = env('ITERATIONS', 24);
const evalMs = env('EVAL_MS', 1000);
const samples = env('SAMPLES', 200);
const counts = (process.env.WORKERS ?? '1,2,4').split(',').map(Number);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const cli = await bundleCli();
const redis = await RedisServer.start();
const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};
say(`# ${new Date().toISOString()}  node ${process.version}  load average at start: ${load()}`);

// Toy edits: every answer keeps the SPREAD line and adds one unique constant: a new program each time.
const toyModel = await FakeOpenAiServer.start((q) => ({
  text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = 1;\n=======\nexport const SPREAD = 1;\nexport const V${q.index} = ${q.index};\n>>>>>>> REPLACE`,
  usage: { prompt_tokens: 1000, completion_tokens: 50 },
}));

async function toyWorkers(n: number, queue: string, module: string, delay: number): Promise<WorkerChild[]> {
  return Promise.all(
    Array.from({ length: n }, () =>
      startWorker(
        ['--broker', redis.url, '--evaluator-module', module, '--adapter', 'toy', '--queue', queue],
        {
          TOY_EVAL_DELAY_MS: String(delay),
        },
        cli,
      ),
    ),
  );
}

try {
  // 1. Queue overhead with a no-op evaluator.
  {
    const p = makeToyProject(toyModel.baseUrl);
    const ws = await toyWorkers(1, 'overhead', p.evaluatorModule, 0);
    const config = defaultConfig();
    const broker = await createBrokerEvaluator({
      evaluator: { ...config.evaluator, workers: 1 },
      address: parseBrokerUrl(redis.url),
      queue: 'overhead',
      adapters: 'same',
      state: new MemoryRunState('overhead'),
    });
    const times: number[] = [];
    for (let i = 0; i < samples + 10; i++) {
      const files = {
        'balancer.ts': `${TOY_BALANCER}\nexport const V${i} = ${i};\n`,
        'kernels/toy.wgsl': TOY_KERNEL,
      };
      const t = performance.now();
      await broker.evaluate(files, 'train');
      if (i >= 10) times.push(performance.now() - t);
    }
    await broker.close();
    for (const w of ws) await stopWorker(w);
    const s = summarizeTimes(times);
    say(
      `queue overhead (no-op evaluator, 1 worker, sequential, ${s.runs} evaluations after 10 warm-up): enqueue→result median ${s.median_ms.toFixed(2)} ms, p95 ${s.p95_ms.toFixed(2)} ms  [load ${load()}]`,
    );
  }

  // 2. Iterations per minute with 1, 2, 4 worker processes, evaluations of evalMs each.
  for (const n of counts) {
    const p = makeToyProject(toyModel.baseUrl, {
      iterations,
      search: {
        islands: 1,
        parallel: Math.max(2, 2 * n),
        exploration: 0,
        exploitation: 0,
        mutations: { diff: 1, rewrite: 0, crossover: 0 },
      },
      prompt: { top_programs: 0, diverse_programs: 0 },
      evaluator: { module: 'toy-evaluator.mjs', workers: n, broker: { queue: `toy-${n}` } },
    });
    const ws = await toyWorkers(n, `toy-${n}`, p.evaluatorModule, evalMs);
    const r = await runSession({ configPath: p.configPath, out: join(p.dir, 'run'), broker: redis.url });
    for (const w of ws) await stopWorker(w);
    say(
      `toy evaluator (${evalMs} ms per evaluation), ${n} worker process${n > 1 ? 'es' : ''}: ${r.stats.committed} iterations, ${r.stats.iterationsPerMinute.toFixed(1)} iterations/min ` +
        `(ideal ${((60000 / evalMs) * n).toFixed(0)}), evaluator utilisation ${(r.stats.evaluatorUtilisation * 100).toFixed(0)} %, ${r.stats.evaluationsThisSession} evaluations  [load ${load()}]`,
    );
  }

  // 3. The real sandboxed GPU pool (lavapipe) on the EPLB seed, as bench/evolve-scripted.ts.
  if (env('GPU', 0)) {
    const adrs = fileURLToPath(new URL('../../bin/adrs.js', import.meta.url));
    const ANCHOR = '  const S = R / P;';
    const gpuModel = await FakeOpenAiServer.start((q) => ({
      text: `<<<<<<< SEARCH balancer.ts\n${ANCHOR}\n=======\n${ANCHOR}\n  const variant${q.index} = ${q.index};\n  void variant${q.index};\n>>>>>>> REPLACE`,
      usage: { prompt_tokens: 6000, completion_tokens: 400 },
    }));
    for (const n of counts) {
      const dir = mkdtempSync(join(tmpdir(), 'adrs-bench-distributed-'));
      const config = {
        problem: 'Balance the experts.',
        candidate: resolve('examples/eplb'),
        iterations: env('GPU_ITERATIONS', 12),
        llm: { base_url: gpuModel.baseUrl, models: [{ name: 'scripted' }] },
        search: {
          islands: 1,
          parallel: Math.max(2, 2 * n),
          exploration: 0,
          exploitation: 0,
          mutations: { diff: 1, rewrite: 0, crossover: 0 },
        },
        prompt: { top_programs: 0, diverse_programs: 0 },
        evaluator: {
          workers: n,
          timeout_s: 120,
          objective: 'adrs',
          trace: 'synthetic-v3-windows',
          windows: 4,
          repeats: 2,
          broker: { queue: `gpu-${n}` },
        },
      };
      writeFileSync(join(dir, 'evolve.json'), JSON.stringify(config));
      const ws = await Promise.all(
        Array.from({ length: n }, () =>
          startWorker(['--broker', redis.url, '--queue', `gpu-${n}`], {}, adrs),
        ),
      );
      const r = await runSession({
        configPath: join(dir, 'evolve.json'),
        out: join(dir, 'run'),
        broker: redis.url,
      });
      for (const w of ws) await stopWorker(w);
      say(
        `GPU pool (lavapipe, EPLB seed, 4 windows × 2 passes), ${n} worker process${n > 1 ? 'es' : ''}: ${r.stats.committed} iterations, ${r.stats.iterationsPerMinute.toFixed(1)} iterations/min, ` +
          `evaluator utilisation ${(r.stats.evaluatorUtilisation * 100).toFixed(0)} %  [load ${load()}]`,
      );
    }
    await gpuModel.close();
  }
} finally {
  await toyModel.close();
  await redis.stop();
}
