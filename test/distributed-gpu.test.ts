import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer, startWorker, stopWorker, type WorkerChild } from './helpers/broker-harness.js';

/**
 * Through the real sandboxed GPU evaluator pool (lavapipe here): `adrs worker` with no plug-in
 * module evaluates two candidate folders sent by `adrs eval --broker`, on 2 windows of the bundled
 * synthetic trace. The CLI runs from dist/ (`npm test` builds first): the pool bundles its worker
 * entry from beside its own compiled file.
 */
const ADRS = fileURLToPath(new URL('../bin/adrs.js', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

let redis: RedisServer;
let worker: WorkerChild | undefined;
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  redis = await RedisServer.start();
});
afterAll(async () => {
  if (worker) await stopWorker(worker);
  await redis?.stop();
});

describe('adrs worker on the sandboxed GPU pool', () => {
  it('scores a valid and a throwing candidate sent by adrs eval --broker, each verdict carrying the adapter it was timed on', async () => {
    worker = await startWorker(
      ['--broker', redis.url, '--queue', 'gpu', '--lock-s', '5', '--stall-check-s', '5'],
      {},
      ADRS,
    );
    const [, name, adapter] = /adrs worker (\S+): adapter (.+?); queue/.exec(worker.output())!;
    expect(adapter).toMatch(/llvmpipe|lavapipe/i);
    const child = spawn(
      process.execPath,
      [
        ADRS,
        'eval',
        'test/fixtures/candidates/valid-naive',
        'test/fixtures/candidates/throws',
        '--broker',
        redis.url,
        '--queue',
        'gpu',
        '--trace',
        'synthetic-v3-windows',
        '--windows',
        '2',
        '--repeats',
        '2',
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise((r) => child.once('exit', r));
    expect(err).toBe('');
    expect(code).toBe(0);
    const [valid, throws] = JSON.parse(out);
    expect(valid).toMatchObject({
      dir: 'test/fixtures/candidates/valid-naive',
      valid: true,
      stage: 2,
      adapter,
    });
    expect(valid.metrics.windows).toBe(2);
    expect(valid.metrics.median_ms).toBeGreaterThan(0);
    // The name the worker announced (its pid is the CLI process's, behind bin/adrs.js's launcher).
    expect(valid.worker).toBe(name);
    expect(throws).toMatchObject({ valid: false, adapter });
    expect(Object.values(throws.artifacts).join('\n')).toMatch(/throw|Error/i);
  }, 240_000);
});
