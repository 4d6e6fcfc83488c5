import { check } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { Trace, TraceManifest } from './trace.js';

/**
 * Synthetic expert-load time series, calibrated on real snapshots (the "anchors").
 *
 * Model, per layer, in log-popularity space:
 * - each workload (regime) is one anchor's log-share profile, blended with a seed-specific fresh
 *   profile of the same spread and group structure (so series are new, not replays) and relabelled
 *   by a seeded permutation of groups and of experts within groups (group structure kept);
 * - drift: an AR(1) walk per expert, variance-compensated so skew stays calibrated;
 * - regime shifts: the workload switches to another anchor at a random step inside a window;
 * - bursts: a few experts per layer multiplied by a factor for a few windows;
 * - sampling: each window is stepsPerWindow × tokensPerStep tokens × topK distinct experts, drawn
 *   with binomial noise (normal approximation) and exactly topK hits per token per layer.
 */
export interface GeneratorParams {
  seed: number;
  windows: number;
  stepsPerWindow: number;
  tokensPerStep: number;
  /** Share of each layer's log-popularity variance that is fresh (seed-specific) rather than the anchor's. */
  novelty: number;
  /** Relabel experts (groups, and experts within groups) with a seeded permutation. */
  relabel: boolean;
  /** Stationary standard deviation of the drift, in log-popularity units. */
  driftSd: number;
  /** Per-window persistence of the drift (AR(1) coefficient, 0 = fresh noise each window, → 1 = frozen). */
  driftPersistence: number;
  /** Probability that the workload switches to another anchor during a window. */
  regimeSwitch: number;
  /** Probability that a burst starts in a window. */
  burstRate: number;
  /** Experts per layer hit by a burst, [min, max]. */
  burstExperts: [number, number];
  /** Popularity multiplier of burst experts, [min, max]. */
  burstFactor: [number, number];
  /** Burst length in windows, [min, max]. */
  burstWindows: [number, number];
}

export const GENERATOR_NAME = 'adrs-synthetic';
export const GENERATOR_VERSION = 1;

export const DEFAULT_GENERATOR_PARAMS: GeneratorParams = {
  seed: 1,
  windows: 16,
  stepsPerWindow: 100,
  tokensPerStep: 4096,
  novelty: 0.3,
  relabel: true,
  driftSd: 0.15,
  driftPersistence: 0.9,
  regimeSwitch: 0.15,
  burstRate: 0.2,
  burstExperts: [1, 4],
  burstFactor: [2, 5],
  burstWindows: [1, 3],
};

/** What happened in a generated series (kept in the manifest for analysis). */
export interface Timeline {
  /** Index into the anchors of the workload at the end of each window. */
  regime: number[];
  /** Windows in which the workload switched, and the step at which it did. */
  switches: { window: number; step: number; from: number; to: number }[];
  bursts: { start: number; windows: number; factor: number; experts: number }[];
}

export interface Generated {
  loads: Float32Array;
  timeline: Timeline;
}

