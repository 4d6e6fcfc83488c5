import type { Shape } from '../eplb/shape.js';
import {
  COUNTER_RECEIVED,
  COUNTER_RECEIVED_INTER,
  COUNTER_RECEIVED_INTRA,
  COUNTERS_PER_GPU,
  type CostModel,
  layerTimes,
} from './cost-model.js';
import type { RouteResult } from './route-types.js';

/** Turns the raw counters [L][P][5] into a RouteResult (the same code for the GPU and the reference). */
export function resultFromCounters(
  shape: Shape,
  counters: Uint32Array,
  model: CostModel,
  timing: { wallMs: number; gpuMs?: number },
): RouteResult {
  const { layers: L, gpus: P } = shape;
  const tokensPerGpu = new Uint32Array(L * P);
  const crossNode = new Uint32Array(L);
  const intraNode = new Uint32Array(L);
  let routed = 0;
  for (let l = 0; l < L; l++) {
    for (let g = 0; g < P; g++) {
      const c = (l * P + g) * COUNTERS_PER_GPU;
      tokensPerGpu[l * P + g] = counters[c + COUNTER_RECEIVED]!;
      routed += counters[c + COUNTER_RECEIVED]!;
      crossNode[l]! += counters[c + COUNTER_RECEIVED_INTER]!;
      intraNode[l]! += counters[c + COUNTER_RECEIVED_INTRA]!;
    }
  }
  const times = layerTimes(shape, counters, model);
  const result: RouteResult = {
    tokensPerGpu,
    crossNode,
    intraNode,
    layerTimeUs: times.layerTimeUs,
    computeUs: times.computeUs,
    dispatchUs: times.dispatchUs,
    combineUs: times.combineUs,
    totalTimeUs: times.totalTimeUs,
    routed,
    counters,
    wallMs: timing.wallMs,
  };
  if (timing.gpuMs !== undefined) result.gpuMs = timing.gpuMs;
  return result;
}
