import { check } from '../../util/errors.js';
import type { Balancer, PreparedBalancer } from '../balancer.js';
import type { Placement } from '../placement.js';
import { type Shape, validateShape } from '../shape.js';

/**
 * DeepSeek's eplb.py (github.com/deepseek-ai/EPLB), ported with its exact semantics:
 * - float32 throughout, as the original runs on `weight.float()`: group sums, load/count divisions and
 *   the packing's running pack weights are rounded to float32 at every step (Math.fround);
 * - balanced packing: items heaviest first, each into the lightest pack that is not full, ties to the
 *   lowest pack index (Python's min over packs in increasing order);
 * - replication: each extra slot to the expert with the largest load/count, ties to the lowest index
 *   (torch.max returns the first maximum); the replica's rank is the expert's old count;
 * - hierarchical policy when groups % nodes == 0, otherwise the same with one group and one node;
 * - log2phy[l][e][rank] = the slot holding replica `rank` of e, X = max count over all layers.
 *
 * Two choices where torch itself is not deterministic across machines, fixed here:
 * - torch's unstable sort may order equal weights either way; we put the lower index first;
 * - torch's float32 sum order depends on the CPU's vector width; we sum each group left to right
 *   (the same result whenever group sums stay below 2^24 for integer loads).
 */
export const deepseekBalancer: Balancer = {
  name: 'deepseek',
  summary: 'DeepSeek eplb.py, exact port (hierarchical when groups % nodes == 0, else global)',
  runsOn: 'cpu',
  prepare: (shape) => new DeepseekEplb(shape),
};

/** One-shot convenience: prepares for the shape and rebalances once. */
export function rebalanceDeepseek(shape: Shape, loads: Float32Array): Placement {
  return new DeepseekEplb(shape).rebalance(loads);
}

/** Sort keys pack (float32 bits, index) into one exactly representable float64: n must stay below 2^20. */
const INDEX_BITS = 2 ** 20;

/**
 * `balanced_packing` of eplb.py on one row: n items into m packs of exactly n/m items each.
 * Owns its scratch, sized once for the largest row it will see.
 */
class BalancedPacker {
  private readonly keys: Float64Array;
  private readonly packWeight: Float64Array;
  private readonly packItems: Int32Array;

  constructor(maxItems: number, maxPacks: number) {
    check(maxItems < INDEX_BITS, `deepseek balancer: at most ${INDEX_BITS - 1} items per packing row`);
    this.keys = new Float64Array(maxItems);
    this.packWeight = new Float64Array(maxPacks);
    this.packItems = new Int32Array(maxPacks);
  }

  /**
   * weight/bits: the same float32 row seen as values and as raw bits (for an exact sort key).
   * Writes packIndex[i] and rankInPack[i] for i < n.
   */
  pack(
    weight: Float32Array,
    bits: Uint32Array,
    n: number,
    m: number,
    packIndex: Int32Array,
    rankInPack: Int32Array,
  ): void {
    const perPack = n / m;
    if (perPack === 1) {
      for (let i = 0; i < n; i++) {
        packIndex[i] = i;
        rankInPack[i] = 0;
      }
      return;
    }
    // Non-negative float32 values order like their bit patterns; −0 counts as +0 (they compare equal).
    // Descending weight, then ascending index: key = bits·2^20 + (2^20 − 1 − i), sorted ascending, read backwards.
    const keys = this.keys;
    for (let i = 0; i < n; i++) {
      const b = bits[i]! === 0x80000000 ? 0 : bits[i]!;
      keys[i] = b * INDEX_BITS + (INDEX_BITS - 1 - i);
    }
    const sorted = keys.subarray(0, n).sort();
    const packWeight = this.packWeight;
    const packItems = this.packItems;
    packWeight.fill(0, 0, m);
    packItems.fill(0, 0, m);
    for (let k = n - 1; k >= 0; k--) {
      const key = sorted[k]!;
      const item = INDEX_BITS - 1 - (key - Math.floor(key / INDEX_BITS) * INDEX_BITS);
      let best = -1;
      for (let p = 0; p < m; p++) {
        if (packItems[p]! < perPack && (best < 0 || packWeight[p]! < packWeight[best]!)) best = p;
      }
      packIndex[item] = best;
      rankInPack[item] = packItems[best]!;
      packWeight[best] = Math.fround(packWeight[best]! + weight[item]!);
      packItems[best]!++;
    }
  }
}

