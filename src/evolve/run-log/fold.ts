import type { EvalOutcome } from '../evaluator-types.js';
import {
  type CommitEvent,
  type ComparisonRecord,
  type EventOf,
  eventKey,
  type PatchEvent,
  type Plan,
  type RecordedReply,
  type RunEvent,
} from './events.js';

/** A committed program as the events describe it (seed, valid or invalid; duplicates name an earlier one). */
export interface RunProgram {
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

export interface HeldOutRecord {
  index: number;
  seed: EvalOutcome;
  best: EvalOutcome;
  /** The best program when they were taken (that of the session's stop). */
  forBest: string | null;
}

export interface StopRecord {
  index: number;
  reason: string;
  detail: string;
  /** The best program when the session stopped. */
  bestId: string | null;
  committed: number;
}

const key = (iteration: number, attempt: number): string => `${iteration}:${attempt}`;

/**
 * The run as its events say it is: the one fold of events.jsonl that --resume (the controller's
 * record of what it already did), --replay (the recording) and the report (and its HTML page) all
 * read. `add` takes events in log order, so the controller folds as it logs and a reader folds a
 * whole file with `RunState.fold`.
 */
export class RunState {
  readonly plans = new Map<number, Plan>();
  readonly prompts = new Map<string, EventOf<'prompt'>>();
  readonly responses = new Map<string, RecordedReply>();
  /** Every answer with its event index (the checkpoint's spending is checked against a prefix). */
  readonly answers: { reply: RecordedReply; index: number }[] = [];
  readonly llmErrors = new Map<string, EventOf<'llm_error'>>();
  readonly patches = new Map<number, PatchEvent[]>();
  readonly evaluations = new Map<string, EventOf<'evaluation'>>();
  readonly evaluatorErrors = { retried: 0, failed: 0 };
  /** Noise-aware selection decisions by iteration (src/evolve/selection.ts). */
  readonly comparisons = new Map<number, ComparisonRecord>();
  readonly commits = new Map<number, EventOf<'commit'>>();
  /** Commits in log order, with their event index. */
  readonly commitLog: { event: EventOf<'commit'>; index: number }[] = [];
  readonly programs = new Map<string, RunProgram>();
  /** The best program: a recorded comparison decides, otherwise the higher score. */
  best: RunProgram | null = null;
  /** The best program's id after each commit, by iteration. */
  readonly bestAfter = new Map<number, string | null>();
  readonly stops: StopRecord[] = [];
  /** Held-out scores, one per session that took them (the last is the run's). */
  readonly heldouts: HeldOutRecord[] = [];
  sessions = 0;
  firstMode: string | null = null;
  lastRunIndex = -1;
  migrations = 0;
  /** The latest run-clock stamp, ms. */
  wallMs = 0;
  /** Totals over every answer logged (the budget survives restarts). */
  readonly spent = { usd: 0, prompt_tokens: 0, completion_tokens: 0, calls: 0 };
  /** Where the events contradict themselves (the report shows these). */
  readonly anomalies: string[] = [];
  /** First iteration whose commit names a best other than the fold's. */
  badBestField: number | null = null;
  /** Keys of logged events (eventKey), so a resumed run never writes the same event twice. */
  readonly logged = new Set<string>();
  private count = 0;

  static fold(events: readonly RunEvent[]): RunState {
    const s = new RunState();
    for (const e of events) s.add(e);
    return s;
  }

  get heldout(): HeldOutRecord | null {
    return this.heldouts.at(-1) ?? null;
  }

  get committed(): number {
    return this.commitLog.at(-1)?.event.iteration ?? 0;
  }

  prompt(iteration: number, attempt: number): EventOf<'prompt'> | undefined {
    return this.prompts.get(key(iteration, attempt));
  }

  response(iteration: number, attempt: number): RecordedReply | undefined {
    return this.responses.get(key(iteration, attempt));
  }

  llmError(iteration: number, attempt: number): EventOf<'llm_error'> | undefined {
    return this.llmErrors.get(key(iteration, attempt));
  }

  private anomaly(s: string): void {
    if (!this.anomalies.includes(s)) this.anomalies.push(s);
  }

