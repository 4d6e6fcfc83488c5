// Token-level MoE routing simulator. One workgroup = one tile of tokens of one layer; each invocation
// routes TOKENS_PER_THREAD tokens: draws top-k distinct experts (optionally group-limited) from the
// layer's integer CDF, picks a replica of each by the policy, and counts the routed token-experts per
// GPU in workgroup atomics, flushed once to the global counters [L][P][5]. All integer arithmetic with
// a stateless counter-based RNG, mirrored exactly by src/sim/route-reference.ts and src/sim/route-rng.ts.

override CDF_LEN: u32 = 257u;        // experts + 1
override COUNT_LEN: u32 = 160u;      // gpus × 5 counters
override TOKENS_PER_THREAD: u32 = 8u;
const WG_SIZE: u32 = 256u;
const MAX_GROUPS: u32 = 32u;
const MAX_TOP_K: u32 = 16u;
const DRAW_GROUP: u32 = 0u;
const DRAW_EXPERT: u32 = 16u;
const DRAW_REPLICA: u32 = 32u;
const GOLDEN: u32 = 0x9e3779b9u;

const RECEIVED: u32 = 0u;
const RECEIVED_INTRA: u32 = 1u;
const RECEIVED_INTER: u32 = 2u;
const SENT_INTRA: u32 = 3u;
const SENT_INTER: u32 = 4u;

