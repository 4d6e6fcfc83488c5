import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { defaultConfig, type EvolveConfig } from '../evolve/config.js';
import { createEvaluator, type Evaluator } from '../evolve/evaluator.js';
import { bundledTracePath } from '../trace/load.js';
import { type BrokerAddress, redactText } from './broker-url.js';
import { decodeJob, type EvalJobData, type EvalJobResult, type JobSettings } from './job-codec.js';
import type { BrokerTiming } from './timing.js';

export interface WorkerLoopOptions {
  address: BrokerAddress;
  queue: string;
  /** Evaluations at once: the local pool's size and the jobs taken from the queue at once. */
  workers: number;
  /** The GPU the local pool runs on, as measured (exact adapter name) or, for a plug-in evaluator, as declared. */
  adapter: string;
  /** A plug-in evaluator module (`evaluator.module`); null = the sandboxed GPU pool. */
  module: string | null;
  timing: BrokerTiming;
  /** Folders a job's trace files are looked up in, by file name (`--trace-dir`); bundled traces are always found. */
  traceDirs: string[];
  log: (line: string) => void;
  /** Tests: called when an evaluation starts (the job's program hash). */
  onStart?: (hash: string) => void;
}

export interface RunningWorker {
  readonly name: string;
  /** Stops taking jobs; `force` false waits for the jobs in hand, true hands them back (their lock lapses). */
  close(force?: boolean): Promise<void>;
}

/**
 * `adrs worker`'s loop: takes evaluation jobs from the queue and scores them in a local evaluator
 * built exactly as `adrs evolve` builds one (createEvaluator: the sandboxed pool or the plug-in
 * module), with the job's settings. A job for data this machine does not hold is refused.
 */
export async function startWorkerLoop(o: WorkerLoopOptions): Promise<RunningWorker> {
  const name = `${hostname()}/${process.pid}`;
  const locals = new Map<string, Promise<Evaluator>>();
  const localFor = (settings: JobSettings): Promise<Evaluator> => {
    const key = JSON.stringify(settings);
    let e = locals.get(key);
    if (!e) {
      e = createEvaluator(localConfig(settings, o));
      // A failed start is not cached: the next job tries again.
      e.catch(() => locals.delete(key));
      locals.set(key, e);
    }
    return e;
  };
  const processJob = async (job: Job): Promise<EvalJobResult> => {
    let data: EvalJobData;
    try {
      data = decodeJob(job.data);
    } catch (error) {
      throw new UnrecoverableError((error as Error).message);
    }
    const settings = {
      ...data.settings,
      trace: localTrace(data.settings.trace, o.traceDirs),
      heldout_trace: localTrace(data.settings.heldout_trace, o.traceDirs),
    };
    const local = await localFor(settings);
    checkTrace(local, data, o.adapter, name);
    o.onStart?.(data.hash);
    const outcome = await withinBound(local.evaluate(data.files, data.split), settings, () => {
      // A pool that overran every bound of its own is not trusted with the next job.
      const key = JSON.stringify(settings);
      void locals
        .get(key)
        ?.then((e) => e.close())
        .catch(() => {});
      locals.delete(key);
    });
    return { format: 'adrs-eval-result/1', outcome, adapter: o.adapter, worker: name };
  };
  const worker = new Worker(o.queue, processJob, {
    connection: o.address.connection,
    concurrency: o.workers,
    name,
    lockDuration: o.timing.lockMs,
    stalledInterval: o.timing.stalledIntervalMs,
    // A job found with its lock lapsed (its worker died) goes back to the queue this many times;
    // the next time, it fails with BullMQ's stall message, which the controller turns into an
    // invalid verdict: a candidate that kills its worker is not retried forever.
    maxStalledCount: o.timing.maxTries - 1,
    autorun: false,
  });
  worker.on('error', (error) => o.log(`broker error: ${redactText(error.message, o.address)}`));
  worker.on('failed', (job, error) =>
    o.log(`job ${job?.id ?? '?'} failed: ${redactText(error.message.split('\n')[0]!, o.address)}`),
  );
  await worker.waitUntilReady();
  void worker.run();
  return {
    name,
    async close(force = false) {
      await worker.close(force);
      for (const e of locals.values()) await e.then((x) => x.close()).catch(() => {});
    },
  };
}

/**
 * The pool bounds a candidate's run (timeout_s) and its own preparation (120 s); a job still
 * running well past both means the local evaluator is stuck, not that the program is slow. It is
 * then an error (no verdict; BullMQ gives the job one more try, possibly elsewhere), so a stuck
 * pool cannot hold a job forever while its worker keeps renewing the lock.
 */
async function withinBound<T>(work: Promise<T>, settings: JobSettings, onOverrun: () => void): Promise<T> {
  const boundS = settings.timeout_s + PREPARATION_S + MARGIN_S;
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onOverrun();
      reject(
        new Error(
          `the local evaluator ran past ${boundS} s (timeout_s ${settings.timeout_s} + preparation + margin)`,
        ),
      );
    }, boundS * 1000);
  });
  try {
    return await Promise.race([work, overrun]);
  } finally {
    clearTimeout(timer);
  }
}
const PREPARATION_S = 120;
const MARGIN_S = 60;

/**
 * A job names its traces as the controller's config does: a bundled name, or a path on the
 * controller's machine. Workers look a path up by its file name in their own --trace-dir folders
 * (the same path need not exist on every machine; the sha256 check then proves it is the same
 * data). A job never makes a worker open a file outside those folders: anyone who can write to the
 * queue could otherwise have it read any file, and parse errors would echo its first bytes back.
 */
function localTrace(ref: string | null, dirs: string[]): string | null {
  if (ref === null) return null;
  const bundled = bundledTracePath(ref);
  if (bundled) return bundled;
  // A bare name this installation does not bundle may be a .json of that name in a trace folder.
  const file = basename(ref).endsWith('.json') ? basename(ref) : `${basename(ref)}.json`;
  if (file !== '.json') {
    for (const dir of dirs) {
      const candidate = join(dir, file);
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new UnrecoverableError(
    `the job's trace '${basename(ref)}' is neither a bundled trace nor a .json file in this worker's --trace-dir (${dirs.join(', ')}); copy the trace there`,
  );
}

function localConfig(settings: JobSettings, o: WorkerLoopOptions): EvolveConfig {
  const config = defaultConfig();
  config.evaluator = {
    ...config.evaluator,
    ...settings,
    module: o.module,
    workers: o.workers,
    adapter: o.module ? null : o.adapter,
    broker: null,
  };
  return config;
}

/** The worker's copy of the trace must be the controller's, byte for byte (sha256 over manifest and loads). */
function checkTrace(local: Evaluator, data: EvalJobData, adapter: string, worker: string): void {
  if (!data.expect) return;
  const mine = local.traces()[data.split];
  if (mine?.sha256 === data.expect.sha256) return;
  throw new UnrecoverableError(
    `worker ${worker} (${adapter}) refuses the job: the run's ${data.split} trace '${data.expect.name}' has sha256 ${data.expect.sha256.slice(0, 12)}…, ` +
      (mine
        ? `this machine's '${mine.name}' has ${mine.sha256.slice(0, 12)}…`
        : 'this machine has no such trace') +
      '; give every worker the same trace file',
  );
}
