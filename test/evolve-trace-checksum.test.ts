import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceChecksum } from '../src/evolve/trace-checksum.js';
import { loadTrace } from '../src/trace/load.js';

const NAME = 'sglang-r1-prefill-in1024';

/** A copy of a bundled trace in `dir`, optionally with one load changed. */
function copyTrace(dir: string, change = false): string {
  mkdirSync(dir, { recursive: true });
  cpSync(`traces/${NAME}.json`, join(dir, `${NAME}.json`));
  const bin = readFileSync(`traces/${NAME}.bin`);
  if (change) new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4)[7]! += 1;
  writeFileSync(join(dir, `${NAME}.bin`), bin);
  return join(dir, `${NAME}.json`);
}

describe("the reproducer's trace checksum", () => {
  it('covers the loads, also in folders whose names hold spaces, # and %', () => {
    const root = mkdtempSync(join(tmpdir(), 'adrs-checksum-'));
    const same = loadTrace(copyTrace(join(root, 'a b#1 50%')));
    const changed = loadTrace(copyTrace(join(root, 'c d#2 %20'), true));
    const bundled = loadTrace(NAME);
    expect(traceChecksum(same)).toMatch(/^[0-9a-f]{64}$/);
    // Same manifest and data wherever it lives: same checksum; one load changed: another one.
    expect(traceChecksum(same)).toBe(traceChecksum(bundled));
    expect(traceChecksum(changed)).not.toBe(traceChecksum(same));
  });

  it('covers the manifest and traces built in memory', () => {
    const t = loadTrace(NAME);
    const renamed = { ...t, manifest: { ...t.manifest, name: 'other' } };
    expect(traceChecksum(renamed)).not.toBe(traceChecksum(t));
    const { path: _path, ...inMemory } = t;
    expect(traceChecksum(inMemory)).toBe(traceChecksum(t));
  });
});
