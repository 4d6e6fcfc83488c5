import { AbortFanout } from '../util/abort.js';
import { assert, UserError } from '../util/errors.js';
import { type CandidateFiles, loadSeed, programHash } from './candidate.js';
import type { Checkpoint } from './checkpoint.js';
import type { EvolveConfig } from './config.js';
import { iterationRng, ProgramDatabase, type ProgramRecord } from './database.js';
import { applyModelEdit } from './edit.js';
import {
  type EvalOutcome,
  type Evaluator,
  EvaluatorFailure,
  evaluateWithRetry,
  PLACEMENT_ARTIFACT,
  scoreNoise,
} from './evaluator.js';
import { Semaphore } from './llm/semaphore.js';
import type { ChatMessage, LlmReply } from './llm/types.js';
import { LlmCallError } from './llm/types.js';
import { type ProposalSource, type ReplayFindings, replyOf } from './modes.js';
import type { PatchResult } from './patch.js';
import { type Attempt, buildPrompt, type PromptProgram, retryMessage } from './prompts.js';
import type { RunFolder } from './run-folder.js';
import {
  type CommitEvent,
  type CommitOutcome,
  type ComparisonRecord,
  eventKey,
  type NewEvent,
  type Plan,
  type RefusalKind,
  RUN_LOG_VERSION,
  type RunEvent,
} from './run-log/events.js';
import { RunState } from './run-log/fold.js';
import { decide, interleavedOrder } from './selection.js';
import { TimeSums } from './timing.js';

export type StopReason =
  | 'iterations'
  | 'time'
  | 'budget'
  | 'plateau'
  | 'target'
  | 'interrupted'
  | 'replay-end'
  | 'model-error'
  | 'evaluator-error';

export interface Progress {
  iteration: number;
  committed: number;
  best: ProgramRecord;
  seed: ProgramRecord;
  evalsPerMin: number;
  tokens: number;
  costUsd: number;
  elapsedS: number;
  lastOutcome: string;
  /** Why the last iteration was refused, failed or invalid (its first line), when it was. */
  lastReason?: string;
  /** Why the patcher refused the last iteration's edit, when it did. */
  lastRefusal?: RefusalKind;
}

/** What one in-flight iteration is waiting for, and since when (the controller's clock), for a live status line. */
export interface Activity {
  iteration: number;
  stage: 'model' | 'evaluation-queued' | 'evaluation';
  model: string | null;
  since: number;
}

export interface RunStats extends ReplayFindings {
  stopReason: StopReason;
  stopDetail: string;
  committed: number;
  elapsedS: number;
  /** This session only: how busy the evaluator workers were, 0..1. */
  evaluatorUtilisation: number;
  /** Mean controller time per iteration outside model calls and evaluations (prompting, patching, bookkeeping). */
  overheadMsPerIteration: number;
  meanModelLatencyMs: number;
  iterationsThisSession: number;
  evaluationsThisSession: number;
  iterationsPerMinute: number;
  counters: Checkpoint['counters'];
  /** This session: re-measurements made by the noise-aware selection, and its decisions (measured or reused). */
  remeasurementsThisSession: number;
  comparisons: { promoted: number; kept: number };
}

export interface ControllerOptions {
  config: EvolveConfig;
  folder: RunFolder;
  evaluator: Evaluator;
  /** Live (new or resumed run) or replay (src/evolve/modes.ts): where proposals come from. */
  source: ProposalSource;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Called whenever an in-flight iteration starts waiting for something else (progress display only). */
  onActivity?: (inflight: Activity[], now: number) => void;
  /** The seed's files when already read: exactly as recorded for a replay (the seed folder may have changed since), checked by loadSeed for a new run. */
  seedFiles?: CandidateFiles;
  /** Injectable clock for tests of time limits. */
  now?: () => number;
  /**
   * A continued run (resume): its log as the session read and folded it, and how many bytes of
   * events.jsonl its events take (a torn last line after them is cut before appending).
   */
  resumed?: { state: RunState; cleanBytes: number };
}

interface IterationResult {
  plan: Plan;
  outcome: 'new' | 'refused' | 'unchanged' | 'model-failed' | 'budget' | 'aborted';
  hash: string | null;
  files: CandidateFiles | null;
  result: EvalOutcome | null;
  reason?: string;
  /** Refused: the patcher's class of the refusal. */
  refusal?: RefusalKind;
  fatal?: boolean;
}

/** What the noise-aware selection decided for a new program that beat the best's score (none: the plain rule). */
interface Selection {
  decision?: 'promote' | 'keep';
  comparison?: ComparisonRecord;
}

