import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RunFolder, readRunConfig } from '../src/evolve/run-folder.js';
import { parseEvents } from '../src/evolve/run-log/read.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'adrs-run-folder-'));
  dirs.push(d);
  return d;
};

// Non-ASCII content, so a cut measured in characters instead of bytes would land in the wrong place.
const a = '{"v":2,"type":"run","mode":"start","note":"état ✓"}\n';
const b =
  '{"v":2,"type":"commit","iteration":0,"outcome":"seed","hash":"ab12ab12ab12ab12","id":"p0","score":1}\n';

describe('events.jsonl, as --resume, --replay and adrs report read it', () => {
  it('parses complete lines and reports a torn final line', () => {
    expect(parseEvents(a + b)).toEqual({
      events: [JSON.parse(a), JSON.parse(b)],
      tail: { lines: 2, tornBytes: 0, badLine: null, cleanBytes: Buffer.byteLength(a + b) },
    });
    const torn = parseEvents(`${a}${b}{"type":"heldout","se`);
    expect(torn.events).toHaveLength(2);
    expect(torn.tail).toMatchObject({ tornBytes: 21, badLine: null, cleanBytes: Buffer.byteLength(a + b) });
  });

  it('stops at the first line that is not JSON and counts the lines ignored after it', () => {
    const r = parseEvents(`${a}not json\n${b}${b}`);
    expect(r.events).toEqual([JSON.parse(a)]);
    expect(r.tail).toEqual({
      lines: 4,
      tornBytes: 0,
      badLine: { line: 2, ignoredAfter: 2 },
      cleanBytes: Buffer.byteLength(a),
    });
  });

  it('RunFolder reads the same events, and cutting after them removes a torn tail', () => {
    for (const [text, kept] of [
      [`${a}${b}{"type":"plan"`, a + b],
      [`${a}garbage\n`, a],
      [a + b, a + b],
    ] as const) {
      const dir = tempDir();
      writeFileSync(join(dir, 'events.jsonl'), text);
      const folder = new RunFolder(dir);
      expect(folder.readEvents()).toEqual(parseEvents(text).events);
      expect(readFileSync(folder.eventsPath, 'utf8')).toBe(text);
      const log = folder.readLog();
      expect(log.events).toEqual(parseEvents(text).events);
      folder.cutAfter(log.cleanBytes);
      expect(readFileSync(folder.eventsPath, 'utf8')).toBe(kept);
    }
  });

  it('refuses, and leaves as it is, a log with events after a line that is not JSON (a kill tears only the last line)', () => {
    const dir = tempDir();
    const text = `${a}garbage\n${b}`;
    writeFileSync(join(dir, 'events.jsonl'), text);
    const folder = new RunFolder(dir);
    const problem = `${folder.eventsPath}:2: the line is not JSON, yet 1 line(s) follow it`;
    expect(() => folder.readEvents()).toThrow(problem);
    expect(() => folder.readLog()).toThrow(problem);
    expect(readFileSync(folder.eventsPath, 'utf8')).toBe(text);
  });

  it('refuses a config.json that is not JSON or not an evolve config in one line', () => {
    const dir = tempDir();
    const path = join(dir, 'config.json');
    writeFileSync(path, '{"seed": 7,');
    expect(() => readRunConfig(path)).toThrow(/cannot be read as JSON .*the run folder is damaged$/);
    writeFileSync(path, '{"seed": 7}');
    expect(() => readRunConfig(path)).toThrow(/is not an adrs evolve config/);
    writeFileSync(path, '{"seed": 7, "llm": {"models": []}, "search": {}, "evaluator": {}}');
    expect(new RunFolder(dir).readConfig().seed).toBe(7);
  });
});
