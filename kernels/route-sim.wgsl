// Token-level MoE routing simulator. One workgroup = one tile of tokens of one layer; each invocation
// routes TOKENS_PER_THREAD tokens: draws top-k distinct experts (optionally group-limited) from the
// layer's integer CDF, picks a replica of each by the policy, and counts routed token-experts in
// workgroup memory, flushed once to the global counters [L][P][5]. All integer arithmetic with a
// stateless counter-based RNG; the same choices as src/sim/route-reference.ts, bit for bit.
//
// Written for SIMD execution (llvmpipe runs 8 invocations per AVX2 instruction; GPUs run warps):
// every loop has a trip count uniform across invocations (top-k, chosen groups, search steps), scans
// are branchless selects, and per-token state lives in small arrays indexed only by loop counters of
// compile-time trip count (TOP_K, CHOSEN_GROUPS are pipeline constants), so they unroll into
// registers instead of becoming per-lane memory. One workgroup atomic per routed token-expert.

// Its declarations (Params, bindings, overrides, workgroup memory, and the constants it shares with
// the host: MAX_TOP_K, MAX_GROUPS, PCG_*, DRAW_*, GOLDEN, POLICY_*, the counter layout) come from
// src/sim/route-sim.contract.ts.

fn pcg_hash(v: u32) -> u32 {
  let state = v * PCG_MULTIPLIER + PCG_INCREMENT;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * PCG_OUTPUT_MULTIPLIER;
  return (word >> 22u) ^ word;
}

fn draw(key: u32, d: u32) -> u32 {
  return pcg_hash(key + d * GOLDEN);
}

// floor(u · n / 2^32) with 16-bit limbs (WGSL has no u64).
fn mul_hi(u: u32, n: u32) -> u32 {
  let u_lo = u & 0xffffu;
  let u_hi = u >> 16u;
  let n_lo = n & 0xffffu;
  let n_hi = n >> 16u;
  let lo_lo = u_lo * n_lo;
  let hi_lo = u_hi * n_lo;
  let lo_hi = u_lo * n_hi;
  let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
  return u_hi * n_hi + (hi_lo >> 16u) + (cross >> 16u);
}

// Stage 1 of group-limited routing: CHOSEN_GROUPS distinct groups, each ∝ its weight among those not
// yet chosen (uniform among them once none has weight left), as a bit mask. Fixed trip counts; the
// group weights `gw` are the layer's, held in registers.
fn draw_groups(key: u32, layer_total: u32, gw: array<u32, MAX_GROUPS>) -> u32 {
  var mask = 0u;
  var remaining = layer_total;
  for (var d = 0u; d < CHOSEN_GROUPS; d++) {
    let u = draw(key, DRAW_GROUP + d);
    let uniform_pick = remaining == 0u;
    var r = mul_hi(u, select(remaining, GROUPS - d, uniform_pick));
    var pick = 0u;
    var pick_w = 0u;
    var found = false;
    for (var j = 0u; j < GROUPS; j++) {
      let free = (mask & (1u << j)) == 0u;
      let w = select(0u, select(gw[j], 1u, uniform_pick), free);
      let hit = !found && r < w;
      pick = select(pick, j, hit);
      pick_w = select(pick_w, gw[j], hit);
      found = found || hit;
      r = select(r - w, r, found);
    }
    mask |= 1u << pick;
    remaining -= pick_w;
  }
  return mask;
}

