import type { EvolveConfig } from './config.js';
import type { EvalOutcome } from './evaluator.js';
import { costOf } from './llm/types.js';
import {
  checkBestFolder,
  checkBlobs,
  checkCheckpoint,
  checkPrograms,
  checkSummary,
} from './report-checks.js';
import { failureClass } from './report-classify.js';
import { type HeldOutComparison, heldoutComparison } from './report-noise.js';
import type { RunFiles } from './report-read.js';
import type { RecordedReply, RefusalClass } from './run-log/events.js';
import type { RunProgram } from './run-log/fold.js';
import { walkLineage } from './run-log/lineage.js';

/** The metrics a report shows for every program (those the evaluator returned). */
export const KEY_METRICS = [
  'balancedness_next',
  'balancedness_same',
  'median_ms',
  'p95_ms',
  'adrs_score',
  'default_score',
] as const;

/** A committed program as the events describe it. */
export type ReportProgram = RunProgram;

export interface LineageStep {
  id: string;
  iteration: number;
  parent: string | null;
  mate: string | null;
  mutation: string;
  model: string | null;
  score: number | null;
  /** Score gained over the parent. */
  delta: number | null;
  /** Model answers this step took (2 = its first edit was sent back and the second applied). */
  answers: number;
}

export interface HeldOutSide {
  valid: boolean;
  score: number | null;
  metrics: Record<string, number>;
}

export interface ModelAccount {
  model: string;
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  /** Calls whose server sent no usage (tokens estimated from the text). */
  estimated_usage: number;
  /** HTTP retries within calls that finally answered (429, 5xx, timeouts). */
  http_retries: number;
  /** Calls that failed after their retries (logged as llm_error). */
  failed_calls: number;
  /** The model's own time per answered call (from the request to the answer, retries included). */
  mean_latency_ms: number | null;
  /** Time per answered call spent queued behind llm.concurrency before the request went out (null: not recorded). */
  mean_queued_ms: number | null;
}

export interface RunReport {
  format: 'adrs-evolve-report/1';
  dir: string;
  run: {
    mode: string | null;
    sessions: number;
    problem: string;
    candidate: string;
    seed: number;
    models: { name: string; weight: number; price_input_per_mtok: number; price_output_per_mtok: number }[];
    trace: string | null;
    heldout_trace: string | null;
    objective: string;
    evaluator_module: string | null;
    limits: {
      iterations: number;
      time_limit_s: number;
      budget_usd: number | null;
      budget_tokens: number | null;
      plateau: number;
      target_score: number | null;
    };
    search: { islands: number; parallel: number; mutations: Record<string, number> };
  };
  status: {
    state: 'finished' | 'stopped' | 'in-progress-or-killed' | 'seed-failed' | 'not-started';
    reason: string | null;
    detail: string | null;
    /** Seconds since events.jsonl was last written. */
    last_event_age_s: number;
  };
  wall_time_s: number;
  iterations: { committed: number; limit: number; outcomes: Record<string, number> };
  events: {
    read: number;
    lines: number;
    torn_final_line_bytes: number;
    bad_line: { line: number; ignored_after: number } | null;
  };
  metric_keys: string[];
  seed: ReportProgram | null;
  best: ReportProgram | null;
  gain: {
    train: number | null;
    heldout: number | null;
    /** Held-out gain / training gain. */
    heldout_retained: number | null;
    overfitting: boolean | null;
    /** Training quality and time of best against seed, each against its measured noise. */
    train_comparison: HeldOutComparison | null;
  };
  heldout: {
    for_best: string | null;
    stale: boolean;
    seed: HeldOutSide;
    best: HeldOutSide;
    /** Quality and time separately, each against its measured noise. */
    comparison: HeldOutComparison;
  } | null;
  lineage: LineageStep[];
  top: ReportProgram[];
  islands: { island: number; members: number; cells: number; cells_total: number; best_id: string | null }[];
  migrations: number | null;
  accounting: {
    models: ModelAccount[];
    total: Omit<ModelAccount, 'model'>;
    budget: { usd: number | null; tokens: number | null };
    patches: {
      answers: number;
      applied: number;
      refused_answers: Record<RefusalClass, number>;
      /** Per iteration: applied at once, applied after being sent back once, refused (class of the last reason). */
      applied_first: number;
      fixed_after_sendback: number;
      refused: Record<RefusalClass, number>;
    };
    duplicates: number;
    evaluations: {
      total: number;
      valid: number;
      invalid: number;
      invalid_by_class: Record<string, number>;
      mean_ms: number | null;
      per_minute: number | null;
    };
    evaluator_errors: { retried: number; failed: number };
  };
  progress: { iteration: number; best: number | null }[];
  /** The files compared with events.jsonl. */
  checked: string[];
  disagreements: string[];
  notes: string[];
}

