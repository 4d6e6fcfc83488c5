import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EvaluatorError, realClock, runCascade } from '../src/eval/cascade.js';
import { GpuScorer } from '../src/eval/gpu-scorer.js';
import { EvaluatorPool } from '../src/eval/index.js';
import {
  adapterMismatch,
  isolatedIdentity,
  spawnErrorKind,
  startOutputKind,
  WorkerStartError,
} from '../src/eval/isolation.js';
import { processTree } from '../src/eval/sandbox.js';
import { transpileCandidate } from '../src/eval/transpile.js';
import type { HarnessClock } from '../src/eval/types.js';
import { evalWindows } from '../src/eval/windows.js';
import { buildWorkerBundle, sweepStaleBundles, type WorkerBundle } from '../src/eval/worker-bundle.js';
import { launchTools, workerLauncher } from '../src/eval/worker-launch.js';
import { WorkerProcess } from '../src/eval/worker-process.js';
import { loadTrace } from '../src/trace/load.js';
import { UserError } from '../src/util/errors.js';

/**
 * The evaluator's own robustness: workers die with their harness (even while a candidate spins),
 * start failures are classified (identity → run as the harness user, busy → retry isolated), the
 * candidate's clock starts after the harness's preparation, bad options and failed starts leak
 * nothing.
 */
