// EPLB balancer on the GPU: one workgroup per layer. The algorithm, its tie rules and its float32
// arithmetic are those of src/eplb/balancers/gpu-balancer-reference.ts, which must give the same
// phy2log exactly; read that file's comment for the steps. Every choice is a total order on
// (value, index), so splitting a reduction over threads cannot change its result. Only +, −, ×
// and comparisons touch floats (WGSL rounds those correctly; division is only 2.5 ULP, hence the
// host's reciprocal table), and no product feeds a sum in the same expression (no FMA contraction).

override E: u32;          // logical experts
override R: u32;          // physical slots
override P: u32;          // GPUs
override MAX_SWAPS: u32;  // refinement rounds per layer
override S: u32 = R / P;  // slots per GPU
override W: u32 = (E + 31u) / 32u; // words of an expert bitset

override WG: u32 = 256u;   // threads per workgroup; the result does not depend on it
override PARTS: u32 = 16u; // first reduction level: PARTS threads each fold WG/PARTS partial results

@group(0) @binding(0) var<storage, read> loads: array<f32>;      // [L][E]
@group(0) @binding(1) var<storage, read> recip: array<f32>;      // fround(1/c), c = 0 … R−E+1
@group(0) @binding(2) var<storage, read_write> out: array<i32>;  // phy2log [L][R], then logcnt [L][E]

var<workgroup> load: array<f32, E>;
var<workgroup> cnt: array<u32, E>;
var<workgroup> rep_x: array<u32, R>;  // expert of replica j
var<workgroup> rep_w: array<f32, R>;  // its weight load·(1/count)
var<workgroup> ord: array<u32, R>;    // replicas heaviest first
var<workgroup> slot_x: array<u32, R>; // expert in GPU slot g·S+k
var<workgroup> slot_w: array<f32, R>;
var<workgroup> has: array<u32, P * W>; // per GPU, a bit per expert it holds
var<workgroup> heavy: u32;            // the heaviest GPU (ties lowest index)
var<workgroup> gload: array<f32, P>;
var<workgroup> perm: array<u32, P>;   // GPUs in ascending (load, index) order
var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> part_v: array<f32, PARTS>;
var<workgroup> part_i: array<u32, PARTS>;
var<workgroup> done: u32;

const NONE: u32 = 0xffffffffu;

// Replication order: larger value first, then lower index.
fn above(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

// Swap order: smaller value first, then lower index; NONE never wins.
fn below(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v < bv || (v == bv && i < bi));
}

// Heaviest GPU, ties lowest index; every thread computes it from the same data.
fn heaviest() -> u32 {
  var h = 0u;
  for (var g = 1u; g < P; g++) {
    if (gload[g] > gload[h]) {
      h = g;
    }
  }
  return h;
}

fn holds(g: u32, x: u32) -> bool {
  return (has[g * W + x / 32u] & (1u << (x % 32u))) != 0u;
}

