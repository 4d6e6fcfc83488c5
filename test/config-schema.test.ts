import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import yargs from 'yargs';
import { configOverrides, evolveCommand } from '../src/cli/commands/evolve.js';
import {
  applyOverrides,
  CONFIG_FLAGS,
  type ConfigOverrides,
  configKeys,
  defaultConfig,
  type EvolveConfig,
  resumeConfig,
  validateConfig,
} from '../src/evolve/config.js';
import { readRunConfig } from '../src/evolve/run-folder.js';
import { closest, editDistance } from '../src/util/did-you-mean.js';
import { declaredOptions } from './helpers/cli.js';

/** The value at a dotted path of a config. */
const get = (c: unknown, path: string): unknown =>
  path.split('.').reduce((node, k) => (node as Record<string, unknown>)[k], c);

/** The options `adrs evolve` declares, as yargs sees them. */
function evolveOptions(): string[] {
  const builder = evolveCommand.builder as (y: ReturnType<typeof yargs>) => ReturnType<typeof yargs>;
  return declaredOptions(builder(yargs([])));
}

/** A value for a flag that differs from every default (a number, or a duration/URL/model name). */
const sample = (type: 'number' | 'string'): number | string => (type === 'number' ? 7 : '90');

describe('one config schema', () => {
  it('gives every key a flag or marks it file-only, and adrs evolve declares exactly those flags', () => {
    const keys = configKeys();
    expect(keys.length).toBeGreaterThan(40);
    for (const { path, key } of keys) {
      expect(key.describe, path).not.toBe('');
      expect(key.flag === 'file-only' || typeof key.flag.name === 'string', path).toBe(true);
    }
    const flagged = keys.filter((k) => k.key.flag !== 'file-only').map((k) => k.path);
    expect(CONFIG_FLAGS.map((f) => f.path)).toEqual(flagged);
    const options = evolveOptions();
    for (const f of CONFIG_FLAGS) expect(options, f.name).toContain(f.name);
    // The session's own flags are the only others: a config key cannot get a flag outside the schema.
    const session = [
      'help',
      'version',
      'json',
      'config',
      'out',
      'resume',
      'replay',
      'quiet',
      'broker',
      'serve',
    ];
    expect([...options].sort()).toEqual([...session, ...CONFIG_FLAGS.map((f) => f.name)].sort());
  });

  it('maps every flag, parsed by the command line, to the key its schema entry names', async () => {
    const args = CONFIG_FLAGS.flatMap((f) => [`--${f.name}`, String(sample(f.type))]);
    const builder = evolveCommand.builder as (y: ReturnType<typeof yargs>) => ReturnType<typeof yargs>;
    const argv = await builder(yargs(args)).parseAsync();
    const overrides = configOverrides(argv);
    expect(Object.keys(overrides).sort()).toEqual(CONFIG_FLAGS.map((f) => f.key).sort());
    const base = defaultConfig();
    const c = applyOverrides(base, overrides);
    for (const f of CONFIG_FLAGS) expect(get(c, f.path), f.name).not.toEqual(get(base, f.path));
    expect(c.time_limit_s).toBe(90);
    expect(c.llm.models).toEqual([
      { name: '90', weight: 1, price_input_per_mtok: 0, price_output_per_mtok: 0 },
    ]);
  });

  it('reads its own defaults back from a file spelling every key (time_limit is time_limit_s in the config)', () => {
    const defaults = defaultConfig();
    const file: Record<string, unknown> = {};
    for (const { path, filePath } of configKeys()) {
      // The default problem is empty: no problem given, which a file cannot spell (it must be non-empty).
      if (path === 'problem') continue;
      const parts = filePath.split('.');
      const last = parts.pop()!;
      let node = file;
      for (const p of parts) {
        node[p] ??= {};
        node = node[p] as Record<string, unknown>;
      }
      node[last] = get(defaults, path);
    }
    expect(validateConfig(file)).toEqual(defaults);
    expect(validateConfig({})).toEqual(defaults);
  });

  it('names the close key of a typo, at the top level and in a section', () => {
    expect(() => validateConfig({ time_limt: '1h' })).toThrow(
      "config: unknown key 'time_limt' (did you mean 'time_limit'?)",
    );
    expect(() => validateConfig({ llm: { tempreature: 1 } })).toThrow(
      "unknown key 'llm.tempreature' (did you mean 'llm.temperature'?)",
    );
    expect(() => validateConfig({ search: { mutations: { difff: 1 } } })).toThrow(
      "unknown key 'search.mutations.difff' (did you mean 'search.mutations.diff'?)",
    );
    expect(() => validateConfig({ zzzzzzzz: 1 })).toThrow(/unknown key 'zzzzzzzz'; allowed: problem, /);
  });

  it('names the section of a key written in the wrong one', () => {
    expect(() => validateConfig({ budget_usd: 5 })).toThrow(
      "config: unknown key 'budget_usd' (did you mean 'llm.budget_usd'?)",
    );
    expect(() => validateConfig({ llm: { seed: 1 } })).toThrow(
      "unknown key 'llm.seed' (did you mean 'seed'?)",
    );
    expect(() => validateConfig({ evaluator: { diff: 1 } })).toThrow(
      "unknown key 'evaluator.diff' (did you mean 'search.mutations.diff'?)",
    );
    // A close name in the section comes first.
    expect(() => validateConfig({ llm: { retrie: 1 } })).toThrow("(did you mean 'llm.retries'?)");
  });

  it('suggests the closest name, not the first within reach', () => {
    expect(closest('timeout', ['timeout_ms', 'timeout_s'])).toBe('timeout_s');
    expect(closest('abc', ['xyz'])).toBeUndefined();
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('refuses a resume that changes a frozen key and takes one that only extends the run', () => {
    const recorded: EvolveConfig = validateConfig({ llm: { models: ['a', 'b'] } });
    for (const f of CONFIG_FLAGS) {
      const o = { [f.key]: sample(f.type) } as ConfigOverrides;
      if (f.onResume)
        expect(get(resumeConfig(recorded, o, 0), f.path), f.name).toEqual(
          get(applyOverrides(recorded, o), f.path),
        );
      else
        expect(() => resumeConfig(recorded, o, 0), f.name).toThrow(
          `--${f.name} ${sample(f.type)} cannot be given with --resume`,
        );
    }
    expect(CONFIG_FLAGS.filter((f) => f.onResume).map((f) => f.name)).toEqual([
      'iterations',
      'time-limit',
      'base-url',
      'budget-usd',
    ]);
    // The message lists what may change, from the schema.
    expect(() => resumeConfig(recorded, { seed: 1 }, 0)).toThrow(
      'resume without it (--iterations, --time-limit, --base-url and --budget-usd may change)',
    );
  });

  it('keeps a flag’s value checks', () => {
    expect(() => applyOverrides(defaultConfig(), { seed: -1 })).toThrow(
      '--seed must be a non-negative integer, got -1',
    );
    expect(() => applyOverrides(defaultConfig(), { gpus: 1.5 })).toThrow(
      '--gpus must be a positive integer, got 1.5',
    );
    expect(() => applyOverrides(defaultConfig(), { timeLimit: 'soon' })).toThrow(
      /cannot read the duration 'soon'/,
    );
  });
});

describe('a flag and its config key agree', () => {
  it('refuses from a flag what the config file refuses (was: --replicas 0, --history 0, --base-url "" taken)', () => {
    const base = defaultConfig();
    for (const key of ['replicas', 'gpus', 'nodes', 'groups', 'history'] as const) {
      expect(() => validateConfig({ evaluator: { [key]: 0 } })).toThrow(
        `evaluator.${key} must be an integer ≥ 1`,
      );
      const flag = CONFIG_FLAGS.find((f) => f.key === key)!.name;
      expect(() => applyOverrides(base, { [key]: 0 })).toThrow(`--${flag} must be a positive integer, got 0`);
      expect(applyOverrides(base, { [key]: 3 }).evaluator[key]).toBe(3);
    }
    expect(() => validateConfig({ llm: { base_url: '' } })).toThrow(
      'llm.base_url must be a non-empty string',
    );
    expect(() => applyOverrides(base, { baseUrl: '' })).toThrow(
      '--base-url must be a non-empty string, got ""',
    );
  });

  it('refuses a negative, NaN or infinite time limit in a file as the flag does', () => {
    for (const bad of [-5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => validateConfig({ time_limit: bad })).toThrow(/^config: time_limit must be a duration ≥ 0/);
    }
    expect(() => applyOverrides(defaultConfig(), { timeLimit: '-5' })).toThrow(
      /cannot read the duration '-5'/,
    );
    expect(validateConfig({ time_limit: 0 }).time_limit_s).toBe(0);
    expect(applyOverrides(defaultConfig(), { timeLimit: '1h30m' }).time_limit_s).toBe(5400);
  });
});

describe("a run folder's config.json", () => {
  // Written by the code before the schema (JSON.stringify of its defaultConfig(), byte for byte).
  const OLD_DEFAULTS =
    '{"problem":"","candidate":".","seed":42,"iterations":100,"time_limit_s":0,"stop":{"plateau":0,"target_score":null},"llm":{"base_url":null,"api_key_env":null,"models":[],"temperature":0.7,"max_tokens":8192,"timeout_s":300,"retries":3,"retry_base_s":2,"concurrency":4,"budget_usd":null,"budget_tokens":null},"search":{"islands":3,"migration_interval":20,"migration_count":2,"population":60,"archive_size":20,"exploration":0.2,"exploitation":0.6,"features":[{"metric":"median_ms","bins":10,"min":0.01,"max":1000,"scale":"log"},{"metric":"balancedness_next","bins":10,"min":0.5,"max":1,"scale":"linear"}],"mutations":{"diff":0.6,"rewrite":0.25,"crossover":0.15},"parallel":4},"prompt":{"top_programs":3,"diverse_programs":2,"last_attempts":5,"artifact_chars":4000},"selection":{"rounds":3,"z":2},"evaluator":{"module":null,"workers":2,"timeout_s":120,"memory_mb":null,"adapter":null,"objective":"adrs","trace":null,"heldout_trace":null,"windows":null,"repeats":null,"broker":null,"history":null,"replicas":null,"gpus":null,"nodes":null,"groups":null,"secret_series":true,"series_seed":null}}';

  it('keeps its on-disk format: the defaults serialise byte for byte as before the schema', () => {
    expect(JSON.stringify(defaultConfig())).toBe(OLD_DEFAULTS);
  });

  it('from before the schema still resumes, extending only what a resume may change', () => {
    const recorded = readRunConfig(join(import.meta.dirname, 'fixtures', 'run-config-before-schema.json'));
    const c = resumeConfig(recorded, { iterations: 20, baseUrl: 'http://127.0.0.1:9/v1', budgetUsd: 2 }, 10);
    expect(c).toMatchObject({ iterations: 20, llm: { base_url: 'http://127.0.0.1:9/v1', budget_usd: 2 } });
    expect(c.llm.models.map((m) => m.name)).toEqual(['qwen', 'llama']);
    expect(c.evaluator.series_seed).toBe(123456);
    expect(() => resumeConfig(recorded, { model: 'qwen' }, 0)).toThrow(
      "--model qwen cannot be given with --resume: it changes the run's llm.models (qwen×2, llama×1 → qwen×1)",
    );
  });
});