/**
 * The evolution loop. Up to `search.parallel` iterations are in flight at once (model calls and
 * evaluations overlap), but results enter the database strictly in iteration order and iteration
 * i is always planned from the database holding iterations < i − parallel + 1, with an RNG
 * derived from (seed, i). So the sequence of programs depends only on the seed, the responses
 * and the scores — never on timing — which is what makes resume and replay exact.
 */
export class Controller {
  private readonly config: EvolveConfig;
  private readonly folder: RunFolder;
  /** This run's own log, folded (resume: what it did before; always: what it has logged). */
  private readonly own: RunState;
  private readonly source: ProposalSource;
  private db!: ProgramDatabase;
  private cp!: Checkpoint;
  /** null: the evaluator failed (the run is stopping); the program has no verdict. */
  private readonly inflightEvals = new Map<string, Promise<EvalOutcome | null>>();
  /** The run's stop: each model call gets its own child signal, so the run-wide one gathers no listeners. */
  private readonly abort = new AbortFanout();
  private readonly evalGate: Semaphore;
  private readonly now: () => number;
  private readonly t0: number;
  private elapsedBefore = 0;
  private stop: { reason: StopReason; detail: string } | null = null;
  /** Controller overhead (prompting, patching, bookkeeping) and evaluator busy time, ms. */
  private readonly timing: TimeSums<'overhead' | 'evaluation'>;
  private modelMs = 0;
  private modelCalls = 0;
  private sessionIterations = 0;
  private sessionEvaluations = 0;
  private sessionRemeasurements = 0;
  private decisions = { promoted: 0, kept: 0 };
  private consecutiveModelFailures = 0;
  private inflightCalls = 0;
  private readonly activity = new Map<number, Activity>();

  constructor(private readonly o: ControllerOptions) {
    this.config = o.config;
    this.folder = o.folder;
    this.now = o.now ?? (() => performance.now());
    this.t0 = this.now();
    this.timing = new TimeSums(this.now);
    this.source = o.source;
    this.evalGate = new Semaphore(Math.max(1, o.evaluator.workers));
    assert(!this.source.continues || o.resumed, 'a continued run needs the log its session read');
    if (o.resumed) o.folder.cutAfter(o.resumed.cleanBytes);
    this.own = o.resumed?.state ?? new RunState();
    o.signal?.addEventListener('abort', () => this.requestStop('interrupted', 'interrupted (Ctrl-C)'), {
      once: true,
    });
  }

  /** Progress display only: never affects what the run does. */
  private waitingFor(iteration: number, stage: Activity['stage'] | null, model: string | null = null): void {
    if (!this.o.onActivity) return;
    if (stage) this.activity.set(iteration, { iteration, stage, model, since: this.now() });
    else this.activity.delete(iteration);
    this.o.onActivity([...this.activity.values()], this.now());
  }

  get database(): ProgramDatabase {
    return this.db;
  }

  /** The run folder's log as folded so far, this session's events included (the controller is its one writer). */
  get runLog(): RunState {
    return this.own;
  }

  /** Runs until a stop rule fires; the run folder is consistent (and resumable) whenever this returns or throws. */
  async run(): Promise<RunStats> {
    if (this.source.continues && this.folder.readCheckpoint()) this.restore();
    else await this.evaluateSeed();
    await this.loop();
    const stats = this.stats();
    this.log({
      type: 'stop',
      reason: stats.stopReason,
      detail: stats.stopDetail,
      committed: stats.committed,
    });
    if (this.stop?.reason === 'model-error' || this.stop?.reason === 'evaluator-error')
      throw resumable(this.stop.detail);
    return stats;
  }

  requestStop(reason: StopReason, detail: string): void {
    if (this.stop) return;
    this.stop = { reason, detail };
    if (reason !== 'interrupted' && reason !== 'model-error' && reason !== 'evaluator-error') return;
    // Stop at once: unanswered calls are asked again on resume, answered ones are reused.
    this.abort.abort(new Error(detail));
  }

  // ---------------------------------------------------------------- setup

