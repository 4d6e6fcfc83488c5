import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderRunState } from '../src/distributed/run-state.js';
import { tempDirs } from './helpers/temp-dirs.js';

const tempDir = tempDirs('adrs-run-state-');

describe("broker.json, a run's queue identity", () => {
  it('is created once and read back by a resumed controller, with its pinned adapter', () => {
    const dir = tempDir();
    const first = new FolderRunState(dir);
    const id = first.runId();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    first.pinAdapter('toy-gpu');
    const again = new FolderRunState(dir);
    expect([again.runId(), again.adapter()]).toEqual([id, 'toy-gpu']);
  });

  it('refuses a damaged broker.json in one line instead of queueing under a wrong identity', () => {
    for (const [text, problem] of [
      ['{"format":"adrs-broker-run/1","run_id":"ab"', /broker\.json is not JSON; the run folder is damaged$/],
      ['{"format":"adrs-broker-run/1","run_id":7,"adapter":null}', /is not an adrs-broker-run\/1 record/],
      ['{"format":"adrs-broker-run/2","run_id":"ab","adapter":null}', /is not an adrs-broker-run\/1 record/],
      ['["adrs-broker-run/1","ab",null]', /is not an adrs-broker-run\/1 record/],
    ] as const) {
      const dir = tempDir();
      writeFileSync(join(dir, 'broker.json'), text);
      expect(() => new FolderRunState(dir).runId()).toThrow(problem);
    }
  });
});