/** The prepared balancer: every scratch array is allocated once per shape. */
class DeepseekEplb implements PreparedBalancer {
  private readonly shape: Shape;
  /** Effective groups and nodes: (1, 1) under the global policy. */
  private readonly groups: number;
  private readonly nodes: number;
  private readonly groupSize: number;
  private readonly expertsPerNode: number;
  private readonly slotsPerNode: number;
  private readonly gpusPerNode: number;
  private readonly slotsPerGpu: number;
  private readonly packer: BalancedPacker;

  private readonly groupWeight: Float32Array;
  private readonly groupBits: Uint32Array;
  private readonly groupPack: Int32Array;
  private readonly groupRank: Int32Array;
  private readonly log2mlog: Int32Array;
  private readonly mlog2log: Int32Array;
  private readonly mlogWeight: Float32Array;
  private readonly mlogQuotient: Float32Array;
  private readonly mlogCount: Int32Array;
  private readonly phy2mlog: Int32Array;
  private readonly phyRank: Int32Array;
  private readonly phyWeight: Float32Array;
  private readonly phyBits: Uint32Array;
  private readonly phyPack: Int32Array;
  private readonly phyRankInPack: Int32Array;
  private readonly pphy2phy: Int32Array;
  /** Replica rank of every slot [L·R], internal: only used to build log2phy. */
  private readonly slotRank: Int32Array;

  constructor(shape: Shape) {
    validateShape(shape);
    this.shape = { ...shape };
    const { experts: E, replicas: R, groups: G, nodes: N, gpus: P } = shape;
    const hierarchical = G % N === 0;
    this.groups = hierarchical ? G : 1;
    this.nodes = hierarchical ? N : 1;
    this.groupSize = E / this.groups;
    this.expertsPerNode = E / this.nodes;
    this.slotsPerNode = R / this.nodes;
    this.gpusPerNode = P / this.nodes;
    this.slotsPerGpu = R / P;
    this.packer = new BalancedPacker(Math.max(this.groups, this.slotsPerNode), Math.max(this.nodes, P));

    this.groupWeight = new Float32Array(this.groups);
    this.groupBits = new Uint32Array(this.groupWeight.buffer);
    this.groupPack = new Int32Array(this.groups);
    this.groupRank = new Int32Array(this.groups);
    this.log2mlog = new Int32Array(E);
    this.mlog2log = new Int32Array(E);
    this.mlogWeight = new Float32Array(this.expertsPerNode);
    this.mlogQuotient = new Float32Array(this.expertsPerNode);
    this.mlogCount = new Int32Array(this.expertsPerNode);
    this.phy2mlog = new Int32Array(this.slotsPerNode);
    this.phyRank = new Int32Array(this.slotsPerNode);
    this.phyWeight = new Float32Array(this.slotsPerNode);
    this.phyBits = new Uint32Array(this.phyWeight.buffer);
    this.phyPack = new Int32Array(this.slotsPerNode);
    this.phyRankInPack = new Int32Array(this.slotsPerNode);
    this.pphy2phy = new Int32Array(this.slotsPerNode);
    this.slotRank = new Int32Array(shape.layers * R);
  }