  private async evaluateSeed(): Promise<void> {
    const seedFiles = this.o.seedFiles ?? loadSeed(this.config.candidate);
    this.log({ type: 'run', mode: this.source.mode, config_seed: this.config.seed });
    const hash = programHash(seedFiles);
    const result = await this.evaluate(0, hash, seedFiles);
    this.waitingFor(0, null);
    if (!result) {
      this.log({ type: 'stop', reason: this.stop!.reason, detail: this.stop!.detail, committed: 0 });
      throw resumable(this.stop!.detail);
    }
    if (!result.valid || result.score === null) {
      const why = Object.entries(result.artifacts)
        .map(([k, v]) => `${k}: ${v.split('\n')[0]}`)
        .join('; ');
      throw new UserError(
        `the seed candidate fails evaluation, so evolution cannot start: ${why || 'no score'}`,
      );
    }
    this.db = new ProgramDatabase(this.config.search);
    const seed: ProgramRecord = {
      id: 'p0',
      hash,
      iteration: 0,
      island: 0,
      parents: [],
      generation: 0,
      mutation: 'seed',
      model: null,
      valid: true,
      score: result.score,
      metrics: result.metrics,
    };
    this.db.add(seed);
    for (let i = 1; i < this.config.search.islands; i++) this.db.placeOnIsland(seed.id, i);
    this.cp = {
      format: 'adrs-evolve-checkpoint/1',
      committed: 0,
      database: this.db.toJSON(),
      rng: { seed: this.config.seed, scheme: 'per-iteration-mulberry32' },
      attempts: [],
      counters: {
        llm_calls: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0,
        evaluations: 1,
        duplicates: 0,
        refused: 0,
        best_iteration: 0,
        elapsed_s: 0,
      },
    };
    this.log({ type: 'commit', iteration: 0, outcome: 'seed', hash, id: 'p0', score: result.score });
    this.checkpoint();
  }

  private restore(): void {
    const cp = this.folder.readCheckpoint()!;
    this.cp = cp;
    this.db = new ProgramDatabase(this.config.search, cp.database);
    this.elapsedBefore = cp.counters.elapsed_s;
    this.log({ type: 'run', mode: 'resume', committed: cp.committed });
  }

  // ---------------------------------------------------------------- the loop

  private async loop(): Promise<void> {
    const parallel = this.config.search.parallel;
    const inflight = new Map<number, Promise<IterationResult>>();
    let next = this.cp.committed + 1;
    for (;;) {
      while (inflight.size < parallel && !this.stop && this.mayPlan(next)) {
        const plan = this.planFor(next);
        const it = next;
        inflight.set(
          next,
          this.iterate(plan).finally(() => this.waitingFor(it, null)),
        );
        next++;
      }
      const head = this.cp.committed + 1;
      const pending = inflight.get(head);
      if (!pending) break;
      const res = await pending;
      inflight.delete(head);
      if (res.outcome === 'aborted') break;
      const selection = await this.select(res);
      if (selection === 'aborted') break;
      this.commit(res, selection);
    }
    // Interrupted: let started work settle so its events are on disk (a resume reuses them), but commit nothing out of order.
    await Promise.allSettled(inflight.values());
  }

  private mayPlan(iteration: number): boolean {
    const c = this.config;
    const end = this.source.end(iteration);
    if (end !== null) return this.stopWith('replay-end', end);
    if (!this.source.ownLimits) return true;
    if (iteration > c.iterations) return this.stopWith('iterations', `reached ${c.iterations} iterations`);
    if (c.time_limit_s > 0 && this.elapsedS() >= c.time_limit_s)
      return this.stopWith('time', `time limit ${c.time_limit_s}s reached`);
    const exhausted = this.budgetExhausted();
    if (exhausted && !this.own.plans.has(iteration)) return this.stopWith('budget', exhausted);
    const best = this.db.best()!;
    if (c.stop.target_score !== null && best.score! >= c.stop.target_score) {
      return this.stopWith('target', `best score ${best.score!.toFixed(4)} ≥ target ${c.stop.target_score}`);
    }
    if (c.stop.plateau > 0 && this.cp.committed - this.cp.counters.best_iteration >= c.stop.plateau) {
      return this.stopWith('plateau', `no improvement in ${c.stop.plateau} iterations`);
    }
    return true;
  }

  private stopWith(reason: StopReason, detail: string): false {
    this.requestStop(reason, detail);
    return false;
  }

  /** Budget left after the calls already in flight (each assumed to cost the average so far). */
  private budgetExhausted(): string | null {
    const s = this.own.spent;
    const avgUsd = s.calls > 0 ? s.usd / s.calls : 0;
    const avgTok = s.calls > 0 ? (s.prompt_tokens + s.completion_tokens) / s.calls : 0;
    const { budget_usd, budget_tokens } = this.config.llm;
    if (budget_usd !== null && s.usd + this.inflightCalls * avgUsd >= budget_usd) {
      return `budget of $${budget_usd} spent ($${s.usd.toFixed(4)})`;
    }
    const tokens = s.prompt_tokens + s.completion_tokens;
    if (budget_tokens !== null && tokens + this.inflightCalls * avgTok >= budget_tokens) {
      return `token budget of ${budget_tokens} spent (${tokens})`;
    }
    return null;
  }

