import type { CandidateFiles } from '../evolve/candidate.js';
import type { EvolveConfig } from '../evolve/config.js';
import type { EvalOutcome, Split } from '../evolve/evaluator.js';

/** The evaluator settings a job carries: what the worker's local pool needs, nothing about the worker itself. */
export interface JobSettings {
  timeout_s: number;
  memory_mb: number | null;
  objective: EvolveConfig['evaluator']['objective'];
  windows: number | null;
  repeats: number | null;
  /** Trace as named in the controller's config (a bundled name or a path the workers share). */
  trace: string | null;
  heldout_trace: string | null;
  /** The protocol and deployment, as the controller's config says (absent from older controllers). */
  history?: number | null;
  replicas?: number | null;
  gpus?: number | null;
  nodes?: number | null;
  groups?: number | null;
  /** Train on the series drawn like `trace` with this seed; every worker draws the same one. */
  secret_series?: boolean;
  series_seed?: number | null;
}

/** Which data the verdict must be measured on; a worker whose copy has another sha256 refuses the job. */
export interface TraceRef {
  name: string;
  sha256: string;
}

export interface EvalJobData {
  format: 'adrs-eval-job/1';
  run: string;
  split: Split;
  hash: string;
  files: CandidateFiles;
  settings: JobSettings;
  /** null: the controller has no trace of its own to check against (a plug-in evaluator without one). */
  expect: TraceRef | null;
}

export interface EvalJobResult {
  format: 'adrs-eval-result/1';
  outcome: EvalOutcome;
  /** The GPU the verdict (and its timings) were measured on. */
  adapter: string;
  worker: string;
}

/**
 * The job id: run id + split + program hash. The controller evaluates each distinct program once
 * per split, so adding a job again (a resumed controller, a retry) finds the same job — queued,
 * running or finished — instead of creating a second one: no program gets two verdicts.
 * BullMQ reserves ':' in ids, hence '.'.
 */
export function jobId(run: string, split: Split, hash: string): string {
  return `${run}.${split}.${hash}`;
}

/** Checks a job's data as the worker receives it: anyone on the broker can write one. */
export function decodeJob(raw: unknown): EvalJobData {
  const d = raw as Partial<EvalJobData> | null;
  const fail = (why: string): never => {
    throw new Error(`malformed job (${why}); is the controller a different adrs version?`);
  };
  if (!d || typeof d !== 'object' || d.format !== 'adrs-eval-job/1') fail('unknown format');
  if (d!.split !== 'train' && d!.split !== 'heldout') fail('split');
  if (typeof d!.run !== 'string' || typeof d!.hash !== 'string') fail('run or hash');
  const files = d!.files;
  if (!files || typeof files !== 'object') fail('files');
  for (const [k, v] of Object.entries(files as object)) if (typeof v !== 'string') fail(`file ${k}`);
  const s = d!.settings;
  if (!s || typeof s !== 'object' || typeof s.timeout_s !== 'number' || !(s.timeout_s > 0)) fail('settings');
  if (d!.expect !== null && (typeof d!.expect?.sha256 !== 'string' || typeof d!.expect?.name !== 'string'))
    fail('expected trace');
  return d as EvalJobData;
}

export function decodeResult(raw: unknown): EvalJobResult {
  const r = raw as Partial<EvalJobResult> | null;
  if (r?.format !== 'adrs-eval-result/1' || typeof r.adapter !== 'string' || !r.outcome)
    throw new Error('malformed result from a worker (is it a different adrs version?)');
  return r as EvalJobResult;
}

export function settingsOf(e: EvolveConfig['evaluator']): JobSettings {
  return {
    timeout_s: e.timeout_s,
    memory_mb: e.memory_mb,
    objective: e.objective,
    windows: e.windows,
    repeats: e.repeats,
    trace: e.trace,
    heldout_trace: e.heldout_trace,
    history: e.history,
    replicas: e.replicas,
    gpus: e.gpus,
    nodes: e.nodes,
    groups: e.groups,
    secret_series: e.secret_series,
    series_seed: e.series_seed,
  };
}
