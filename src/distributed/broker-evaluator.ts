import { type Job, Queue, QueueEvents } from 'bullmq';
import { type CandidateFiles, programHash } from '../evolve/candidate.js';
import type { EvolveConfig } from '../evolve/config.js';
import type { EvalOutcome, Evaluator, Split } from '../evolve/evaluator.js';
import { trainingTrace } from '../evolve/pool-evaluator.js';
import { traceChecksum } from '../evolve/trace-checksum.js';
import { loadTrace } from '../trace/load.js';
import { warn } from '../util/warn.js';
import { type BrokerAddress, redactText } from './broker-url.js';
import { checkBroker } from './connection.js';
import {
  decodeResult,
  type EvalJobData,
  type JobSettings,
  jobId,
  settingsOf,
  type TraceRef,
} from './job-codec.js';

/** BullMQ's reason for a job whose lock lapsed more than maxStalledCount times: its workers died on it. */
const STALLED = 'job stalled more than allowable limit';
const KEEP_S = 7 * 24 * 3600;

/** What a distributed run remembers between controller sessions (see run-state.ts). */
export interface BrokerRunState {
  /** Stable across resumes: job ids derive from it. */
  runId(): string;
  /** The adapter this run's times come from (the first verdict's), or null before any. */
  adapter(): string | null;
  pinAdapter(adapter: string): void;
}

export interface BrokerEvaluatorOptions {
  evaluator: EvolveConfig['evaluator'];
  address: BrokerAddress;
  queue: string;
  adapters: 'same' | 'any';
  state: BrokerRunState;
  /** Evaluations kept in flight (the controller's gate); default evaluator.workers. */
  inFlight?: number;
}

/** A verdict as the controller stores it: the outcome plus where it was measured. */
export type BrokerOutcome = EvalOutcome & { adapter: string; worker: string };

/**
 * The evolve Evaluator over a BullMQ queue: each evaluation is a job (id = run + split + program
 * hash, so adding it again finds the same job), scored by whichever `adrs worker` takes it.
 * Model calls, selection and the commit order stay in the controller, so a run is the same run
 * wherever its programs were evaluated.
 */
export async function createBrokerEvaluator(o: BrokerEvaluatorOptions): Promise<Evaluator> {
  await checkBroker(o.address);
  const traces = expectedTraces(o.evaluator);
  const settings: JobSettings = settingsOf(o.evaluator);
  const queue = new Queue(o.queue, { connection: o.address.connection });
  const events = new QueueEvents(o.queue, { connection: o.address.connection });
  const onError = (error: Error) => warn(`broker: ${redactText(error.message.split('\n')[0]!, o.address)}`);
  queue.on('error', onError);
  events.on('error', onError);
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  // Jobs wait for workers however long it takes; say so once rather than look stuck.
  const listening = await queue.getWorkersCount().catch(() => null);
  if (listening === 0) {
    warn(
      `no adrs worker is taking jobs from queue '${o.queue}' at ${o.address.display} yet; evaluations wait for one (adrs worker --queue ${o.queue})`,
    );
  }

  const evaluate = async (files: CandidateFiles, split: Split): Promise<BrokerOutcome> => {
    const hash = programHash(files);
    const id = jobId(o.state.runId(), split, hash);
    const data: EvalJobData = {
      format: 'adrs-eval-job/1',
      run: o.state.runId(),
      split,
      hash,
      files,
      settings,
      expect: traces[split] ?? null,
    };
    // An existing job with this id (a resumed controller, a retry) is kept as it is: queued,
    // running or finished, it is the one verdict this program gets.
    await queue.add('evaluate', data, {
      jobId: id,
      // A worker-side failure that is not the program's (its pool failed to start) is retried once by
      // another worker before the controller hears of it.
      attempts: 2,
      // Kept for a week: long enough for a killed controller to come back for its results (once it
      // has logged a verdict it never asks again), short enough that a broker does not fill up.
      removeOnComplete: { age: KEEP_S },
      removeOnFail: { age: KEEP_S },
    });
    const job = (await queue.getJob(id)) as Job | undefined;
    if (!job) throw new Error(`job ${id} vanished from the queue right after it was added`);
    if ((await job.getState()) === 'failed' && job.failedReason !== STALLED) await job.retry('failed');
    let raw: unknown;
    try {
      raw = await job.waitUntilFinished(events);
    } catch (error) {
      const reason = (error as Error).message;
      if (reason.includes(STALLED)) return crashed((await queue.getJob(id)) ?? job);
      throw new Error(
        `evaluation job failed on the workers: ${redactText(reason.split('\n')[0]!, o.address)}`,
      );
    }
    const r = decodeResult(raw);
    const pinned = o.state.adapter();
    if (o.adapters === 'same' && pinned !== null && pinned !== r.adapter) {
      // Dropped so that a retry is a fresh job (for a worker of the right model); the verdict is not used.
      await job.remove().catch(() => {});
      throw new Error(
        `worker ${r.worker} measured program ${hash} on '${r.adapter}', but this run's times come from '${pinned}'; ` +
          `give each GPU model its own queue (adrs worker --queue NAME, evaluator.broker.queue) or set evaluator.broker.adapters: any`,
      );
    }
    if (pinned === null) o.state.pinAdapter(r.adapter);
    return { ...r.outcome, adapter: r.adapter, worker: r.worker };
  };

  return {
    workers: o.inFlight ?? o.evaluator.workers,
    evaluate,
    hasHeldOut: () => o.evaluator.heldout_trace !== null,
    traces: () => ({ ...traces }) as Record<string, TraceRef>,
    async close() {
      await events.close();
      await queue.close();
    },
  };
}

/** A job whose every try took its worker down: an invalid program, with the reason as its artifact. */
function crashed(job: Job): BrokerOutcome {
  const tries = job.stalledCounter || 0;
  return {
    valid: false,
    score: null,
    metrics: {},
    artifacts: {
      crash:
        `the evaluation was lost with its worker ${tries > 0 ? `${tries} times` : 'repeatedly'} (the worker process died mid-evaluation each time); ` +
        'the program is not retried again',
    },
    adapter: 'none',
    worker: 'none',
  };
}

/** The traces named in the config, by name and sha256, as every worker must hold them. */
function expectedTraces(e: EvolveConfig['evaluator']): Partial<Record<Split, TraceRef>> {
  const out: Partial<Record<Split, TraceRef>> = {};
  if (e.trace) {
    const t = trainingTrace(e);
    out.train = { name: t.manifest.name, sha256: traceChecksum(t) };
  }
  if (e.heldout_trace) {
    const t = loadTrace(e.heldout_trace);
    out.heldout = { name: t.manifest.name, sha256: traceChecksum(t) };
  }
  return out;
}