  private planFor(iteration: number): Plan {
    return this.timing.time('overhead', () => {
      const recorded = this.own.plans.get(iteration);
      if (recorded) return this.committedOnly(recorded);
      const plan = this.committedOnly(this.source.plan(iteration, this.freshPlan(iteration)));
      this.log({ type: 'plan', iteration, plan });
      return plan;
    });
  }

  /**
   * A plan names only programs committed before it was made (the loop plans from the database as
   * it stands): a logged plan that names another is a damaged log, refused in one line rather than
   * failing deep in the iteration.
   */
  private committedOnly(plan: Plan): Plan {
    const { parent, mate, inspirations } = plan;
    const unknown = [parent, mate ?? parent, ...inspirations.top, ...inspirations.diverse].find(
      (id) => !this.db.has(id),
    );
    if (unknown !== undefined)
      throw new UserError(
        `events.jsonl: the plan of iteration ${plan.iteration} names ${unknown}, which the run had not committed when it was planned; the run folder is damaged`,
      );
    return plan;
  }

  private freshPlan(iteration: number): Plan {
    const c = this.config;
    const rng = iterationRng(c.seed, iteration);
    const island = (iteration - 1) % c.search.islands;
    const parent = this.db.selectParent(island, rng);
    const mutation0 = weightedPick(
      rng.next(),
      (['diff', 'rewrite', 'crossover'] as const).map((k) => ({ value: k, weight: c.search.mutations[k] })),
    );
    let mutation: Plan['mutation'] = mutation0;
    let mate: string | null = null;
    if (mutation === 'crossover') {
      mate = this.db.selectMate(parent.id, rng);
      if (!mate) mutation = 'diff';
    }
    const model = weightedPick(
      rng.next(),
      c.llm.models.filter((m) => m.weight > 0).map((m) => ({ value: m.name, weight: m.weight })),
    );
    const inspirations = this.db.inspirations(
      parent.id,
      island,
      c.prompt.top_programs,
      c.prompt.diverse_programs,
      rng,
    );
    return { iteration, island, parent: parent.id, mate, inspirations, mutation, model, how: parent.how };
  }

  // ---------------------------------------------------------------- one iteration

  private async iterate(plan: Plan): Promise<IterationResult> {
    const it = plan.iteration;
    const base = { plan, hash: null, files: null, result: null };
    const { parent, first } = this.timing.time('overhead', () => {
      const parent = this.promptProgram(plan.parent);
      const mate = plan.mate ? this.promptProgram(plan.mate) : null;
      const first =
        this.recordedPrompt(it, 1) ??
        buildPrompt(this.config, {
          mutation: plan.mutation,
          parent,
          mate,
          top: plan.inspirations.top.map((id) => this.promptProgram(id)),
          diverse: plan.inspirations.diverse.map((id) => this.promptProgram(id)),
          attempts: this.cp.attempts.slice(-this.config.prompt.last_attempts),
          ...(this.o.evaluator.describe ? { info: this.o.evaluator.describe() } : {}),
          runNoise: this.db.runNoise(),
        });
      return { parent, first };
    });
    let messages: ChatMessage[] = first;
    let patched: PatchResult | null = null;
    for (let attempt = 1; attempt <= 2; attempt++) {
      if (attempt === 2) messages = this.recordedPrompt(it, 2) ?? messages;
      // The prompt's blob is on disk before the event that names it.
      const messagesSha = this.folder.blobs.putMessages(messages);
      this.log({ type: 'prompt', iteration: it, attempt, model: plan.model, messages_sha256: messagesSha });
      const reply = await this.ask(plan, attempt, messages);
      if ('aborted' in reply) return { ...base, outcome: 'aborted' };
      if ('budget' in reply) return { ...base, outcome: 'budget', reason: reply.budget };
      if ('error' in reply)
        return { ...base, outcome: 'model-failed', reason: reply.error, fatal: reply.fatal };
      patched = this.timing.time('overhead', () => {
        let p = applyModelEdit(parent.files, reply.text, plan.mutation);
        if (p.ok && programHash(p.files) === parent.record.hash) {
          p = {
            ok: false,
            kind: 'unchanged',
            reason: 'the edit leaves the program unchanged (same code after normalisation)',
          };
        }
        this.log(
          p.ok
            ? {
                type: 'patch',
                iteration: it,
                attempt,
                ok: true,
                kind: 'applied',
                hash: programHash(p.files),
                changed: p.changed,
              }
            : { type: 'patch', iteration: it, attempt, ok: false, kind: p.kind, reason: p.reason },
        );
        return p;
      });
      if (patched.ok) break;
      if (attempt === 1) {
        messages = [
          ...messages,
          { role: 'assistant', content: reply.text },
          { role: 'user', content: retryMessage(patched.reason, plan.mutation) },
        ];
      }
    }
    if (!patched?.ok)
      return {
        ...base,
        outcome: 'refused',
        reason: patched?.reason ?? 'no edit',
        ...(patched ? { refusal: patched.kind } : {}),
      };
    const hash = programHash(patched.files);
    const result = await this.evaluate(it, hash, patched.files);
    // No verdict (the evaluator failed and the run is stopping): not committed, evaluated on resume.
    if (!result) return { ...base, outcome: 'aborted' };
    return { plan, outcome: 'new', hash, files: patched.files, result };
  }

