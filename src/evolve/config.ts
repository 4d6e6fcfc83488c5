import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import { UserError } from '../util/errors.js';

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

export interface EvolveConfig {
  /** What the model is asked to improve; shown at the top of every prompt. */
  problem: string;
  /** Seed candidate folder (balancer.ts + kernels/), resolved against the config file's folder. */
  candidate: string;
  /** RNG seed: parent selection, model choice, mutation choice. */
  seed: number;
  iterations: number;
  /** Seconds; 0 = no limit. */
  time_limit_s: number;
  stop: { plateau: number; target_score: number | null };
  llm: {
    base_url: string | null;
    api_key_env: string | null;
    models: ModelConfig[];
    temperature: number;
    max_tokens: number;
    timeout_s: number;
    retries: number;
    retry_base_s: number;
    concurrency: number;
    budget_usd: number | null;
    budget_tokens: number | null;
  };
  search: {
    islands: number;
    migration_interval: number;
    migration_count: number;
    population: number;
    archive_size: number;
    exploration: number;
    exploitation: number;
    features: FeatureConfig[];
    mutations: { diff: number; rewrite: number; crossover: number };
    /** Iterations in flight at once (model calls and evaluations overlap across them). */
    parallel: number;
  };
  prompt: { top_programs: number; diverse_programs: number; last_attempts: number; artifact_chars: number };
  /** Noise-aware promotion of a new best (src/evolve/selection.ts): re-measurement rounds per side (0 = off) and the z threshold. */
  selection: { rounds: number; z: number };
  evaluator: {
    /** A JS module exporting `createEvaluator(options)`; default: the sandboxed GPU evaluator pool. */
    module: string | null;
    workers: number;
    timeout_s: number;
    memory_mb: number | null;
    adapter: string | null;
    objective: 'adrs' | 'default' | 'moe-time';
    /** Training series: scored as is when secret_series is false, else the shape the drawn series takes. */
    trace: string | null;
    heldout_trace: string | null;
    windows: number | null;
    repeats: number | null;
    /** Evaluate through a job queue on `adrs worker` machines (issue 12); null = the local pool. */
    broker: BrokerConfig | null;
    /** Windows of history per call (default 8). */
    history: number | null;
    /** Deployment (default 288 slots, 4 nodes, 32 GPUs, the trace's groups). */
    replicas: number | null;
    gpus: number | null;
    nodes: number | null;
    groups: number | null;
    /**
     * Train on a series drawn from the calibrated generator, shaped like `trace`, with a secret
     * seed (default true): a candidate holding a copy of the public series gains nothing.
     */
    secret_series: boolean;
    /** The drawn series' seed: null in a config file; drawn at the start of a run and kept in its config.json. */
    series_seed: number | null;
  };
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

export function defaultConfig(): EvolveConfig {
  return {
    problem: '',
    candidate: '.',
    seed: 42,
    iterations: 100,
    time_limit_s: 0,
    stop: { plateau: 0, target_score: null },
    llm: {
      base_url: null,
      api_key_env: null,
      models: [],
      temperature: 0.7,
      max_tokens: 8192,
      // Per attempt; a timed-out attempt is retried once at most (openai-client.ts), so ≤ ~10 min a call.
      timeout_s: 300,
      retries: 3,
      retry_base_s: 2,
      concurrency: 4,
      budget_usd: null,
      budget_tokens: null,
    },
    search: {
      islands: 3,
      migration_interval: 20,
      migration_count: 2,
      population: 60,
      archive_size: 20,
      exploration: 0.2,
      exploitation: 0.6,
      features: DEFAULT_FEATURES.map((f) => ({ ...f })),
      mutations: { diff: 0.6, rewrite: 0.25, crossover: 0.15 },
      parallel: 4,
    },
    prompt: { top_programs: 3, diverse_programs: 2, last_attempts: 5, artifact_chars: 4000 },
    selection: { rounds: 3, z: 2 },
    evaluator: {
      module: null,
      workers: 2,
      timeout_s: 120,
      memory_mb: null,
      adapter: null,
      objective: 'adrs',
      trace: null,
      heldout_trace: null,
      windows: null,
      repeats: null,
      broker: null,
      history: null,
      replicas: null,
      gpus: null,
      nodes: null,
      groups: null,
      secret_series: true,
      series_seed: null,
    },
  };
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
  const out = defaultConfig();
  const obj = asObject(raw, where);
  const v = new Validator(where);
  v.known(obj, '', [
    'problem',
    'problem_file',
    'candidate',
    'seed',
    'iterations',
    'time_limit',
    'stop',
    'llm',
    'search',
    'prompt',
    'selection',
    'evaluator',
  ]);
  if (obj.problem !== undefined) out.problem = v.str(obj.problem, 'problem');
  if (obj.problem_file !== undefined) {
    const file = resolveFrom(
      where === 'config' ? process.cwd() : dirname(resolve(where)),
      v.str(obj.problem_file, 'problem_file'),
    );
    try {
      out.problem = readFileSync(file, 'utf8');
    } catch {
      throw new UserError(`${where}: problem_file '${file}' cannot be read`);
    }
  }
  if (obj.candidate !== undefined) out.candidate = v.str(obj.candidate, 'candidate');
  if (obj.seed !== undefined) out.seed = v.int(obj.seed, 'seed', 0);
  if (obj.iterations !== undefined) out.iterations = v.int(obj.iterations, 'iterations', 0);
  if (obj.time_limit !== undefined) out.time_limit_s = v.duration(obj.time_limit, 'time_limit');
  if (obj.stop !== undefined) {
    const s = v.obj(obj.stop, 'stop', ['plateau', 'target_score']);
    if (s.plateau !== undefined) out.stop.plateau = v.int(s.plateau, 'stop.plateau', 0);
    if (s.target_score !== undefined)
      out.stop.target_score = v.numOrNull(s.target_score, 'stop.target_score');
  }
  if (obj.llm !== undefined) {
    const l = v.obj(obj.llm, 'llm', [
      'base_url',
      'api_key_env',
      'models',
      'model',
      'temperature',
      'max_tokens',
      'timeout_s',
      'retries',
      'retry_base_s',
      'concurrency',
      'budget_usd',
      'budget_tokens',
    ]);
    if (l.base_url !== undefined)
      out.llm.base_url = l.base_url === null ? null : v.str(l.base_url, 'llm.base_url');
    if (l.api_key_env !== undefined)
      out.llm.api_key_env = l.api_key_env === null ? null : v.str(l.api_key_env, 'llm.api_key_env');
    if (l.model !== undefined) out.llm.models = [model(v.str(l.model, 'llm.model'))];
    if (l.models !== undefined) {
      if (!Array.isArray(l.models))
        throw new UserError(
          `${where}: llm.models must be a list of {name, weight, price_input_per_mtok, price_output_per_mtok}`,
        );
      out.llm.models = l.models.map((m, i) => {
        const key = `llm.models[${i}]`;
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
        if (o.weight !== undefined) mc.weight = v.num(o.weight, `${key}.weight`, 0);
        if (o.price_input_per_mtok !== undefined)
          mc.price_input_per_mtok = v.num(o.price_input_per_mtok, `${key}.price_input_per_mtok`, 0);
        if (o.price_output_per_mtok !== undefined)
          mc.price_output_per_mtok = v.num(o.price_output_per_mtok, `${key}.price_output_per_mtok`, 0);
        if (o.temperature !== undefined) mc.temperature = v.num(o.temperature, `${key}.temperature`, 0);
        if (o.max_tokens !== undefined) mc.max_tokens = v.int(o.max_tokens, `${key}.max_tokens`, 1);
        return mc;
      });
    }
    if (l.temperature !== undefined) out.llm.temperature = v.num(l.temperature, 'llm.temperature', 0);
    if (l.max_tokens !== undefined) out.llm.max_tokens = v.int(l.max_tokens, 'llm.max_tokens', 1);
    if (l.timeout_s !== undefined) out.llm.timeout_s = v.num(l.timeout_s, 'llm.timeout_s', 0.001);
    if (l.retries !== undefined) out.llm.retries = v.int(l.retries, 'llm.retries', 0);
    if (l.retry_base_s !== undefined) out.llm.retry_base_s = v.num(l.retry_base_s, 'llm.retry_base_s', 0);
    if (l.concurrency !== undefined) out.llm.concurrency = v.int(l.concurrency, 'llm.concurrency', 1);
    if (l.budget_usd !== undefined) out.llm.budget_usd = v.budget(l.budget_usd, 'llm.budget_usd');
    if (l.budget_tokens !== undefined) out.llm.budget_tokens = v.budget(l.budget_tokens, 'llm.budget_tokens');
  }
  if (obj.search !== undefined) {
    const s = v.obj(obj.search, 'search', [
      'islands',
      'migration_interval',
      'migration_count',
      'population',
      'archive_size',
      'exploration',
      'exploitation',
      'features',
      'mutations',
      'parallel',
    ]);
    const o = out.search;
    if (s.islands !== undefined) o.islands = v.int(s.islands, 'search.islands', 1);
    if (s.migration_interval !== undefined)
      o.migration_interval = v.int(s.migration_interval, 'search.migration_interval', 0);
    if (s.migration_count !== undefined)
      o.migration_count = v.int(s.migration_count, 'search.migration_count', 0);
    if (s.population !== undefined) o.population = v.int(s.population, 'search.population', 1);
    if (s.archive_size !== undefined) o.archive_size = v.int(s.archive_size, 'search.archive_size', 1);
    if (s.exploration !== undefined) o.exploration = v.num(s.exploration, 'search.exploration', 0, 1);
    if (s.exploitation !== undefined) o.exploitation = v.num(s.exploitation, 'search.exploitation', 0, 1);
    if (o.exploration + o.exploitation > 1) {
      throw new UserError(
        `${where}: search.exploration + search.exploitation must be ≤ 1 (the rest is uniform picks)`,
      );
    }
    if (s.parallel !== undefined) o.parallel = v.int(s.parallel, 'search.parallel', 1);
    if (s.mutations !== undefined) {
      const m = v.obj(s.mutations, 'search.mutations', ['diff', 'rewrite', 'crossover']);
      for (const k of ['diff', 'rewrite', 'crossover'] as const) {
        if (m[k] !== undefined) o.mutations[k] = v.num(m[k], `search.mutations.${k}`, 0);
      }
      if (o.mutations.diff + o.mutations.rewrite + o.mutations.crossover <= 0) {
        throw new UserError(
          `${where}: search.mutations needs at least one positive weight (diff, rewrite, crossover)`,
        );
      }
    }
    if (s.features !== undefined) {
      if (!Array.isArray(s.features) || s.features.length === 0) {
        throw new UserError(
          `${where}: search.features must be a non-empty list of {metric, bins, min, max, scale}`,
        );
      }
      o.features = s.features.map((f, i) => {
        const key = `search.features[${i}]`;
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
          throw new UserError(`${where}: ${key} needs min < max (the range binned into ${fc.bins} cells)`);
        if (fc.scale === 'log' && fc.min <= 0)
          throw new UserError(`${where}: ${key} has scale log, so min must be > 0`);
        return fc;
      });
    }
  }
  if (obj.prompt !== undefined) {
    const p = v.obj(obj.prompt, 'prompt', [
      'top_programs',
      'diverse_programs',
      'last_attempts',
      'artifact_chars',
    ]);
    for (const k of ['top_programs', 'diverse_programs', 'last_attempts', 'artifact_chars'] as const) {
      if (p[k] !== undefined) out.prompt[k] = v.int(p[k], `prompt.${k}`, 0);
    }
  }
  if (obj.selection !== undefined) {
    const sel = v.obj(obj.selection, 'selection', ['rounds', 'z']);
    if (sel.rounds !== undefined) out.selection.rounds = v.int(sel.rounds, 'selection.rounds', 0);
    if (out.selection.rounds === 1)
      throw new UserError(`${where}: selection.rounds must be 0 (off) or ≥ 2 (one round has no spread)`);
    if (sel.z !== undefined) out.selection.z = v.num(sel.z, 'selection.z', 0);
  }
  if (obj.evaluator !== undefined) {
    const e = v.obj(obj.evaluator, 'evaluator', [
      'module',
      'workers',
      'timeout_s',
      'memory_mb',
      'adapter',
      'objective',
      'trace',
      'heldout_trace',
      'windows',
      'repeats',
      'broker',
      'history',
      'replicas',
      'gpus',
      'nodes',
      'groups',
      'secret_series',
      'series_seed',
    ]);
    const o = out.evaluator;
    if (e.module !== undefined) o.module = e.module === null ? null : v.str(e.module, 'evaluator.module');
    if (e.workers !== undefined) o.workers = v.int(e.workers, 'evaluator.workers', 1);
    if (e.timeout_s !== undefined) o.timeout_s = v.num(e.timeout_s, 'evaluator.timeout_s', 0.001);
    if (e.memory_mb !== undefined)
      o.memory_mb = e.memory_mb === null ? null : v.int(e.memory_mb, 'evaluator.memory_mb', 16);
    if (e.adapter !== undefined)
      o.adapter = e.adapter === null ? null : v.str(e.adapter, 'evaluator.adapter');
    if (e.objective !== undefined)
      o.objective = v.oneOf(e.objective, 'evaluator.objective', ['adrs', 'default', 'moe-time']);
    if (e.trace !== undefined) o.trace = e.trace === null ? null : v.str(e.trace, 'evaluator.trace');
    if (e.heldout_trace !== undefined)
      o.heldout_trace = e.heldout_trace === null ? null : v.str(e.heldout_trace, 'evaluator.heldout_trace');
    if (e.windows !== undefined)
      o.windows = e.windows === null ? null : v.int(e.windows, 'evaluator.windows', 1);
    if (e.repeats !== undefined)
      o.repeats = e.repeats === null ? null : v.int(e.repeats, 'evaluator.repeats', 2);
    if (e.broker !== undefined && e.broker !== null) {
      const b =
        typeof e.broker === 'string'
          ? { url: e.broker }
          : v.obj(e.broker, 'evaluator.broker', ['url', 'queue', 'adapters']);
      o.broker = {
        url: b.url === undefined || b.url === null ? null : v.str(b.url, 'evaluator.broker.url'),
        queue: b.queue === undefined ? 'adrs-eval' : v.str(b.queue, 'evaluator.broker.queue'),
        adapters:
          b.adapters === undefined
            ? 'same'
            : v.oneOf(b.adapters, 'evaluator.broker.adapters', ['same', 'any']),
      };
    }
    for (const key of ['history', 'replicas', 'gpus', 'nodes', 'groups'] as const) {
      if (e[key] !== undefined) o[key] = e[key] === null ? null : v.int(e[key], `evaluator.${key}`, 1);
    }
    if (e.secret_series !== undefined) {
      if (typeof e.secret_series !== 'boolean')
        throw new UserError(
          `evaluator.secret_series must be true or false, got ${JSON.stringify(e.secret_series)}`,
        );
      o.secret_series = e.secret_series;
    }
    if (e.series_seed !== undefined)
      o.series_seed = e.series_seed === null ? null : v.int(e.series_seed, 'evaluator.series_seed', 0);
  }
  return out;
}

const model = (name: string): ModelConfig => ({
  name,
  weight: 1,
  price_input_per_mtok: 0,
  price_output_per_mtok: 0,
});

function asObject(raw: unknown, where: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError(
      `${where}: the config must be a mapping of keys (problem, candidate, llm, search, evaluator, ...)`,
    );
  }
  return raw as Record<string, unknown>;
}

