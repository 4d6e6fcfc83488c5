import { drawSeries, EvaluatorPool } from '../eval/index.js';
import type { EvalResult, EvaluateOptions } from '../eval/types.js';
import { loadTrace } from '../trace/load.js';
import type { Trace } from '../trace/trace.js';
import { UserError } from '../util/errors.js';
import type { CandidateFiles } from './candidate.js';
import type { EvolveConfig } from './config.js';
import {
  type EvalOutcome,
  type Evaluator,
  isSoftwareAdapter,
  PLACEMENT_ARTIFACT,
  type Split,
} from './evaluator-types.js';
import { traceChecksum } from './trace-checksum.js';

/**
 * The series training evaluations score on: drawn with the run's secret seed (kept in its
 * config.json, out of the candidate's reach, so resume, replay and every broker worker draw the same
 * one), or the named trace when `secret_series` is off. Only the scored windows are drawn (the
 * generator costs about a second a window).
 */
export function trainingTrace(e: EvolveConfig['evaluator']): Trace {
  if (!e.trace)
    throw new UserError(
      'evaluator.trace is not set; name the training trace (a bundled name or a path) in the config',
    );
  // A plug-in evaluator (evaluator.module) scores on its own data: no series is drawn for it.
  if (!e.secret_series || e.module) return loadTrace(e.trace);
  if (e.series_seed === null)
    throw new UserError('evaluator.series_seed is not set; a run draws it when it starts');
  return drawSeries(e.trace, e.series_seed, e.windows !== null ? e.windows + 1 : undefined);
}

/** Adapts the sandboxed GPU evaluator pool to the controller's Evaluator interface. */
export async function createPoolEvaluator(config: EvolveConfig): Promise<Evaluator> {
  const e = config.evaluator;
  const train = trainingTrace(e);
  const heldout = e.heldout_trace ? loadTrace(e.heldout_trace) : null;
  const pool = await EvaluatorPool.create({
    workers: e.workers,
    timeoutS: e.timeout_s,
    ...(e.memory_mb !== null ? { memoryMb: e.memory_mb } : {}),
    ...(e.adapter !== null ? { adapter: e.adapter } : {}),
    ...(e.repeats !== null ? { prestart: e.repeats } : {}),
  });
  const deployment = {
    ...(e.replicas !== null ? { replicas: e.replicas } : {}),
    ...(e.gpus !== null ? { gpus: e.gpus } : {}),
    ...(e.nodes !== null ? { nodes: e.nodes } : {}),
    ...(e.groups !== null ? { groups: e.groups } : {}),
  };
  const opts = (trace: Trace): EvaluateOptions => ({
    trace,
    objective: e.objective,
    ...(e.windows !== null ? { windows: e.windows } : {}),
    ...(e.repeats !== null ? { repeats: e.repeats } : {}),
    ...(e.history !== null ? { history: e.history } : {}),
    deployment,
  });
  return {
    workers: e.workers,
    async evaluate(files: CandidateFiles, split: Split): Promise<EvalOutcome> {
      const trace = split === 'heldout' ? heldout : train;
      if (!trace) throw new UserError('no held-out trace configured (evaluator.heldout_trace)');
      return toOutcome(await pool.evaluate({ files }, opts(trace)));
    },
    hasHeldOut: () => heldout !== null,
    describe: () => ({
      problem: 'eplb',
      adapter: { name: pool.adapter, software: isSoftwareAdapter(pool.adapter) },
      objective: e.objective,
    }),
    traces: () => ({
      train: { name: train.manifest.name, sha256: traceChecksum(train) },
      ...(heldout ? { heldout: { name: heldout.manifest.name, sha256: traceChecksum(heldout) } } : {}),
    }),
    close: async () => {
      await pool.close();
    },
  };
}

/** Metrics the evaluation did not reach are null in EvalResult; the database keeps numbers only. */
function toOutcome(r: EvalResult): EvalOutcome {
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(r.metrics))
    if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
  // The GPU loads of one scored placement travel as the `placement` artifact (reports draw them;
  // prompts and failure classes leave that key out).
  const artifacts = r.gpu_loads
    ? { ...r.artifacts, [PLACEMENT_ARTIFACT]: JSON.stringify({ format: 'gpu-loads/1', ...r.gpu_loads }) }
    : r.artifacts;
  return { valid: r.valid, stage: r.stage, score: r.score, metrics, artifacts };
}
