import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { DEFAULT_HISTORY } from '../eplb/balancer.js';
import { DEEPSEEK_V3_SHAPE, SHAPE_TEXT } from '../eplb/shape.js';
import { UserError } from '../util/errors.js';
import {
  type AnyFlag,
  type AnyKey,
  type AnySection,
  alias,
  bool,
  budget,
  type Camel,
  type ConfigOf,
  defaultsOf,
  type FlagsOf,
  fileOnly,
  int,
  key,
  keysOf,
  num,
  numberFlag,
  oneOf,
  orNull,
  parseDuration,
  type Read,
  readSection,
  type Section,
  section,
  slot,
  str,
  stringFlag,
  Validator,
} from './config-schema.js';

export { parseDuration };

/** One model of the ensemble, with its share of the calls and its prices (USD per million tokens). */
export interface ModelConfig {
  name: string;
  weight: number;
  price_input_per_mtok: number;
  price_output_per_mtok: number;
  temperature?: number;
  max_tokens?: number;
}

export interface FeatureConfig {
  /** A metric the evaluator returns (EvalResult.metrics key). */
  metric: string;
  bins: number;
  min: number;
  max: number;
  scale: 'linear' | 'log';
}

/** `evaluator.broker`: a URL, or {url, queue, adapters}; the URL never holds a password once recorded. */
export interface BrokerConfig {
  /** redis:// or rediss:// (TLS); null = $ADRS_BROKER_URL. */
  url: string | null;
  /** The queue the workers of one GPU model pull from (`adrs worker --queue`). */
  queue: string;
  /** 'same': a verdict timed on another GPU model stops the run; 'any': timings from any GPU are compared. */
  adapters: 'same' | 'any';
}

export const DEFAULT_FEATURES: FeatureConfig[] = [
  { metric: 'median_ms', bins: 10, min: 0.01, max: 1000, scale: 'log' },
  { metric: 'balancedness_next', bins: 10, min: 0.5, max: 1, scale: 'linear' },
];

// ---------------------------------------------------------------------------------------------
// The schema: one entry per key. The config's type, its defaults, the file's validation and
// unknown-key check, the command-line flags and what a resume may change all derive from it, so a
// key cannot be added in one place only (the machinery: config-schema.ts).
// ---------------------------------------------------------------------------------------------

/** A flag taking a non-negative integer, as every integer flag of `adrs evolve` does. */
const intFlag = <N extends string>(name: N, describe?: string) =>
  numberFlag<number, N>(name, (v, _, flag) => checkedInt(v, flag), describe);
