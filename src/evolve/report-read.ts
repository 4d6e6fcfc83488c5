import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { loadCandidateDir, programHash } from './candidate.js';
import type { Checkpoint } from './checkpoint.js';
import type { EvolveConfig } from './config.js';
import { readRunConfig, type StoredProgram } from './run-folder.js';
import { BlobStore } from './run-log/blobs.js';
import type { RunEvent } from './run-log/events.js';
import { RunState } from './run-log/fold.js';
import { type EventsTail, readRunLog } from './run-log/read.js';

/** A file of the run folder that exists but cannot be read as JSON. */
export interface UnreadableFile {
  path: string;
  error: string;
}

/** Everything a report reads from a run folder, read-only. Optional files are null when absent. */
export interface RunFiles {
  dir: string;
  config: EvolveConfig;
  events: RunEvent[];
  /** The events folded (run-log/fold.ts): the same reading as --resume and --replay. */
  state: RunState;
  /** prompts/ and responses/ (and the texts a version-1 log held inline). */
  blobs: BlobStore;
  tail: EventsTail;
  /** Age of events.jsonl's last write, seconds (to tell a live run from a killed one). */
  eventsAgeS: number;
  checkpoint: Checkpoint | null;
  summary: Record<string, unknown> | null;
  bestMetrics: Record<string, unknown> | null;
  bestLineage: unknown[] | null;
  /** Hash of the program in best/candidate (null when there is none). */
  bestCandidateHash: string | null;
  unreadable: UnreadableFile[];
  /** programs/<hash>.json, or null when missing or unreadable (noted in `unreadable`). */
  program(hash: string): StoredProgram | null;
}

/**
 * Opens a run folder for reading only: config.json and events.jsonl must be there and config.json
 * must parse; every other file is optional and a broken one is reported, not fatal.
 */
export function readRunFiles(dir: string, now = Date.now()): RunFiles {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(`'${dir}' does not exist; pass the --out folder of an adrs evolve run`);
  }
  if (!st.isDirectory())
    throw new UserError(`'${dir}' is not a folder; pass the --out folder of an adrs evolve run`);
  const configPath = join(dir, 'config.json');
  const eventsPath = join(dir, 'events.jsonl');
  if (!existsSync(configPath) || !existsSync(eventsPath)) {
    throw new UserError(
      `'${dir}' is not a run folder (no config.json/events.jsonl); pass the --out folder of an adrs evolve run`,
    );
  }
  const config = readRunConfig(configPath);
  const { events, tail, texts } = readRunLog(readFileSync(eventsPath, 'utf8'), eventsPath);
  const unreadable: UnreadableFile[] = [];
  const optional = <T>(rel: string): T | null => {
    const p = join(dir, rel);
    if (!existsSync(p)) return null;
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as T;
    } catch (error) {
      unreadable.push({ path: rel, error: (error as Error).message.split('\n')[0]! });
      return null;
    }
  };
  const blobs = new BlobStore(dir);
  blobs.learn(texts);
  const checkpoint = optional<Checkpoint>('checkpoint.json');
  const summary = optional<Record<string, unknown>>('summary.json');
  const bestMetrics = optional<Record<string, unknown>>(join('best', 'metrics.json'));
  const lineage = optional<unknown>(join('best', 'lineage.json'));
  let bestCandidateHash: string | null = null;
  if (existsSync(join(dir, 'best', 'candidate'))) {
    try {
      bestCandidateHash = programHash(loadCandidateDir(join(dir, 'best', 'candidate')));
    } catch (error) {
      unreadable.push({ path: 'best/candidate', error: (error as Error).message.split('\n')[0]! });
    }
  }
  const programs = new Map<string, StoredProgram | null>();
  return {
    dir,
    config,
    events,
    state: RunState.fold(events),
    blobs,
    tail,
    eventsAgeS: Math.max(0, (now - statSync(eventsPath).mtimeMs) / 1000),
    checkpoint,
    summary,
    bestMetrics,
    bestLineage: Array.isArray(lineage) ? lineage : null,
    bestCandidateHash,
    unreadable,
    program(hash) {
      if (!programs.has(hash)) programs.set(hash, optional<StoredProgram>(join('programs', `${hash}.json`)));
      return programs.get(hash)!;
    },
  };
}
