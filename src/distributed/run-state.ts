import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import type { BrokerRunState } from './broker-evaluator.js';

interface Stored {
  format: 'adrs-broker-run/1';
  run_id: string;
  adapter: string | null;
}

/**
 * broker.json in the run folder: the run's queue identity (so a resumed controller finds the jobs
 * it had queued before a kill -9) and the GPU its times come from. Written before the first job is
 * added, read on resume. The folder exists by then: the controller creates it before evaluating.
 */
export class FolderRunState implements BrokerRunState {
  private stored: Stored | null = null;
  constructor(private readonly dir: string) {}

  private load(): Stored {
    if (this.stored) return this.stored;
    const path = join(this.dir, 'broker.json');
    if (existsSync(path)) this.stored = readStored(path);
    else {
      this.stored = { format: 'adrs-broker-run/1', run_id: randomBytes(8).toString('hex'), adapter: null };
      this.save();
    }
    return this.stored;
  }

  private save(): void {
    writeFileAtomic(join(this.dir, 'broker.json'), `${JSON.stringify(this.stored, null, 2)}\n`);
  }

  runId(): string {
    return this.load().run_id;
  }
  adapter(): string | null {
    return this.load().adapter;
  }
  pinAdapter(adapter: string): void {
    this.load().adapter = adapter;
    this.save();
  }
}

/** broker.json as written by save(); anything else is a damaged run folder, refused in one line. */
function readStored(path: string): Stored {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new UserError(`${path} is not JSON; the run folder is damaged`);
  }
  const fields = new Map<string, unknown>(typeof v === 'object' && v !== null ? Object.entries(v) : []);
  const format = fields.get('format');
  const runId = fields.get('run_id');
  const adapter = fields.get('adapter');
  if (
    format !== 'adrs-broker-run/1' ||
    typeof runId !== 'string' ||
    !(adapter === null || typeof adapter === 'string')
  )
    throw new UserError(
      `${path} is not an adrs-broker-run/1 record (format, run_id, adapter); the run folder is damaged`,
    );
  return { format, run_id: runId, adapter };
}

/** A batch without a run folder (adrs eval): the id is given (the batch's content), the pin lives in memory. */
export class MemoryRunState implements BrokerRunState {
  private pinned: string | null = null;
  constructor(private readonly id: string) {}
  runId(): string {
    return this.id;
  }
  adapter(): string | null {
    return this.pinned;
  }
  pinAdapter(adapter: string): void {
    this.pinned = adapter;
  }
}