/** A deployment number (replicas, GPUs, …): a positive integer, as in every other command (src/cli/deployment.ts). */
const positiveIntFlag = <N extends string>(name: N) =>
  numberFlag<number | null, N>(name, (v, _, flag) => {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${flag} must be a positive integer, got ${v}`);
    return v;
  });

const model = (name: string): ModelConfig => ({
  name,
  weight: 1,
  price_input_per_mtok: 0,
  price_output_per_mtok: 0,
});

const readModels: Read<ModelConfig[]> = (raw, k, v) => {
  if (!Array.isArray(raw))
    throw new UserError(
      `${v.where}: ${k} must be a list of {name, weight, price_input_per_mtok, price_output_per_mtok}`,
    );
  return raw.map((m, i) => {
    const key = `${k}[${i}]`;
    if (typeof m === 'string') return model(m);
    const o = v.obj(m, key, [
      'name',
      'weight',
      'price_input_per_mtok',
      'price_output_per_mtok',
      'temperature',
      'max_tokens',
    ]);
    const mc = model(v.str(o.name, `${key}.name`));
    for (const p of ['weight', 'price_input_per_mtok', 'price_output_per_mtok', 'temperature'] as const) {
      if (o[p] !== undefined) mc[p] = v.num(o[p], `${key}.${p}`, 0);
    }
    if (o.max_tokens !== undefined) mc.max_tokens = v.int(o.max_tokens, `${key}.max_tokens`, 1);
    return mc;
  });
};

const readFeatures: Read<FeatureConfig[]> = (raw, k, v) => {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new UserError(`${v.where}: ${k} must be a non-empty list of {metric, bins, min, max, scale}`);
  }
  return raw.map((f, i) => {
    const key = `${k}[${i}]`;
    const fo = v.obj(f, key, ['metric', 'bins', 'min', 'max', 'scale']);
    const known = DEFAULT_FEATURES.find((d) => d.metric === fo.metric);
    const fc: FeatureConfig = {
      metric: v.str(fo.metric, `${key}.metric`),
      bins: fo.bins === undefined ? (known?.bins ?? 10) : v.int(fo.bins, `${key}.bins`, 1),
      min: fo.min === undefined ? (known?.min ?? Number.NaN) : v.num(fo.min, `${key}.min`),
      max: fo.max === undefined ? (known?.max ?? Number.NaN) : v.num(fo.max, `${key}.max`),
      scale:
        fo.scale === undefined
          ? (known?.scale ?? 'linear')
          : v.oneOf(fo.scale, `${key}.scale`, ['linear', 'log']),
    };
    if (!(fc.max > fc.min))
      throw new UserError(`${v.where}: ${key} needs min < max (the range binned into ${fc.bins} cells)`);
    if (fc.scale === 'log' && fc.min <= 0)
      throw new UserError(`${v.where}: ${key} has scale log, so min must be > 0`);
    return fc;
  });
};

const readBroker: Read<BrokerConfig | null> = (raw, k, v) => {
  if (raw === null) return null;
  const b = typeof raw === 'string' ? { url: raw } : v.obj(raw, k, ['url', 'queue', 'adapters']);
  return {
    url: b.url === undefined || b.url === null ? null : v.str(b.url, `${k}.url`),
    queue: b.queue === undefined ? 'adrs-eval' : v.str(b.queue, `${k}.queue`),
    adapters: b.adapters === undefined ? 'same' : v.oneOf(b.adapters, `${k}.adapters`, ['same', 'any']),
  };
};

/** problem_file: read now, relative to the config file's folder (or the working folder for inline configs). */
const readProblemFile: Read<string> = (raw, k, v) => {
  const file = resolveFrom(v.where === 'config' ? process.cwd() : dirname(resolve(v.where)), v.str(raw, k));
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new UserError(`${v.where}: problem_file '${file}' cannot be read`);
  }
};

/** A deployment number of the evaluator: null (unset) in the file by default; the flag sets it. */
const deploymentKey = <N extends 'replicas' | 'gpus' | 'nodes' | 'groups' | 'history'>(
  name: N,
  describe: string,
) => key({ describe, default: null as number | null, read: orNull(int(1)), flag: positiveIntFlag(name) });

export const CONFIG_SCHEMA = section('adrs evolve config', {
  problem: fileOnly('What the model is asked to improve; shown at the top of every prompt', '', str),
  problem_file: alias(
    'problem',
    'A file holding the problem text (relative to the config file)',
    readProblemFile,
  ),
  candidate: fileOnly(
    "Seed candidate folder (balancer.ts + kernels/), resolved against the config file's folder",
    '.',
    str,
  ),
  seed: key({
    describe: 'RNG seed (parent, mutation and model choices)',
    default: 42,
    read: int(0),
    flag: intFlag('seed'),
  }),
  iterations: key({
    describe: 'Stop after this many iterations',
    default: 100,
    read: int(0),
    flag: intFlag('iterations'),
    resume: 'free',
  }),
  time_limit_s: key({
    describe: 'Stop after this wall time, e.g. 30m or 2h (0 = no limit)',
    default: 0,
    read: (raw, k, v) => v.duration(raw, k),
    flag: stringFlag('time-limit', (text: string) => parseDuration(text)),
    resume: 'free',
    file: 'time_limit',
  }),
  stop: section('Stop rules', {
    plateau: fileOnly('Stop after this many iterations without a new best (0 = never)', 0, int(0)),
    target_score: fileOnly(
      'Stop once the best score reaches this (null = never)',
      null as number | null,
      orNull(num(0)),
    ),
  }),
  llm: section('The model endpoint, its ensemble and its limits', {
    base_url: key({
      describe: 'OpenAI-compatible endpoint, e.g. http://localhost:8000/v1',
      default: null as string | null,
      read: orNull(str),
      flag: stringFlag<string | null, 'base-url'>('base-url', (url) => url),
      resume: 'free',
    }),
    api_key_env: fileOnly(
      'The environment variable holding the API key',
      null as string | null,
      orNull(str),
      'free',
    ),
    model: alias('models', 'One model: the ensemble of that model alone', (raw, k, v) => [
      model(v.str(raw, k)),
    ]),
    models: key({
      describe: 'The ensemble: names, weights (share of the calls) and prices (USD per million tokens)',
      default: [] as ModelConfig[],
      read: readModels,
      // A known name keeps its prices; the one model takes every call.
      flag: stringFlag<ModelConfig[], 'model'>(
        'model',
        (name, current) => [{ ...(current.find((m) => m.name === name) ?? model(name)), weight: 1 }],
        'Use this one model instead of the configured ensemble',
      ),
    }),
    temperature: fileOnly('Sampling temperature', 0.7, num(0)),
    max_tokens: fileOnly('Longest answer, tokens', 8192, int(1)),
    // Per attempt; a timed-out attempt is retried once at most (openai-client.ts), so ≤ ~10 min a call.
    timeout_s: fileOnly('Seconds per model call attempt', 300, num(0.001)),
    retries: fileOnly('Retries of a failed call', 3, int(0)),
    retry_base_s: fileOnly('First back-off between retries, seconds (doubling)', 2, num(0)),
    concurrency: fileOnly('Model calls in flight at once, per model and in total', 4, int(1)),
    budget_usd: key({
      describe: 'Stop cleanly once the model calls cost this many dollars (null = no cap)',
      default: null as number | null,
      read: budget,
      flag: numberFlag<number | null, 'budget-usd'>(
        'budget-usd',
        (usd) => {
          if (!(usd > 0)) throw new UserError(BUDGET_FLAG_MESSAGE(usd));
          return usd;
        },
        "Stop cleanly once the model calls cost this many dollars (> 0; omit for the config's llm.budget_usd — a model priced at 0 never reaches a cap)",
      ),
      resume: 'free',
    }),
    budget_tokens: fileOnly(
      'Stop cleanly once the model calls used this many tokens (null = no cap)',
      null as number | null,
      budget,
      'free',
    ),
  }),
  search: section(
    'The program database: islands, MAP-Elites features, selection and mutations',
    {
      islands: fileOnly('Islands', 3, int(1)),
      migration_interval: fileOnly('Iterations between migrations', 20, int(0)),
      migration_count: fileOnly('Programs each migration moves', 2, int(0)),
      population: fileOnly('Programs per island', 60, int(1)),
      archive_size: fileOnly('Elite archive size', 20, int(1)),
      exploration: fileOnly('Share of parents drawn at random from the island', 0.2, num(0, 1)),
      exploitation: fileOnly('Share of parents drawn from the elite archive', 0.6, num(0, 1)),
      features: fileOnly(
        'MAP-Elites feature axes: {metric, bins, min, max, scale}',
        DEFAULT_FEATURES,
        readFeatures,
      ),
      mutations: section(
        'Weights of the mutation kinds',
        {
          diff: fileOnly('Weight of diff edits', 0.6, num(0)),
          rewrite: fileOnly('Weight of full rewrites', 0.25, num(0)),
          crossover: fileOnly('Weight of crossovers', 0.15, num(0)),
        },
        (m, where) => {
          if (m.diff + m.rewrite + m.crossover <= 0)
            throw new UserError(
              `${where}: search.mutations needs at least one positive weight (diff, rewrite, crossover)`,
            );
        },
      ),
      parallel: fileOnly(
        'Iterations in flight at once (model calls and evaluations overlap across them)',
        4,
        int(1),
      ),
    },
    (s, where) => {
      if (s.exploration + s.exploitation > 1)
        throw new UserError(
          `${where}: search.exploration + search.exploitation must be ≤ 1 (the rest is uniform picks)`,
        );
    },
  ),
  prompt: section('What each prompt shows', {
    top_programs: fileOnly('Best programs shown', 3, int(0)),
    diverse_programs: fileOnly('Diverse programs shown', 2, int(0)),
    last_attempts: fileOnly('Latest attempts shown, with their outcome', 5, int(0)),
    artifact_chars: fileOnly('Characters of evaluator artifacts shown', 4000, int(0)),
  }),
  selection: section(
    'Noise-aware promotion of a new best (src/evolve/selection.ts)',
    {
      rounds: fileOnly('Re-measurement rounds per side (0 = off)', 3, int(0)),
      z: fileOnly('The z threshold of a promotion', 2, num(0)),
    },
    (s, where) => {
      if (s.rounds === 1)
        throw new UserError(`${where}: selection.rounds must be 0 (off) or ≥ 2 (one round has no spread)`);
    },
  ),
  evaluator: section('How candidates are scored', {
    module: fileOnly(
      'A JS module exporting `createEvaluator(options)`; default: the sandboxed GPU evaluator pool',
      null as string | null,
      orNull(str),
    ),
    workers: fileOnly('Evaluations at once', 2, int(1)),
    timeout_s: fileOnly("Hard limit on a candidate's run, seconds", 120, num(0.001)),
    memory_mb: fileOnly('Worker memory cap, MiB', null as number | null, orNull(int(16))),
    adapter: fileOnly('GPU adapter (substring of its name)', null as string | null, orNull(str)),
    objective: fileOnly(
      'Which score is the score',
      'adrs' as 'adrs' | 'default' | 'moe-time',
      oneOf(['adrs', 'default', 'moe-time']),
    ),
    trace: fileOnly(
      'Training series: scored as is when secret_series is false, else the shape the drawn series takes',
      null as string | null,
      orNull(str),
    ),
    heldout_trace: fileOnly(
      'The held-out trace the best is scored on at the end',
      null as string | null,
      orNull(str),
    ),
    windows: fileOnly('Scored windows', null as number | null, orNull(int(1))),
    repeats: fileOnly('Timed passes (at least 2)', null as number | null, orNull(int(2))),
    // File-only: --broker is a session option (src/evolve/session.ts), so the recorded config never holds its password.
    broker: fileOnly(
      'Evaluate through a job queue on `adrs worker` machines (issue 12); null = the local pool',
      null as BrokerConfig | null,
      readBroker,
    ),
    history: deploymentKey('history', `Windows of history per call (default ${DEFAULT_HISTORY})`),
    replicas: deploymentKey(
      'replicas',
      `Evaluator deployment: ${SHAPE_TEXT.replicas} (default ${DEEPSEEK_V3_SHAPE.replicas})`,
    ),
    gpus: deploymentKey(
      'gpus',
      `Evaluator deployment: ${SHAPE_TEXT.gpus} (default ${DEEPSEEK_V3_SHAPE.gpus})`,
    ),
    nodes: deploymentKey(
      'nodes',
      `Evaluator deployment: ${SHAPE_TEXT.nodes} (default ${DEEPSEEK_V3_SHAPE.nodes})`,
    ),
    groups: deploymentKey('groups', `Evaluator deployment: ${SHAPE_TEXT.groups} (default: the trace's)`),
    secret_series: fileOnly(
      'Train on a series drawn from the calibrated generator, shaped like `trace`, with a secret seed: a candidate holding a copy of the public series gains nothing',
      true,
      bool,
    ),
    series_seed: fileOnly(
      "The drawn series' seed: null in a config file; drawn at the start of a run and kept in its config.json",
      null as number | null,
      orNull(int(0)),
    ),
  }),
});