  add(e: RunEvent): void {
    const index = this.count++;
    const k = eventKey(e);
    if (k !== null) {
      // The controller never logs a key twice (it uses the first and skips the rest), so the fold
      // does the same: a repeated answer must not be paid for twice, nor a repeated commit counted.
      if (this.logged.has(k)) {
        this.anomaly(`events.jsonl: ${k} is logged twice (line ${index + 1}); the first is used`);
        return;
      }
      this.logged.add(k);
    }
    if (typeof e.t === 'number') this.wallMs = Math.max(this.wallMs, e.t);
    switch (e.type) {
      case 'run':
        this.sessions++;
        this.lastRunIndex = index;
        this.firstMode ??= e.mode;
        break;
      case 'plan':
        this.plans.set(e.iteration, e.plan);
        break;
      case 'prompt':
        this.prompts.set(key(e.iteration, e.attempt), e);
        break;
      case 'response':
        this.responses.set(key(e.iteration, e.attempt), e.reply);
        this.answers.push({ reply: e.reply, index });
        this.spent.usd += e.reply.cost_usd;
        this.spent.prompt_tokens += e.reply.usage.prompt_tokens;
        this.spent.completion_tokens += e.reply.usage.completion_tokens;
        this.spent.calls++;
        break;
      case 'llm_error':
        this.llmErrors.set(key(e.iteration, e.attempt), e);
        break;
      case 'patch': {
        const list = this.patches.get(e.iteration) ?? [];
        list.push(e);
        this.patches.set(e.iteration, list);
        break;
      }
      case 'evaluation':
        this.evaluations.set(e.hash, e);
        break;
      case 'evaluator_error':
        if (e.retrying) this.evaluatorErrors.retried++;
        else this.evaluatorErrors.failed++;
        break;
      case 'comparison': {
        const { type: _t, v: _v, t: _time, ...c } = e;
        this.comparisons.set(e.iteration, c);
        break;
      }
      case 'migration':
        this.migrations++;
        break;
      case 'commit':
        this.commit(e, index);
        break;
      case 'stop':
        this.stops.push({
          index,
          reason: e.reason,
          detail: e.detail,
          bestId: this.best?.id ?? null,
          committed: this.committed,
        });
        break;
      case 'heldout':
        this.heldouts.push({ index, seed: e.seed, best: e.best, forBest: this.stops.at(-1)?.bestId ?? null });
        break;
    }
  }

  private commit(e: EventOf<'commit'>, index: number): void {
    const it = e.iteration;
    this.commits.set(it, e);
    this.commitLog.push({ event: e, index });
    if (e.outcome === 'seed' || e.outcome === 'valid' || e.outcome === 'invalid') {
      const p = this.program(e);
      this.programs.set(p.id, p);
      // A noise-aware comparison (src/evolve/selection.ts) decides; otherwise the higher score wins.
      const decided = this.comparisons.get(it)?.decision;
      const higher = !this.best || (p.score !== null && p.score > this.best.score!);
      if (p.valid && p.score !== null && (decided ? decided === 'promote' : higher)) this.best = p;
    }
    const current = this.best?.id ?? null;
    this.bestAfter.set(it, current);
    if (e.best !== undefined && e.best !== current && this.badBestField === null) this.badBestField = it;
  }

  private program(e: CommitEvent): RunProgram {
    const it = e.iteration;
    const id = e.id ?? `p${it}`;
    const plan = this.plans.get(it);
    const result = e.hash !== null ? this.evaluations.get(e.hash)?.result : undefined;
    if (!result)
      this.anomaly(`events.jsonl: ${id} (iteration ${it}) is committed without an evaluation event`);
    if (it > 0 && !plan) this.anomaly(`events.jsonl: iteration ${it} is committed without a plan event`);
    if (result && e.score !== (result.valid ? result.score : null))
      this.anomaly(`events.jsonl: ${id} is committed with score ${e.score} but evaluated at ${result.score}`);
    return {
      id,
      iteration: it,
      hash: e.hash ?? '',
      island: plan?.island ?? 0,
      parents: plan ? [plan.parent, ...(plan.mate ? [plan.mate] : [])] : [],
      mutation: it === 0 ? 'seed' : (plan?.mutation ?? 'unknown'),
      model: plan?.model ?? null,
      valid: e.outcome !== 'invalid' && e.score !== null,
      score: e.score,
      metrics: result?.metrics ?? {},
    };
  }
}