  private async ask(
    plan: Plan,
    attempt: number,
    messages: ChatMessage[],
  ): Promise<LlmReply | { error: string; fatal: boolean } | { aborted: true } | { budget: string }> {
    const it = plan.iteration;
    const recorded = this.own.response(it, attempt);
    if (recorded) return replyOf(recorded, this.folder.blobs);
    const failed = this.own.llmError(it, attempt);
    if (failed) return { error: failed.error, fatal: failed.fatal };
    if (this.abort.signal.aborted) return { aborted: true };
    if (attempt > 1) {
      const exhausted = this.source.retryBudget(it, () => this.budgetExhausted());
      if (exhausted) return { budget: exhausted };
    }
    const model = this.config.llm.models.find((m) => m.name === plan.model) ?? {
      name: plan.model,
      weight: 1,
      price_input_per_mtok: 0,
      price_output_per_mtok: 0,
    };
    this.inflightCalls++;
    this.waitingFor(it, 'model', model.name);
    const call = this.abort.child();
    try {
      const reply = await this.source.model.complete(
        { iteration: it, attempt, model, messages },
        call.signal,
      );
      this.consecutiveModelFailures = 0;
      this.modelMs += reply.latency_ms;
      this.modelCalls++;
      const { text, ...meta } = reply;
      // The answer's blob is on disk before the event that names it.
      const textSha = this.folder.blobs.put('responses', text);
      this.log({ type: 'response', iteration: it, attempt, reply: { ...meta, text_sha256: textSha } });
      return reply;
    } catch (error) {
      if (this.abort.signal.aborted) return { aborted: true };
      // A replay that left its recording: not a model failure to log and go on from.
      if (error instanceof UserError) throw error;
      const fatal = error instanceof LlmCallError && error.fatal;
      const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
      this.log({ type: 'llm_error', iteration: it, attempt, error: message, fatal });
      return { error: message, fatal };
    } finally {
      call.release();
      this.inflightCalls--;
    }
  }

  /**
   * Evaluates once per distinct program: recorded results, then results in flight, then the
   * evaluator. Only verdicts are stored and logged as evaluations; when the evaluator itself fails
   * twice, the run stops (resumably) and this resolves null, so the program is evaluated afresh on
   * resume instead of carrying an infrastructure error as its verdict.
   */
  private evaluate(iteration: number, hash: string, files: CandidateFiles): Promise<EvalOutcome | null> {
    const known = this.own.evaluations.get(hash);
    if (known) return Promise.resolve(known.result);
    const running = this.inflightEvals.get(hash);
    if (running) return running;
    if (this.stop?.reason === 'evaluator-error') return Promise.resolve(null);
    const p = (async () => {
      try {
        const measured = await this.measure(
          iteration,
          hash,
          files,
          `on the program of iteration ${iteration}`,
          true,
        );
        if (!measured) return null;
        const { result, ms } = measured;
        this.sessionEvaluations++;
        this.folder.storeProgram({ hash, files, result });
        this.log({ type: 'evaluation', iteration, hash, ms: round(ms), result });
        return result;
      } finally {
        this.inflightEvals.delete(hash);
      }
    })();
    this.inflightEvals.set(hash, p);
    return p;
  }