const ERROR_STOPS = new Set(['model-error', 'evaluator-error']);

/** Counts, ordered by count (then name). */
function tally<K extends string>(
  keys: K[],
  init: Record<K, number> = {} as Record<K, number>,
): Record<K, number> {
  const out = { ...init };
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
}

const refusalZero = (): Record<RefusalClass, number> => ({
  'no-match': 0,
  ambiguous: 0,
  'outside-block': 0,
  malformed: 0,
  unchanged: 0,
  other: 0,
});

/** How far two money amounts may differ and still agree (JSON round trips, summation order). */
const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 + 1e-9 * Math.abs(b);

/**
 * The report of a run folder, computed from its recorded files only: events.jsonl decides, and
 * checkpoint.json, programs/, best/ and summary.json are checked against it; where they disagree
 * the report says so instead of choosing.
 */
export function buildRunReport(files: RunFiles, options: { top?: number } = {}): RunReport {
  const { config, events } = files;
  const disagreements: string[] = [];
  const notes: string[] = [];
  const disagree = (s: string): void => {
    if (!disagreements.includes(s)) disagreements.push(s);
  };

  // ------------------------------------------------------------ the events, folded (the reading --resume and --replay share)
  const run = files.state;
  const { programs, bestAfter, stops } = run;
  const evaluations = run.evaluations;
  const patchesByIteration = run.patches;
  const commits = run.commitLog.map(({ event, index }) => ({
    iteration: event.iteration,
    outcome: event.outcome,
    index,
    id: event.id,
  }));
  for (const a of run.anomalies) disagree(a);
  const finalBest = run.best;
  if (run.badBestField !== null)
    disagree(
      `events.jsonl: the commit of iteration ${run.badBestField} names a best program other than the highest score committed so far`,
    );
  const committed = run.committed;
  commits.forEach((c, i) => {
    if (c.iteration !== i)
      disagree(
        `events.jsonl: commits are not in iteration order (iteration ${c.iteration} at position ${i})`,
      );
  });
  const seed = programs.get('p0') ?? null;

  // ------------------------------------------------------------ status
  const lastStop = stops.at(-1);
  let state: RunReport['status']['state'];
  if (events.length === 0) state = 'not-started';
  else if (lastStop && lastStop.index > run.lastRunIndex)
    state = ERROR_STOPS.has(lastStop.reason) || lastStop.reason === 'interrupted' ? 'stopped' : 'finished';
  else if (!seed && [...evaluations.values()].some((v) => !v.result.valid)) state = 'seed-failed';
  else state = 'in-progress-or-killed';
  if (files.tail.tornBytes > 0) {
    notes.push(
      `events.jsonl ends in an incomplete line (${files.tail.tornBytes} bytes, a run killed mid-write); it was ignored, as --resume and --replay ignore it`,
    );
  }
  if (files.tail.badLine) {
    disagree(
      // Only the last complete line can be one (readRunLog refuses a log with lines after it).
      `events.jsonl line ${files.tail.badLine.line}, its last complete line, is not JSON; it was ignored (--resume cuts it off)`,
    );
  }

  // ------------------------------------------------------------ accounting
  const accounts = new Map<string, ModelAccount>();
  const account = (model: string): ModelAccount => {
    let a = accounts.get(model);
    if (!a) {
      a = { model, ...noCalls(), mean_latency_ms: 0 };
      accounts.set(model, a);
    }
    return a;
  };
  let costMismatch: string | null = null;
  const queued = new Map<string, number>();
  const queuedCalls = new Map<string, number>();
  for (const { reply } of run.answers) {
    const a = account(reply.model);
    a.calls++;
    a.prompt_tokens += reply.usage.prompt_tokens;
    a.completion_tokens += reply.usage.completion_tokens;
    a.cost_usd += reply.cost_usd;
    if (reply.usage.estimated) a.estimated_usage++;
    a.http_retries += reply.retried?.length ?? 0;
    a.mean_latency_ms! += reply.latency_ms;
    const q = queuedOf(reply);
    if (q !== null) {
      queued.set(a.model, (queued.get(a.model) ?? 0) + q);
      queuedCalls.set(a.model, (queuedCalls.get(a.model) ?? 0) + 1);
    }
    const priced = config.llm.models.find((m) => m.name === reply.model);
    if (priced && !close(reply.cost_usd, costOf(priced, reply.usage)) && !costMismatch) {
      costMismatch = `events.jsonl: a ${reply.model} call is recorded at $${Number(reply.cost_usd.toPrecision(8))} but its tokens at the config's prices cost $${Number(costOf(priced, reply.usage).toPrecision(8))}`;
    }
  }
  if (costMismatch) disagree(costMismatch);
  for (const f of run.llmErrors.values())
    account(run.prompt(f.iteration, f.attempt)?.model ?? 'unknown').failed_calls++;
  const models = [...accounts.values()].sort((a, b) => a.model.localeCompare(b.model));
  for (const a of models) {
    a.mean_latency_ms = a.calls > 0 ? a.mean_latency_ms! / a.calls : null;
    const n = queuedCalls.get(a.model) ?? 0;
    a.mean_queued_ms = n > 0 ? queued.get(a.model)! / n : null;
  }
  const total = noCalls();
  let latency = 0;
  for (const a of models) {
    total.calls += a.calls;
    total.prompt_tokens += a.prompt_tokens;
    total.completion_tokens += a.completion_tokens;
    total.cost_usd += a.cost_usd;
    total.estimated_usage += a.estimated_usage;
    total.http_retries += a.http_retries;
    total.failed_calls += a.failed_calls;
    latency += (a.mean_latency_ms ?? 0) * a.calls;
  }
  total.mean_latency_ms = total.calls > 0 ? latency / total.calls : null;
  const queuedN = [...queuedCalls.values()].reduce((x, y) => x + y, 0);
  total.mean_queued_ms = queuedN > 0 ? [...queued.values()].reduce((x, y) => x + y, 0) / queuedN : null;

  const refusedAnswers = refusalZero();
  const refusedIterations = refusalZero();
  let answers = 0;
  let applied = 0;
  let appliedFirst = 0;
  let fixed = 0;
  for (const list of patchesByIteration.values()) {
    for (const p of list) {
      answers++;
      if (p.ok) applied++;
      else refusedAnswers[p.kind]++;
    }
    const last = list.reduce((a, b) => (b.attempt > a.attempt ? b : a));
    if (last.ok && last.attempt === 1) appliedFirst++;
    else if (last.ok) fixed++;
  }
  const outcomes = tally(commits.filter((c) => c.iteration > 0).map((c) => c.outcome));
  for (const c of commits) {
    if (c.outcome !== 'refused' && c.outcome !== 'unchanged') continue;
    const last = patchesByIteration.get(c.iteration)?.at(-1);
    refusedIterations[last?.ok === false ? last.kind : 'other']++;
  }
  const evalList = [...evaluations.values()];
  const invalid = evalList.filter((v) => !v.result.valid);
  const wallS = run.wallMs / 1000;

  // ------------------------------------------------------------ top programs, islands, lineage, progress
  const metricKeys = chooseMetricKeys([...programs.values()]);
  const show = (p: ReportProgram): ReportProgram => ({ ...p, metrics: pick(p.metrics, metricKeys) });
  const ranked = [...programs.values()]
    .filter((p) => p.valid && p.score !== null)
    .sort((a, b) => b.score! - a.score! || a.iteration - b.iteration);
  const top = ranked.slice(0, Math.max(0, options.top ?? 10)).map(show);

  const walk = walkLineage(finalBest, (id) => programs.get(id));
  if (walk.missing !== null)
    disagree(`events.jsonl: ${walk.chain.at(-1)!.id}'s parent ${walk.missing} was never committed`);
  const lineage: LineageStep[] = walk.chain.reverse().map((p) => {
    const parent = p.parents[0] ? (programs.get(p.parents[0]) ?? null) : null;
    return {
      id: p.id,
      iteration: p.iteration,
      parent: p.parents[0] ?? null,
      mate: p.parents[1] ?? null,
      mutation: p.mutation,
      model: p.model,
      score: p.score,
      delta: parent?.score != null && p.score !== null ? p.score - parent.score : null,
      answers: patchesByIteration.get(p.iteration)?.length ?? 0,
    };
  });

  const progress = samplePoints(committed).map((iteration) => {
    const id = bestAfter.get(iteration) ?? null;
    return { iteration, best: id ? (programs.get(id)?.score ?? null) : null };
  });

  const cp = files.checkpoint;
  const islands =
    cp?.database?.islands?.map((isl, island) => {
      const ids = isl.members ?? [];
      const bestId = ids.reduce<string | null>((a, id) => {
        const s = cp.database.programs[id]?.score ?? null;
        return s !== null && (a === null || s > (cp.database.programs[a]?.score ?? -Infinity)) ? id : a;
      }, null);
      return {
        island,
        members: ids.length,
        cells: Object.keys(isl.grid ?? {}).length,
        cells_total: config.search.features.reduce((n, f) => n * f.bins, 1),
        best_id: bestId,
      };
    }) ?? [];

  // ------------------------------------------------------------ held-out
  let heldout: RunReport['heldout'] = null;
  const h = run.heldout;
  if (h) {
    const side = (r: EvalOutcome): HeldOutSide => ({
      valid: r.valid,
      score: r.score,
      metrics: pick(r.metrics ?? {}, metricKeys),
    });
    const stale = h.forBest !== (finalBest?.id ?? null);
    const seedHash = seed?.hash ?? null;
    const forBestHash = h.forBest ? (programs.get(h.forBest)?.hash ?? null) : null;
    heldout = {
      for_best: h.forBest,
      stale,
      seed: side(h.seed),
      best: side(h.best),
      comparison: heldoutComparison(
        h.seed.metrics ?? {},
        h.best.metrics ?? {},
        seedHash !== null && seedHash === forBestHash,
      ),
    };
    if (stale) {
      notes.push(
        `the held-out scores are those of ${h.forBest}, the best when they were taken; the run has since found ${finalBest?.id}, not yet re-scored (it is when the run finishes)`,
      );
    }
  }
  const trainGain = finalBest && seed ? finalBest.score! - seed.score! : null;
  const heldGain =
    heldout && !heldout.stale && heldout.best.score !== null && heldout.seed.score !== null
      ? heldout.best.score - heldout.seed.score
      : null;
  const overfitting =
    heldout && !heldout.stale && trainGain !== null
      ? trainGain > 0 && (!heldout.best.valid || heldGain === null || heldGain <= 0)
      : null;

  // ------------------------------------------------------------ the other files against the events
  checkCheckpoint(
    files,
    { commits, programs, bestAfter, responses: run.answers, committed },
    disagree,
    notes,
  );
  checkPrograms(files, evaluations, disagree);
  checkBlobs(files, disagree);
  const exported = [...stops].reverse().find((s) => !ERROR_STOPS.has(s.reason)) ?? null;
  checkBestFolder(files, exported, programs, finalBest, disagree, notes);
  checkSummary(files, exported, programs, seed, disagree, notes);
  for (const u of files.unreadable) disagree(`${u.path} cannot be read: ${u.error}`);

  return {
    format: 'adrs-evolve-report/1',
    dir: files.dir,
    run: runEssentials(config, run.firstMode, run.sessions),
    status: {
      state,
      reason: state === 'finished' || state === 'stopped' ? lastStop!.reason : null,
      detail: state === 'finished' || state === 'stopped' ? lastStop!.detail : null,
      last_event_age_s: files.eventsAgeS,
    },
    wall_time_s: wallS,
    iterations: { committed, limit: config.iterations, outcomes },
    events: {
      read: events.length,
      lines: files.tail.lines,
      torn_final_line_bytes: files.tail.tornBytes,
      bad_line: files.tail.badLine
        ? { line: files.tail.badLine.line, ignored_after: files.tail.badLine.ignoredAfter }
        : null,
    },
    metric_keys: metricKeys,
    seed: seed ? show(seed) : null,
    best: finalBest ? show(finalBest) : null,
    gain: {
      train: trainGain,
      heldout: heldGain,
      heldout_retained: trainGain && heldGain !== null ? heldGain / trainGain : null,
      overfitting,
      train_comparison:
        finalBest && seed
          ? heldoutComparison(seed.metrics, finalBest.metrics, finalBest.hash === seed.hash)
          : null,
    },
    heldout,
    lineage,
    top,
    islands,
    migrations: cp ? (cp.database?.migrations ?? null) : run.migrations,
    accounting: {
      models,
      total,
      budget: { usd: config.llm.budget_usd, tokens: config.llm.budget_tokens },
      patches: {
        answers,
        applied,
        refused_answers: refusedAnswers,
        applied_first: appliedFirst,
        fixed_after_sendback: fixed,
        refused: refusedIterations,
      },
      duplicates: outcomes.duplicate ?? 0,
      evaluations: {
        total: evalList.length,
        valid: evalList.length - invalid.length,
        invalid: invalid.length,
        invalid_by_class: tally(invalid.map((v) => failureClass(v.result))),
        mean_ms: evalList.length ? evalList.reduce((a, v) => a + v.ms, 0) / evalList.length : null,
        per_minute: wallS > 0 ? evalList.length / (wallS / 60) : null,
      },
      evaluator_errors: { ...run.evaluatorErrors },
    },
    progress,
    checked: [
      ...(files.checkpoint ? ['checkpoint.json'] : []),
      ...(evaluations.size ? ['programs/'] : []),
      ...(files.bestMetrics ? ['best/'] : []),
      ...(files.summary ? ['summary.json'] : []),
    ],
    disagreements,
    notes,
  };
}

