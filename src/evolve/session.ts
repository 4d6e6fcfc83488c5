import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRunEvaluator } from '../distributed/run-evaluator.js';
import { secretSeriesSeed } from '../eval/series.js';
import { UserError } from '../util/errors.js';
import { loadSeed } from './candidate.js';
import {
  applyOverrides,
  type ConfigOverrides,
  checkEndpoint,
  type EvolveConfig,
  loadConfigFile,
  overrideFlags,
  resumeConfig,
} from './config.js';
import { type Activity, Controller, type Progress, type RunStats } from './controller.js';
import type { ProgramDatabase, ProgramRecord } from './database.js';
import { type EvalOutcome, type Evaluator, EvaluatorFailure, evaluateWithRetry } from './evaluator.js';
import { OpenAiModel } from './llm/openai-client.js';
import type { LanguageModel } from './llm/types.js';
import { LiveSource, type ProposalSource, ReplaySource, type RunMode } from './modes.js';
import { RunFolder } from './run-folder.js';
import { RUN_LOG_VERSION } from './run-log/events.js';
import { RunState } from './run-log/fold.js';
import { walkLineage } from './run-log/lineage.js';

export interface SessionOptions {
  /** New run: the config file. */
  configPath?: string;
  out?: string;
  resume?: string;
  replay?: string;
  overrides?: ConfigOverrides;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onActivity?: (inflight: Activity[], now: number) => void;
  /** Called once the run folder exists (a live dashboard can then serve it). */
  onFolder?: (dir: string) => void | Promise<void>;
  /** Tests: an evaluator built in-process instead of from the config. */
  evaluator?: Evaluator;
  /** Tests: a model other than the configured endpoint. */
  model?: LanguageModel;
  /** `--broker URL`: evaluate on `adrs worker` machines (src/distributed). */
  broker?: string;
}

export interface SessionResult {
  dir: string;
  stats: RunStats;
  best: ProgramRecord;
  seed: ProgramRecord;
  heldout: { seed: EvalOutcome; best: EvalOutcome } | null;
}

/** One `adrs evolve` invocation: a new run, a resumed one, or a replay; always leaves a consistent run folder. */
export async function runSession(o: SessionOptions): Promise<SessionResult> {
  const modes = [o.configPath, o.resume, o.replay].filter(Boolean).length;
  if (modes !== 1)
    throw new UserError('give exactly one of --config FILE (new run), --resume DIR or --replay DIR');
  if (o.resume && o.out !== undefined)
    throw new UserError('--out cannot be given with --resume: a resumed run continues in its own folder');
  const flags = overrideFlags(o.overrides ?? {});
  if (o.replay && flags.length > 0) {
    throw new UserError(
      `--replay re-runs the recorded run with its recorded config, so ${flags.join(', ')} would be ignored; drop ${flags.length > 1 ? 'them' : 'it'}`,
    );
  }
  let config: EvolveConfig;
  let mode: RunMode;
  let recording: { state: RunState; folder: RunFolder } | undefined;
  let resumed: { state: RunState; cleanBytes: number } | undefined;
  let seedFiles: Record<string, string> | undefined;
  /** Resume: the folder to continue. New run or replay: the folder to create. */
  let existing: RunFolder | undefined;
  let out = '';
  // Everything that can refuse the session comes before the run folder is written: a refused start
  // leaves no folder behind, a refused resume leaves its folder as it was.
  if (o.resume) {
    existing = RunFolder.open(o.resume);
    // A log the reader refuses (damaged, or from a newer adrs) refuses the resume here, before
    // config.json is rewritten; the controller continues from this reading (cutting a torn last line).
    const log = existing.readLog();
    resumed = { state: RunState.fold(log.events), cleanBytes: log.cleanBytes };
    const logged = resumed.state.committed;
    const checkpointed = existing.readCheckpoint()?.committed ?? 0;
    // checkpoint.json is written after the commit it records, so a kill leaves it at or behind the
    // log; ahead of it, the log lost commits (a copy, an edit, a power cut) that nothing can redo.
    if (checkpointed > logged)
      throw new UserError(
        `${existing.eventsPath} ends at iteration ${logged}, but checkpoint.json is at iteration ${checkpointed}: the log lost commits, so the run folder cannot be resumed`,
      );
    config = resumeConfig(existing.readConfig(), o.overrides ?? {}, checkpointed);
    if (!o.model) checkEndpoint(config);
    mode = 'resume';
  } else if (o.replay) {
    const src = RunFolder.open(o.replay);
    recording = { state: RunState.fold(src.readEvents()), folder: src };
    const seedCommit = recording.state.commits.get(0);
    if (!seedCommit?.hash) throw new UserError(`'${o.replay}' has no evaluated seed to replay from`);
    seedFiles = src.loadProgram(seedCommit.hash).files;
    config = src.readConfig();
    out = o.out ?? nextFree(join(o.replay, 'replay'));
    mode = 'replay';
  } else {
    config = applyOverrides(loadConfigFile(o.configPath!), o.overrides ?? {});
    out =
      o.out ??
      nextFree(resolve('runs', `evolve-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`));
    if (!o.model) checkEndpoint(config);
    seedFiles = loadSeed(config.candidate);
    // The secret training series' seed, drawn once per run and kept in its config.json.
    if (config.evaluator.secret_series && config.evaluator.series_seed === null && !config.evaluator.module)
      config.evaluator.series_seed = secretSeriesSeed();
    mode = 'start';
  }
  // A run recorded before drawn training series existed has no series seed: it scored, and goes on
  // scoring, on its named trace.
  if (mode !== 'start' && config.evaluator.secret_series && config.evaluator.series_seed === null)
    config.evaluator.secret_series = false;
  if (!existing) RunFolder.checkFree(out);
  // Where proposals come from, chosen once: the recording, or the model (asked afresh, or on resume
  // after the answers the run's own log already holds).
  const source: ProposalSource = recording
    ? new ReplaySource(recording.state, recording.folder.blobs, o.model)
    : new LiveSource(mode === 'resume' ? 'resume' : 'start', o.model ?? new OpenAiModel(config.llm));
  // Distributed evaluation (issue 12): the broker's evaluator, or the local one; the config to record has no password.
  let evaluator: Evaluator;
  if (o.evaluator) evaluator = o.evaluator;
  else {
    const runDir = existing?.dir ?? out;
    const made = await createRunEvaluator(config, {
      mode,
      runDir,
      ...(o.broker !== undefined ? { broker: o.broker } : {}),
    });
    ({ evaluator, config } = made);
  }
  let folder: RunFolder;
  try {
    if (existing) {
      folder = existing;
      folder.writeConfig(config);
    } else folder = RunFolder.create(out, config);
  } catch (error) {
    await evaluator.close();
    throw error;
  }
  try {
    await o.onFolder?.(folder.dir);
    const controller = new Controller({
      config,
      folder,
      evaluator,
      source,
      ...(seedFiles ? { seedFiles } : {}),
      ...(resumed ? { resumed } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.onActivity ? { onActivity: o.onActivity } : {}),
    });
    const stats = await controller.run();
    const db = controller.database;
    const best = db.best()!;
    const seed = db.get('p0');
    const heldout =
      stats.stopReason === 'interrupted' || !evaluator.hasHeldOut()
        ? null
        : ((stats.iterationsThisSession === 0 ? recordedHeldOut(controller.runLog) : null) ??
          (await scoreHeldOut(folder, evaluator, seed, best)));
    exportBest(folder, config, db, best, evaluator, mode);
    const result: SessionResult = { dir: folder.dir, stats, best, seed, heldout };
    folder.writeSummary({
      stop: { reason: stats.stopReason, detail: stats.stopDetail },
      iterations: stats.committed,
      seed: { id: seed.id, score: seed.score, metrics: seed.metrics, heldout: heldout?.seed ?? null },
      best: { id: best.id, score: best.score, metrics: best.metrics, heldout: heldout?.best ?? null },
      performance: {
        iterations_per_minute: stats.iterationsPerMinute,
        evaluator_utilisation: stats.evaluatorUtilisation,
        overhead_ms_per_iteration: stats.overheadMsPerIteration,
        mean_model_latency_ms: stats.meanModelLatencyMs,
      },
      counters: stats.counters,
      ...(stats.replayMismatches
        ? { replay: { mismatches: stats.replayMismatches, plan_divergences: stats.replayPlanDivergences } }
        : {}),
    });
    return result;
  } finally {
    await evaluator.close();
  }
}

