import { closest } from '../util/did-you-mean.js';
import { UserError } from '../util/errors.js';

/**
 * The machinery of a declarative config schema (src/evolve/config.ts holds the one schema, of
 * `adrs evolve`): a schema is a tree of sections whose leaves are keys, each with its description,
 * default, reader (type and bounds, a one-line error naming the key), flag or 'file-only', and
 * resume rule. From the tree come the config's TypeScript type (ConfigOf), its defaults, the reading
 * of a config file with did-you-mean for unknown keys, and the flags' ConfigOverrides type.
 */

/** Reads one key's value from a config file (never undefined), naming the key in its error. */
export type Read<T> = (raw: unknown, key: string, v: Validator) => T;

/** A command-line flag that sets a key (contract: flags win over the file). */
export interface Flag<T, N extends string, V extends number | string> {
  readonly name: N;
  readonly type: V extends number ? 'number' : 'string';
  /** --help text, when the key's own description does not fit a flag. */
  readonly describe?: string;
  /**
   * The key's new value from the flag's; `current` is the value the file gave. The key's reader
   * then checks it as it checks the file's (applyOverrides), so a flag cannot set what a file may not.
   */
  readonly toValue: (value: V, current: T, flag: string) => T;
}

/**
 * A key of the config. `resume`: 'free' when a resumed run may change it (it only extends the run or
 * says where its server is), 'frozen' when it decides which programs the run produces.
 */
export interface Key<T, F> {
  readonly kind: 'key';
  readonly describe: string;
  readonly default: T;
  readonly read: Read<T>;
  readonly resume: 'frozen' | 'free';
  /** Its flag, or 'file-only': set in the config file alone. */
  readonly flag: F;
  /** The key's name in a config file when it differs from the config's (time_limit → time_limit_s). */
  readonly file?: string;
}

/** A second spelling in a config file that sets another key of its section (problem_file → problem). */
export interface Alias {
  readonly kind: 'alias';
  readonly describe: string;
  readonly target: string;
  readonly read: Read<unknown>;
}

export interface Section<S> {
  readonly kind: 'section';
  readonly describe: string;
  readonly keys: S;
  /** Checks between the section's keys, after each was read. */
  readonly refine?: (value: ConfigOf<S>, where: string) => void;
}

/** The schema as the code that walks it sees it: every entry's value is `unknown` there. */
export interface AnyFlag {
  readonly name: string;
  readonly type: 'number' | 'string';
  readonly describe?: string;
  readonly toValue: (value: number | string, current: unknown, flag: string) => unknown;
}
export type AnyKey = Omit<Key<unknown, unknown>, 'flag'> & { readonly flag: AnyFlag | 'file-only' };
type Entry = AnyKey | Alias | AnySection;
export interface AnySection {
  readonly kind: 'section';
  readonly describe: string;
  readonly keys: Record<string, Entry>;
  readonly refine?: (value: never, where: string) => void;
}

/** The config value a schema section describes (aliases are file spellings, not keys of the config). */
export type ConfigOf<S> = {
  -readonly [K in keyof S as S[K] extends Alias ? never : K]: S[K] extends Key<infer T, unknown>
    ? T
    : S[K] extends Section<infer C>
      ? ConfigOf<C>
      : never;
};

/** [flag name, flag value] for every flag of a schema section. */
export type FlagsOf<S> = {
  [K in keyof S]: S[K] extends Key<unknown, { name: infer N; type: infer V }>
    ? [N, V extends 'number' ? number : string]
    : S[K] extends Section<infer C>
      ? FlagsOf<C>
      : never;
}[keyof S];

export type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;

export function key<T, F extends Flag<T, string, number> | Flag<T, string, string> | 'file-only'>(spec: {
  describe: string;
  default: T;
  read: Read<T>;
  flag: F;
  resume?: 'frozen' | 'free';
  file?: string;
}): Key<T, F> {
  return { kind: 'key', resume: 'frozen', ...spec };
}

/** A key set in the config file alone (no flag). */
export const fileOnly = <T>(describe: string, def: T, read: Read<T>, resume: 'frozen' | 'free' = 'frozen') =>
  key({ describe, default: def, read, flag: 'file-only', resume });

