// Replica counts per expert, one workgroup per layer: start with one replica each, then give every
// redundant slot to the expert with the largest load per replica (ties: lowest expert index).
// Dispatched by balancer.ts through ctx.dispatch, which binds by these variable names and packs
// `params` from a record with the same field names: the whole file may change with balancer.ts.

// EVOLVE-BLOCK-START
// The whole deployment: layers L, experts E, replicas R (slots per layer), gpus P (GPU g owns slots
// g*R/P ... (g+1)*R/P-1), nodes N (P/N consecutive GPUs each), groups G (E/G consecutive experts each).
struct Params {
  layers: u32,
  experts: u32,
  replicas: u32,
  gpus: u32,
  nodes: u32,
  groups: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> loads: array<f32>;
@group(0) @binding(2) var<storage, read_write> logcnt: array<u32>;

const MAX_EXPERTS: u32 = 1024u;
const WG: u32 = 64u;

var<workgroup> cnt: array<u32, MAX_EXPERTS>;
var<workgroup> best_val: array<f32, WG>;
var<workgroup> best_idx: array<u32, WG>;

@compute @workgroup_size(64)
fn replicate(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let l = wg.x;
  let E = params.experts;
  let t = lid.x;
  for (var e = t; e < E; e += WG) {
    cnt[e] = 1u;
  }
  workgroupBarrier();
  let extra = params.replicas - E;
  for (var r = 0u; r < extra; r++) {
    var bv = -1.0;
    var bi = 0xffffffffu;
    for (var e = t; e < E; e += WG) {
      let v = loads[l * E + e] / f32(cnt[e]);
      if (v > bv) {
        bv = v;
        bi = e;
      }
    }
    best_val[t] = bv;
    best_idx[t] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (t < s) {
        let ov = best_val[t + s];
        let oi = best_idx[t + s];
        if (ov > best_val[t] || (ov == best_val[t] && oi < best_idx[t])) {
          best_val[t] = ov;
          best_idx[t] = oi;
        }
      }
      workgroupBarrier();
    }
    if (t == 0u) {
      cnt[best_idx[0]] += 1u;
    }
    workgroupBarrier();
  }
  for (var e = t; e < E; e += WG) {
    logcnt[l * E + e] = cnt[e];
  }
}
// EVOLVE-BLOCK-END