type Schema = typeof CONFIG_SCHEMA extends Section<infer S> ? S : never;

/** The config of `adrs evolve`, as CONFIG_SCHEMA describes it (and as a run's config.json holds it). */
export type EvolveConfig = ConfigOf<Schema>;

/** Command-line flags that override the file (contract: flags win), by their camelCase names. */
export type ConfigOverrides = { [F in FlagsOf<Schema> as Camel<F[0]>]?: F[1] };

/** The schema walked at run time (its types are checked above, where it is declared). */
const ROOT = CONFIG_SCHEMA as unknown as AnySection;

/** Every key of the schema with its dotted path in the config and in a config file. */
export const configKeys = (): { path: string; filePath: string; key: AnyKey }[] => keysOf(ROOT);

/** One flag of `adrs evolve` that sets a config key: its name, its ConfigOverrides key and its --help text. */
export interface ConfigFlag {
  name: string;
  /** camelCase: the ConfigOverrides key. */
  key: keyof ConfigOverrides;
  type: 'number' | 'string';
  describe: string;
  /** The config key it sets, e.g. 'llm.base_url' (time_limit_s: in a file, time_limit). */
  path: string;
  /** Whether `--resume` may take it (it only extends the run), from the key's resume rule. */
  onResume: boolean;
}

