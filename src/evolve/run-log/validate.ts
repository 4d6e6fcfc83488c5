import { isRecord } from '../../util/guards.js';
import type { ChatMessage } from '../llm/types.js';
import { type CommitOutcome, type Plan, REFUSAL_KINDS, RUN_LOG_VERSION, type RunEvent } from './events.js';

/**
 * The shape check of a version-2 event. Each check returns what is wrong (a phrase naming the
 * field) or null; the reader turns the first problem into "events.jsonl:LINE: …". Fields the run
 * log does not use are let through, so a line may carry notes; every field a reader relies on is
 * checked, down to the numbers the accounting adds up.
 */
type Check = (v: unknown, path: string) => string | null;

const num: Check = (v, p) => (typeof v === 'number' && Number.isFinite(v) ? null : `${p} is not a number`);
/** An amount the accounting adds up (money, tokens, time): a negative one would buy budget back. */
const amount: Check = (v, p) =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : `${p} is not a number ≥ 0`;
const int: Check = (v, p) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? null : `${p} is not a whole number ≥ 0`;
const str: Check = (v, p) => (typeof v === 'string' ? null : `${p} is not a string`);
const bool: Check = (v, p) => (typeof v === 'boolean' ? null : `${p} is not true or false`);
const sha256: Check = (v, p) =>
  typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? null : `${p} is not a sha256 (64 hex digits)`;
/** A program's id (p0 the seed, pN the program of iteration N): the database keys programs by it. */
const programId: Check = (v, p) =>
  typeof v === 'string' && /^p(0|[1-9][0-9]*)$/.test(v) ? null : `${p} is not a program id (p0, p1, …)`;
/**
 * A program's hash (candidate.ts programHash: 16 hex digits, in every version). Readers turn it
 * into a path (programs/<hash>.json), so anything else, '../' included, is refused here.
 */
const programHash: Check = (v, p) =>
  typeof v === 'string' && /^[0-9a-f]{16}$/.test(v) ? null : `${p} is not a program hash (16 hex digits)`;
const nullable =
  (c: Check): Check =>
  (v, p) =>
    v === null ? null : c(v, p);
const optional =
  (c: Check): Check =>
  (v, p) =>
    v === undefined ? null : c(v, p);
const oneOf =
  (values: readonly string[]): Check =>
  (v, p) =>
    typeof v === 'string' && values.includes(v)
      ? null
      : `${p} is ${JSON.stringify(v)}, not one of ${values.join(', ')}`;