  /**
   * Noise-aware selection (src/evolve/selection.ts): a new valid program whose score beats the
   * best's is re-measured against it, interleaved, and promoted only on a difference beyond the
   * noise. A decision already recorded (resume: this run's; replay: the recording's) is reused
   * without measuring, so both reproduce the run's decisions. 'aborted': no decision (Ctrl-C or an
   * evaluator failure); nothing is committed and a resume compares afresh.
   */
  private async select(res: IterationResult): Promise<Selection | 'aborted'> {
    const r = res.result;
    if (res.outcome !== 'new' || !r?.valid || r.score === null || this.db.byHash(res.hash!)) return {};
    const it = res.plan.iteration;
    const own = this.own.comparisons.get(it);
    if (own) return { decision: own.decision, comparison: own };
    // Replay: the recorded decision holds even where re-measured scores now order the two differently.
    const replayed = this.source.decision(it);
    if (replayed) {
      this.log({ ...replayed, type: 'comparison', replayed: true });
      return { decision: replayed.decision, comparison: replayed };
    }
    const sel = this.config.selection ?? { rounds: 0, z: 2 };
    if (sel.rounds === 0) return {};
    const best = this.db.best()!;
    const bestStored = this.folder.loadProgram(best.hash);
    // Exact scores (the evaluator says its noise is 0 for both): one measurement decides.
    if (scoreNoise(r) === 0 && scoreNoise(bestStored.result) === 0) return {};
    if (!challenges(r, bestStored.result, this.db.runNoise(), sel.z)) return {};
    const unmeasured = this.source.unmeasured({
      iteration: it,
      challenger: { id: `p${it}`, hash: res.hash!, first_score: r.score },
      incumbent: { id: best.id, hash: best.hash, score: best.score! },
    });
    if (unmeasured) {
      this.log({ ...unmeasured, type: 'comparison' });
      return { decision: unmeasured.decision, comparison: unmeasured };
    }
    const order = interleavedOrder(sel.rounds);
    const files = { incumbent: bestStored.files, challenger: res.files! };
    const results: { score: number | null; noise: number | null }[] = [];
    for (const side of order) {
      if (this.abort.signal.aborted) return 'aborted';
      const out = await this.remeasure(it, side === 'incumbent' ? best.hash : res.hash!, files[side]);
      if (!out) return 'aborted';
      results.push({ score: out.valid ? out.score : null, noise: scoreNoise(out) });
    }
    const c = decide({
      iteration: it,
      challenger: { id: `p${it}`, hash: res.hash!, first_score: r.score },
      incumbent: { id: best.id, hash: best.hash, score: best.score! },
      order,
      results,
      run: this.db.runNoiseSums(),
      z: sel.z,
    });
    this.log({ ...c, type: 'comparison' });
    return { decision: c.decision, comparison: c };
  }

  /** One re-measurement for a comparison: like evaluate(), but neither stored nor deduplicated. */
  private async remeasure(
    iteration: number,
    hash: string,
    files: CandidateFiles,
  ): Promise<EvalOutcome | null> {
    const measured = await this.measure(
      iteration,
      hash,
      files,
      `re-measuring ${hash.slice(0, 12)} for iteration ${iteration}`,
      false,
    );
    if (!measured) return null;
    this.sessionRemeasurements++;
    return measured.result;
  }

  /**
   * One evaluator run through our own gate (one slot per worker), so the time counted is busy time,
   * not queueing in the pool. When the evaluator itself fails twice the run stops (resumably) and
   * this resolves null. `announce`: report the stages (queued, evaluating) to onActivity.
   */
  private async measure(
    iteration: number,
    hash: string,
    files: CandidateFiles,
    what: string,
    announce: boolean,
  ): Promise<{ result: EvalOutcome; ms: number } | null> {
    if (announce) this.waitingFor(iteration, 'evaluation-queued');
    try {
      const { value: result, ms } = await this.evalGate.run(() =>
        this.timing.timeAsync('evaluation', () => {
          if (announce) this.waitingFor(iteration, 'evaluation');
          return evaluateWithRetry(this.o.evaluator, files, 'train', (error) =>
            this.log({ type: 'evaluator_error', iteration, hash, error, retrying: true }),
          );
        }),
      );
      return { result, ms };
    } catch (error) {
      if (!(error instanceof EvaluatorFailure)) throw error;
      this.log({ type: 'evaluator_error', iteration, hash, error: error.message, retrying: false });
      this.requestStop(
        'evaluator-error',
        `the evaluator failed twice ${what} (not the program's fault): ${error.message}`,
      );
      return null;
    }
  }

  private promptProgram(id: string): PromptProgram {
    const record = this.db.get(id);
    const stored = this.folder.loadProgram(record.hash);
    return { record, files: stored.files, artifacts: stored.result.artifacts };
  }