const camel = (flag: string): string => flag.replace(/-(.)/g, (_, c: string) => c.toUpperCase());

/** The flags of `adrs evolve` that set config keys, in schema order. */
export const CONFIG_FLAGS: readonly ConfigFlag[] = configKeys().flatMap(({ path, filePath, key }) =>
  key.flag === 'file-only'
    ? []
    : [
        {
          name: key.flag.name,
          key: camel(key.flag.name) as keyof ConfigOverrides,
          type: key.flag.type,
          describe: `${key.flag.describe ?? key.describe} (config: ${filePath}${key.resume === 'free' ? '' : '; new runs only'})`,
          path,
          onResume: key.resume === 'free',
        },
      ],
);

/** A flag of CONFIG_FLAGS by its ConfigOverrides key, with the schema key it sets. */
const flagOf = (k: string): (ConfigFlag & { spec: AnyFlag; read: AnyKey['read'] }) | undefined => {
  const f = CONFIG_FLAGS.find((c) => c.key === k);
  if (!f) return undefined;
  const { key } = configKeys().find((c) => c.path === f.path)!;
  return { ...f, spec: key.flag as AnyFlag, read: key.read };
};

/** Checks a flag's value as the file's would be, its errors naming the flag alone ('--x must be …'). */
const FLAG_VALIDATOR = new Validator('');