const root = typeof process.getuid === 'function' && process.getuid() === 0;
const trace = loadTrace('synthetic-v4-windows');
const NAIVE = 'test/fixtures/candidates/valid-naive';
let scratch: string;
let bundle: WorkerBundle;
const stray: number[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'adrs-lifetime-test-'));
  bundle = await buildWorkerBundle();
});
afterEach(() => {
  vi.restoreAllMocks();
});
afterAll(() => {
  for (const pid of stray) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Whether a process is gone (a zombie nobody has reaped yet counts as gone). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** CPU time (user + system) of a process and its descendants (bubblewrap's sandbox), in clock ticks. */
function cpuTicks(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {}
  }
  return ticks;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** This process's live evaluation workers. */
function workerChildren(): number[] {
  const pids: number[] = [];
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${tid}/children`, 'utf8').trim();
    for (const pid of children ? children.split(' ').map(Number) : []) {
      if (cmdline(pid).includes('worker.mjs') && !gone(pid)) pids.push(pid);
    }
  }
  return pids;
}

/**
 * Resolves once `ok()` holds for the state of processes in /proc. Only for what raises no event here: a
 * process that is not this one's child dying (a harness's worker, bubblewrap's sandboxed processes) and
 * the CPU time a process has used; /proc has no change notification (inotify does not work on it), so it
 * is re-read on every turn of a short interval. No deadline: the test's own timeout is the bound, so a
 * slow machine cannot fail the test, and a process that never dies still does.
 */
function procState(ok: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (ok()) return resolve();
    const poll = setInterval(() => {
      if (!ok()) return;
      clearInterval(poll);
      resolve();
    }, 20);
  });
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('start failures are told apart', () => {
  it('a worker on another adapter than the one asked for is refused', () => {
    expect(adapterMismatch(undefined, 'llvmpipe (LLVM 15.0.6, 256 bits)')).toBeUndefined();
    expect(adapterMismatch('AMD Radeon RX 7900 XTX', 'AMD Radeon RX 7900 XTX')).toBeUndefined();
    expect(adapterMismatch('AMD Radeon RX 7900 XTX', 'llvmpipe (LLVM 15.0.6, 256 bits)')).toBe(
      "the worker opened the GPU adapter 'llvmpipe (LLVM 15.0.6, 256 bits)', not 'AMD Radeon RX 7900 XTX'",
    );
  });

  it('identity failures, busy machines and the rest', () => {
    for (const code of ['EPERM', 'EINVAL', 'EACCES']) expect(spawnErrorKind(code)).toBe('identity');
    for (const code of ['EAGAIN', 'EMFILE', 'ENFILE']) expect(spawnErrorKind(code)).toBe('transient');
    expect(spawnErrorKind('ENOENT')).toBe('other');
    expect(startOutputKind("Error: EACCES: permission denied, open '/tmp/adrs-eval-x/worker.mjs'")).toBe(
      'identity',
    );
    expect(startOutputKind("UserError: no GPU adapter matches 'AMD Radeon' (available: none)")).toBe(
      'identity',
    );
    expect(startOutputKind('Error: Dawn device lost')).toBe('other');
  });

  it.skipIf(!root)('isolated ids: unprivileged, distinct, from a random block (not the pid)', ({ skip }) => {
    const ids = Array.from({ length: 3 }, () => isolatedIdentity(bundle).uid);
    if (ids[0] === undefined)
      skip("isolation is not possible for this project's location (no uid of its own)");
    for (const id of ids) {
      expect(id).toBeGreaterThanOrEqual(2 ** 30);
      expect(id).toBeLessThan(2 ** 31);
    }
    expect(new Set(ids).size).toBe(3);
    // The old scheme put the pid's low bits in the block number.
    expect(Math.floor((ids[0]! - 2 ** 30) / 4096)).not.toBe(process.pid % 0x40000);
  });

  it('an asynchronous spawn error rejects the start instead of crashing the harness', async () => {
    // A missing working folder fails the spawn with ENOENT, reported after fork() returns.
    const missing = join(scratch, 'missing');
    const saved = process.env.ADRS_EVAL_SAME_UID;
    process.env.ADRS_EVAL_SAME_UID = '1';
    try {
      const start = WorkerProcess.spawn({
        bundle: { entry: join(missing, 'worker.mjs'), dir: missing, webgpuDir: bundle.webgpuDir },
        memoryMb: 512,
      });
      await expect(start).rejects.toThrow(WorkerStartError);
      await expect(start).rejects.toThrow(/ENOENT/);
    } finally {
      if (saved === undefined) delete process.env.ADRS_EVAL_SAME_UID;
      else process.env.ADRS_EVAL_SAME_UID = saved;
    }
  });

  it.skipIf(!root)('a start that times out is retried isolated, and isolation stays on', async ({ skip }) => {
    if (isolatedIdentity(bundle).uid === undefined) skip();
    const start = WorkerProcess.spawn({ bundle, memoryMb: 512, startTimeoutMs: 1 });
    await expect(start).rejects.toThrow(/did not open a GPU device within 0.001 s/);
    expect(isolatedIdentity(bundle).uid).toBeDefined();
  });
});

describe('workers do not outlive the harness', () => {
  it('a worker spinning in candidate code dies when its harness is killed with SIGKILL', async () => {
    const source = join(scratch, 'harness.ts');
    writeFileSync(
      source,
      `import { WorkerProcess } from ${JSON.stringify(resolve('src/eval/worker-process.ts'))};
const bundle = JSON.parse(process.argv[2]);
const shape = { layers: 2, experts: 12, replicas: 16, groups: 4, nodes: 2, gpus: 8 };
const loads = new Float32Array(24);
const w = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
await w.request({ type: 'probe', loads, shape });
await w.request({ type: 'load', js: 'export default async function () { for (;;) {} }', kernels: {} });
void w.request({ type: 'call', loads, shape }).catch(() => {});
console.log(w.pid);
setInterval(() => {}, 1000);
`,
    );
    const harnessFile = join(scratch, 'harness.mjs');
    await build({
      entryPoints: [source],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: harnessFile,
    });
    const harness = spawn(process.execPath, [harnessFile, JSON.stringify(bundle)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    stray.push(harness.pid!);
    const pid = await new Promise<number>((done, fail) => {
      let out = '';
      harness.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) done(Number(out.trim()));
      });
      harness.once('exit', (code) =>
        fail(new Error(`the harness exited (${code}) before starting a worker`)),
      );
    });
    stray.push(pid);
    // Spinning: the candidate's loop has used a quarter second of CPU.
    const before = cpuTicks(pid);
    await procState(() => cpuTicks(pid) - before >= 25);
    harness.kill('SIGKILL');
    await procState(() => gone(pid));
  });

  it.skipIf(!launchTools().prlimit)(
    'without setpriv, the CPU-time cap kills an orphaned spinner (prlimit)',
    async () => {
      const l = workerLauncher(process.execPath, { prlimit: launchTools().prlimit! }, 1);
      expect(l.guard).toBe('cpu-limit');
      const child = spawn(l.execPath, [...l.prefix, '-e', 'for (;;) {}'], { stdio: 'ignore' });
      stray.push(child.pid!);
      const [, signal] = await new Promise<[number | null, string | null]>((done) =>
        child.once('exit', (code, sig) => done([code, sig])),
      );
      expect(signal).toBe('SIGKILL');
    },
  );

  it('launchers: setpriv sets the parent-death signal, prlimit the CPU cap, else Node alone', () => {
    expect(workerLauncher('/n', { setpriv: '/s', prlimit: '/p' }, 10)).toEqual({
      execPath: '/s',
      prefix: ['--pdeathsig', 'KILL', '--', '/n'],
      guard: 'parent-death-signal',
    });
    expect(workerLauncher('/n', { prlimit: '/p' }, 9.5)).toEqual({
      execPath: '/p',
      prefix: ['--cpu=10:10', '--', '/n'],
      guard: 'cpu-limit',
    });
    expect(workerLauncher('/n', {}, 10)).toEqual({ execPath: '/n', prefix: [], guard: 'none' });
  });

  it('bundle folders of harnesses that are gone are removed, others kept', async () => {
    const sweepRoot = join(scratch, 'tmp');
    mkdirSync(sweepRoot);
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout.trim());
    const own = readFileSync(join(bundle.dir, 'owner.json'), 'utf8');
    const folders = {
      'adrs-eval-dead': { ...JSON.parse(own), pid: deadPid },
      'adrs-eval-reused-pid': { ...JSON.parse(own), start: '1' },
      'adrs-eval-live': JSON.parse(own),
      'adrs-eval-other-namespace': { ...JSON.parse(own), pid: deadPid, pidns: 'pid:[1]' },
      'adrs-eval-no-owner': null,
      'adrs-eval-harness-test-x': null,
    };
    for (const [name, owner] of Object.entries(folders)) {
      mkdirSync(join(sweepRoot, name));
      writeFileSync(join(sweepRoot, name, 'worker.mjs'), '');
      if (owner) writeFileSync(join(sweepRoot, name, 'owner.json'), JSON.stringify(owner));
    }
    const removed = sweepStaleBundles(sweepRoot).map((d) => d.slice(sweepRoot.length + 1));
    expect(removed.sort()).toEqual(['adrs-eval-dead', 'adrs-eval-reused-pid']);
    for (const name of Object.keys(folders))
      expect(existsSync(join(sweepRoot, name))).toBe(!removed.includes(name));
  });
});

describe('the pool', () => {
  it('closes the scorer’s device when a worker cannot start', async () => {
    const close = vi.spyOn(GpuScorer.prototype, 'close');
    vi.spyOn(WorkerProcess, 'spawn').mockRejectedValue(new Error('no worker today'));
    await expect(EvaluatorPool.create({ workers: 1, timeoutS: 10 })).rejects.toThrow(
      /could not start an evaluation worker: no worker today/,
    );
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('starts the candidate’s clock after the next worker has started', async () => {
    // The slot's next workers take longer to start than the candidate's whole limit: the evaluation
    // waits for them (timing must not be disturbed) but does not charge the wait to the candidate.
    // "Longer": when they are up, the harness's clock moves 5 s on (more than the 4 s limit).
    const spawnReal = WorkerProcess.spawn.bind(WorkerProcess);
    const requestReal = WorkerProcess.prototype.request;
    const evaluationWorkers = new Set<WorkerProcess>();
    let nextStarting = false;
    let nextUp = 0;
    let skew = 0;
    vi.spyOn(WorkerProcess, 'spawn').mockImplementation(async (options) => {
      const w = await spawnReal(options);
      if (!nextStarting) evaluationWorkers.add(w);
      else if (++nextUp === 2) skew += 5000; // both next workers (prestart 2) are up
      return w;
    });
    // What the harness asked of the evaluation's workers while the next ones were still starting.
    const early: string[] = [];
    vi.spyOn(WorkerProcess.prototype, 'request').mockImplementation(function (
      this: WorkerProcess,
      message: Parameters<WorkerProcess['request']>[0],
    ) {
      if (nextStarting && nextUp < 2 && evaluationWorkers.has(this)) early.push(message.type);
      return requestReal.call(this, message);
    });
    const timers: { ms: number; nextUp: boolean }[] = [];
    const clock: HarnessClock = {
      now: () => performance.now() + skew,
      timer: (ms, fire) => {
        timers.push({ ms, nextUp: nextUp === 2 });
        return realClock.timer(ms, fire);
      },
    };
    const pool = await EvaluatorPool.create({ workers: 1, timeoutS: 4, memoryMb: 512, clock });
    try {
      nextStarting = true;
      const r = await pool.evaluate(NAIVE, { trace, objective: 'default', windows: 1, repeats: 2 });
      expect(r.artifacts).toEqual({});
      expect(r.valid).toBe(true);
      expect(nextUp).toBe(2);
      // Nothing was sent to the evaluation's workers (no calibration, no candidate code) until then,
      expect(early).toEqual([]);
      // the wait is the harness's setup, and the candidate's 4 s limit was started once, afterwards.
      expect(r.metrics.setup_ms!).toBeGreaterThanOrEqual(5000);
      expect(timers.filter((t) => t.ms === 4000)).toEqual([{ ms: 4000, nextUp: true }]);
    } finally {
      await pool.close();
    }
  });

  it('reports a harness that cannot get ready as its own error, not the candidate’s', async () => {
    const worker = await WorkerProcess.spawn({ bundle, memoryMb: 512 });
    const compiled = await transpileCandidate(NAIVE);
    const windows = evalWindows(trace, 2);
    const run = runCascade({
      workers: [worker, worker, worker],
      compiled,
      kernels: {},
      options: { trace, objective: 'default' },
      windows,
      trace,
      shape: { layers: 58, experts: 256, groups: 8, replicas: 288, nodes: 4, gpus: 32 },
      scorer: {} as GpuScorer, // never reached
      quiet: new Promise(() => {}),
      timeoutS: 10,
      setupTimeoutMs: 300,
    });
    await expect(run).rejects.toThrow(EvaluatorError);
    await expect(run).rejects.toThrow(/could not prepare a worker within 0.3 s/);
    expect(worker.dead?.kind).toBe('evaluator');
  });

  it('close() during an evaluation stops every worker, rejects the evaluation and removes the bundle', async () => {
    // The pool's worker starts, as they complete: the evaluation's two (one per pass), then the next two.
    const spawnReal = WorkerProcess.spawn.bind(WorkerProcess);
    const started: WorkerProcess[] = [];
    const fourStarted = deferred();
    vi.spyOn(WorkerProcess, 'spawn').mockImplementation(async (options) => {
      const w = await spawnReal(options);
      if (started.push(w) === 4) fourStarted.resolve();
      return w;
    });
    const pool = await EvaluatorPool.create({ workers: 1, timeoutS: 60, memoryMb: 512, prestart: 2 });
    const evaluation = pool.evaluate('test/fixtures/candidates/ts-infinite-loop', {
      trace,
      objective: 'default',
      windows: 1,
      repeats: 2,
    });
    evaluation.catch(() => {});
    await fourStarted.promise;
    const workers = workerChildren();
    // Four live worker children, each running one of the started workers (under its launcher/sandbox).
    expect(workers).toHaveLength(4);
    for (const w of started) expect(workers.some((c) => processTree(c).includes(w.pid!))).toBe(true);
    const dir = /--allow-fs-read=(\S+)\/worker\.mjs/.exec(cmdline(workers[0]!))![1]!;
    expect(existsSync(dir)).toBe(true);
    // The candidate spins before the pool is closed.
    await procState(() => workers.some((pid) => cpuTicks(pid) > 100));
    // Every process of the sandboxes (bubblewrap's and Node's) must go.
    const sandboxed = workers.flatMap((pid) => processTree(pid));
    await pool.close();
    await expect(evaluation).rejects.toThrow(/the evaluator pool was closed during the evaluation/);
    for (const pid of sandboxed) await procState(() => gone(pid));
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses fewer than 2 repeats (passes under different relabellings are part of the check)', async () => {
    const pool = await EvaluatorPool.create({ workers: 1, timeoutS: 10, memoryMb: 512 });
    try {
      for (const repeats of [1, 0, -3, 2.5]) {
        await expect(
          pool.evaluate(NAIVE, { trace, objective: 'default', windows: 1, repeats }),
        ).rejects.toThrow(
          new UserError(
            `repeats must be an integer of at least 2 (each pass is a fresh worker under its own relabelling; passes must agree), got ${repeats}`,
          ),
        );
      }
    } finally {
      await pool.close();
    }
  });
});

describe('a root harness whose workers cannot open the GPU under their own uid', () => {
  // Simulated with a Vulkan driver list only root can read (as /dev/dri/renderD* 0660 root:render
  // on AMD/Intel): the isolated worker finds no adapter. Runs last: it turns isolation off for this
  // process, as it would in a real harness.
  it.skipIf(!root)(
    'runs them as the harness user on the asked-for adapter, with one warning',
    async ({ skip }) => {
      if (isolatedIdentity(bundle).uid === undefined) skip();
      const icd = '/usr/share/vulkan/icd.d/lvp_icd.json';
      if (!existsSync(icd)) skip();
      const privateDir = mkdtempSync(join(scratch, 'icd-')); // 0700
      copyFileSync(icd, join(privateDir, 'lvp_icd.json'));
      const adapter = (await WorkerProcess.spawn({ bundle, memoryMb: 512 }).then((w) => {
        w.kill();
        return w.adapter;
      })) as string;
      const warnings: string[] = [];
      vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
        warnings.push(String(chunk));
        return true;
      });
      const saved = process.env.VK_ICD_FILENAMES;
      process.env.VK_ICD_FILENAMES = join(privateDir, 'lvp_icd.json');
      let worker: WorkerProcess;
      try {
        worker = await WorkerProcess.spawn({ bundle, memoryMb: 512, adapter });
      } finally {
        if (saved === undefined) delete process.env.VK_ICD_FILENAMES;
        else process.env.VK_ICD_FILENAMES = saved;
        vi.mocked(process.stderr.write).mockRestore();
      }
      try {
        expect(worker.adapter).toBe(adapter);
        const status = readFileSync(`/proc/${worker.pid}/status`, 'utf8');
        expect(Number(/^Uid:\s+(\d+)/m.exec(status)![1])).toBe(0);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(
          // Inside bubblewrap the uid cannot even bind the driver list; without it, it finds no adapter.
          /^adrs: evaluation workers run as root, without a uid of their own: a worker under an unprivileged uid could not start \(.*(no GPU adapter matches|Can't find source path .*lvp_icd\.json: Permission denied)/,
        );
        expect(isolatedIdentity(bundle).uid).toBeUndefined();
      } finally {
        worker.kill();
      }
    },
  );
});
