// Batched placement evaluation: for many (placement, window) pairs at once, the per-layer and
// summed balance statistics of src/eplb/metrics.ts balanceMetrics (the f64 TypeScript reference).
//
// Two entry points, dispatched back to back in one compute pass:
//   layer_stats : one workgroup per (pair, chunk of LAYERS_PER_GROUP consecutive layers), one layer
//                 after the other. Threads over GPUs sum their slot loads load(e)/logcnt(e) in slot
//                 order (like the reference) and mark which nodes hold each expert; then threads over
//                 experts take the inter-node numerator Σ_e load(e)·(1 − nodes holding e / N), clearing
//                 the marks for the next layer; thread 0 reduces the per-thread partials (total load,
//                 max GPU load, max slot load, inter-node numerator) with a fixed pairwise tree.
//   pair_sums   : one workgroup per pair. Threads spread over layers; the same pairwise tree gives the
//                 sums over layers and the balancedness ratios, plus per-layer ratios.
// No float atomics: every float sum is a fixed-order loop or a pairwise tree, so results are
// deterministic and the f32 rounding error grows with log2 of the count, not the count.
// Two barriers per layer: a workgroup is costly to start and a barrier to cross on SIMD CPUs
// (llvmpipe), so each workgroup takes several layers and the final tree runs on one thread.

// Workgroup size WG (a power of two): 64 on GPUs, a multiple of every vendor's SIMD width, as a
// layer has tens of GPUs and hundreds of experts (DeepSeek-V3: 32 and 256); the host picks 8 on CPU
// adapters, where that is one SIMD batch. Results agree within the stated tolerance for any size.
// Its declarations (Params, bindings, WG, EXPERT_CAP, LAYERS_PER_GROUP, the output's SUM_* layout,
// workgroup memory) come from src/sim/placement-eval.contract.ts.

fn workgroup_index(wid: vec3<u32>) -> u32 {
  return wid.x + wid.y * params.grid_x;
}

// Thread 0 only: partial[0] = the pairwise tree of partial[0..WG) (sums for x and w; for y and z
// maxima, or sums when `sum_yz`), bad_partial[0] = the sum of bad_partial; the same order as a
// workgroup tree reduction, without its barriers.
fn reduce_partials(sum_yz: bool) {
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    for (var i = 0u; i < stride; i++) {
      let a = partial[i];
      let b = partial[i + stride];
      let yz = select(max(a.yz, b.yz), a.yz + b.yz, sum_yz);
      partial[i] = vec4<f32>(a.x + b.x, yz, a.w + b.w);
      bad_partial[i] += bad_partial[i + stride];
    }
  }
}

@compute @workgroup_size(WG)
fn layer_stats_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let L = params.layers;
  let E = params.experts;
  let R = params.replicas;
  let S = params.slots_per_gpu;
  let chunks = (L + LAYERS_PER_GROUP - 1u) / LAYERS_PER_GROUP;
  let item = workgroup_index(wid);
  // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
  if (item >= params.pair_count * chunks) {
    return;
  }
  let pair_index = item / chunks;
  let pair = pairs[pair_index];
  let first_layer = (item % chunks) * LAYERS_PER_GROUP;
  let last_layer = min(first_layer + LAYERS_PER_GROUP, L);
  let place_base = pair.x * params.placement_stride;
  let n = f32(params.nodes);

  for (var layer = first_layer; layer < last_layer; layer++) {
    let loads_base = (pair.y * L + layer) * E;
    let phy_base = place_base + layer * R;
    let cnt_base = place_base + L * R + layer * E;

    // Phase 1 (threads over GPUs): each GPU's load, its slots summed in slot order; the largest slot
    // load; which nodes hold each expert.
    var total = 0.0;
    var max_gpu = 0.0;
    var max_slot = 0.0;
    var bad = 0u;
    for (var g = lid; g < params.gpus; g += WG) {
      let node_bit = 1u << (g / params.gpus_per_node);
      var gpu_load = 0.0;
      for (var k = 0u; k < S; k++) {
        let e = placements[phy_base + g * S + k];
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
          atomicOr(&node_mask[u32(e)], node_bit);
        }
        gpu_load += load;
        max_slot = max(max_slot, load);
      }
      total += gpu_load;
      max_gpu = max(max_gpu, gpu_load);
    }
    workgroupBarrier();

    // Phase 2 (threads over experts): the inter-node numerator; the marks are cleared for the next layer.
    var crossing = 0.0;
    for (var e = lid; e < E; e += WG) {
      let holding = f32(countOneBits(atomicExchange(&node_mask[e], 0u)));
      crossing += windows[loads_base + e] * (1.0 - holding / n);
    }
    partial[lid] = vec4<f32>(total, max_gpu, max_slot, crossing);
    bad_partial[lid] = bad;
    workgroupBarrier();

    // Thread 0 reduces and writes while the others start the next layer: they write `partial` only
    // after the next barrier, which thread 0 reaches once done.
    if (lid == 0u) {
      reduce_partials(false);
      let out_index = pair_index * L + layer;
      layer_stats[out_index] = partial[0];
      layer_bad[out_index] = bad_partial[0];
    }
  }
}

// Per pair, written by pair_sums_main into `out` (one buffer, so one copy to the readback): the
// SUMMARY_WORDS summary words at SUM_* offsets, then per-layer GPU and slot balancedness. It reads
// the bindings params, layer_stats and layer_bad that layer_stats_main wrote.
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
  partial[lid] = acc;
  bad_partial[lid] = bad;
  workgroupBarrier();
  if (lid == 0u) {
    reduce_partials(true);
    let t = partial[0];
    let o = pair * SUMMARY_WORDS;
    out[o + SUM_TOTAL_LOAD] = t.x;
    out[o + SUM_MAX_GPU_LOAD] = t.y;
    out[o + SUM_MAX_SLOT_LOAD] = t.z;
    out[o + SUM_CROSSING] = t.w;
    out[o + SUM_GPU_BALANCE] = select(1.0, t.x / P / t.y, t.y > 0.0);
    out[o + SUM_SLOT_BALANCE] = select(1.0, t.x / R / t.z, t.z > 0.0);
    out[o + SUM_INTER_NODE_SHARE] = select(0.0, t.w / t.x, t.x > 0.0);
    out[o + SUM_BAD] = f32(bad_partial[0]);
  }
}