export function defaultConfig(): EvolveConfig {
  return defaultsOf(ROOT) as EvolveConfig;
}

/** Reads a YAML or JSON config file, validates it against the schema and resolves paths against its folder. */
export function loadConfigFile(path: string): EvolveConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(
      `cannot read the config file '${path}'; pass an existing YAML or JSON file to --config`,
    );
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (error) {
    throw new UserError(
      `config ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  const config = validateConfig(raw ?? {}, path);
  const base = dirname(resolve(path));
  config.candidate = resolveFrom(base, config.candidate);
  if (config.evaluator.module) config.evaluator.module = resolveFrom(base, config.evaluator.module);
  for (const key of ['trace', 'heldout_trace'] as const) {
    const v = config.evaluator[key];
    // A trace is a bundled name or a path; only paths are resolved.
    if (v && (v.includes('/') || v.endsWith('.json'))) config.evaluator[key] = resolveFrom(base, v);
  }
  return config;
}

const resolveFrom = (base: string, p: string): string => (isAbsolute(p) ? p : resolve(base, p));

/** Checks every key and type, filling defaults; unknown keys are errors (a typo must not silently do nothing). */
export function validateConfig(raw: unknown, where = 'config'): EvolveConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError(
      `${where}: the config must be a mapping of keys (problem, candidate, llm, search, evaluator, ...)`,
    );
  }
  return readSection(ROOT, raw as Record<string, unknown>, '', new Validator(where)) as EvolveConfig;
}

export function applyOverrides(config: EvolveConfig, o: ConfigOverrides): EvolveConfig {
  const c = structuredClone(config);
  for (const [k, value] of Object.entries(o)) {
    if (value === undefined) continue;
    const flag = flagOf(k);
    if (!flag) throw new Error(`applyOverrides: '${k}' is no flag of the config schema`);
    const { node, name } = slot(c, flag.path);
    const set = flag.spec.toValue(value as number | string, node[name], `--${flag.name}`);
    // The key's reader has the last word, so no flag sets a value its config file would refuse.
    node[name] = flag.read(set, `--${flag.name}`, FLAG_VALIDATOR);
  }
  return c;
}

/** The command-line flags behind a set of overrides, e.g. ['--seed', '--model']. */
export function overrideFlags(o: ConfigOverrides): string[] {
  return Object.entries(o)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => `--${flagOf(k)?.name ?? k}`);
}

/** The flags a resume may take, e.g. '--iterations, --time-limit, --base-url and --budget-usd'. */
export function resumeFlagsText(): string {
  const names = CONFIG_FLAGS.filter((f) => f.onResume).map((f) => `--${f.name}`);
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : (names[0] ?? '');
}

/**
 * The recorded config with the flags of `--resume` applied. Flags that only extend the run are
 * taken; one that would change which programs it produces (seed, model ensemble, ...) is refused,
 * since a resumed run must continue exactly as it would have run uninterrupted. So is an iteration
 * count below the `committed` iterations already in the run: those cannot be taken back.
 */
export function resumeConfig(recorded: EvolveConfig, o: ConfigOverrides, committed: number): EvolveConfig {
  const before = trajectory(recorded);
  for (const [k, value] of Object.entries(o)) {
    if (value === undefined) continue;
    const changed = firstDifference(before, trajectory(applyOverrides(recorded, { [k]: value })));
    if (changed) {
      throw new UserError(
        `--${flagOf(k)?.name ?? k} ${value} cannot be given with --resume: it changes the run's ${changed}, so the run would not continue as it started; ` +
          `resume without it (${resumeFlagsText()} may change) or start a new run with --config`,
      );
    }
  }
  if (o.iterations !== undefined && o.iterations < committed) {
    throw new UserError(
      `--iterations ${o.iterations} is fewer than the ${committed} iterations this run has already committed; give --iterations ${committed} or more, or leave it out (the run is set to ${recorded.iterations})`,
    );
  }
  return applyOverrides(recorded, o);
}

