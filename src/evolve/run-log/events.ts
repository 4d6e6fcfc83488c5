import type { Mutation } from '../database.js';
import type { EvalOutcome } from '../evaluator-types.js';
import type { LlmReply } from '../llm/types.js';
import type { Comparison } from '../selection.js';

/**
 * The run log's format. Every line of events.jsonl carries `v`; a line without one was written
 * before versions existed (version 1) and is migrated on read (run-log/migrate-v1.ts), so old run
 * folders still resume, replay and report. A line from a newer version is refused.
 *
 * Version 2: prompts and answers live in content-addressed blobs (prompts/, responses/), named by
 * their sha256; patch events carry a structured `kind`.
 */
export const RUN_LOG_VERSION = 2;

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

/** Why the patcher (patch.ts, rewrite.ts, edit.ts) or the controller refused an edit: the class a reader acts on. */
export type RefusalKind = 'no-match' | 'ambiguous' | 'outside-block' | 'malformed' | 'unchanged';
export const REFUSAL_KINDS: readonly RefusalKind[] = [
  'no-match',
  'ambiguous',
  'outside-block',
  'malformed',
  'unchanged',
];
/** A refusal class in a report: 'other' only for a version-1 reason the migration cannot place. */
export type RefusalClass = RefusalKind | 'other';
export type PatchKind = 'applied' | RefusalClass;

/** A model's answer as logged: everything but its text, which is the blob responses/<text_sha256>.txt. */
export type RecordedReply = Omit<LlmReply, 'text'> & { text_sha256: string };

/** A noise-aware selection decision; a replay's "no comparison was recorded here" carries only the core fields. */
export type ComparisonRecord = Pick<
  Comparison,
  'iteration' | 'challenger' | 'incumbent' | 'decision' | 'reason' | 'ss' | 'dof' | 'noise'
> &
  Partial<Omit<Comparison, 'iteration'>> & { replayed?: boolean };

export type CommitOutcome =
  | 'seed'
  | 'valid'
  | 'invalid'
  | 'duplicate'
  | 'refused'
  | 'unchanged'
  | 'model-failed'
  | 'budget';

interface Stamp {
  /** Run-log version of this line. */
  v: number;
  /** ms since the run started (run clock, across sessions); absent on lines a session appends after its loop. */
  t?: number;
}

export type RunEvent = Stamp &
  (
    | { type: 'run'; mode: 'start' | 'resume' | 'replay'; config_seed?: number; committed?: number }
    | { type: 'plan'; iteration: number; plan: Plan }
    | { type: 'prompt'; iteration: number; attempt: number; model: string; messages_sha256: string }
    | { type: 'response'; iteration: number; attempt: number; reply: RecordedReply }
    | { type: 'llm_error'; iteration: number; attempt: number; error: string; fatal: boolean }
    | PatchEvent
    | { type: 'evaluation'; iteration: number; hash: string; ms: number; result: EvalOutcome }
    | { type: 'evaluator_error'; iteration: number; hash: string; error: string; retrying: boolean }
    | ({ type: 'comparison' } & ComparisonRecord)
    | CommitEvent
    | { type: 'migration'; iteration: number }
    | { type: 'stop'; reason: string; detail: string; committed: number }
    | { type: 'heldout'; seed: EvalOutcome; best: EvalOutcome }
  );

export type PatchEvent = {
  type: 'patch';
  iteration: number;
  attempt: number;
} & (
  | { ok: true; kind: 'applied'; hash: string; changed: { file: string; line: number }[] }
  | { ok: false; kind: RefusalClass; reason: string }
);

export interface CommitEvent {
  type: 'commit';
  iteration: number;
  outcome: CommitOutcome;
  hash: string | null;
  id: string | null;
  score: number | null;
  /** The best program's id after this commit (absent in the oldest logs). */
  best?: string;
  reason?: string;
}

export type EventOf<K extends RunEvent['type']> = Extract<RunEvent, { type: K }>;

/** An event as the controller writes it: the log stamps `v` and `t`. */
export type NewEvent = RunEvent extends infer E ? (E extends RunEvent ? Omit<E, 'v' | 't'> : never) : never;

/** The key that makes an event unique in a run: a resumed run never writes the same one twice. */
export function eventKey(
  e: Pick<RunEvent, 'type'> & { iteration?: number; attempt?: number; hash?: string | null },
): string | null {
  switch (e.type) {
    case 'plan':
    case 'commit':
    case 'comparison':
    // A resume after a kill between an iteration's migration and its checkpoint commits that
    // iteration again: its migration must not be logged (and counted) twice.
    case 'migration':
      return `${e.type}:${e.iteration}`;
    case 'prompt':
    case 'response':
    case 'llm_error':
    case 'patch':
      return `${e.type}:${e.iteration}:${e.attempt}`;
    case 'evaluation':
      return `evaluation:${e.hash}`;
    default:
      return null;
  }
}