/**
 * The held-out scores recorded after the last commit, if any: a session that committed nothing has
 * the same seed and best, so scoring them again would only cost time (and log them twice).
 */
function recordedHeldOut(run: RunState): { seed: EvalOutcome; best: EvalOutcome } | null {
  const h = run.heldout;
  if (!h || h.index < (run.commitLog.at(-1)?.index ?? -1)) return null;
  return { seed: h.seed, best: h.best };
}

/** Seed and best re-scored on the held-out trace: a gain that vanishes there is overfitting. */
async function scoreHeldOut(
  folder: RunFolder,
  evaluator: Evaluator,
  seed: ProgramRecord,
  best: ProgramRecord,
) {
  let s: EvalOutcome;
  let b: EvalOutcome;
  try {
    [s, b] = await Promise.all(
      [seed, best].map((p) => evaluateWithRetry(evaluator, folder.loadProgram(p.hash).files, 'heldout')),
    );
  } catch (error) {
    if (!(error instanceof EvaluatorFailure)) throw error;
    throw new UserError(
      `stopped: the evaluator failed twice re-scoring on the held-out trace: ${error.message} (the run folder can be resumed with --resume)`,
    );
  }
  folder.append({ type: 'heldout', v: RUN_LOG_VERSION, seed: s, best: b });
  return { seed: s, best: b };
}

function exportBest(
  folder: RunFolder,
  config: EvolveConfig,
  db: ProgramDatabase,
  best: ProgramRecord,
  evaluator: Evaluator,
  mode: string,
): void {
  const lineage = walkLineage(best, (id) => (db.has(id) ? db.get(id) : undefined)).chain.map((p) => ({
    id: p.id,
    iteration: p.iteration,
    mutation: p.mutation,
    model: p.model,
    parents: p.parents,
    score: p.score,
    hash: p.hash,
  }));
  const stored = folder.loadProgram(best.hash);
  folder.writeBest({
    files: stored.files,
    metrics: { id: best.id, score: best.score, metrics: best.metrics, artifacts: stored.result.artifacts },
    lineage,
    reproducer: {
      note: 'Re-run this search exactly with `adrs evolve --replay <run folder>`; re-score best/candidate with `adrs eval`.',
      mode,
      seed: config.seed,
      program_hash: best.hash,
      traces: evaluator.traces(),
      config,
      node: process.version,
    },
  });
}

function nextFree(base: string): string {
  if (!existsSync(base)) return base;
  for (let i = 2; ; i++) if (!existsSync(`${base}-${i}`)) return `${base}-${i}`;
}
