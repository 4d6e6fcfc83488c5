import type { Shape } from '../eplb/shape.js';

/**
 * The modelled time of one MoE layer from token-level routing counts. Every number is a parameter
 * here, with its source; `H100_COST_MODEL` is the default (DeepSeek-V3/R1 on H100 SXM nodes).
 *
 * Per layer and GPU g, with counts of routed token-experts (one token's hidden state sent to one expert):
 * - compute_g  = received_g × expertUsPerToken (the expert FFN of every token-expert g serves);
 * - dispatch_g = max(nvlink_g × dispatchBytes / nvlinkBytesPerUs, nic_g × dispatchBytes / nicBytesPerUs),
 *   nvlink_g = max(sent, received) within the node, nic_g = max(sent, received) across nodes
 *   (links are full duplex and NVLink and the NIC run concurrently, as in DeepEP);
 * - combine_g  = the same with combineBytes (the expert outputs travel back on the same routes).
 * Layer time = max_g compute_g + max_g dispatch_g + max_g combine_g: the all-to-alls and the grouped
 * GEMM are synchronising phases, each as slow as its slowest GPU. Token-experts served on their source
 * GPU move no data. Every token-expert is sent separately (no per-GPU deduplication of a token's
 * copies as DeepEP does), so transfer times are an upper bound for a given placement.
 */
export interface CostModel {
  /** Model hidden size (DeepSeek-V3: 7168, config.json `hidden_size`). */
  hiddenSize: number;
  /** FLOPs of one token through one routed expert: SwiGLU FFN = 3 GEMMs of hidden × moeIntermediate, 2 FLOPs per MAC. */
  expertFlopsPerToken: number;
  /** Dense peak of the expert GEMMs in TFLOP/s (H100 SXM FP8: 1979, NVIDIA H100 datasheet, without sparsity). */
  peakTflops: number;
  /** Fraction of peak the grouped GEMM reaches (assumption: 0.4, uneven per-expert batches; DeepGEMM reports 0.5–0.75 on large uniform ones). */
  gemmEfficiency: number;
  /** Bytes per hidden element on dispatch (FP8 dispatch as in DeepSeek-V3 / DeepEP: 1). */
  dispatchBytesPerElement: number;
  /** Extra bytes per dispatched token: FP8 scales, one f32 per 128 elements (7168 / 128 × 4 = 224). */
  dispatchScaleBytesPerToken: number;
  /** Bytes per hidden element on combine (BF16: 2). */
  combineBytesPerElement: number;
  /** NVLink bandwidth per GPU per direction in GB/s (H100 NVLink 4: 900 GB/s bidirectional = 450 per direction). */
  nvlinkGBps: number;
  /** NIC bandwidth per GPU per direction in Gb/s (one 400 Gb/s ConnectX-7 InfiniBand NIC per GPU). */
  nicGbps: number;
}

/** DeepSeek-V3/R1 (hidden 7168, moe_intermediate_size 2048) on H100 SXM nodes of 8 GPUs. */
export const H100_COST_MODEL: Readonly<CostModel> = Object.freeze({
  hiddenSize: 7168,
  expertFlopsPerToken: 2 * 3 * 7168 * 2048,
  peakTflops: 1979,
  gemmEfficiency: 0.4,
  dispatchBytesPerElement: 1,
  dispatchScaleBytesPerToken: (7168 / 128) * 4,
  combineBytesPerElement: 2,
  nvlinkGBps: 450,
  nicGbps: 400,
});

/** Microseconds of expert compute per routed token-expert. */
export const expertUsPerToken = (m: CostModel): number =>
  (m.expertFlopsPerToken / (m.peakTflops * 1e12 * m.gemmEfficiency)) * 1e6;

/** Counters kept per (layer, GPU) by the simulator, in this order. */
export const COUNTER_RECEIVED = 0;
export const COUNTER_RECEIVED_INTRA = 1;
export const COUNTER_RECEIVED_INTER = 2;
export const COUNTER_SENT_INTRA = 3;
export const COUNTER_SENT_INTER = 4;
export const COUNTERS_PER_GPU = 5;
/** The counters' names, by index, for messages. */
export const COUNTER_NAMES: readonly string[] = [
  'received',
  'received intra-node',
  'received inter-node',
  'sent intra-node',
  'sent inter-node',
];

export interface LayerTimes {
  layerTimeUs: Float64Array;
  computeUs: Float64Array;
  dispatchUs: Float64Array;
  combineUs: Float64Array;
  totalTimeUs: number;
}

/** Layer times from counters [L][P][COUNTERS_PER_GPU] (the same function for the GPU and the reference). */
export function layerTimes(
  shape: Shape,
  counters: Uint32Array,
  model: CostModel = H100_COST_MODEL,
): LayerTimes {
  const { layers: L, gpus: P } = shape;
  const usPerToken = expertUsPerToken(model);
  const dispatchBytes = model.hiddenSize * model.dispatchBytesPerElement + model.dispatchScaleBytesPerToken;
  const combineBytes = model.hiddenSize * model.combineBytesPerElement;
  const nvlinkBytesPerUs = model.nvlinkGBps * 1e3;
  const nicBytesPerUs = (model.nicGbps / 8) * 1e3;
  const out: LayerTimes = {
    layerTimeUs: new Float64Array(L),
    computeUs: new Float64Array(L),
    dispatchUs: new Float64Array(L),
    combineUs: new Float64Array(L),
    totalTimeUs: 0,
  };
  for (let l = 0; l < L; l++) {
    let maxReceived = 0;
    let maxDispatch = 0;
    let maxCombine = 0;
    for (let g = 0; g < P; g++) {
      const c = (l * P + g) * COUNTERS_PER_GPU;
      const received = counters[c + COUNTER_RECEIVED]!;
      const nvlink = Math.max(counters[c + COUNTER_SENT_INTRA]!, counters[c + COUNTER_RECEIVED_INTRA]!);
      const nic = Math.max(counters[c + COUNTER_SENT_INTER]!, counters[c + COUNTER_RECEIVED_INTER]!);
      if (received > maxReceived) maxReceived = received;
      const dispatch = Math.max(
        (nvlink * dispatchBytes) / nvlinkBytesPerUs,
        (nic * dispatchBytes) / nicBytesPerUs,
      );
      const combine = Math.max(
        (nvlink * combineBytes) / nvlinkBytesPerUs,
        (nic * combineBytes) / nicBytesPerUs,
      );
      if (dispatch > maxDispatch) maxDispatch = dispatch;
      if (combine > maxCombine) maxCombine = combine;
    }
    out.computeUs[l] = maxReceived * usPerToken;
    out.dispatchUs[l] = maxDispatch;
    out.combineUs[l] = maxCombine;
    out.layerTimeUs[l] = out.computeUs[l]! + maxDispatch + maxCombine;
    out.totalTimeUs += out.layerTimeUs[l]!;
  }
  return out;
}
