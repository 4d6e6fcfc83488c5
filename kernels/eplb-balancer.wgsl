// EPLB balancer on the GPU: one workgroup per layer. The algorithm, its tie rules and its float32
// arithmetic are those of src/eplb/balancers/gpu-balancer-reference.ts, which must give the same
// phy2log exactly; read that file's comment for the steps. Every choice is a total order on
// (value, index), so splitting a reduction over threads cannot change its result. Only +, −, ×
// and comparisons touch floats (WGSL rounds those correctly; division is only 2.5 ULP, hence the
// host's reciprocal table), and no product feeds a sum in the same expression (no FMA contraction).

// Its declarations (Params, bindings, array-size overrides, workgroup memory, NONE) come from
// src/eplb/balancers/gpu-balancer.contract.ts.

// Replication order: larger value first, then lower index.
fn above(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

// Swap order: smaller value first, then lower index; NONE never wins.
fn below(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v < bv || (v == bv && i < bi));
}

struct Pick {
  v: f32,
  i: u32,
}

// Workgroup reduction of every thread's candidate: the largest value (or, with `smallest`, the
// smallest; NONE never wins), ties to the lowest index. Thread 0 gets the winner; every thread must
// call it (it holds barriers). The order of comparisons is fixed, so the result is the same for any
// workgroup size.
fn pick_best(tid: u32, mine: Pick, smallest: bool) -> Pick {
  red_v[tid] = mine.v;
  red_i[tid] = mine.i;
  workgroupBarrier();
  var bv = mine.v;
  var bi = mine.i;
  if (tid < PARTS) {
    bv = red_v[tid * (WG / PARTS)];
    bi = red_i[tid * (WG / PARTS)];
    for (var k = 1u; k < WG / PARTS; k++) {
      let j = tid * (WG / PARTS) + k;
      if (wins(red_v[j], red_i[j], bv, bi, smallest)) {
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
      if (wins(part_v[k], part_i[k], bv, bi, smallest)) {
        bv = part_v[k];
        bi = part_i[k];
      }
    }
  }
  return Pick(bv, bi);
}

fn wins(v: f32, i: u32, bv: f32, bi: u32, smallest: bool) -> bool {
  if (smallest) {
    return below(v, i, bv, bi);
  }
  return above(v, i, bv, bi);
}

// Heaviest GPU, ties lowest index; every thread computes it from the same data.
fn heaviest() -> u32 {
  var h = 0u;
  for (var g = 1u; g < params.p; g++) {
    if (gload[g] > gload[h]) {
      h = g;
    }
  }
  return h;
}

fn holds(g: u32, x: u32) -> bool {
  return (has[g * params.w + x / 32u] & (1u << (x % 32u))) != 0u;
}

// Recomputes whether GPU g holds expert x from its slots (it may hold two replicas of x).
fn refresh(g: u32, x: u32) {
  var found = 0u;
  for (var k = 0u; k < params.s; k++) {
    if (slot_x[g * params.s + k] == x) {
      found = 1u;
    }
  }
  let bit = 1u << (x % 32u);
  has[g * params.w + x / 32u] = (has[g * params.w + x / 32u] & ~bit) | (found * bit);
}

// Swaps the replicas of slots a (on GPU h) and b (on GPU g): loads, slots and bitsets.
fn swap_slots(a: u32, b: u32, h: u32, g: u32) {
  let wa = slot_w[a];
  let wb = slot_w[b];
  gload[h] = (gload[h] - wa) + wb;
  gload[g] = (gload[g] + wa) - wb;
  slot_w[a] = wb;
  slot_w[b] = wa;
  let xa = slot_x[a];
  let xb = slot_x[b];
  slot_x[a] = xb;
  slot_x[b] = xa;
  refresh(h, xa);
  refresh(h, xb);
  refresh(g, xa);
  refresh(g, xb);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) groups: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let E = params.e;
  let R = params.r;
  let P = params.p;
  let S = params.s;
  let W = params.w;
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
    let best = pick_best(tid, Pick(bv, bi), false);
    if (tid == 0u) {
      bi = best.i;
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
  workgroupBarrier();

  // 4. Matching rounds: the i-th heaviest GPU swaps with the i-th lightest, all P/2 pairs at once. A
  // thread per (pair, ka) searches kb; a thread per pair picks and applies. The pairs are disjoint, so
  // their swaps (and their bitset words) never touch each other. rep_w/ord, free after packing, hold the
  // per-(pair, ka) results. Rounds without a swap change nothing, so all match_rounds run (uniform loop).
  for (var round = 0u; round < params.match_rounds; round++) {
    for (var g = tid; g < P; g += WG) {
      let lg = gload[g];
      var rank = 0u;
      for (var k = 0u; k < P; k++) {
        let lk = gload[k];
        if (lk > lg || (lk == lg && k < g)) {
          rank++;
        }
      }
      perm[rank] = g;
    }
    workgroupBarrier();
    for (var u = tid; u < (P / 2u) * S; u += WG) {
      let i = u / S;
      let ka = u % S;
      let h = perm[i];
      let g = perm[P - 1u - i];
      let top = gload[h];
      let lg = gload[g];
      let wa = slot_w[h * S + ka];
      var bv = top;
      var bi = NONE;
      if (lg < top && !holds(g, slot_x[h * S + ka])) {
        for (var kb = 0u; kb < S; kb++) {
          let t = g * S + kb;
          let wb = slot_w[t];
          if (wa > wb && !holds(h, slot_x[t])) {
            let m = max((top - wa) + wb, (lg + wa) - wb);
            if (m < bv) {
              bv = m;
              bi = kb * S + ka;
            }
          }
        }
      }
      rep_w[u] = bv;
      ord[u] = bi;
    }
    workgroupBarrier();
    for (var i = tid; i < P / 2u; i += WG) {
      var bv = rep_w[i * S];
      var bi = ord[i * S];
      for (var ka = 1u; ka < S; ka++) {
        if (below(rep_w[i * S + ka], ord[i * S + ka], bv, bi)) {
          bv = rep_w[i * S + ka];
          bi = ord[i * S + ka];
        }
      }
      if (bi != NONE) {
        let h = perm[i];
        let g = perm[P - 1u - i];
        swap_slots(h * S + bi % S, g * S + bi / S, h, g);
      }
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    heavy = heaviest();
  }
  workgroupBarrier();

  // 5. Refinement: the best swap between the heaviest GPU and another, while one lowers both below it.
  for (var it = 0u; it < params.max_swaps; it++) {
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
    let best = pick_best(tid, Pick(bv, bi), true);
    if (tid == 0u) {
      bi = best.i;
      if (bi == NONE) {
        done = 1u;
      } else {
        let t = bi / S;
        swap_slots(h * S + bi % S, t, h, t / S);
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