struct Params {
  tokens: u32,
  top_k: u32,
  groups: u32,            // search groups: the shape's groups when group-limited, else 1
  experts_per_group: u32,
  chosen_groups: u32,     // groups drawn per token when group-limited
  limited: u32,
  experts: u32,
  gpus: u32,
  gpus_per_node: u32,
  replicas: u32,
  policy: u32,            // 0 round-robin, 1 static-local, 2 random
  seed_key: u32,
  tiles_x: u32,           // workgroups along x (tile = x + z · tiles_x)
  tok_base: u32,          // tokens / gpus
  tok_rem: u32,           // tokens % gpus (the first tok_rem ranks get one more)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cdf: array<u32>;        // [L][E+1]
@group(0) @binding(2) var<storage, read> offsets: array<u32>;    // [L][E+1]
@group(0) @binding(3) var<storage, read> rep_gpu: array<u32>;    // [L][R]
@group(0) @binding(4) var<storage, read> static_gpu: array<u32>; // [L][E][P]
@group(0) @binding(5) var<storage, read_write> counters: array<atomic<u32>>; // [L][P][5]

var<workgroup> wg_cdf: array<u32, CDF_LEN>;
var<workgroup> wg_counts: array<atomic<u32>, COUNT_LEN>;

fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
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

fn group_weight(j: u32) -> u32 {
  let eg = params.experts_per_group;
  return wg_cdf[(j + 1u) * eg] - wg_cdf[j * eg];
}

fn count(dest: u32, src: u32) {
  atomicAdd(&wg_counts[dest * 5u + RECEIVED], 1u);
  if (dest != src) {
    if (dest / params.gpus_per_node == src / params.gpus_per_node) {
      atomicAdd(&wg_counts[dest * 5u + RECEIVED_INTRA], 1u);
      atomicAdd(&wg_counts[src * 5u + SENT_INTRA], 1u);
    } else {
      atomicAdd(&wg_counts[dest * 5u + RECEIVED_INTER], 1u);
      atomicAdd(&wg_counts[src * 5u + SENT_INTER], 1u);
    }
  }
}

fn route_token(t: u32, layer: u32, layer_key: u32) {
  let E = params.experts;
  let EG = params.experts_per_group;
  let G = params.groups;
  let K = params.top_k;
  let layer_total = wg_cdf[E];

  // Contiguous blocks of tokens per source rank.
  let big = params.tok_rem * (params.tok_base + 1u);
  var src: u32;
  if (t < big) {
    src = t / (params.tok_base + 1u);
  } else {
    src = params.tok_rem + (t - big) / params.tok_base;
  }
  let pos = t - (src * params.tok_base + min(src, params.tok_rem));
  let key = pcg_hash(pcg_hash(t) ^ layer_key);

  var gsel: array<u32, MAX_GROUPS>;
  var grem_w: array<u32, MAX_GROUPS>;
  var grem_n: array<u32, MAX_GROUPS>;
  var ng = 0u;
  if (params.limited != 0u) {
    var mask = 0u;
    var chosen_w = 0u;
    for (var d = 0u; d < params.chosen_groups; d++) {
      let u = draw(key, DRAW_GROUP + d);
      let remaining = layer_total - chosen_w;
      var pick = 0u;
      if (remaining > 0u) {
        var r = mul_hi(u, remaining);
        for (var j = 0u; j < G; j++) {
          if (((mask >> j) & 1u) != 0u) { continue; }
          let w = group_weight(j);
          if (r < w) { pick = j; break; }
          r -= w;
        }
      } else {
        var r = mul_hi(u, G - d);
        for (var j = 0u; j < G; j++) {
          if (((mask >> j) & 1u) != 0u) { continue; }
          if (r == 0u) { pick = j; break; }
          r -= 1u;
        }
      }
      mask |= 1u << pick;
      chosen_w += group_weight(pick);
    }
    for (var j = 0u; j < G; j++) {
      if (((mask >> j) & 1u) == 0u) { continue; }
      gsel[ng] = j;
      grem_w[ng] = group_weight(j);
      grem_n[ng] = EG;
      ng++;
    }
  } else {
    gsel[0] = 0u;
    grem_w[0] = layer_total;
    grem_n[0] = E;
    ng = 1u;
  }
  var wrem = 0u;
  for (var s = 0u; s < ng; s++) { wrem += grem_w[s]; }
  var nrem = ng * EG;

  var chosen: array<u32, MAX_TOP_K>;
  var nc = 0u;
  for (var j = 0u; j < K; j++) {
    let u = draw(key, DRAW_EXPERT + j);
    var s = 0u;
    var e: u32;
    if (wrem > 0u) {
      var r = mul_hi(u, wrem);
      while (r >= grem_w[s]) { r -= grem_w[s]; s++; }
      let gs = gsel[s] * EG;
      let ge = gs + EG;
      var v = wg_cdf[gs] + r;
      for (var i = 0u; i < nc; i++) {
        let c = chosen[i];
        if (c < gs) { continue; }
        if (c >= ge) { break; }
        if (v >= wg_cdf[c]) { v += wg_cdf[c + 1u] - wg_cdf[c]; }
      }
      var lo = gs;
      var hi = ge;
      while (hi - lo > 1u) {
        let mid = (lo + hi) >> 1u;
        if (wg_cdf[mid] <= v) { lo = mid; } else { hi = mid; }
      }
      e = lo;
    } else {
      var r = mul_hi(u, nrem);
      while (r >= grem_n[s]) { r -= grem_n[s]; s++; }
      let gs = gsel[s] * EG;
      let ge = gs + EG;
      e = gs + r;
      for (var i = 0u; i < nc; i++) {
        let c = chosen[i];
        if (c < gs) { continue; }
        if (c >= ge) { break; }
        if (e >= c) { e++; }
      }
    }
    let w = wg_cdf[e + 1u] - wg_cdf[e];
    grem_w[s] -= w;
    grem_n[s] -= 1u;
    wrem -= w;
    nrem -= 1u;
    var i = nc;
    while (i > 0u && chosen[i - 1u] > e) {
      chosen[i] = chosen[i - 1u];
      i--;
    }
    chosen[i] = e;
    nc++;

    let ob = layer * (E + 1u) + e;
    let first = offsets[ob];
    let cnt = offsets[ob + 1u] - first;
    let rb = layer * params.replicas + first;
    var dest: u32;
    if (params.policy == 0u) {
      dest = rep_gpu[rb + (pos * K + j) % cnt];
    } else if (params.policy == 1u) {
      dest = static_gpu[(layer * E + e) * params.gpus + src];
    } else {
      dest = rep_gpu[rb + mul_hi(draw(key, DRAW_REPLICA + j), cnt)];
    }
    count(dest, src);
  }
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let layer = wid.y;
  let tile = wid.x + wid.z * params.tiles_x;
  let E = params.experts;
  for (var i = lid; i < E + 1u; i += WG_SIZE) { wg_cdf[i] = cdf[layer * (E + 1u) + i]; }
  let n_counts = params.gpus * 5u;
  for (var i = lid; i < n_counts; i += WG_SIZE) { atomicStore(&wg_counts[i], 0u); }
  workgroupBarrier();

  let layer_key = pcg_hash(params.seed_key + layer * GOLDEN);
  let tile_start = tile * (WG_SIZE * TOKENS_PER_THREAD);
  for (var k = 0u; k < TOKENS_PER_THREAD; k++) {
    let t = tile_start + k * WG_SIZE + lid;
    if (t < params.tokens) { route_token(t, layer, layer_key); }
  }
  workgroupBarrier();

  for (var i = lid; i < n_counts; i += WG_SIZE) {
    let v = atomicLoad(&wg_counts[i]);
    if (v != 0u) { atomicAdd(&counters[layer * n_counts + i], v); }
  }
}