/** The config without the keys a resume may change (schema: resume 'free'): what decides the sequence of programs. */
function trajectory(config: EvolveConfig): unknown {
  const c = structuredClone(config);
  for (const { path, key } of configKeys()) {
    if (key.resume !== 'free') continue;
    const { node, name } = slot(c, path);
    delete node[name];
  }
  return c;
}

/** 'seed (7 → 8)' for the first setting that differs, or null. */
function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  const isMap = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isMap(a) && isMap(b)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
      const d = firstDifference(ra[k], rb[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
  }
  return `${path} (${show(a)} → ${show(b)})`;
}

/** A setting as one short phrase: a model list by names and weights, anything else as JSON. */
function show(v: unknown): string {
  const models = Array.isArray(v) && v.every((m) => typeof m?.name === 'string');
  return models ? (v as ModelConfig[]).map((m) => `${m.name}×${m.weight}`).join(', ') : JSON.stringify(v);
}

/** A $0 cap would stop before the first call; a free local model (prices 0) never reaches a positive cap. */
const BUDGET_FLAG_MESSAGE = (v: number): string =>
  `--budget-usd must be a number of dollars > 0, got ${v} (a $0 cap stops before the first call); omit the flag for no cap beyond the config's llm.budget_usd — a model priced at 0, e.g. on a local server, never reaches a cap`;

function checkedInt(v: number, flag: string): number {
  if (!Number.isInteger(v) || v < 0) throw new UserError(`${flag} must be a non-negative integer, got ${v}`);
  return v;
}

/** The one line printed when no model endpoint is configured. */
export const NO_ENDPOINT_MESSAGE =
  'no model endpoint configured: set llm.base_url and llm.models in the config, or pass --base-url URL --model NAME ' +
  '(any OpenAI-compatible server, e.g. vLLM http://localhost:8000/v1 or Ollama http://localhost:11434/v1; key from llm.api_key_env)';

export function checkEndpoint(config: EvolveConfig): void {
  if (!config.llm.base_url || config.llm.models.length === 0) throw new UserError(NO_ENDPOINT_MESSAGE);
  if (config.llm.models.every((m) => m.weight <= 0))
    throw new UserError('llm.models: at least one model needs a positive weight');
}