  // ---------------------------------------------------------------- commit

  private commit(res: IterationResult, selection: Selection = {}): void {
    const { outcome, reason } = this.timing.time('overhead', () => this.record(res, selection));
    this.o.onProgress?.({
      ...this.progress(outcome),
      ...(reason ? { lastReason: reason.split('\n')[0]! } : {}),
      ...(res.refusal ? { lastRefusal: res.refusal } : {}),
    });
  }

  /** Commits one iteration's result to the database, the log and the checkpoint; returns why it failed, if it did. */
  private record(res: IterationResult, selection: Selection): { outcome: CommitOutcome; reason?: string } {
    const it = res.plan.iteration;
    const parent = this.db.get(res.plan.parent);
    const counters = this.cp.counters;
    // An aborted iteration is never committed (the loop stops before it).
    if (res.outcome === 'aborted') throw new Error(`iteration ${it} was aborted and cannot be committed`);
    let outcome: CommitOutcome = res.outcome === 'new' ? 'invalid' : res.outcome;
    let id: string | null = null;
    let score: number | null = null;
    if (res.outcome === 'new') {
      const dup = this.db.byHash(res.hash!);
      if (dup) {
        outcome = 'duplicate';
        id = dup.id;
        score = dup.score;
        counters.duplicates++;
      } else {
        const r = res.result!;
        id = `p${it}`;
        score = r.valid ? r.score : null;
        outcome = r.valid ? 'valid' : 'invalid';
        counters.evaluations++;
        this.db.add(
          {
            id,
            hash: res.hash!,
            iteration: it,
            island: res.plan.island,
            parents: [res.plan.parent, ...(res.plan.mate ? [res.plan.mate] : [])],
            generation: parent.generation + 1,
            mutation: res.plan.mutation,
            model: res.plan.model,
            valid: r.valid,
            score,
            metrics: r.metrics,
            ...(scoreNoise(r) !== null ? { noise: scoreNoise(r)! } : {}),
          },
          selection.decision,
        );
        const c = selection.comparison;
        if (c) {
          this.db.recordComparison(c.ss, c.dof, c.noise, [id, c.incumbent.id]);
          this.decisions[c.decision === 'promote' ? 'promoted' : 'kept']++;
        }
        if (this.db.best()!.id === id) counters.best_iteration = it;
      }
    } else if (res.outcome === 'refused' || res.outcome === 'unchanged') counters.refused++;
    if (res.fatal) this.requestStop('model-error', `the model endpoint refuses calls: ${res.reason}`);
    if (res.outcome === 'model-failed') {
      this.consecutiveModelFailures++;
      if (this.consecutiveModelFailures >= 5)
        this.requestStop('model-error', `5 model calls failed in a row, last: ${res.reason}`);
    }
    const reason =
      res.reason ??
      (outcome === 'invalid'
        ? firstArtifact(res.result!)
        : outcome === 'duplicate'
          ? `same code as ${id}`
          : undefined);
    const shown = outcome === 'duplicate' && id ? this.db.get(id).metrics : res.result?.metrics;
    const artifact = res.result ? firstArtifact(res.result)?.split(' | ')[0] : undefined;
    const attempt: Attempt = {
      iteration: it,
      parent: parent.id,
      mutation: res.plan.mutation,
      outcome,
      score,
      delta: score !== null && parent.score !== null ? score - parent.score : null,
      ...(reason ? { reason: reason.slice(0, 300) } : {}),
      ...(shown && Object.keys(shown).length > 0 ? { metrics: shown } : {}),
      ...(artifact ? { artifact: artifact.slice(0, 200) } : {}),
      ...(selection.comparison
        ? {
            selection:
              `${selection.comparison.decision === 'promote' ? 'became the best' : `${selection.comparison.incumbent.id} stays the best`}: ${selection.comparison.reason}`.slice(
                0,
                400,
              ),
          }
        : {}),
    };
    this.cp.attempts = [...this.cp.attempts, attempt].slice(-Math.max(1, this.config.prompt.last_attempts));
    const interval = this.config.search.migration_interval;
    if (interval > 0 && it % interval === 0) {
      this.db.migrate();
      this.log({ type: 'migration', iteration: it });
    }
    const s = this.own.spent;
    Object.assign(counters, {
      llm_calls: s.calls,
      prompt_tokens: s.prompt_tokens,
      completion_tokens: s.completion_tokens,
      cost_usd: s.usd,
      elapsed_s: this.elapsedS(),
    });
    this.cp.committed = it;
    this.cp.database = this.db.toJSON();
    this.sessionIterations++;
    const commit: CommitEvent = {
      type: 'commit',
      iteration: it,
      outcome,
      hash: res.hash,
      id,
      score,
      best: this.db.best()!.id,
      ...(reason ? { reason } : {}),
    };
    this.log(commit);
    this.source.committed(commit);
    this.checkpoint();
    return { outcome, ...(reason ? { reason } : {}) };
  }