fn route_token(t: u32, layer: u32, layer_key: u32, src: u32, gw: array<u32, MAX_GROUPS>) -> vec2u {
  let E = params.experts;
  let EG = params.experts_per_group;
  let K = TOP_K;
  let layer_total = wg_cdf[E];
  let pos = t - (src * params.tok_base + min(src, params.tok_rem));
  let key = pcg_hash(pcg_hash(t) ^ layer_key);

  // The chosen groups in ascending order with their remaining weight and expert count.
  var mask = 1u;
  if (GROUPS > 1u) { mask = draw_groups(key, layer_total, gw); }
  var gsel: array<u32, MAX_GROUPS>;
  var grem_w: array<u32, MAX_GROUPS>;
  var grem_n: array<u32, MAX_GROUPS>;
  var wrem = 0u;
  for (var k = 0u; k < CHOSEN_GROUPS; k++) {
    let g = firstTrailingBit(mask);
    mask &= mask - 1u;
    gsel[k] = g * EG;
    grem_w[k] = wg_group_w[g];
    grem_n[k] = EG;
    wrem += grem_w[k];
  }
  var nrem = CHOSEN_GROUPS * EG;

  // The experts chosen so far, sorted, with their CDF start and weight (NONE-padded).
  var chosen: array<u32, MAX_TOP_K>;
  var c_start: array<u32, MAX_TOP_K>;
  var c_w: array<u32, MAX_TOP_K>;
  for (var i = 0u; i < K; i++) { chosen[i] = NONE; }

  var sent_intra = 0u;
  var sent_inter = 0u;
  let src_node = src / params.gpus_per_node;
  let ob = layer * (E + 1u);
  let rb = layer * params.replicas;
  for (var j = 0u; j < K; j++) {
    let u = draw(key, DRAW_EXPERT + j);
    // Sample ∝ remaining weight; once no eligible expert has weight left, uniformly by count.
    let weighted = wrem > 0u;
    var r = mul_hi(u, select(nrem, wrem, weighted));
    var s = 0u;
    var gs = 0u;
    var found = false;
    for (var k = 0u; k < CHOSEN_GROUPS; k++) {
      let q = select(grem_n[k], grem_w[k], weighted);
      let hit = !found && r < q;
      s = select(s, k, hit);
      gs = select(gs, gsel[k], hit);
      found = found || hit;
      r = select(r - q, r, found);
    }
    let ge = gs + EG;
    // Skip the chosen experts' intervals below the draw, in ascending order (positions in weight
    // space, or in index space when uniform).
    var v = select(gs, wg_cdf[gs], weighted) + r;
    for (var i = 0u; i < K; i++) {
      let c = chosen[i];
      let start = select(c, c_start[i], weighted);
      let len = select(1u, c_w[i], weighted);
      if (c >= gs && c < ge && v >= start) { v += len; }
    }
    // The last expert of the group whose CDF start is ≤ v: a fixed-length binary lifting.
    var lo = gs;
    for (var step = params.search_top; step > 0u; step >>= 1u) {
      let m = lo + step;
      if (m < ge && wg_cdf[min(m, E)] <= v) { lo = m; }
    }
    let e = select(v, lo, weighted);
    let e_start = wg_cdf[e];
    let w = wg_cdf[e + 1u] - e_start;
    for (var k = 0u; k < CHOSEN_GROUPS; k++) {
      grem_w[k] = select(grem_w[k], grem_w[k] - w, k == s);
      grem_n[k] = select(grem_n[k], grem_n[k] - 1u, k == s);
    }
    wrem -= w;
    nrem -= 1u;
    // Sorted insert: slot i takes its left neighbour if that is above e, else e if it is above e.
    for (var n = 1u; n < K; n++) {
      let i = K - n;
      let left = chosen[i - 1u] > e;
      let here = !left && chosen[i] > e;
      c_start[i] = select(select(c_start[i], e_start, here), c_start[i - 1u], left);
      c_w[i] = select(select(c_w[i], w, here), c_w[i - 1u], left);
      chosen[i] = select(select(chosen[i], e, here), chosen[i - 1u], left);
    }
    if (chosen[0] > e) {
      chosen[0] = e;
      c_start[0] = e_start;
      c_w[0] = w;
    }

    let first = offsets[ob + e];
    let cnt = offsets[ob + e + 1u] - first;
    var dest: u32;
    if (params.policy == POLICY_ROUND_ROBIN) {
      dest = rep_gpu[rb + first + (pos * K + j) % cnt];
    } else if (params.policy == POLICY_STATIC_LOCAL) {
      dest = static_gpu[(layer * E + e) * GPUS + src];
    } else { // POLICY_RANDOM
      dest = rep_gpu[rb + first + mul_hi(draw(key, DRAW_REPLICA + j), cnt)];
    }
    let same_node = dest / params.gpus_per_node == src_node;
    let kind = select(select(2u, 1u, same_node), 0u, dest == src);
    atomicAdd(&wg_recv[dest * 3u + kind], 1u);
    sent_intra += select(0u, 1u, kind == 1u);
    sent_inter += select(0u, 1u, kind == 2u);
  }
  return vec2u(sent_intra, sent_inter);
}

