// Batched placement evaluation: for many (placement, window) pairs at once, the per-layer and
// summed balance statistics of src/eplb/metrics.ts balanceMetrics (the f64 TypeScript reference).
//
// Two entry points, dispatched back to back in one compute pass:
//   layer_stats : one workgroup per (pair, layer). Threads spread over the layer's R slots compute
//                 slot loads (load(e)/logcnt(e)) into workgroup memory and mark which nodes hold each
//                 expert; then each thread sums whole GPUs (R/P consecutive slots, in slot order like
//                 the reference) and a tree reduction gives the layer's total load, max GPU load,
//                 max slot load and inter-node numerator Σ_e load(e)·(1 − nodes holding e / N).
//   pair_sums   : one workgroup per pair. Threads spread over layers; a tree reduction gives the
//                 sums over layers and the balancedness ratios, plus per-layer ratios.
// No float atomics: every float sum is a fixed-order loop or a pairwise tree, so results are
// deterministic and the f32 rounding error grows with log2 of the count, not the count.

// Workgroup size: 64 threads. A layer has hundreds of slots and tens of GPUs (DeepSeek-V3: 288 and
// 32), so 64 keeps most lanes busy in both phases, is a multiple of every vendor's SIMD width, and
// there are pairs×layers workgroups to fill the device, so larger groups would only add idle lanes.
override WG: u32 = 64u;
// Capacities of the workgroup arrays (≥ the shape's R and E; the host rounds them up).
override SLOT_CAP: u32 = 288u;
override EXPERT_CAP: u32 = 256u;

struct Params {
  layers: u32,
  experts: u32,
  replicas: u32,
  gpus: u32,
  slots_per_gpu: u32,
  gpus_per_node: u32,
  nodes: u32,
  pair_count: u32,
  // Workgroups per row of the 2-D grid: linear workgroup id = x + y·grid_x (grids can exceed 65535).
  grid_x: u32,
  // Int32 words per placement in `placements`: phy2log [L][R] then logcnt [L][E].
  placement_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// [W][L][E] expert loads, uploaded as the trace stores them.
@group(0) @binding(1) var<storage, read> windows: array<f32>;
// [Pn] blocks of placement_stride words: phy2log [L][R], logcnt [L][E].
@group(0) @binding(2) var<storage, read> placements: array<i32>;
// [pairs] (placement index, window index).
@group(0) @binding(3) var<storage, read> pairs: array<vec2<u32>>;
// [pairs][L] (total load, max GPU load, max slot load, inter-node numerator).
@group(0) @binding(4) var<storage, read_write> layer_stats: array<vec4<f32>>;
// [pairs][L] count of invalid entries met (expert out of range, replica count ≤ 0).
@group(0) @binding(5) var<storage, read_write> layer_bad: array<u32>;

var<workgroup> slot_load: array<f32, SLOT_CAP>;
var<workgroup> node_mask: array<atomic<u32>, EXPERT_CAP>;
var<workgroup> partial: array<vec4<f32>, WG>;
var<workgroup> bad_count: atomic<u32>;

fn workgroup_index(wid: vec3<u32>) -> u32 {
  return wid.x + wid.y * params.grid_x;
}

@compute @workgroup_size(WG)
fn layer_stats_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let L = params.layers;
  let E = params.experts;
  let R = params.replicas;
  let item = workgroup_index(wid);
  // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
  if (item >= params.pair_count * L) {
    return;
  }
  let pair = pairs[item / L];
  let layer = item % L;
  let loads_base = (pair.y * L + layer) * E;
  let place_base = pair.x * params.placement_stride;
  let phy_base = place_base + layer * R;
  let cnt_base = place_base + L * R + layer * E;

  for (var e = lid; e < E; e += WG) {
    atomicStore(&node_mask[e], 0u);
  }
  if (lid == 0u) {
    atomicStore(&bad_count, 0u);
  }
  workgroupBarrier();