// Recomputes whether GPU g holds expert x from its slots (it may hold two replicas of x).
fn refresh(g: u32, x: u32) {
  var found = 0u;
  for (var k = 0u; k < S; k++) {
    if (slot_x[g * S + k] == x) {
      found = 1u;
    }
  }
  let bit = 1u << (x % 32u);
  has[g * W + x / 32u] = (has[g * W + x / 32u] & ~bit) | (found * bit);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let l = wid.x;
  let base = l * E;
  for (var e = tid; e < E; e += WG) {
    load[e] = loads[base + e];
    cnt[e] = 1u;
    rep_x[e] = e;
  }
  for (var g = tid; g < P; g += WG) {
    gload[g] = 0.0;
  }
  if (tid == 0u) {
    done = 0u;
  }
  workgroupBarrier();

  // 1. Replication: R−E rounds of a workgroup argmax of load·(1/count).
  for (var i = 0u; i < R - E; i++) {
    var bv = -1.0;
    var bi = NONE;
    for (var e = tid; e < E; e += WG) {
      let p = load[e] * recip[cnt[e]];
      if (above(p, e, bv, bi)) {
        bv = p;
        bi = e;
      }
    }
    red_v[tid] = bv;
    red_i[tid] = bi;
    workgroupBarrier();
    if (tid < PARTS) {
      bv = red_v[tid * (WG / PARTS)];
      bi = red_i[tid * (WG / PARTS)];
      for (var k = 1u; k < WG / PARTS; k++) {
        let j = tid * (WG / PARTS) + k;
        if (above(red_v[j], red_i[j], bv, bi)) {
          bv = red_v[j];
          bi = red_i[j];
        }
      }
      part_v[tid] = bv;
      part_i[tid] = bi;
    }
    workgroupBarrier();
    if (tid == 0u) {
      for (var k = 1u; k < PARTS; k++) {
        if (above(part_v[k], part_i[k], bv, bi)) {
          bv = part_v[k];
          bi = part_i[k];
        }
      }
      cnt[bi] += 1u;
      rep_x[E + i] = bi;
    }
    workgroupBarrier();
  }

  // 2. Weights, then a rank sort by (weight desc, expert asc, replica asc).
  for (var j = tid; j < R; j += WG) {
    let x = rep_x[j];
    rep_w[j] = load[x] * recip[cnt[x]];
  }
  workgroupBarrier();
  for (var j = tid; j < R; j += WG) {
    let w = rep_w[j];
    let x = rep_x[j];
    var rank = 0u;
    for (var k = 0u; k < R; k++) {
      let wk = rep_w[k];
      let xk = rep_x[k];
      if (wk > w || (wk == w && (xk < x || (xk == x && k < j)))) {
        rank++;
      }
    }
    ord[rank] = j;
  }
  workgroupBarrier();

  // 3. Round-based longest-first packing: round r's replicas, heaviest first, to the GPUs lightest first.
  for (var r = 0u; r < S; r++) {
    for (var g = tid; g < P; g += WG) {
      let lg = gload[g];
      var rank = 0u;
      for (var k = 0u; k < P; k++) {
        let lk = gload[k];
        if (lk < lg || (lk == lg && k < g)) {
          rank++;
        }
      }
      perm[rank] = g;
    }
    workgroupBarrier();
    for (var q = tid; q < P; q += WG) {
      let j = ord[r * P + q];
      let g = perm[q];
      let w = rep_w[j];
      slot_x[g * S + r] = rep_x[j];
      slot_w[g * S + r] = w;
      gload[g] = gload[g] + w;
    }
    workgroupBarrier();
  }

  // Who holds what: bit x of has[g·W + x/32] is set while GPU g holds a replica of expert x.
  for (var g = tid; g < P; g += WG) {
    for (var k = 0u; k < W; k++) {
      has[g * W + k] = 0u;
    }
    for (var k = 0u; k < S; k++) {
      let x = slot_x[g * S + k];
      has[g * W + x / 32u] |= 1u << (x % 32u);
    }
  }
  if (tid == 0u) {
    heavy = heaviest();
  }
  workgroupBarrier();

  // 4. Refinement: the best swap between the heaviest GPU and another, while one lowers both below it.
  for (var it = 0u; it < MAX_SWAPS; it++) {
    let h = heavy;
    let top = gload[h];
    var bv = top;
    var bi = NONE;
    // Thread per (g, ka): h's slot ka against every slot kb of g; candidate c = (g·S+kb)·S+ka.
    for (var i = tid; i < P * S; i += WG) {
      let g = i / S;
      let ka = i % S;
      let wa = slot_w[h * S + ka];
      let lg = gload[g];
      if (g == h || !(lg < top) || holds(g, slot_x[h * S + ka])) {
        continue;
      }
      for (var kb = 0u; kb < S; kb++) {
        let t = g * S + kb;
        let wb = slot_w[t];
        if (wa > wb && !holds(h, slot_x[t])) {
          let nh = (top - wa) + wb;
          let ng = (lg + wa) - wb;
          let m = max(nh, ng);
          let c = t * S + ka;
          if (m < top && (m < bv || (m == bv && c < bi))) {
            bv = m;
            bi = c;
          }
        }
      }
    }
    red_v[tid] = bv;
    red_i[tid] = bi;
    workgroupBarrier();
    if (tid < PARTS) {
      bv = red_v[tid * (WG / PARTS)];
      bi = red_i[tid * (WG / PARTS)];
      for (var k = 1u; k < WG / PARTS; k++) {
        let j = tid * (WG / PARTS) + k;
        if (below(red_v[j], red_i[j], bv, bi)) {
          bv = red_v[j];
          bi = red_i[j];
        }
      }
      part_v[tid] = bv;
      part_i[tid] = bi;
    }
    workgroupBarrier();
    if (tid == 0u) {
      for (var k = 1u; k < PARTS; k++) {
        if (below(part_v[k], part_i[k], bv, bi)) {
          bv = part_v[k];
          bi = part_i[k];
        }
      }
      if (bi == NONE) {
        done = 1u;
      } else {
        let a = h * S + bi % S;
        let t = bi / S;
        let g = t / S;
        let wa = slot_w[a];
        let wb = slot_w[t];
        gload[h] = (top - wa) + wb;
        gload[g] = (gload[g] + wa) - wb;
        slot_w[a] = wb;
        slot_w[t] = wa;
        let xa = slot_x[a];
        let xb = slot_x[t];
        slot_x[a] = xb;
        slot_x[t] = xa;
        refresh(h, xa);
        refresh(h, xb);
        refresh(g, xa);
        refresh(g, xb);
        heavy = heaviest();
      }
    }
    if (workgroupUniformLoad(&done) != 0u) {
      break;
    }
  }

  for (var i = tid; i < R; i += WG) {
    out[l * R + i] = i32(slot_x[i]);
  }
  let counts = groups.x * R;
  for (var e = tid; e < E; e += WG) {
    out[counts + base + e] = i32(cnt[e]);
  }
}