export function section<S extends Record<string, unknown>>(
  describe: string,
  keys: S,
  refine?: (value: ConfigOf<S>, where: string) => void,
): Section<S> {
  return { kind: 'section', describe, keys, ...(refine ? { refine } : {}) };
}

export const alias = (target: string, describe: string, read: Read<unknown>): Alias => ({
  kind: 'alias',
  describe,
  target,
  read,
});

/** A flag of a key: its value type ('number' or 'string'), how it becomes the key's value, its --help text. */
function flag<T, N extends string, V extends number | string>(
  name: N,
  type: Flag<T, N, V>['type'],
  toValue: (value: V, current: T, flag: string) => T,
  describe?: string,
): Flag<T, N, V> {
  return { name, type, toValue, ...(describe ? { describe } : {}) };
}

export const numberFlag = <T, N extends string>(
  name: N,
  toValue: (value: number, current: T, flag: string) => T,
  describe?: string,
) => flag<T, N, number>(name, 'number', toValue, describe);

export const stringFlag = <T, N extends string>(
  name: N,
  toValue: (value: string, current: T, flag: string) => T,
  describe?: string,
) => flag<T, N, string>(name, 'string', toValue, describe);

// Readers: each names the key and what it must be in its one-line error.
export const int =
  (min: number): Read<number> =>
  (raw, k, v) =>
    v.int(raw, k, min);
export const num =
  (min?: number, max?: number): Read<number> =>
  (raw, k, v) =>
    v.num(raw, k, min, max);
export const str: Read<string> = (raw, k, v) => v.str(raw, k);
export const oneOf =
  <T extends string>(options: T[]): Read<T> =>
  (raw, k, v) =>
    v.oneOf(raw, k, options);
export const orNull =
  <T>(read: Read<T>): Read<T | null> =>
  (raw, k, v) =>
    raw === null ? null : read(raw, k, v);
export const budget: Read<number | null> = (raw, k, v) => v.budget(raw, k);
export const bool: Read<boolean> = (raw, k, v) => {
  if (typeof raw !== 'boolean') v.fail(k, 'true or false', raw);
  return raw as boolean;
};

export function defaultsOf(s: AnySection): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(s.keys)) {
    if (entry.kind === 'key') out[name] = structuredClone(entry.default);
    else if (entry.kind === 'section') out[name] = defaultsOf(entry);
  }
  return out;
}

/** '90s', '15m', '2h', '1h30m' or a bare number of seconds. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') return text;
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)\s*(h|m|s)/g;
  let total = 0;
  let consumed = '';
  for (const m of t.matchAll(re)) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h' | 'm' | 's'];
    consumed += m[0];
  }
  if (consumed.replace(/\s/g, '') !== t.replace(/\s/g, '') || consumed === '') {
    throw new UserError(`cannot read the duration '${text}'; write e.g. 90s, 15m, 2h or 1h30m`);
  }
  return total;
}

/** A section's keys in a config file, in schema order (what the unknown-key error lists). */
const fileKeys = (s: AnySection): string[] =>
  Object.entries(s.keys).map(([name, e]) => (e.kind === 'key' ? (e.file ?? name) : name));

/**
 * A section of a config file read against its schema: unknown keys refused, defaults filled, each key
 * read and the section refined. `root`: the whole schema, where a key in the wrong section is found.
 */
export function readSection(
  s: AnySection,
  given: Record<string, unknown>,
  prefix: string,
  v: Validator,
  root: AnySection = s,
): Record<string, unknown> {
  v.known(
    given,
    prefix,
    fileKeys(s),
    keysOf(root).map((k) => k.filePath),
  );
  const out = defaultsOf(s);
  for (const [name, entry] of Object.entries(s.keys)) {
    const fileKey = entry.kind === 'key' ? (entry.file ?? name) : name;
    const raw = given[fileKey];
    if (raw === undefined) continue;
    const path = prefix + fileKey;
    if (entry.kind === 'key') out[name] = entry.read(raw, path, v);
    else if (entry.kind === 'alias') out[entry.target] = entry.read(raw, path, v);
    else out[name] = readSection(entry, v.obj(raw, path), `${path}.`, v, root);
  }
  s.refine?.(out as never, v.where);
  return out;
}

