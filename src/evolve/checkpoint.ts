import { UserError } from '../util/errors.js';
import { isCount, isRecord } from '../util/guards.js';
import type { DatabaseState } from './database.js';
import type { Attempt } from './prompts.js';

/** checkpoint.json: the controller's state after its last commit (what --resume restores). */
export interface Checkpoint {
  format: 'adrs-evolve-checkpoint/1';
  /** Highest iteration whose result is in the database (0 = the seed). */
  committed: number;
  database: DatabaseState;
  /** RNG: every iteration derives its own generator from (seed, iteration), so the seed is the whole state. */
  rng: { seed: number; scheme: 'per-iteration-mulberry32' };
  attempts: Attempt[];
  counters: {
    llm_calls: number;
    prompt_tokens: number;
    completion_tokens: number;
    cost_usd: number;
    evaluations: number;
    duplicates: number;
    refused: number;
    best_iteration: number;
    elapsed_s: number;
  };
}

/**
 * checkpoint.json as --resume reads it, checked: it is written atomically by the controller, so a
 * file that fails here was damaged or edited, and resuming from it would crash deep in the database
 * (a TypeError) or, worse, continue from a state the log never had. The fold's cross-checks against
 * events.jsonl (session.ts, report.ts) cover what its values say; this covers what its shape is.
 */
export function parseCheckpoint(text: string, file: string): Checkpoint {
  const fail = (problem: string): never => {
    throw new UserError(
      `${file}: ${problem}; the run cannot resume from it (restore it, or start a new run)`,
    );
  };
  let cp: unknown;
  try {
    cp = JSON.parse(text);
  } catch (error) {
    return fail(`not JSON (${(error as Error).message})`);
  }
  if (!isRecord(cp)) return fail('not a JSON object');
  if (cp.format !== 'adrs-evolve-checkpoint/1')
    fail(`format is ${JSON.stringify(cp.format)}, not "adrs-evolve-checkpoint/1"`);
  if (!isCount(cp.committed)) fail('committed is not a non-negative integer');
  const rng = cp.rng;
  if (!isRecord(rng) || !Number.isFinite(rng.seed) || rng.scheme !== 'per-iteration-mulberry32')
    fail('rng is not {seed: number, scheme: "per-iteration-mulberry32"}');
  if (!Array.isArray(cp.attempts) || !cp.attempts.every(isRecord)) fail('attempts is not a list of attempts');
  const counters = cp.counters;
  if (!isRecord(counters)) return fail('counters is not an object');
  for (const key of COUNTERS)
    if (!(typeof counters[key] === 'number' && counters[key] >= 0))
      fail(`counters.${key} is not a number ≥ 0`);
  checkDatabase(cp.database, fail);
  return cp as unknown as Checkpoint;
}

const COUNTERS = [
  'llm_calls',
  'prompt_tokens',
  'completion_tokens',
  'cost_usd',
  'evaluations',
  'duplicates',
  'refused',
  'best_iteration',
  'elapsed_s',
] as const;

const PROGRAM_ID = /^p\d+$/;

function checkDatabase(db: unknown, fail: (problem: string) => never): void {
  if (!isRecord(db)) fail('database is not an object');
  const programs = db.programs;
  if (!isRecord(programs)) fail('database.programs is not an object');
  for (const [id, p] of Object.entries(programs)) {
    if (!PROGRAM_ID.test(id) || !isRecord(p) || p.id !== id)
      fail(`database.programs.${id} is not a program record named ${id}`);
    const r = p as Record<string, unknown>;
    if (
      typeof r.hash !== 'string' ||
      !isCount(r.iteration) ||
      !isCount(r.island) ||
      typeof r.valid !== 'boolean'
    )
      fail(`database.programs.${id} lacks its hash, iteration, island or valid flag`);
    if (!(r.score === null || Number.isFinite(r.score)))
      fail(`database.programs.${id}.score is not a number or null`);
    if (
      !Array.isArray(r.parents) ||
      !r.parents.every((q) => typeof q === 'string' && Object.hasOwn(programs, q))
    )
      fail(`database.programs.${id}.parents names a program the database does not hold`);
  }
  const known = (id: unknown): boolean => typeof id === 'string' && Object.hasOwn(programs, id);
  if (!Array.isArray(db.islands)) fail('database.islands is not a list');
  db.islands.forEach((island, i) => {
    if (!isRecord(island) || !isRecord(island.grid) || !Array.isArray(island.members))
      fail(`database.islands[${i}] is not {grid, members}`);
    const isl = island as { grid: Record<string, unknown>; members: unknown[] };
    if (!isl.members.every(known) || !Object.values(isl.grid).every(known))
      fail(`database.islands[${i}] names a program the database does not hold`);
  });
  if (!Array.isArray(db.archive) || !db.archive.every(known))
    fail('database.archive is not a list of programs the database holds');
  if (!(db.best === null || known(db.best))) fail('database.best is not a program the database holds');
  if (!isCount(db.migrations)) fail('database.migrations is not a non-negative integer');
}