/** Queueing before the request (recorded since replies carry queued_ms; null for older runs). */
function queuedOf(reply: RecordedReply): number | null {
  const q = reply.queued_ms;
  return typeof q === 'number' && Number.isFinite(q) ? q : null;
}

/** KEY_METRICS the programs have; a plug-in evaluator with other metrics shows its first few. */
function chooseMetricKeys(programs: ReportProgram[]): string[] {
  const seen = new Set(programs.flatMap((p) => Object.keys(p.metrics)));
  const keys = KEY_METRICS.filter((k) => seen.has(k));
  return keys.length > 0 ? keys : [...seen].slice(0, 4);
}

const pick = (m: Record<string, number>, keys: string[]): Record<string, number> =>
  Object.fromEntries(keys.filter((k) => k in m).map((k) => [k, m[k]!]));

/** Ten iterations spread evenly over 0..n (all of them when there are fewer). */
export function samplePoints(n: number, points = 10): number[] {
  if (n < points) return Array.from({ length: n + 1 }, (_, i) => i);
  return [...new Set(Array.from({ length: points }, (_, k) => Math.round((k * n) / (points - 1))))];
}

function runEssentials(c: EvolveConfig, mode: string | null, sessions: number): RunReport['run'] {
  const firstLine = c.problem.split('\n').find((l) => l.trim() !== '') ?? '';
  return {
    mode,
    sessions,
    problem: firstLine.length > 120 ? `${firstLine.slice(0, 117)}...` : firstLine,
    candidate: c.candidate,
    seed: c.seed,
    models: c.llm.models.map((m) => ({
      name: m.name,
      weight: m.weight,
      price_input_per_mtok: m.price_input_per_mtok,
      price_output_per_mtok: m.price_output_per_mtok,
    })),
    trace: c.evaluator.trace,
    heldout_trace: c.evaluator.heldout_trace,
    objective: c.evaluator.objective,
    evaluator_module: c.evaluator.module,
    limits: {
      iterations: c.iterations,
      time_limit_s: c.time_limit_s,
      budget_usd: c.llm.budget_usd,
      budget_tokens: c.llm.budget_tokens,
      plateau: c.stop.plateau,
      target_score: c.stop.target_score,
    },
    search: { islands: c.search.islands, parallel: c.search.parallel, mutations: { ...c.search.mutations } },
  };
}

/** A model account before its first call (means are null until there is something to average). */
function noCalls(): Omit<ModelAccount, 'model'> {
  return {
    calls: 0,
    prompt_tokens: 0,
    completion_tokens: 0,
    cost_usd: 0,
    estimated_usage: 0,
    http_retries: 0,
    failed_calls: 0,
    mean_latency_ms: null,
    mean_queued_ms: null,
  };
}
