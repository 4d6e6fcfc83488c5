import type { EvolveConfig } from './config.js';
import type { EvalOutcome } from './evaluator.js';
import { costOf, type LlmReply } from './llm/types.js';
import type { Plan } from './recorded.js';
import { failureClass, type RefusalClass, refusalClass } from './report-classify.js';
import { type HeldOutComparison, heldoutComparison } from './report-noise.js';
import type { RunFiles } from './report-read.js';
import type { RunEvent } from './run-folder.js';

/** The metrics a report shows for every program (those the evaluator returned). */
export const KEY_METRICS = [
  'balancedness_next',
  'balancedness_same',
  'median_ms',
  'p95_ms',
  'adrs_score',
  'default_score',
] as const;

export interface ReportProgram {
  id: string;
  iteration: number;
  hash: string;
  island: number;
  parents: string[];
  mutation: string;
  model: string | null;
  valid: boolean;
  score: number | null;
  metrics: Record<string, number>;
}

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

  // ------------------------------------------------------------ one pass over the events
  const plans = new Map<number, Plan>();
  const evaluations = new Map<string, { result: EvalOutcome; ms: number }>();
  const promptModel = new Map<string, string>();
  const patchesByIteration = new Map<number, { attempt: number; ok: boolean; reason?: string }[]>();
  const responses: { reply: LlmReply; index: number }[] = [];
  const llmErrors: { key: string; fatal: boolean }[] = [];
  const programs = new Map<string, ReportProgram>();
  const byHash = new Map<string, ReportProgram>();
  const commits: { iteration: number; outcome: string; index: number; id: string | null }[] = [];
  /** Best program id after each commit, by iteration. */
  const bestAfter = new Map<number, string | null>();
  const stops: { index: number; reason: string; detail: string; bestId: string | null; committed: number }[] =
    [];
  let best: ReportProgram | null = null;
  let mode: string | null = null;
  let sessions = 0;
  let lastRun = -1;
  let wallMs = 0;
  let evaluatorRetried = 0;
  let evaluatorFailed = 0;
  let heldoutEvent: { index: number; seed: EvalOutcome; best: EvalOutcome; forBest: string | null } | null =
    null;
  let migrations = 0;
  let badBestField: number | null = null;
  const decisions = new Map<number, string>();

  for (const [index, e] of events.entries()) {
    if (typeof e.t === 'number') wallMs = Math.max(wallMs, e.t);
    const it = e.iteration as number;
    switch (e.type) {
      case 'run':
        sessions++;
        lastRun = index;
        mode ??= (e.mode as string) ?? null;
        break;
      case 'plan':
        plans.set(it, e.plan as Plan);
        break;
      case 'prompt':
        promptModel.set(`${it}:${e.attempt}`, e.model as string);
        break;
      case 'response':
        responses.push({ reply: e.reply as LlmReply, index });
        break;
      case 'llm_error':
        llmErrors.push({ key: `${it}:${e.attempt}`, fatal: Boolean(e.fatal) });
        break;
      case 'patch': {
        const list = patchesByIteration.get(it) ?? [];
        list.push({
          attempt: e.attempt as number,
          ok: Boolean(e.ok),
          ...(typeof e.reason === 'string' ? { reason: e.reason } : {}),
        });
        patchesByIteration.set(it, list);
        break;
      }
      case 'evaluation':
        evaluations.set(e.hash as string, { result: e.result as EvalOutcome, ms: (e.ms as number) ?? 0 });
        break;
      case 'evaluator_error':
        if (e.retrying) evaluatorRetried++;
        else evaluatorFailed++;
        break;
      case 'migration':
        migrations++;
        break;
      case 'comparison':
        decisions.set(it, e.decision as string);
        break;
      case 'commit': {
        const outcome = e.outcome as string;
        const id = (e.id as string | null) ?? null;
        commits.push({ iteration: it, outcome, index, id });
        if (outcome === 'seed' || outcome === 'valid' || outcome === 'invalid') {
          const p = programFromCommit(e, plans.get(it), evaluations.get(e.hash as string)?.result, disagree);
          programs.set(p.id, p);
          byHash.set(p.hash, p);
          // A noise-aware comparison (src/evolve/selection.ts) decides; otherwise the higher score wins.
          const decided = decisions.get(it);
          const higher = !best || (p.score !== null && p.score > best.score!);
          if (p.valid && p.score !== null && (decided ? decided === 'promote' : higher)) best = p;
        }
        const current = (best as ReportProgram | null)?.id ?? null;
        bestAfter.set(it, current);
        if (typeof e.best === 'string' && e.best !== current && badBestField === null) badBestField = it;
        break;
      }
      case 'stop':
        stops.push({
          index,
          reason: e.reason as string,
          detail: (e.detail as string) ?? '',
          bestId: (best as ReportProgram | null)?.id ?? null,
          committed: commits.length ? commits.at(-1)!.iteration : 0,
        });
        break;
      case 'heldout':
        heldoutEvent = {
          index,
          seed: e.seed as EvalOutcome,
          best: e.best as EvalOutcome,
          forBest: stops.at(-1)?.bestId ?? null,
        };
        break;
    }
  }
  const finalBest = best as ReportProgram | null;
  if (badBestField !== null)
    disagree(
      `events.jsonl: the commit of iteration ${badBestField} names a best program other than the highest score committed so far`,
    );
  const committed = commits.length ? commits.at(-1)!.iteration : 0;
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
  else if (lastStop && lastStop.index > lastRun)
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
      `events.jsonl line ${files.tail.badLine.line} is not JSON; it and the ${files.tail.badLine.ignoredAfter} line(s) after it were ignored (--resume would cut the file there)`,
    );
  }

  // ------------------------------------------------------------ accounting
  const accounts = new Map<string, ModelAccount>();
  const account = (model: string): ModelAccount => {
    let a = accounts.get(model);
    if (!a) {
      a = {
        model,
        calls: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0,
        estimated_usage: 0,
        http_retries: 0,
        failed_calls: 0,
        mean_latency_ms: 0,
        mean_queued_ms: null,
      };
      accounts.set(model, a);
    }
    return a;
  };
  let costMismatch: string | null = null;
  const queued = new Map<string, number>();
  const queuedCalls = new Map<string, number>();
  for (const { reply } of responses) {
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
  for (const f of llmErrors) account(promptModel.get(f.key) ?? 'unknown').failed_calls++;
  const models = [...accounts.values()].sort((a, b) => a.model.localeCompare(b.model));
  for (const a of models) {
    a.mean_latency_ms = a.calls > 0 ? a.mean_latency_ms! / a.calls : null;
    const n = queuedCalls.get(a.model) ?? 0;
    a.mean_queued_ms = n > 0 ? queued.get(a.model)! / n : null;
  }
  const total: Omit<ModelAccount, 'model'> = {
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
      else refusedAnswers[refusalClass(p.reason ?? '')]++;
    }
    const last = list.reduce((a, b) => (b.attempt > a.attempt ? b : a));
    if (last.ok && last.attempt === 1) appliedFirst++;
    else if (last.ok) fixed++;
  }
  const outcomes = tally(commits.filter((c) => c.iteration > 0).map((c) => c.outcome));
  for (const c of commits) {
    if (c.outcome !== 'refused' && c.outcome !== 'unchanged') continue;
    const last = patchesByIteration.get(c.iteration)?.at(-1);
    refusedIterations[refusalClass(last?.reason ?? '')]++;
  }
  const evalList = [...evaluations.values()];
  const invalid = evalList.filter((v) => !v.result.valid);
  const wallS = wallMs / 1000;

  // ------------------------------------------------------------ top programs, islands, lineage, progress
  const metricKeys = chooseMetricKeys([...programs.values()]);
  const show = (p: ReportProgram): ReportProgram => ({ ...p, metrics: pick(p.metrics, metricKeys) });
  const ranked = [...programs.values()]
    .filter((p) => p.valid && p.score !== null)
    .sort((a, b) => b.score! - a.score! || a.iteration - b.iteration);
  const top = ranked.slice(0, Math.max(0, options.top ?? 10)).map(show);

  const lineage: LineageStep[] = [];
  for (let p = finalBest; p; p = p.parents[0] ? (programs.get(p.parents[0]) ?? null) : null) {
    const parent = p.parents[0] ? (programs.get(p.parents[0]) ?? null) : null;
    if (p.parents[0] && !parent)
      disagree(`events.jsonl: ${p.id}'s parent ${p.parents[0]} was never committed`);
    lineage.unshift({
      id: p.id,
      iteration: p.iteration,
      parent: p.parents[0] ?? null,
      mate: p.parents[1] ?? null,
      mutation: p.mutation,
      model: p.model,
      score: p.score,
      delta: parent?.score != null && p.score !== null ? p.score - parent.score : null,
      answers: patchesByIteration.get(p.iteration)?.length ?? 0,
    });
    if (lineage.length > programs.size) break;
  }

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
  const h = heldoutEvent as typeof heldoutEvent | null;
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
  checkCheckpoint(files, { commits, programs, bestAfter, responses, committed }, disagree, notes);
  checkPrograms(files, evaluations, disagree);
  const exported = [...stops].reverse().find((s) => !ERROR_STOPS.has(s.reason)) ?? null;
  checkBestFolder(files, exported, programs, finalBest, disagree, notes);
  checkSummary(files, exported, programs, seed, disagree, notes);
  for (const u of files.unreadable) disagree(`${u.path} cannot be read: ${u.error}`);

  return {
    format: 'adrs-evolve-report/1',
    dir: files.dir,
    run: runEssentials(config, mode, sessions),
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
    migrations: cp ? (cp.database?.migrations ?? null) : migrations,
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
      evaluator_errors: { retried: evaluatorRetried, failed: evaluatorFailed },
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
function queuedOf(reply: LlmReply): number | null {
  const q = reply.queued_ms;
  return typeof q === 'number' && Number.isFinite(q) ? q : null;
}

function programFromCommit(
  e: RunEvent,
  plan: Plan | undefined,
  result: EvalOutcome | undefined,
  disagree: (s: string) => void,
): ReportProgram {
  const it = e.iteration as number;
  const id = (e.id as string) ?? `p${it}`;
  if (!result) disagree(`events.jsonl: ${id} (iteration ${it}) is committed without an evaluation event`);
  if (it > 0 && !plan) disagree(`events.jsonl: iteration ${it} is committed without a plan event`);
  const score = (e.score as number | null) ?? null;
  if (result && score !== (result.valid ? result.score : null))
    disagree(`events.jsonl: ${id} is committed with score ${score} but evaluated at ${result.score}`);
  return {
    id,
    iteration: it,
    hash: e.hash as string,
    island: plan?.island ?? 0,
    parents: plan ? [plan.parent, ...(plan.mate ? [plan.mate] : [])] : [],
    mutation: it === 0 ? 'seed' : (plan?.mutation ?? 'unknown'),
    model: plan?.model ?? null,
    valid: e.outcome !== 'invalid' && score !== null,
    score,
    metrics: result?.metrics ?? {},
  };
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

interface EventIndex {
  commits: { iteration: number; outcome: string; index: number; id: string | null }[];
  programs: Map<string, ReportProgram>;
  bestAfter: Map<number, string | null>;
  responses: { reply: LlmReply; index: number }[];
  committed: number;
}

/** checkpoint.json holds the database and counters as of its `committed` iteration: both must follow from the events. */
function checkCheckpoint(
  files: RunFiles,
  ev: EventIndex,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const cp = files.checkpoint;
  if (!cp) {
    if (ev.commits.length > 0) disagree('checkpoint.json is missing although iterations were committed');
    return;
  }
  const k = cp.committed;
  if (k > ev.committed) {
    disagree(`checkpoint.json is at iteration ${k} but events.jsonl commits only up to ${ev.committed}`);
    return;
  }
  if (k < ev.committed - 1) {
    disagree(
      `checkpoint.json is at iteration ${k}, ${ev.committed - k} behind events.jsonl (${ev.committed})`,
    );
  } else if (k === ev.committed - 1) {
    notes.push(
      `checkpoint.json is one iteration behind events.jsonl (killed between logging iteration ${ev.committed} and checkpointing it; --resume commits it again from the recorded events)`,
    );
  }
  const bestThen = ev.bestAfter.get(k) ?? null;
  if ((cp.database?.best ?? null) !== bestThen) {
    disagree(
      `checkpoint.json names ${cp.database?.best} the best program at iteration ${k}; events.jsonl says ${bestThen}`,
    );
  }
  const wrong: string[] = [];
  for (const [id, p] of Object.entries(cp.database?.programs ?? {})) {
    const e = ev.programs.get(id);
    if (!e || e.hash !== p.hash || e.score !== p.score) wrong.push(id);
  }
  if (wrong.length > 0) {
    disagree(
      `checkpoint.json: ${wrong.length} program(s) differ from their commit in events.jsonl (${wrong.slice(0, 5).join(', ')})`,
    );
  }
  const upTo = ev.commits.filter((c) => c.iteration <= k);
  const count = (outcomes: string[]) => upTo.filter((c) => outcomes.includes(c.outcome)).length;
  const c = cp.counters;
  if (c) {
    const exact: [string, number, number][] = [
      ['evaluations', c.evaluations, count(['seed', 'valid', 'invalid'])],
      ['duplicates', c.duplicates, count(['duplicate'])],
      ['refused', c.refused, count(['refused', 'unchanged'])],
      ['best_iteration', c.best_iteration, bestThen ? (ev.programs.get(bestThen)?.iteration ?? -1) : 0],
    ];
    for (const [name, recorded, computed] of exact) {
      if (recorded !== computed)
        disagree(`checkpoint.json counters.${name} = ${recorded}; events.jsonl gives ${computed}`);
    }
    // The checkpoint's spending is that of every answer logged by its commit; later answers (of
    // iterations still in flight) may be in it too, but nothing beyond the whole file.
    const commitIndex = upTo.at(-1)?.index ?? -1;
    const spent = (before: number) => {
      const r = ev.responses.filter((x) => x.index < before).map((x) => x.reply);
      return {
        llm_calls: r.length,
        prompt_tokens: r.reduce((a, x) => a + x.usage.prompt_tokens, 0),
        completion_tokens: r.reduce((a, x) => a + x.usage.completion_tokens, 0),
        cost_usd: r.reduce((a, x) => a + x.cost_usd, 0),
      };
    };
    const lo = spent(commitIndex);
    const hi = spent(Number.POSITIVE_INFINITY);
    for (const key of ['llm_calls', 'prompt_tokens', 'completion_tokens', 'cost_usd'] as const) {
      const v = c[key];
      if (!(v >= lo[key] - 1e-9 && v <= hi[key] + 1e-9)) {
        const n = (x: number) => Number(x.toPrecision(8));
        disagree(
          `checkpoint.json counters.${key} = ${n(v)}; the answers in events.jsonl give ${lo[key] === hi[key] ? n(lo[key]) : `${n(lo[key])}–${n(hi[key])}`}`,
        );
      }
    }
  }
}

/** Every evaluation event has its program stored, with the same verdict. */
function checkPrograms(
  files: RunFiles,
  evaluations: Map<string, { result: EvalOutcome }>,
  disagree: (s: string) => void,
): void {
  const missing: string[] = [];
  const differ: string[] = [];
  for (const [hash, { result }] of evaluations) {
    const stored = files.program(hash);
    if (!stored) missing.push(hash);
    else if (stored.result?.score !== result.score || stored.result?.valid !== result.valid)
      differ.push(hash);
  }
  if (missing.length)
    disagree(
      `programs/: ${missing.length} evaluated program(s) not stored (${missing.slice(0, 3).join(', ')})`,
    );
  if (differ.length) {
    disagree(
      `programs/: ${differ.length} stored result(s) differ from their evaluation event (${differ.slice(0, 3).join(', ')})`,
    );
  }
}

/** best/ is written when a session ends: it must hold the best program as of that session's stop. */
function checkBestFolder(
  files: RunFiles,
  exported: { bestId: string | null } | null,
  programs: Map<string, ReportProgram>,
  /** The run's best as the events decide it (comparisons included), not merely the highest score. */
  current: ReportProgram | null,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const m = files.bestMetrics;
  if (!m) {
    if (exported)
      notes.push('best/metrics.json is missing although a session ended (killed while exporting?)');
    return;
  }
  const expected = exported?.bestId ? programs.get(exported.bestId) : undefined;
  if (!expected) {
    disagree(`best/metrics.json names ${String(m.id)}, but no session of this run ended with a best program`);
    return;
  }
  if (m.id !== expected.id || m.score !== expected.score) {
    disagree(
      `best/metrics.json says the best is ${String(m.id)} (score ${String(m.score)}); events.jsonl says ${expected.id} (score ${expected.score})`,
    );
  } else if (current && current.id !== expected.id) {
    notes.push(
      `best/ holds ${expected.id}, the best when the last session ended; the run has since found ${current.id} (best/ is rewritten when the run stops)`,
    );
  }
  const metrics = (m.metrics ?? {}) as Record<string, number>;
  const differ = Object.keys(expected.metrics).filter((k) => metrics[k] !== expected.metrics[k]);
  if (m.id === expected.id && differ.length > 0)
    disagree(
      `best/metrics.json: ${differ.join(', ')} differ from ${expected.id}'s evaluation in events.jsonl`,
    );
  if (files.bestCandidateHash && files.bestCandidateHash !== expected.hash) {
    disagree(
      `best/candidate holds program ${files.bestCandidateHash}, not ${expected.id}'s code (${expected.hash})`,
    );
  }
  if (files.bestLineage) {
    const ids = files.bestLineage.map((s) => (s as { id?: unknown }).id);
    const chain: string[] = [];
    for (
      let p: ReportProgram | undefined = expected;
      p;
      p = p.parents[0] ? programs.get(p.parents[0]) : undefined
    ) {
      chain.push(p.id);
      if (chain.length > programs.size) break;
    }
    if (JSON.stringify(ids) !== JSON.stringify(chain))
      disagree(
        `best/lineage.json (${ids.join(' ← ')}) differs from the events' lineage (${chain.join(' ← ')})`,
      );
  }
}

function checkSummary(
  files: RunFiles,
  exported: { reason: string; bestId: string | null; committed: number } | null,
  programs: Map<string, ReportProgram>,
  seed: ReportProgram | null,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const s = files.summary as {
    stop?: { reason?: string };
    iterations?: number;
    best?: { id?: string; score?: number | null };
    seed?: { score?: number | null };
  } | null;
  if (!s) return;
  if (!exported) {
    disagree('summary.json exists, but no session of this run ended');
    return;
  }
  const expected = exported.bestId ? programs.get(exported.bestId) : undefined;
  const problems: string[] = [];
  if (s.stop?.reason !== exported.reason) problems.push(`stop ${s.stop?.reason} vs ${exported.reason}`);
  if (s.iterations !== exported.committed)
    problems.push(`iterations ${s.iterations} vs ${exported.committed}`);
  if (s.best?.id !== expected?.id || s.best?.score !== expected?.score)
    problems.push(`best ${s.best?.id} (${s.best?.score}) vs ${expected?.id} (${expected?.score})`);
  if (seed && s.seed?.score !== seed.score) problems.push(`seed score ${s.seed?.score} vs ${seed.score}`);
  if (problems.length) disagree(`summary.json disagrees with events.jsonl: ${problems.join('; ')}`);
  const last = files.events.findLastIndex((e) => e.type === 'commit');
  const stopsAfter = files.events.findLastIndex((e) => e.type === 'stop');
  if (last > stopsAfter) notes.push('summary.json is from an earlier session; the run has gone on since');
}