const arrayOf =
  (c: Check): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p} is not a list`;
    for (const [i, x] of v.entries()) {
      const bad = c(x, `${p}[${i}]`);
      if (bad) return bad;
    }
    return null;
  };
const recordOf =
  (c: Check): Check =>
  (v, p) => {
    if (!isRecord(v)) return `${p} is not an object`;
    for (const [k, x] of Object.entries(v)) {
      const bad = c(x, `${p}.${k}`);
      if (bad) return bad;
    }
    return null;
  };
const object =
  (fields: Record<string, Check>): Check =>
  (v, p) => {
    if (!isRecord(v)) return `${p} is not an object`;
    for (const [k, c] of Object.entries(fields)) {
      const bad = c(v[k], `${p}.${k}`);
      if (bad) return v[k] === undefined ? `missing field '${p}.${k}'` : bad;
    }
    return null;
  };

const outcome = object({
  valid: bool,
  score: nullable(num),
  metrics: recordOf(num),
  artifacts: recordOf(str),
});
const plan = object({
  iteration: int,
  island: int,
  parent: programId,
  mate: nullable(programId),
  inspirations: object({ top: arrayOf(programId), diverse: arrayOf(programId) }),
  mutation: oneOf(['diff', 'rewrite', 'crossover']),
  model: str,
  how: str,
});
const reply = object({
  text_sha256: sha256,
  model: str,
  usage: object({ prompt_tokens: amount, completion_tokens: amount, estimated: optional(bool) }),
  cost_usd: amount,
  latency_ms: amount,
  queued_ms: optional(amount),
  attempts: optional(int),
  retried: optional(arrayOf(str)),
});
const chatMessages = arrayOf(object({ role: oneOf(['system', 'user', 'assistant']), content: str }));

/**
 * What is wrong with a prompt's messages (a prompts/ blob, or a version-1 line's inline list), or
 * null: they are sent to the model again on resume, so a blob whose hash matches but whose shape
 * is not a conversation is refused rather than sent.
 */
export const messagesProblem = (v: unknown, path: string): string | null => chatMessages(v, path);
export const isMessages = (v: unknown): v is ChatMessage[] => chatMessages(v, '') === null;

const side = (score: string): Check => object({ id: programId, hash: programHash, [score]: num });
const COMMIT_OUTCOMES: readonly CommitOutcome[] = [
  'seed',
  'valid',
  'invalid',
  'duplicate',
  'refused',
  'unchanged',
  'model-failed',
  'budget',
];

const EVENTS: Record<RunEvent['type'], Record<string, Check>> = {
  run: { mode: oneOf(['start', 'resume', 'replay']), config_seed: optional(num), committed: optional(int) },
  plan: { iteration: int, plan },
  prompt: { iteration: int, attempt: int, model: str, messages_sha256: sha256 },
  response: { iteration: int, attempt: int, reply },
  llm_error: { iteration: int, attempt: int, error: str, fatal: bool },
  patch: { iteration: int, attempt: int, ok: bool },
  evaluation: { iteration: int, hash: programHash, ms: amount, result: outcome },
  evaluator_error: { iteration: int, hash: programHash, error: str, retrying: bool },
  comparison: {
    iteration: int,
    challenger: side('first_score'),
    incumbent: side('score'),
    decision: oneOf(['promote', 'keep']),
    reason: str,
    // They feed the run's noise estimate (a square root): a negative one would make it NaN.
    ss: amount,
    dof: amount,
    noise: amount,
    replayed: optional(bool),
  },
  commit: {
    iteration: int,
    outcome: oneOf(COMMIT_OUTCOMES),
    hash: nullable(programHash),
    id: nullable(programId),
    score: nullable(num),
    best: optional(programId),
    reason: optional(str),
  },
  migration: { iteration: int },
  stop: { reason: str, detail: str, committed: int },
  heldout: { seed: outcome, best: outcome },
};

const PATCH_KIND = oneOf(['applied', ...REFUSAL_KINDS]);
/** 'other' too: a version-1 refusal whose wording the migration cannot place (the patcher never gives it). */
const PATCH_KIND_V1 = oneOf(['applied', ...REFUSAL_KINDS, 'other']);
/** The fields a patch event has besides the common ones, by whether it applied. */
const PATCH_APPLIED = { hash: programHash, changed: arrayOf(object({ file: str, line: int })) };
const PATCH_REFUSED = { reason: str };

/**
 * A version-2 event, or what is wrong with it. The one place where a parsed line becomes a typed
 * event: every field the type promises has just been checked.
 */
export function toEvent(e: Record<string, unknown>, migrated: boolean): RunEvent | string {
  return eventProblem(e, migrated) ?? (e as unknown as RunEvent);
}

/** What is wrong with a version-2 event, or null when it is one. */
function eventProblem(e: Record<string, unknown>, migrated: boolean): string | null {
  if (e.v !== RUN_LOG_VERSION) return `v is ${JSON.stringify(e.v)}, expected ${RUN_LOG_VERSION}`;
  if (e.t !== undefined && num(e.t, 't')) return 't is not a number';
  const type = e.type;
  if (typeof type !== 'string') return 'the event has no type';
  // An own key only: 'constructor' or '__proto__' must not find Object's and pass with no checks.
  const fields = Object.hasOwn(EVENTS, type) ? EVENTS[type as RunEvent['type']] : undefined;
  if (!fields) return `unknown event type '${type}' (known: ${Object.keys(EVENTS).join(', ')})`;
  const extra: Record<string, Check> =
    type === 'patch'
      ? { kind: migrated ? PATCH_KIND_V1 : PATCH_KIND, ...(e.ok === true ? PATCH_APPLIED : PATCH_REFUSED) }
      : {};
  for (const [k, c] of Object.entries({ ...fields, ...extra })) {
    const bad = c(e[k], k);
    if (bad) return `${type} event: ${e[k] === undefined ? `missing field '${k}'` : bad}`;
  }
  if (type === 'patch' && (e.ok === true) !== (e.kind === 'applied'))
    return `patch event: ok ${String(e.ok)} with kind '${String(e.kind)}'`;
  if (type === 'commit') return commitProblem(e);
  // Resume and replay run the logged plan under its own `iteration`: one that disagrees with the
  // event's would be committed in another iteration's place.
  if (type === 'plan' && (e.plan as Plan).iteration !== e.iteration)
    return `plan event: the plan is for iteration ${(e.plan as Plan).iteration}, the event for ${String(e.iteration)}`;
  return null;
}

/** Outcomes that commit a program (a new one, or an earlier one for a duplicate): they name it. */
const NAMES_A_PROGRAM: ReadonlySet<unknown> = new Set<CommitOutcome>([
  'seed',
  'valid',
  'invalid',
  'duplicate',
]);

/**
 * A commit's fields agree with its outcome, as the controller writes them: the fold builds the
 * program (and may make it the best) from hash, id and score, so a 'valid' commit without a hash,
 * or a refusal that names one, would put a program in the report that the run never had.
 */
function commitProblem(e: Record<string, unknown>): string | null {
  const names = NAMES_A_PROGRAM.has(e.outcome);
  if (names && (e.hash === null || e.id === null))
    return `commit event: outcome '${String(e.outcome)}' without the program's hash and id`;
  if (!names && (e.hash !== null || e.id !== null || e.score !== null))
    return `commit event: outcome '${String(e.outcome)}' names a program (hash, id or score)`;
  if (e.outcome === 'invalid' && e.score !== null) return "commit event: outcome 'invalid' with a score";
  // A new program is named after its iteration (the seed is p0): the fold keys programs by id, so
  // another id would replace a program the run already had.
  if (e.outcome === 'seed' && e.iteration !== 0)
    return `commit event: a seed at iteration ${String(e.iteration)}`;
  const own = e.outcome === 'seed' ? 'p0' : `p${String(e.iteration)}`;
  if ((e.outcome === 'seed' || e.outcome === 'valid' || e.outcome === 'invalid') && e.id !== own)
    return `commit event: a new program of iteration ${String(e.iteration)} named '${String(e.id)}', not '${own}'`;
  return null;
}