  // Phase 1: slot loads (threads over slots) and which nodes hold each expert.
  var max_slot = 0.0;
  var bad = 0u;
  for (var s = lid; s < R; s += WG) {
    let e = placements[phy_base + s];
    var load = 0.0;
    if (e < 0 || u32(e) >= E) {
      bad += 1u;
    } else {
      let count = placements[cnt_base + u32(e)];
      if (count <= 0) {
        bad += 1u;
      } else {
        load = windows[loads_base + u32(e)] / f32(count);
      }
      let node = (s / params.slots_per_gpu) / params.gpus_per_node;
      atomicOr(&node_mask[u32(e)], 1u << node);
    }
    slot_load[s] = load;
    max_slot = max(max_slot, load);
  }
  if (bad > 0u) {
    atomicAdd(&bad_count, bad);
  }
  workgroupBarrier();

  // Phase 2: GPU loads (threads over GPUs, each summing its slots in slot order) and the
  // inter-node numerator (threads over experts).
  var total = 0.0;
  var max_gpu = 0.0;
  for (var g = lid; g < params.gpus; g += WG) {
    var gpu_load = 0.0;
    let first = g * params.slots_per_gpu;
    for (var k = 0u; k < params.slots_per_gpu; k++) {
      gpu_load += slot_load[first + k];
    }
    total += gpu_load;
    max_gpu = max(max_gpu, gpu_load);
  }
  var crossing = 0.0;
  let n = f32(params.nodes);
  for (var e = lid; e < E; e += WG) {
    let holding = f32(countOneBits(atomicLoad(&node_mask[e])));
    crossing += windows[loads_base + e] * (1.0 - holding / n);
  }
  partial[lid] = vec4<f32>(total, max_gpu, max_slot, crossing);
  workgroupBarrier();

  // Tree reduction over the workgroup: sums for total and crossing, max for the maxima.
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let a = partial[lid];
      let b = partial[lid + stride];
      partial[lid] = vec4<f32>(a.x + b.x, max(a.y, b.y), max(a.z, b.z), a.w + b.w);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    layer_stats[item] = partial[0];
    layer_bad[item] = atomicLoad(&bad_count);
  }
}

// Per pair, written by pair_sums_main. Layout of `out` (one buffer, so one copy to the readback):
//   [pairs][8] summaries: total load, Σ max GPU, Σ max slot, inter-node numerator,
//                         GPU balancedness, slot balancedness, inter-node share, invalid entries;
//   then [pairs][L] per-layer GPU balancedness, then [pairs][L] per-layer slot balancedness.
const SUMMARY_WORDS: u32 = 8u;

// Bindings 0, 4 and 5 are shared with layer_stats_main (read here); the output is binding 6.
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> layer_partial: array<vec4<f32>, WG>;
var<workgroup> bad_partial: array<u32, WG>;

@compute @workgroup_size(WG)
fn pair_sums_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let pair = wid.x + wid.y * params.grid_x;
  if (pair >= params.pair_count) {
    return;
  }
  let L = params.layers;
  let P = f32(params.gpus);
  let R = f32(params.replicas);
  let per_layer_gpu = params.pair_count * SUMMARY_WORDS + pair * L;
  let per_layer_slot = per_layer_gpu + params.pair_count * L;

  var acc = vec4<f32>(0.0);
  var bad = 0u;
  for (var l = lid; l < L; l += WG) {
    let s = layer_stats[pair * L + l];
    acc += s;
    bad += layer_bad[pair * L + l];
    // mean/max per layer, 1 for a layer without load (as the reference).
    out[per_layer_gpu + l] = select(1.0, s.x / P / s.y, s.y > 0.0);
    out[per_layer_slot + l] = select(1.0, s.x / R / s.z, s.z > 0.0);
  }
  layer_partial[lid] = acc;
  bad_partial[lid] = bad;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      layer_partial[lid] += layer_partial[lid + stride];
      bad_partial[lid] += bad_partial[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let t = layer_partial[0];
    let o = pair * SUMMARY_WORDS;
    out[o + 0u] = t.x;
    out[o + 1u] = t.y;
    out[o + 2u] = t.z;
    out[o + 3u] = t.w;
    out[o + 4u] = select(1.0, t.x / P / t.y, t.y > 0.0);
    out[o + 5u] = select(1.0, t.x / R / t.z, t.z > 0.0);
    out[o + 6u] = select(0.0, t.w / t.x, t.x > 0.0);
    out[o + 7u] = f32(bad_partial[0]);
  }
}
