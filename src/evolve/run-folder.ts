import {
  appendFileSync,
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import { type CandidateFiles, programHash } from './candidate.js';
import { type Checkpoint, parseCheckpoint } from './checkpoint.js';
import type { EvolveConfig } from './config.js';
import type { EvalOutcome } from './evaluator.js';
import { BlobStore } from './run-log/blobs.js';
import type { RunEvent } from './run-log/events.js';
import { readRunLog } from './run-log/read.js';

export interface StoredProgram {
  hash: string;
  files: CandidateFiles;
  result: EvalOutcome;
}

/**
 * The run folder: config.json (resolved), events.jsonl (append-only, versioned: run-log/events.ts),
 * checkpoint.json (atomic), programs/<hash>.json, prompts/<sha256>.json and responses/<sha256>.txt
 * (content-addressed, written once, before the event naming them), best/ (files, metrics, lineage,
 * reproducer). A kill -9 at any instant leaves it resumable.
 */
export class RunFolder {
  readonly eventsPath: string;
  readonly blobs: BlobStore;
  constructor(readonly dir: string) {
    this.eventsPath = join(dir, 'events.jsonl');
    this.blobs = new BlobStore(dir);
  }

  /** Refuses a folder that already holds a run (checked again by create). */
  static checkFree(dir: string): void {
    if (existsSync(join(dir, 'events.jsonl'))) {
      throw new UserError(
        `run folder '${dir}' already holds a run; continue it with --resume ${dir} or choose another --out`,
      );
    }
  }

  static create(dir: string, config: EvolveConfig): RunFolder {
    RunFolder.checkFree(dir);
    mkdirSync(join(dir, 'programs'), { recursive: true });
    const f = new RunFolder(dir);
    writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    return f;
  }

  static open(dir: string): RunFolder {
    if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'events.jsonl'))) {
      throw new UserError(
        `'${dir}' is not a run folder (no config.json/events.jsonl); pass the --out folder of an earlier run`,
      );
    }
    return new RunFolder(dir);
  }

  readConfig(): EvolveConfig {
    return readRunConfig(join(this.dir, 'config.json'));
  }

  writeConfig(config: EvolveConfig): void {
    writeFileAtomic(join(this.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }

  append(event: RunEvent): void {
    appendFileSync(this.eventsPath, `${JSON.stringify(event)}\n`);
  }

  /**
   * Every complete event, checked and migrated to the current version (readRunLog); the texts a
   * version-1 log held inline become readable through `blobs`. `cleanBytes`: how much of the file
   * those events take; what follows (a line torn by a kill) is cut by `cutAfter` before appending.
   */
  readLog(): { events: RunEvent[]; cleanBytes: number } {
    if (!existsSync(this.eventsPath)) return { events: [], cleanBytes: 0 };
    const { events, tail, texts } = readRunLog(readFileSync(this.eventsPath, 'utf8'), this.eventsPath);
    this.blobs.learn(texts);
    return { events, cleanBytes: tail.cleanBytes };
  }

  /** Every complete event (readLog), for readers that do not append. */
  readEvents(): RunEvent[] {
    return this.readLog().events;
  }

  /** Cuts events.jsonl to its first `cleanBytes` bytes, so appends continue from a clean line. */
  cutAfter(cleanBytes: number): void {
    if (!existsSync(this.eventsPath) || statSync(this.eventsPath).size <= cleanBytes) return;
    const fd = openSync(this.eventsPath, 'r+');
    try {
      ftruncateSync(fd, cleanBytes);
    } finally {
      closeSync(fd);
    }
  }

  writeCheckpoint(cp: Checkpoint): void {
    writeFileAtomic(join(this.dir, 'checkpoint.json'), JSON.stringify(cp));
  }

  readCheckpoint(): Checkpoint | null {
    const p = join(this.dir, 'checkpoint.json');
    if (!existsSync(p)) return null;
    return parseCheckpoint(readFileSync(p, 'utf8'), p);
  }

  programPath(hash: string): string {
    return join(this.dir, 'programs', `${hash}.json`);
  }

  /**
   * Stores an evaluated program, before the evaluation event that records its result. Written
   * even when the file exists: one left by a kill before that event holds an earlier measurement,
   * and the stored result must be the one the event records.
   */
  storeProgram(p: StoredProgram): void {
    writeFileAtomic(this.programPath(p.hash), JSON.stringify(p));
  }

  /**
   * A stored program, checked to be the one its name says: its code goes to the model as a parent
   * on resume and is a replay's seed, so a file changed since it was written is refused.
   */
  loadProgram(hash: string): StoredProgram {
    const path = this.programPath(hash);
    const p: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (!holdsProgram(p, hash))
      throw new UserError(
        `${path} does not hold the program ${hash}; it was changed after it was written, so the run folder cannot be trusted`,
      );
    return p;
  }

  /** best/: the candidate's files as a ready folder, its metrics, its lineage and a reproducer. */
  writeBest(best: {
    files: CandidateFiles;
    metrics: Record<string, unknown>;
    lineage: unknown[];
    reproducer: Record<string, unknown>;
  }): void {
    const dir = join(this.dir, 'best');
    rmSync(join(dir, 'candidate'), { recursive: true, force: true });
    for (const [path, text] of Object.entries(best.files))
      writeFileAtomic(join(dir, 'candidate', path), text);
    writeFileAtomic(join(dir, 'metrics.json'), `${JSON.stringify(best.metrics, null, 2)}\n`);
    writeFileAtomic(join(dir, 'lineage.json'), `${JSON.stringify(best.lineage, null, 2)}\n`);
    writeFileAtomic(join(dir, 'reproducer.json'), `${JSON.stringify(best.reproducer, null, 2)}\n`);
  }

  writeSummary(summary: unknown): void {
    writeFileAtomic(join(this.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  }
}

/** Whether a programs/ file holds the program its name says: its code hashes to `hash`. */
export function holdsProgram(p: unknown, hash: string): p is StoredProgram {
  const files = typeof p === 'object' && p !== null ? (p as Partial<StoredProgram>).files : undefined;
  return (
    typeof files === 'object' &&
    files !== null &&
    Object.values(files).every((t) => typeof t === 'string') &&
    programHash(files) === hash
  );
}

/** config.json of a run folder, checked to be an adrs evolve config: a damaged one is a one-line error. */
export function readRunConfig(path: string): EvolveConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UserError(
      `${path} cannot be read as JSON (${(error as Error).message.split('\n')[0]}); the run folder is damaged`,
    );
  }
  const c = raw as Partial<EvolveConfig> | null;
  const ok =
    typeof c === 'object' &&
    c !== null &&
    typeof c.seed === 'number' &&
    Array.isArray(c.llm?.models) &&
    typeof c.search === 'object' &&
    typeof c.evaluator === 'object';
  if (!ok)
    throw new UserError(`${path} is not an adrs evolve config (no seed, llm.models, search or evaluator)`);
  return c as EvolveConfig;
}
