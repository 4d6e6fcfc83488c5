import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvalResult, EvaluatorPool } from '../src/eval/index.js';
import { isolatedIdentity } from '../src/eval/isolation.js';
import { buildWorkerBundle } from '../src/eval/worker-bundle.js';
import { WorkerProcess } from '../src/eval/worker-process.js';
import { loadTrace } from '../src/trace/load.js';
import { UserError } from '../src/util/errors.js';
import { type VariantName, writeVariant } from './helpers/hostile-variants.js';

/**
 * Candidates that attack the harness itself rather than the file system: signals to the harness,
 * forged replies on the IPC channel, pass-dependent speed, the network, symlinks out of the folder.
 * Each attack is either refused (the fixture then proves it by being a valid balancer, or comes back
 * invalid with a clear artifact) or charged for what it does.
 */
const FIXTURES = 'test/fixtures/candidates';
const trace = loadTrace('synthetic-v4-windows');
// A fixed relabelling seed: the input-independent valid-naive base swings a few % with the
// relabelling, so a secret seed per run would make the consistency check flip from run to run.
const opts = { trace, objective: 'default' as const, windows: 3, repeats: 3, seed: '5eed5eed5eed' };
let pool: EvaluatorPool;
let scratch: string;

beforeAll(async () => {
  pool = await EvaluatorPool.create({ workers: 2, timeoutS: 30, memoryMb: 1024 });
  scratch = mkdtempSync(join(tmpdir(), 'adrs-eval-harness-test-'));
});
afterAll(async () => {
  await pool?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const evaluate = (name: string): Promise<EvalResult> => pool.evaluate(join(FIXTURES, name), opts);
/** A valid-naive variant (test/helpers/hostile-variants.ts), written under the scratch folder. */
const evaluateVariant = (name: VariantName): Promise<EvalResult> =>
  pool.evaluate(writeVariant(join(scratch, 'variants'), name), opts);
const naiveSource = readFileSync(join(FIXTURES, 'valid-naive/balancer.ts'), 'utf8');

describe('hostile candidates against the harness', () => {
  it('cannot signal the harness or other processes (every route refused, so the fixture is valid)', async () => {
    const r = await evaluateVariant('kill-parent');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('cannot forge replies on the harness channel (there is no process._send)', async () => {
    const r = await evaluate('forge');
    expect(r.valid).toBe(false);
    expect(r.stage).toBe(1);
    expect(r.artifacts.exception).toMatch(
      /^loading: TypeError: Cannot read properties of undefined \(reading 'bind'\)/,
    );
  });

  it('finds no route onto the harness channel (send, _send, channel, pipe handle, message listeners)', async () => {
    const r = await evaluateVariant('harness-channel');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('cannot tell the scored pass by its values (no integral loads, fresh scales everywhere)', async () => {
    // The fixture busy-waits 400 ms on calls with integral loads and takes ~1 ms otherwise: either
    // it is charged for the slow path (a pass's median is a slow call) or it never takes it after
    // the tiny case, which has integral loads (one slow call in all: under two, whatever the load).
    const SLOW_MS = 400;
    const r = await evaluate('twoface');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
    expect(r.metrics.median_ms! >= SLOW_MS || r.metrics.candidate_ms < 2 * SLOW_MS).toBe(true);
  });

  it('pays for the calls it recognises by counting (time is the mean of every timed call)', async () => {
    // 3 passes × 3 windows, the first two calls of each pass untimed: its slow call (4th in the
    // first worker) is timed, and charged in full.
    const r = await evaluate('twoface-count');
    expect(r.artifacts).toEqual({});
    expect(r.metrics.calls).toBe(3);
    expect(r.metrics.mean_ms! * r.metrics.calls).toBeGreaterThanOrEqual(35);
  });

  it('cannot import the network modules (refused at transpile time)', async () => {
    const r = await evaluateVariant('network');
    expect(r.valid).toBe(false);
    expect(r.artifacts.transpile).toMatch(/^balancer\.ts:2:\d+: 'node:net' is not available to candidates/);
  });

  it('cannot reach the network or process modules at run time (every route refused, so the fixture is valid)', async () => {
    const r = await evaluateVariant('network-runtime');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('does not follow symlinks out of the candidate folder', async () => {
    const traceJson = resolve('traces/synthetic-v4-windows.json');
    const traceBin = resolve('traces/synthetic-v4-windows.bin');
    const folder = (name: string): string => {
      const dir = join(scratch, name);
      mkdirSync(join(dir, 'kernels'), { recursive: true });
      return dir;
    };
    // An import of a symlinked trace manifest: esbuild would inline it.
    const imported = folder('import-link');
    writeFileSync(
      join(imported, 'balancer.ts'),
      `import leak from './leak.json';\n${naiveSource.replace('return naive(input);', 'if (!leak) throw new Error("x");\n  return naive(input);')}`,
    );
    symlinkSync(traceJson, join(imported, 'leak.json'));
    const r = await pool.evaluate(imported, opts);
    expect(r.valid).toBe(false);
    expect(r.artifacts.transpile).toMatch(
      /^balancer\.ts:1:18: .*synthetic-v4-windows\.json' resolves outside the candidate folder/,
    );

    // A symlinked kernel (the trace's loads as "WGSL source") and a symlinked balancer.ts.
    const kernel = folder('kernel-link');
    writeFileSync(join(kernel, 'balancer.ts'), naiveSource);
    symlinkSync(traceBin, join(kernel, 'kernels/leak.wgsl'));
    await expect(pool.evaluate(kernel, opts)).rejects.toThrow(/kernels\/leak\.wgsl is not a regular file/);
    const entry = folder('entry-link');
    writeFileSync(join(entry, 'real.ts'), naiveSource);
    symlinkSync(join(entry, 'real.ts'), join(entry, 'balancer.ts'));
    await expect(pool.evaluate(entry, opts)).rejects.toThrow(UserError);
  });

  it('refuses a balancer.ts over the size cap before transpiling', async () => {
    const big = `${naiveSource}\n// ${'x'.repeat(1 << 20)}\n`;
    await expect(pool.evaluate({ files: { 'balancer.ts': big } }, opts)).rejects.toThrow(
      /balancer\.ts has \d+ bytes, over the cap/,
    );
  });

  it('stays healthy', async () => {
    const r = await evaluate('valid-naive');
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });
});

describe('OS isolation when the harness runs as root', () => {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  it.skipIf(!root || process.env.ADRS_EVAL_SAME_UID === '1')(
    'workers run under their own unprivileged uid, whose signals the kernel refuses',
    async ({ skip }) => {
      const bundle = await buildWorkerBundle();
      // Only where the project is reachable by other users (not, say, under /root): else isolation is off.
      if (isolatedIdentity(bundle).uid === undefined) skip();
      const workers = await Promise.all([0, 1].map(() => WorkerProcess.spawn({ bundle, memoryMb: 512 })));
      try {
        const ids = workers.map((w) => {
          const status = readFileSync(`/proc/${w.pid}/status`, 'utf8');
          return Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
        });
        expect(ids[0]).not.toBe(0);
        expect(ids[1]).not.toBe(ids[0]);
        // Past the JavaScript lockdown: a process with a worker's ids cannot signal the harness.
        const probe = spawnSync(
          process.execPath,
          [
            '-e',
            `try { process.kill(${process.pid}, 0); console.log('reached') } catch (e) { console.log(e.code) }`,
          ],
          { uid: ids[0], gid: ids[0], encoding: 'utf8', env: {} },
        );
        expect(probe.stdout.trim()).toBe('EPERM');
      } finally {
        for (const w of workers) w.kill();
        rmSync(bundle.dir, { recursive: true, force: true });
      }
    },
  );
});