  private checkpoint(): void {
    this.folder.writeCheckpoint(this.cp);
  }

  private log(e: NewEvent): void {
    const event: RunEvent = { ...e, v: RUN_LOG_VERSION, t: round(this.elapsedS() * 1000) };
    const k = eventKey(event);
    if (k && this.own.logged.has(k)) return;
    this.folder.append(event);
    this.own.add(event);
  }

  /** A prompt this run already logged (resume), read back from its blob. */
  private recordedPrompt(iteration: number, attempt: number): ChatMessage[] | undefined {
    const p = this.own.prompt(iteration, attempt);
    return p ? this.folder.blobs.messages(p.messages_sha256) : undefined;
  }

  private elapsedS(): number {
    return this.elapsedBefore + (this.now() - this.t0) / 1000;
  }

  private progress(lastOutcome: string): Progress {
    const session = (this.now() - this.t0) / 60000;
    return {
      iteration: this.cp.committed,
      committed: this.cp.committed,
      best: this.db.best()!,
      seed: this.db.get('p0'),
      evalsPerMin: session > 0 ? this.sessionEvaluations / session : 0,
      tokens: this.own.spent.prompt_tokens + this.own.spent.completion_tokens,
      costUsd: this.own.spent.usd,
      elapsedS: this.elapsedS(),
      lastOutcome,
    };
  }

  private stats(): RunStats {
    const sessionMs = this.now() - this.t0;
    return {
      stopReason: this.stop?.reason ?? 'iterations',
      stopDetail: this.stop?.detail ?? '',
      committed: this.cp.committed,
      elapsedS: this.elapsedS(),
      evaluatorUtilisation:
        sessionMs > 0 ? this.timing.total('evaluation') / (sessionMs * this.o.evaluator.workers) : 0,
      overheadMsPerIteration:
        this.sessionIterations > 0 ? this.timing.total('overhead') / this.sessionIterations : 0,
      meanModelLatencyMs: this.modelCalls > 0 ? this.modelMs / this.modelCalls : 0,
      iterationsThisSession: this.sessionIterations,
      evaluationsThisSession: this.sessionEvaluations,
      iterationsPerMinute: sessionMs > 0 ? this.sessionIterations / (sessionMs / 60000) : 0,
      counters: { ...this.cp.counters },
      remeasurementsThisSession: this.sessionRemeasurements,
      comparisons: { ...this.decisions },
      ...this.source.findings(),
    };
  }
}

/**
 * Whether one measurement makes a program a challenger of the best: its score is above the best's,
 * or below it by less than z standard errors of the difference (σ of each: its score_noise, else
 * the run's estimate). One measurement rules a program out no more than it makes it the best:
 * measured under other conditions (the seed alone at the start, later programs while other
 * evaluations run), a real gain can first look like a loss.
 */
function challenges(c: EvalOutcome, best: EvalOutcome, runNoise: number | null, z: number): boolean {
  if (best.score === null || c.score! > best.score) return true;
  const sc = scoreNoise(c) ?? runNoise;
  const sb = scoreNoise(best) ?? runNoise;
  if (sc === null || sb === null) return false;
  return best.score - c.score! < z * Math.sqrt(sc * sc + sb * sb);
}

/** The item whose cumulative weight first exceeds u·(total weight), u in [0, 1). */
function weightedPick<T>(u: number, items: { value: T; weight: number }[]): T {
  let r = u * items.reduce((a, x) => a + x.weight, 0);
  for (const x of items) {
    r -= x.weight;
    if (r < 0 && x.weight > 0) return x.value;
  }
  return items.filter((x) => x.weight > 0).at(-1)!.value;
}

const round = (x: number): number => Math.round(x * 100) / 100;

const resumable = (detail: string): UserError =>
  new UserError(`stopped: ${detail} (the run folder can be resumed with --resume)`);

function firstArtifact(r: EvalOutcome): string | undefined {
  const [k, v] = Object.entries(r.artifacts).find(([k, v]) => v && k !== PLACEMENT_ARTIFACT) ?? [];
  return k ? `${k}: ${v!.split('\n').slice(0, 3).join(' | ')}` : undefined;
}