export function validateGeneratorParams(p: GeneratorParams): void {
  for (const key of ['windows', 'stepsPerWindow', 'tokensPerStep'] as const) {
    check(
      Number.isInteger(p[key]) && p[key] >= 1,
      `--${kebab(key)} must be a positive integer, got ${p[key]}`,
    );
  }
  check(Number.isInteger(p.seed), `--seed must be an integer, got ${p.seed}`);
  check(p.novelty >= 0 && p.novelty <= 1, `novelty must be in [0, 1], got ${p.novelty}`);
  check(p.driftSd >= 0, `driftSd must be ≥ 0, got ${p.driftSd}`);
  check(
    p.driftPersistence >= 0 && p.driftPersistence < 1,
    `driftPersistence must be in [0, 1), got ${p.driftPersistence}`,
  );
  check(p.regimeSwitch >= 0 && p.regimeSwitch <= 1, `regimeSwitch must be in [0, 1], got ${p.regimeSwitch}`);
  check(p.burstRate >= 0 && p.burstRate <= 1, `burstRate must be in [0, 1], got ${p.burstRate}`);
  for (const key of ['burstExperts', 'burstFactor', 'burstWindows'] as const) {
    const [a, b] = p[key];
    check(a >= 0 && a <= b, `${key} must be a range [min, max] with 0 ≤ min ≤ max, got [${a}, ${b}]`);
  }
  // Window totals must stay exact integers in float32 (and in the float64 sums of this generator).
  check(
    p.stepsPerWindow * p.tokensPerStep <= 2 ** 24,
    `--steps-per-window × --tokens-per-step = ${p.stepsPerWindow * p.tokensPerStep} tokens per window is above 2^24; use smaller windows`,
  );
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Centered log-share profiles [layers × experts] of each anchor (all its steps summed). */
export function anchorProfiles(anchors: readonly Trace[]): Float64Array[] {
  const { layers, experts } = anchors[0]!.manifest;
  return anchors.map((t) => {
    const m = t.manifest;
    check(
      m.layers === layers && m.experts === experts && m.groups === anchors[0]!.manifest.groups,
      `anchor '${m.name}' is ${m.layers}×${m.experts}, the first anchor is ${layers}×${experts}: anchors must share a shape`,
    );
    const sum = new Float64Array(layers * experts);
    for (let s = 0; s < m.steps; s++) {
      const off = s * layers * experts;
      for (let i = 0; i < sum.length; i++) sum[i]! += t.loads[off + i]!;
    }
    const out = new Float64Array(layers * experts);
    for (let l = 0; l < layers; l++) {
      let total = 0;
      for (let e = 0; e < experts; e++) total += sum[l * experts + e]!;
      check(total > 0, `anchor '${m.name}' has no load in layer ${l}; anchors need loads on every layer`);
      // Half a token of pseudo-count keeps experts that received nothing finite in log space.
      const floor = 0.5 * (total / experts) * 1e-6 + 0.5;
      let mean = 0;
      for (let e = 0; e < experts; e++) {
        const v = Math.log(sum[l * experts + e]! + floor);
        out[l * experts + e] = v;
        mean += v / experts;
      }
      for (let e = 0; e < experts; e++) out[l * experts + e]! -= mean;
    }
    return out;
  });
}

/** Standard deviation and between-group variance share of one centered log profile row. */
export function rowShape(row: Float64Array, groups: number): { sd: number; groupShare: number } {
  const n = row.length;
  const size = n / groups;
  let total = 0;
  let between = 0;
  for (let i = 0; i < n; i++) total += row[i]! ** 2;
  for (let g = 0; g < groups; g++) {
    let m = 0;
    for (let i = g * size; i < (g + 1) * size; i++) m += row[i]! / size;
    between += size * m * m;
  }
  return { sd: Math.sqrt(total / n), groupShare: total > 0 ? between / total : 0 };
}

/** A child RNG per model component, so that e.g. changing the window count leaves the profiles alone. */
function streams(seed: number) {
  const root = new Rng(seed ^ 0x5eed_a0d5);
  const next = () => root.child();
  return { relabel: next(), fresh: next(), drift: next(), timeline: next(), sampling: next() };
}

export function generateLoads(anchors: readonly Trace[], params: GeneratorParams): Generated {
  validateGeneratorParams(params);
  check(anchors.length >= 1, 'the generator needs at least one anchor trace to calibrate on');
  const { layers, experts, groups, topK } = anchors[0]!.manifest;
  const p = params;
  const size = experts / groups;
  const rng = streams(p.seed);
  const base = anchorProfiles(anchors);

  // Seeded relabelling: permute groups, then experts within each group (per layer).
  const perm = new Int32Array(layers * experts);
  for (let l = 0; l < layers; l++) {
    const gOrder = shuffled(groups, p.relabel ? rng.relabel : undefined);
    for (let g = 0; g < groups; g++) {
      const inner = shuffled(size, p.relabel ? rng.relabel : undefined);
      for (let i = 0; i < size; i++) perm[l * experts + g * size + i] = gOrder[g]! * size + inner[i]!;
    }
  }

  // Regime profiles: anchor blended with one fresh profile (shared by all regimes, like a model's
  // own structure), matched per layer to the anchor's spread and group-variance share.
  const fresh = new Float64Array(layers * experts);
  for (let i = 0; i < fresh.length; i++) fresh[i] = rng.fresh.normal();
  const groupNoise = new Float64Array(layers * groups);
  for (let i = 0; i < groupNoise.length; i++) groupNoise[i] = rng.fresh.normal();
  const regimes = base.map((profile) => {
    const out = new Float64Array(layers * experts);
    for (let l = 0; l < layers; l++) {
      const row = profile.subarray(l * experts, (l + 1) * experts);
      const { sd, groupShare } = rowShape(row, groups);
      const wg = Math.sqrt(groupShare);
      const we = Math.sqrt(1 - groupShare);
      for (let e = 0; e < experts; e++) {
        const f = wg * groupNoise[l * groups + Math.floor(e / size)]! + we * fresh[l * experts + e]!;
        out[l * experts + perm[l * experts + e]!] =
          Math.sqrt(1 - p.novelty) * row[e]! + Math.sqrt(p.novelty) * sd * f;
      }
    }
    return out;
  });
  // Drift adds variance; shrink the profile so the total log-variance (hence skew) stays the anchor's.
  const shrink = new Float64Array(layers * regimes.length);
  regimes.forEach((r, k) => {
    for (let l = 0; l < layers; l++) {
      const { sd } = rowShape(r.subarray(l * experts, (l + 1) * experts), groups);
      shrink[k * layers + l] = sd > 0 ? sd / Math.sqrt(sd * sd + p.driftSd * p.driftSd) : 1;
    }
  });

  const timeline: Timeline = { regime: [], switches: [], bursts: [] };
  const drift = new Float64Array(layers * experts);
  for (let i = 0; i < drift.length; i++) drift[i] = p.driftSd * rng.drift.normal();
  const innovation = p.driftSd * Math.sqrt(1 - p.driftPersistence ** 2);
  const burstBoost = new Float64Array(layers * experts).fill(1);
  const activeBursts: { until: number; experts: Int32Array; factor: number }[] = [];
  let regime = rng.timeline.int(regimes.length);

  const loads = new Float32Array(p.windows * layers * experts);
  const share = new Float64Array(experts);
  const share2 = new Float64Array(experts);
  const tokens = p.stepsPerWindow * p.tokensPerStep;

  for (let w = 0; w < p.windows; w++) {
    if (w > 0)
      for (let i = 0; i < drift.length; i++)
        drift[i] = p.driftPersistence * drift[i]! + innovation * rng.drift.normal();
    // Regime switch at a random step inside this window: the window mixes the two workloads.
    let from = regime;
    let switchStep = 0;
    if (regimes.length > 1 && rng.timeline.next() < p.regimeSwitch) {
      const to = (regime + 1 + rng.timeline.int(regimes.length - 1)) % regimes.length;
      switchStep = rng.timeline.int(p.stepsPerWindow);
      timeline.switches.push({ window: w, step: switchStep, from, to });
      regime = to;
      if (switchStep === 0) from = to;
    }
    timeline.regime.push(regime);
    // Bursts: start at most one per window; each lasts a few windows on a few experts per layer.
    if (rng.timeline.next() < p.burstRate) {
      const [kMin, kMax] = p.burstExperts;
      const k = kMin + rng.timeline.int(kMax - kMin + 1);
      const factor = p.burstFactor[0] + rng.timeline.next() * (p.burstFactor[1] - p.burstFactor[0]);
      const length = p.burstWindows[0] + rng.timeline.int(p.burstWindows[1] - p.burstWindows[0] + 1);
      const chosen = new Int32Array(layers * k);
      for (let l = 0; l < layers; l++) {
        for (let j = 0; j < k; j++) chosen[l * k + j] = l * experts + rng.timeline.int(experts);
      }
      activeBursts.push({ until: w + length, experts: chosen, factor });
      timeline.bursts.push({
        start: w,
        windows: length,
        factor: Math.round(factor * 1000) / 1000,
        experts: k,
      });
    }
    burstBoost.fill(1);
    for (let b = activeBursts.length - 1; b >= 0; b--) {
      const burst = activeBursts[b]!;
      if (burst.until <= w) {
        activeBursts.splice(b, 1);
        continue;
      }
      for (const i of burst.experts) burstBoost[i]! *= burst.factor;
    }

    const fromSteps = switchStep;
    const out = loads.subarray(w * layers * experts, (w + 1) * layers * experts);
    for (let l = 0; l < layers; l++) {
      windowShares(regimes[regime]!, shrink[regime * layers + l]!, l, share);
      if (fromSteps > 0) {
        windowShares(regimes[from]!, shrink[from * layers + l]!, l, share2);
        const f = fromSteps / p.stepsPerWindow;
        for (let e = 0; e < experts; e++) share[e] = f * share2[e]! + (1 - f) * share[e]!;
      }
      for (let e = 0; e < experts; e++) share[e]! *= burstBoost[l * experts + e]!;
      normalizeCapped(share, 1 / topK);
      sampleCounts(share, tokens, topK, rng.sampling, out.subarray(l * experts, (l + 1) * experts));
    }
  }
  return { loads, timeline };

  function windowShares(profile: Float64Array, k: number, l: number, into: Float64Array): void {
    let max = Number.NEGATIVE_INFINITY;
    for (let e = 0; e < experts; e++) {
      into[e] = k * (profile[l * experts + e]! + drift[l * experts + e]!);
      if (into[e]! > max) max = into[e]!;
    }
    let sum = 0;
    for (let e = 0; e < experts; e++) {
      into[e] = Math.exp(into[e]! - max);
      sum += into[e]!;
    }
    for (let e = 0; e < experts; e++) into[e]! /= sum;
  }
}

/** 0..n-1, shuffled by `rng` (Fisher–Yates) or in order without one. */
export function shuffled(n: number, rng: Rng | undefined): Int32Array {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  if (rng) {
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
  }
  return a;
}

/** Normalizes shares to sum 1 with no share above `cap` (a token hits an expert at most once). */
function normalizeCapped(share: Float64Array, cap: number): void {
  const n = share.length;
  let sum = 0;
  for (let e = 0; e < n; e++) sum += share[e]!;
  for (let e = 0; e < n; e++) share[e]! /= sum;
  // Water-filling: clip at the cap and spread the excess over the unclipped experts, until stable.
  for (let iter = 0; iter < n; iter++) {
    let excess = 0;
    let free = 0;
    for (let e = 0; e < n; e++) {
      if (share[e]! > cap) {
        excess += share[e]! - cap;
        share[e] = cap;
      } else if (share[e]! < cap) free += share[e]!;
    }
    if (excess <= 1e-15 || free <= 0) return;
    for (let e = 0; e < n; e++) if (share[e]! < cap) share[e]! *= 1 + excess / free;
  }
}

/**
 * Hits per expert for `tokens` tokens each choosing `topK` distinct experts with the given shares:
 * expert e is chosen by a token with probability q = topK·share, so its count is Binomial(tokens, q)
 * (normal approximation, rounded); the layer total is then made exactly tokens·topK.
 */
function sampleCounts(share: Float64Array, tokens: number, topK: number, rng: Rng, out: Float32Array): void {
  const n = share.length;
  const counts = new Float64Array(n);
  let total = 0;
  for (let e = 0; e < n; e++) {
    const q = Math.min(1, topK * share[e]!);
    const mean = tokens * q;
    const v = Math.round(mean + Math.sqrt(mean * (1 - q)) * rng.normal());
    counts[e] = Math.min(tokens, Math.max(0, v));
    total += counts[e]!;
  }
  // Spread the difference to the exact total in proportion to the shares, never below 0 or above `tokens`.
  const target = tokens * topK;
  for (let pass = 0; pass < 64 && total !== target; pass++) {
    const diff = target - total;
    let moved = 0;
    for (let e = 0; e < n && moved !== diff; e++) {
      const step = diff > 0 ? Math.ceil(diff * share[e]!) : -Math.ceil(-diff * share[e]!);
      const room = diff > 0 ? tokens - counts[e]! : -counts[e]!;
      const d = diff > 0 ? Math.min(step, room, diff - moved) : Math.max(step, room, diff - moved);
      counts[e]! += d;
      moved += d;
    }
    total += moved;
  }
  for (let e = 0; e < n; e++) out[e] = counts[e]!;
}

/** The manifest of a generated series: shape and routing from the anchors, and how to regenerate it. */
export function generatedManifest(
  name: string,
  anchors: readonly Trace[],
  params: GeneratorParams,
  timeline: Timeline,
): TraceManifest {
  const a = anchors[0]!.manifest;
  const credits = [...new Set(anchors.map((t) => t.manifest.attribution).filter((s) => s.length > 0))];
  return {
    format: 'adrs-trace/1',
    name,
    model: a.model,
    layers: a.layers,
    experts: a.experts,
    groups: a.groups,
    topK: a.topK,
    topKGroups: a.topKGroups,
    steps: params.windows,
    granularity: 'window',
    stepsPerWindow: params.stepsPerWindow,
    data: `${name}.bin`,
    dtype: 'float32',
    source:
      `synthetic (${GENERATOR_NAME} v${GENERATOR_VERSION}, seed ${params.seed}): ${params.windows} windows of ` +
      `${params.stepsPerWindow} steps × ${params.tokensPerStep} tokens, calibrated on ${anchors.map((t) => t.manifest.name).join(', ')}`,
    attribution: `Generated by adrs-gpu; calibration data: ${credits.join(' | ') || 'see the anchors'}`,
    generator: {
      name: GENERATOR_NAME,
      version: GENERATOR_VERSION,
      anchors: anchors.map((t) => t.manifest.name),
      params,
      timeline,
    },
  };
}