  rebalance(loads: Float32Array): Placement {
    const { layers: L, experts: E, replicas: R } = this.shape;
    check(
      loads.length === L * E,
      `deepseek balancer: loads must hold ${L}×${E} = ${L * E} values, got ${loads.length}`,
    );
    const phy2log = new Int32Array(L * R);
    const phyrank = this.slotRank;
    const logcnt = new Int32Array(L * E);
    for (let l = 0; l < L; l++) this.rebalanceLayer(loads, l, phy2log, phyrank, logcnt);

    // log2phy exactly as the original scatters it: entry [l][e][rank] = the slot of that replica.
    let X = 0;
    for (let i = 0; i < logcnt.length; i++) if (logcnt[i]! > X) X = logcnt[i]!;
    const log2phy = new Int32Array(L * E * X).fill(-1);
    for (let l = 0; l < L; l++) {
      for (let s = 0; s < R; s++) {
        log2phy[(l * E + phy2log[l * R + s]!) * X + phyrank[l * R + s]!] = s;
      }
    }
    return { shape: this.shape, phy2log, logcnt, log2phy, maxReplicas: X };
  }

  /** rebalance_experts_hierarchical for one layer (layers are independent in the original too). */
  private rebalanceLayer(
    loads: Float32Array,
    l: number,
    phy2log: Int32Array,
    phyrankOut: Int32Array,
    logcnt: Int32Array,
  ): void {
    const E = this.shape.experts;
    const R = this.shape.replicas;
    const G = this.groups;
    const N = this.nodes;
    const gs = this.groupSize;
    const En = this.expertsPerNode;
    const Rn = this.slotsPerNode;
    const S = this.slotsPerGpu;
    const row = l * E;

    // Step 1: pack groups onto nodes by their float32 group sums.
    for (let g = 0; g < G; g++) {
      let sum = 0;
      for (let k = 0; k < gs; k++) sum = Math.fround(sum + loads[row + g * gs + k]!);
      this.groupWeight[g] = sum;
    }
    this.packer.pack(this.groupWeight, this.groupBits, G, N, this.groupPack, this.groupRank);
    const groupsPerNode = G / N;
    for (let g = 0; g < G; g++) {
      const base = (this.groupPack[g]! * groupsPerNode + this.groupRank[g]!) * gs;
      for (let k = 0; k < gs; k++) {
        this.log2mlog[g * gs + k] = base + k;
        this.mlog2log[base + k] = g * gs + k;
      }
    }

    for (let n = 0; n < N; n++) {
      // Step 2: replicate the node's experts (in mlog order) into its slots.
      const w = this.mlogWeight;
      for (let j = 0; j < En; j++) w[j] = loads[row + this.mlog2log[n * En + j]!]!;
      this.replicate(En, Rn);

      // Step 3: pack the node's replicas (weight = load/count) onto its GPUs.
      for (let p = 0; p < Rn; p++) {
        const m = this.phy2mlog[p]!;
        this.phyWeight[p] = Math.fround(w[m]! / this.mlogCount[m]!);
      }
      this.packer.pack(this.phyWeight, this.phyBits, Rn, this.gpusPerNode, this.phyPack, this.phyRankInPack);
      for (let p = 0; p < Rn; p++) this.pphy2phy[this.phyPack[p]! * S + this.phyRankInPack[p]!] = p;

      // Step 4: back to global slots and logical ids.
      for (let q = 0; q < Rn; q++) {
        const p = this.pphy2phy[q]!;
        const s = l * R + n * Rn + q;
        phy2log[s] = this.mlog2log[n * En + this.phy2mlog[p]!]!;
        phyrankOut[s] = this.phyRank[p]!;
      }
      for (let j = 0; j < En; j++) logcnt[row + this.mlog2log[n * En + j]!] = this.mlogCount[j]!;
    }
  }

  /** replicate_experts on the node row in mlogWeight: n experts into total slots. */
  private replicate(n: number, total: number): void {
    const w = this.mlogWeight;
    const q = this.mlogQuotient;
    const cnt = this.mlogCount;
    for (let j = 0; j < n; j++) {
      this.phy2mlog[j] = j;
      this.phyRank[j] = 0;
      cnt[j] = 1;
      q[j] = w[j]!;
    }
    for (let i = n; i < total; i++) {
      let best = 0;
      for (let j = 1; j < n; j++) if (q[j]! > q[best]!) best = j;
      this.phy2mlog[i] = best;
      this.phyRank[i] = cnt[best]!;
      cnt[best]!++;
      q[best] = Math.fround(w[best]! / cnt[best]!);
    }
  }
}
