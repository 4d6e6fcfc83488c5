import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import type { CandidateFiles } from './candidate.js';
import type { EvolveConfig } from './config.js';
import type { EvalOutcome, Evaluator, Split } from './evaluator.js';

/** The parts of src/eval's EvaluatorPool (issue 4) this adapter uses. */
interface PoolLike {
  evaluate(
    candidate: { files: Record<string, string> },
    opts: { trace: unknown; objective: 'adrs' | 'default'; windows?: number; repeats?: number },
  ): Promise<{
    valid: boolean;
    stage: number;
    score: number | null;
    metrics: Record<string, number>;
    artifacts: Record<string, string>;
  }>;
  close(): Promise<void> | void;
}

interface TraceLike {
  manifest: { name: string; data: string };
  path?: string;
}

// Resolved at run time so that evolution builds and tests even where the GPU evaluator is absent.
const POOL_MODULE = '../eval/pool.js';
const TRACE_MODULE = '../trace/load.js';

/** Adapts the sandboxed GPU evaluator pool to the controller's Evaluator interface. */
export async function createPoolEvaluator(config: EvolveConfig): Promise<Evaluator> {
  const e = config.evaluator;
  if (!e.trace)
    throw new UserError(
      'evaluator.trace is not set; name the training trace (a bundled name or a path) in the config',
    );
  let poolMod: { EvaluatorPool: { create(o: Record<string, unknown>): Promise<PoolLike> } };
  let traceMod: { loadTrace(p: string): TraceLike };
  try {
    poolMod = await import(POOL_MODULE);
    traceMod = await import(TRACE_MODULE);
  } catch (error) {
    throw new UserError(
      `the GPU evaluator pool cannot be loaded (${(error as Error).message.split('\n')[0]}); set evaluator.module to use another evaluator`,
    );
  }
  const train = traceMod.loadTrace(e.trace);
  const heldout = e.heldout_trace ? traceMod.loadTrace(e.heldout_trace) : null;
  const pool = await poolMod.EvaluatorPool.create({
    workers: e.workers,
    timeoutS: e.timeout_s,
    ...(e.memory_mb !== null ? { memoryMb: e.memory_mb } : {}),
    ...(e.adapter !== null ? { adapter: e.adapter } : {}),
  });
  const opts = (trace: TraceLike) => ({
    trace,
    objective: e.objective,
    ...(e.windows !== null ? { windows: e.windows } : {}),
    ...(e.repeats !== null ? { repeats: e.repeats } : {}),
  });
  return {
    workers: e.workers,
    async evaluate(files: CandidateFiles, split: Split): Promise<EvalOutcome> {
      const trace = split === 'heldout' ? heldout : train;
      if (!trace) throw new UserError('no held-out trace configured (evaluator.heldout_trace)');
      const r = await pool.evaluate({ files }, opts(trace));
      return { valid: r.valid, stage: r.stage, score: r.score, metrics: r.metrics, artifacts: r.artifacts };
    },
    hasHeldOut: () => heldout !== null,
    traces: () => ({
      train: { name: train.manifest.name, sha256: traceChecksum(train) },
      ...(heldout ? { heldout: { name: heldout.manifest.name, sha256: traceChecksum(heldout) } } : {}),
    }),
    close: async () => {
      await pool.close();
    },
  };
}

/** sha256 over the manifest and the binary loads file, so a reproducer names exactly the data it was scored on. */
function traceChecksum(t: TraceLike): string {
  const h = createHash('sha256');
  if (t.path) {
    h.update(readFileSync(t.path));
    const dataPath = new URL(t.manifest.data, `file://${t.path}`).pathname;
    try {
      h.update(readFileSync(dataPath));
    } catch {
      // The data may live elsewhere for generated traces; the manifest still pins its generator and seed.
    }
  } else h.update(JSON.stringify(t.manifest));
  return h.digest('hex');
}
