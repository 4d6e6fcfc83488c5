import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../src/evolve/checkpoint.js';
import { defaultConfig } from '../src/evolve/config.js';
import { ProgramDatabase } from '../src/evolve/database.js';
import { UserError } from '../src/util/errors.js';

/** A checkpoint the controller wrote (the version-1 fixture run, 6 iterations). */
const FILE = join(import.meta.dirname, 'fixtures', 'evolve-v1-run', 'checkpoint.json');
const TEXT = readFileSync(FILE, 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: the tests damage arbitrary fields of parsed JSON
type Json = Record<string, any>;

function damaged(edit: (cp: Json) => void): string {
  const cp = JSON.parse(TEXT) as Json;
  edit(cp);
  return JSON.stringify(cp);
}

describe('checkpoint.json as --resume reads it', () => {
  it('reads what the controller wrote', () => {
    const cp = parseCheckpoint(TEXT, FILE);
    expect(cp.committed).toBe(6);
    expect(Object.keys(cp.database.programs)).toContain('p0');
  });

  const cases: Array<[string, string, RegExp]> = [
    ['cut short', TEXT.slice(0, TEXT.length >> 1), /not JSON/],
    ['another format', damaged((c) => (c.format = 'adrs-evolve-checkpoint/9')), /format is/],
    ['a negative committed count', damaged((c) => (c.committed = -1)), /committed/],
    ['no rng seed', damaged((c) => delete c.rng.seed), /rng/],
    ['a counter that is text', damaged((c) => (c.counters.cost_usd = '0')), /counters\.cost_usd/],
    ['no programs', damaged((c) => delete c.database.programs), /database\.programs is not/],
    ['a program under another id', damaged((c) => (c.database.programs.p1.id = 'p2')), /programs\.p1/],
    [
      'a program named like a prototype key',
      damaged((c) => (c.database.programs.constructor = {})),
      /constructor/,
    ],
    ['a parent it does not hold', damaged((c) => (c.database.programs.p1.parents = ['p99'])), /parents/],
    [
      'an island member it does not hold',
      damaged((c) => c.database.islands[0].members.push('p42')),
      /islands\[0\]/,
    ],
    ['a best it does not hold', damaged((c) => (c.database.best = 'p77')), /database\.best/],
    ['a best found on the prototype', damaged((c) => (c.database.best = 'toString')), /database\.best/],
  ];
  it.each(cases)('refuses a checkpoint with %s, in one line naming the file', (_, text, problem) => {
    let error: unknown;
    try {
      parseCheckpoint(text, FILE);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).toMatch(problem);
    expect(message.startsWith(`${FILE}: `)).toBe(true);
    expect(message).not.toContain('\n');
  });
});

describe('the program database', () => {
  it("holds only its own programs: an id such as 'constructor' is not one", () => {
    const db = new ProgramDatabase(defaultConfig().search, parseCheckpoint(TEXT, FILE).database);
    expect(db.has('p0')).toBe(true);
    expect(db.has('constructor')).toBe(false);
    expect(db.has('toString')).toBe(false);
    expect(() => db.get('constructor')).toThrow(/not in the database/);
  });
});