fn flush_sent(src: u32, sent: vec2u) {
  if (sent.x != 0u) { atomicAdd(&wg_sent[src * 2u], sent.x); }
  if (sent.y != 0u) { atomicAdd(&wg_sent[src * 2u + 1u], sent.y); }
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let layer = wid.y;
  let tile = wid.x + wid.z * params.tiles_x;
  let E = params.experts;
  let EG = params.experts_per_group;
  for (var i = lid; i < E + 1u; i += WG_SIZE) { wg_cdf[i] = cdf[layer * (E + 1u) + i]; }
  for (var i = lid; i < GPUS * 3u; i += WG_SIZE) { atomicStore(&wg_recv[i], 0u); }
  for (var i = lid; i < GPUS * 2u; i += WG_SIZE) { atomicStore(&wg_sent[i], 0u); }
  workgroupBarrier();
  for (var g = lid; g < params.groups; g += WG_SIZE) {
    wg_group_w[g] = wg_cdf[(g + 1u) * EG] - wg_cdf[g * EG];
  }
  workgroupBarrier();

  var gw: array<u32, MAX_GROUPS>;
  for (var g = 0u; g < GROUPS; g++) { gw[g] = wg_group_w[g]; }
  let layer_key = pcg_hash(params.seed_key + layer * GOLDEN);
  let tile_start = tile * (WG_SIZE * TOKENS_PER_THREAD);
  // Contiguous blocks of tokens per source rank: a thread's tokens rarely change rank, so its
  // sent counts are accumulated and flushed when the rank changes.
  let big = params.tok_rem * (params.tok_base + 1u);
  var cur_src = NONE;
  var sent = vec2u(0u);
  for (var k = 0u; k < TOKENS_PER_THREAD; k++) {
    let t = tile_start + k * WG_SIZE + lid;
    if (t < params.tokens) {
      var src: u32;
      if (t < big) {
        src = t / (params.tok_base + 1u);
      } else {
        src = params.tok_rem + (t - big) / params.tok_base;
      }
      if (src != cur_src) {
        if (cur_src != NONE) { flush_sent(cur_src, sent); }
        cur_src = src;
        sent = vec2u(0u);
      }
      sent += route_token(t, layer, layer_key, src, gw);
    }
  }
  if (cur_src != NONE) { flush_sent(cur_src, sent); }
  workgroupBarrier();

  let base = layer * GPUS * COUNTERS_PER_GPU;
  for (var g = lid; g < GPUS; g += WG_SIZE) {
    let own = atomicLoad(&wg_recv[g * 3u]);
    let intra = atomicLoad(&wg_recv[g * 3u + 1u]);
    let inter = atomicLoad(&wg_recv[g * 3u + 2u]);
    let s_intra = atomicLoad(&wg_sent[g * 2u]);
    let s_inter = atomicLoad(&wg_sent[g * 2u + 1u]);
    let c = base + g * COUNTERS_PER_GPU;
    if (own + intra + inter != 0u) { atomicAdd(&counters[c + RECEIVED], own + intra + inter); }
    if (intra != 0u) { atomicAdd(&counters[c + RECEIVED_INTRA], intra); }
    if (inter != 0u) { atomicAdd(&counters[c + RECEIVED_INTER], inter); }
    if (s_intra != 0u) { atomicAdd(&counters[c + SENT_INTRA], s_intra); }
    if (s_inter != 0u) { atomicAdd(&counters[c + SENT_INTER], s_inter); }
  }
}
