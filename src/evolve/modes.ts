import { UserError } from '../util/errors.js';
import type { LanguageModel, LlmReply } from './llm/types.js';
import { LlmCallError } from './llm/types.js';
import type { BlobStore } from './run-log/blobs.js';
import type { CommitEvent, ComparisonRecord, Plan, RecordedReply } from './run-log/events.js';
import type { RunState } from './run-log/fold.js';

export type RunMode = 'start' | 'resume' | 'replay';

/** What a replay found different from its recording (RunStats). */
export interface ReplayFindings {
  replayMismatches?: { iteration: number; recorded: string | null; replayed: string | null }[];
  replayPlanDivergences?: number;
}

/**
 * Where a run's proposals come from, chosen once when it starts. Live (a new run, or a resumed one:
 * the controller first reuses what its own log already holds, then goes on live) asks the model and
 * applies the run's stop rules; replay follows a recording: its plans, its answers, its decisions,
 * and it ends where the recording does. The controller's loop is the same for all three.
 */
export interface ProposalSource {
  readonly mode: RunMode;
  readonly model: LanguageModel;
  /** Resume: the run continues from its folder's events and checkpoint instead of evaluating the seed. */
  readonly continues: boolean;
  /** Whether the run's own stop rules (iterations, time, budget, target, plateau) apply. */
  readonly ownLimits: boolean;
  /** The stop detail when there is nothing to propose for this iteration (a replay's end), else null. */
  end(iteration: number): string | null;
  /** The plan to follow, given the one the database picks now. */
  plan(iteration: number, fresh: Plan): Plan;
  /** Before a second model call: why the budget stops it, or null; `live` is the run's own budget check. */
  retryBudget(iteration: number, live: () => string | null): string | null;
  /** A selection decision the source already holds for the iteration (a replay's recorded one). */
  decision(iteration: number): ComparisonRecord | undefined;
  /**
   * A new program challenges the best but the source compared nothing there: the decision to log
   * instead of measuring (a replay keeps the best, as its recording did), or null to measure.
   */
  unmeasured(c: Pick<ComparisonRecord, 'iteration' | 'challenger' | 'incumbent'>): ComparisonRecord | null;
  /** Sees each commit (a replay checks it against the recording). */
  committed(commit: CommitEvent): void;
  findings(): ReplayFindings;
}

/** A new or resumed run: the model is asked, the run's own limits apply. */
export class LiveSource implements ProposalSource {
  readonly ownLimits = true;
  readonly continues: boolean;
  constructor(
    readonly mode: 'start' | 'resume',
    readonly model: LanguageModel,
  ) {
    this.continues = mode === 'resume';
  }
  end(): null {
    return null;
  }
  plan(_iteration: number, fresh: Plan): Plan {
    return fresh;
  }
  retryBudget(_iteration: number, live: () => string | null): string | null {
    return live();
  }
  decision(): undefined {
    return undefined;
  }
  unmeasured(): null {
    return null;
  }
  committed(): void {}
  findings(): ReplayFindings {
    return {};
  }
}

/** A replay of a recorded run (its events folded, its blobs for the answers' texts). */
export class ReplaySource implements ProposalSource {
  readonly mode = 'replay';
  readonly ownLimits = false;
  readonly continues = false;
  readonly model: LanguageModel;
  private readonly mismatches: NonNullable<ReplayFindings['replayMismatches']> = [];
  private divergences = 0;
  constructor(
    private readonly recording: RunState,
    blobs: BlobStore,
    /** Tests: a model other than the recording. */
    model?: LanguageModel,
  ) {
    this.model = model ?? new RecordedModel(recording, blobs);
  }
  end(iteration: number): string | null {
    const r = this.recording;
    return r.plans.has(iteration) && r.commits.has(iteration)
      ? null
      : `replayed every recorded iteration (${iteration - 1})`;
  }
  plan(iteration: number, fresh: Plan): Plan {
    const original = this.recording.plans.get(iteration)!;
    if (JSON.stringify(original) !== JSON.stringify(fresh)) this.divergences++;
    // Follow the recording: re-measured timings may reorder near-equal programs.
    return original;
  }
  retryBudget(iteration: number): string | null {
    return this.recording.commits.get(iteration)?.outcome === 'budget'
      ? 'budget exhausted in the recorded run'
      : null;
  }
  decision(iteration: number): ComparisonRecord | undefined {
    return this.recording.comparisons.get(iteration);
  }
  unmeasured(c: Pick<ComparisonRecord, 'iteration' | 'challenger' | 'incumbent'>): ComparisonRecord {
    // The recording compared nothing here (its measurement did not challenge the best);
    // re-measured scores that differ by noise must not change what the replay keeps.
    return {
      ...c,
      decision: 'keep',
      reason: 'replay: the recorded run made no comparison here (its measurement did not challenge the best)',
      ss: 0,
      dof: 0,
      noise: 0,
      replayed: true,
    };
  }
  committed(c: CommitEvent): void {
    const original = this.recording.commits.get(c.iteration);
    if (!original || original.hash !== c.hash)
      this.mismatches.push({ iteration: c.iteration, recorded: original?.hash ?? null, replayed: c.hash });
  }
  findings(): ReplayFindings {
    return { replayMismatches: this.mismatches, replayPlanDivergences: this.divergences };
  }
}

/** Answers every call with the response recorded for that (iteration, attempt), its text read from its blob. */
class RecordedModel implements LanguageModel {
  constructor(
    private readonly recording: RunState,
    private readonly blobs: BlobStore,
  ) {}
  async complete(request: { iteration: number; attempt: number }): Promise<LlmReply> {
    const reply = this.recording.response(request.iteration, request.attempt);
    const failed = this.recording.llmError(request.iteration, request.attempt);
    if (!reply && failed) throw new LlmCallError(failed.error, undefined, 1, failed.fatal);
    if (!reply) {
      throw new UserError(
        `replay: the recorded run has no response for iteration ${request.iteration} attempt ${request.attempt}; it diverged from the recording`,
      );
    }
    return replyOf(reply, this.blobs);
  }
}

/** A recorded answer with its text read back (and its hash checked). */
export function replyOf(recorded: RecordedReply, blobs: BlobStore): LlmReply {
  const { text_sha256, ...rest } = recorded;
  return { ...rest, text: blobs.get('responses', text_sha256) };
}