export class Validator {
  /** `where`: the config file ('config' inline), or '' for a flag, whose errors name the flag alone. */
  constructor(readonly where: string) {}
  fail(key: string, want: string, got: unknown): never {
    throw new UserError(
      `${this.where ? `${this.where}: ` : ''}${key} must be ${want}, got ${JSON.stringify(got)}`,
    );
  }
  /**
   * Refuses a key not in `keys`, suggesting the closest of them, else the same name in another
   * section (`elsewhere`: every key's dotted path in the file, e.g. budget_usd → llm.budget_usd).
   */
  known(
    obj: Record<string, unknown>,
    prefix: string,
    keys: string[],
    elsewhere: readonly string[] = [],
  ): void {
    for (const k of Object.keys(obj)) {
      if (keys.includes(k)) continue;
      const near = closest(k, keys);
      const moved = near === undefined ? elsewhere.find((p) => p.split('.').at(-1) === k) : undefined;
      const hint = near !== undefined ? `${prefix}${near}` : moved;
      throw new UserError(
        `${this.where}: unknown key '${prefix}${k}'${hint ? ` (did you mean '${hint}'?)` : ''}; allowed: ${keys.join(', ')}`,
      );
    }
  }
  /** A mapping; with `keys`, also checked for unknown keys. */
  obj(raw: unknown, key: string, keys?: string[]): Record<string, unknown> {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail(key, 'a mapping', raw);
    if (keys) this.known(raw as Record<string, unknown>, `${key}.`, keys);
    return raw as Record<string, unknown>;
  }
  str(raw: unknown, key: string): string {
    if (typeof raw !== 'string' || raw === '') this.fail(key, 'a non-empty string', raw);
    return raw as string;
  }
  num(raw: unknown, key: string, min = -Infinity, max = Infinity): number {
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < min || raw > max) {
      this.fail(
        key,
        `a number${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` and ≤ ${max}` : ''}`,
        raw,
      );
    }
    return raw as number;
  }
  /** A cap is positive or null (no cap): a cap of 0 would stop the run before its first model call. */
  budget(raw: unknown, key: string): number | null {
    if (raw === null) return null;
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw <= 0)
      this.fail(key, 'a number > 0, or null for no cap (a cap of 0 would stop before the first call)', raw);
    return raw as number;
  }
  int(raw: unknown, key: string, min = -Infinity): number {
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min)
      this.fail(key, `an integer ≥ ${min}`, raw);
    return raw as number;
  }
  oneOf<T extends string>(raw: unknown, key: string, options: T[]): T {
    if (!options.includes(raw as T)) this.fail(key, `one of ${options.join(', ')}`, raw);
    return raw as T;
  }
  /** Seconds, from a number or a text such as 15m; never negative, NaN or infinite (YAML's .nan and .inf are numbers). */
  duration(raw: unknown, key: string): number {
    const want = 'a duration ≥ 0 such as 90s, 15m or 2h';
    if (typeof raw !== 'number' && typeof raw !== 'string') this.fail(key, want, raw);
    const seconds = parseDuration(raw as string | number);
    if (!Number.isFinite(seconds) || seconds < 0) this.fail(key, want, raw);
    return seconds;
  }
}

/** The mapping holding the key at a dotted path of a config, and the key's name in it. */
export function slot(config: unknown, path: string): { node: Record<string, unknown>; name: string } {
  const parts = path.split('.');
  const name = parts.pop()!;
  let node = config as Record<string, unknown>;
  for (const p of parts) node = node[p] as Record<string, unknown>;
  return { node, name };
}

/** Every key of a schema with its dotted path in the config and in a config file (aliases and sections left out). */
export function keysOf(root: AnySection): { path: string; filePath: string; key: AnyKey }[] {
  const out: { path: string; filePath: string; key: AnyKey }[] = [];
  const walk = (s: AnySection, prefix: string): void => {
    for (const [name, entry] of Object.entries(s.keys)) {
      if (entry.kind === 'key')
        out.push({ path: prefix + name, filePath: prefix + (entry.file ?? name), key: entry });
      else if (entry.kind === 'section') walk(entry, `${prefix}${name}.`);
    }
  };
  walk(root, '');
  return out;
}
