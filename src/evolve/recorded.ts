import { UserError } from '../util/errors.js';
import type { Mutation } from './database.js';
import type { EvalOutcome } from './evaluator.js';
import type { ChatMessage, LanguageModel, LlmReply } from './llm/types.js';
import { LlmCallError } from './llm/types.js';
import type { RunEvent } from './run-folder.js';
import type { Comparison } from './selection.js';

/** What an iteration was planned to do (logged before its model call; reused on resume and replay). */
export interface Plan {
  iteration: number;
  island: number;
  parent: string;
  mate: string | null;
  inspirations: { top: string[]; diverse: string[] };
  mutation: Exclude<Mutation, 'seed'>;
  model: string;
  how: string;
}

export interface CommitRecord {
  iteration: number;
  outcome: string;
  hash: string | null;
  id: string | null;
  score: number | null;
}

const key = (iteration: number, attempt: number): string => `${iteration}:${attempt}`;

/** An index over a run's events.jsonl: what was already planned, asked, answered and evaluated. */
export class Recorded {
  readonly plans = new Map<number, Plan>();
  readonly prompts = new Map<string, ChatMessage[]>();
  readonly responses = new Map<string, LlmReply>();
  readonly llmErrors = new Map<string, { error: string; fatal: boolean }>();
  readonly evaluations = new Map<string, EvalOutcome>();
  readonly commits = new Map<number, CommitRecord>();
  /** Noise-aware selection decisions by iteration (src/evolve/selection.ts), reused on resume and replay. */
  readonly comparisons = new Map<number, Comparison>();
  /** Keys of logged events, so a resumed run never writes the same event twice. */
  readonly logged = new Set<string>();
  /** Totals over every model call ever logged (the budget survives restarts). */
  spent = { usd: 0, prompt_tokens: 0, completion_tokens: 0, calls: 0 };

  static from(events: RunEvent[]): Recorded {
    const r = new Recorded();
    for (const e of events) r.add(e);
    return r;
  }

  static eventKey(e: RunEvent): string | null {
    switch (e.type) {
      case 'plan':
      case 'commit':
      case 'comparison':
        return `${e.type}:${e.iteration}`;
      case 'prompt':
      case 'response':
      case 'llm_error':
      case 'patch':
        return `${e.type}:${key(e.iteration!, e.attempt as number)}`;
      case 'evaluation':
        return `evaluation:${e.hash as string}`;
      default:
        return null;
    }
  }

  add(e: RunEvent): void {
    const k = Recorded.eventKey(e);
    if (k) this.logged.add(k);
    const it = e.iteration!;
    switch (e.type) {
      case 'plan':
        this.plans.set(it, e.plan as Plan);
        break;
      case 'prompt':
        this.prompts.set(key(it, e.attempt as number), e.messages as ChatMessage[]);
        break;
      case 'response': {
        const reply = e.reply as LlmReply;
        this.responses.set(key(it, e.attempt as number), reply);
        this.spent.usd += reply.cost_usd;
        this.spent.prompt_tokens += reply.usage.prompt_tokens;
        this.spent.completion_tokens += reply.usage.completion_tokens;
        this.spent.calls++;
        break;
      }
      case 'llm_error':
        this.llmErrors.set(key(it, e.attempt as number), {
          error: e.error as string,
          fatal: Boolean(e.fatal),
        });
        break;
      case 'evaluation':
        this.evaluations.set(e.hash as string, e.result as EvalOutcome);
        break;
      case 'comparison':
        this.comparisons.set(it, e as unknown as Comparison);
        break;
      case 'commit':
        this.commits.set(it, {
          iteration: it,
          outcome: e.outcome as string,
          hash: (e.hash as string | null) ?? null,
          id: (e.id as string | null) ?? null,
          score: (e.score as number | null) ?? null,
        });
        break;
    }
  }

  response(iteration: number, attempt: number): LlmReply | undefined {
    return this.responses.get(key(iteration, attempt));
  }

  prompt(iteration: number, attempt: number): ChatMessage[] | undefined {
    return this.prompts.get(key(iteration, attempt));
  }

  llmError(iteration: number, attempt: number): { error: string; fatal: boolean } | undefined {
    return this.llmErrors.get(key(iteration, attempt));
  }

  lastCommitted(): number {
    return Math.max(0, ...this.commits.keys());
  }
}

/** The model of a replay: answers every call with the response recorded for that (iteration, attempt). */
export class ReplayModel implements LanguageModel {
  constructor(private readonly source: Recorded) {}
  async complete(request: { iteration: number; attempt: number }): Promise<LlmReply> {
    const reply = this.source.response(request.iteration, request.attempt);
    const failed = this.source.llmError(request.iteration, request.attempt);
    if (!reply && failed) throw new LlmCallError(failed.error, undefined, 1, failed.fatal);
    if (!reply) {
      throw new UserError(
        `replay: the recorded run has no response for iteration ${request.iteration} attempt ${request.attempt}; it diverged from the recording`,
      );
    }
    return { ...reply };
  }
}
