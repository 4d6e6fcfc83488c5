import { check } from '../util/errors.js';
import { GENERATOR_V2_VERSION, generateCalibratedSeries } from './calibrated.js';
import {
  DEFAULT_GENERATOR_PARAMS,
  GENERATOR_NAME,
  GENERATOR_VERSION,
  type GeneratorParams,
  generatedManifest,
  generateLoads,
} from './generate.js';
import { listBundledTraces, loadTrace } from './load.js';
import type { TemporalParams } from './temporal-model.js';
import type { Trace, TraceManifest } from './trace.js';

/** The real snapshots the generator is calibrated on by default: every bundled SGLang DeepSeek-R1 trace. */
export function defaultAnchorNames(): string[] {
  const names = listBundledTraces().filter((n) => n.startsWith('sglang-r1-'));
  check(
    names.length > 0,
    'no bundled sglang-r1-* traces found in traces/; the generator needs them to calibrate on',
  );
  return names;
}

export interface SyntheticOptions extends Partial<GeneratorParams> {
  name?: string;
  /** Traces (names or paths, anything loadTrace reads) to calibrate on; default the bundled real snapshots. */
  anchors?: string[];
}

/** Generates a window-granularity trace; its manifest records everything needed to regenerate it. */
export function generateTrace(opts: SyntheticOptions = {}): Trace {
  const { name = 'synthetic', anchors: anchorNames = defaultAnchorNames(), ...overrides } = opts;
  const params: GeneratorParams = { ...DEFAULT_GENERATOR_PARAMS, ...overrides };
  const anchors = anchorNames.map((a) => loadTrace(a));
  const { loads, timeline } = generateLoads(anchors, params);
  return { manifest: generatedManifest(name, anchors, params, timeline), loads };
}

/** Regenerates a generated trace from its manifest's generator record. */
export function regenerateTrace(manifest: TraceManifest): Trace {
  const g = manifest.generator;
  check(
    g !== undefined && g.name === GENERATOR_NAME,
    `trace '${manifest.name}' was not made by ${GENERATOR_NAME}; only generated traces can be regenerated`,
  );
  if (g.version === GENERATOR_V2_VERSION) {
    const { seed, windows, stepsPerWindow, ...params } = g.params as Partial<TemporalParams> & {
      seed: number;
      windows: number;
      stepsPerWindow: number;
    };
    return generateCalibratedSeries({
      layers: manifest.layers,
      experts: manifest.experts,
      groups: manifest.groups,
      topK: manifest.topK,
      topKGroups: manifest.topKGroups,
      model: manifest.model,
      windows,
      seed,
      stepsPerWindow,
      params,
      anchors: g.anchors as string[],
      name: manifest.name,
    });
  }
  check(
    g.version === GENERATOR_VERSION,
    `trace '${manifest.name}' was made by ${GENERATOR_NAME} v${g.version}; this is v${GENERATOR_VERSION}, which generates differently`,
  );
  return generateTrace({
    ...(g.params as GeneratorParams),
    name: manifest.name,
    anchors: g.anchors as string[],
  });
}