class Validator {
  constructor(private where: string) {}
  private fail(key: string, want: string, got: unknown): never {
    throw new UserError(`${this.where}: ${key} must be ${want}, got ${JSON.stringify(got)}`);
  }
  known(obj: Record<string, unknown>, prefix: string, keys: string[]): void {
    for (const k of Object.keys(obj)) {
      if (keys.includes(k)) continue;
      const close = keys.find((c) => editDistance(c, k) <= 2);
      throw new UserError(
        `${this.where}: unknown key '${prefix}${k}'${close ? ` (did you mean '${prefix}${close}'?)` : ''}; allowed: ${keys.join(', ')}`,
      );
    }
  }
  obj(raw: unknown, key: string, keys: string[]): Record<string, unknown> {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail(key, 'a mapping', raw);
    this.known(raw as Record<string, unknown>, `${key}.`, keys);
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
  numOrNull(raw: unknown, key: string): number | null {
    return raw === null ? null : this.num(raw, key, 0);
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
  duration(raw: unknown, key: string): number {
    if (typeof raw !== 'number' && typeof raw !== 'string')
      this.fail(key, 'a duration such as 90s, 15m or 2h', raw);
    return parseDuration(raw as string | number);
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

/** Command-line flags that override the file (contract: flags win). */
export interface ConfigOverrides {
  iterations?: number;
  /** Evaluator deployment and history (a resume refuses them: they change every score). */
  replicas?: number;
  gpus?: number;
  nodes?: number;
  groups?: number;
  history?: number;
  seed?: number;
  baseUrl?: string;
  model?: string;
  budgetUsd?: number;
  timeLimit?: string;
}

export function applyOverrides(config: EvolveConfig, o: ConfigOverrides): EvolveConfig {
  const c = structuredClone(config);
  if (o.iterations !== undefined) c.iterations = checkedInt(o.iterations, '--iterations');
  if (o.seed !== undefined) c.seed = checkedInt(o.seed, '--seed');
  if (o.baseUrl !== undefined) c.llm.base_url = o.baseUrl;
  if (o.model !== undefined) {
    const known = c.llm.models.find((m) => m.name === o.model);
    c.llm.models = [{ ...(known ?? model(o.model)), weight: 1 }];
  }
  if (o.budgetUsd !== undefined) {
    if (!(o.budgetUsd > 0)) throw new UserError(BUDGET_FLAG_MESSAGE(o.budgetUsd));
    c.llm.budget_usd = o.budgetUsd;
  }
  if (o.timeLimit !== undefined) c.time_limit_s = parseDuration(o.timeLimit);
  for (const key of ['replicas', 'gpus', 'nodes', 'groups', 'history'] as const) {
    if (o[key] !== undefined) c.evaluator[key] = checkedInt(o[key], `--${key}`);
  }
  return c;
}

const FLAGS: Record<keyof ConfigOverrides, string> = {
  iterations: '--iterations',
  replicas: '--replicas',
  gpus: '--gpus',
  nodes: '--nodes',
  groups: '--groups',
  history: '--history',
  seed: '--seed',
  baseUrl: '--base-url',
  model: '--model',
  budgetUsd: '--budget-usd',
  timeLimit: '--time-limit',
};

/** The command-line flags behind a set of overrides, e.g. ['--seed', '--model']. */
export function overrideFlags(o: ConfigOverrides): string[] {
  return (Object.keys(o) as (keyof ConfigOverrides)[]).filter((k) => o[k] !== undefined).map((k) => FLAGS[k]);
}

/** What a resumed run may change: its stop rules, its budgets and where its server is. */
const EXTENDS_ONLY = ['iterations', 'time_limit_s'] as const;
const LLM_EXTENDS_ONLY = ['budget_usd', 'budget_tokens', 'base_url', 'api_key_env'] as const;

/**
 * The recorded config with the flags of `--resume` applied. Flags that only extend the run are
 * taken; one that would change which programs it produces (seed, model ensemble, ...) is refused,
 * since a resumed run must continue exactly as it would have run uninterrupted. So is an iteration
 * count below the `committed` iterations already in the run: those cannot be taken back.
 */
export function resumeConfig(recorded: EvolveConfig, o: ConfigOverrides, committed: number): EvolveConfig {
  const before = trajectory(recorded);
  for (const flag of Object.keys(o) as (keyof ConfigOverrides)[]) {
    if (o[flag] === undefined) continue;
    const changed = firstDifference(before, trajectory(applyOverrides(recorded, { [flag]: o[flag] })));
    if (changed) {
      throw new UserError(
        `${FLAGS[flag]} ${o[flag]} cannot be given with --resume: it changes the run's ${changed}, so the run would not continue as it started; ` +
          `resume without it (--iterations, --time-limit, --budget-usd and --base-url may change) or start a new run with --config`,
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

/** The config without the settings a resume may change: what decides the sequence of programs. */
function trajectory(config: EvolveConfig): Record<string, unknown> {
  const c = structuredClone(config) as unknown as Record<string, unknown> & { llm: Record<string, unknown> };
  for (const k of EXTENDS_ONLY) delete c[k];
  for (const k of LLM_EXTENDS_ONLY) delete c.llm[k];
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
