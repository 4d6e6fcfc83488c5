import type { Balancer, PreparedBalancer } from '../balancer.js';
import { type LayerKernel, LayerParallel } from '../layer-parallel.js';
import { deriveLog2phy, type Placement } from '../placement.js';
import { type Shape, slotsPerGpu } from '../shape.js';

/**
 * `bldm-swap`: apportioned replicas, balanced largest-differencing packing, pairwise-swap refinement,
 * placed on the latest window alone (history ignored: last-window placement; `forecast`, the default,
 * feeds it a forecast of the next window). Per layer, independently:
 *
 * 1. Replication (D'Hondt apportionment): every expert starts with one replica; each of the R−E extra
 *    slots goes to the expert with the largest load/count (ties: lowest index). This minimises the
 *    heaviest replica, the item that bounds any packing from below. Only the R−E heaviest experts can
 *    receive an extra slot (a lighter one would need all of them to hold two already), so the greedy
 *    runs on those candidates alone.
 * 2. Packing (BLDM, the Karmarkar–Karp differencing method for parts of equal size): the replicas,
 *    heaviest first, form R/P tuples of P consecutive replicas — each a partial solution with one
 *    replica per GPU. The two partial solutions with the largest spread (heaviest minus lightest part)
 *    are merged by pairing the heaviest part of one with the lightest part of the other, until one is
 *    left. Every GPU gets exactly R/P slots. On the real snapshots this alone reaches ≈ 0.999, where
 *    longest-first packing reaches ≈ 0.993 and snake order ≈ 0.976. Like every global policy it does
 *    not pin expert groups to nodes; on real loads that pinning caps balancedness near 0.8 (EPLB.md).
 * 3. Refinement: swaps of one replica between two GPUs that lower the heavier of the two, first in
 *    matching rounds (i-th heaviest with i-th lightest GPU), then heaviest GPU against its best partner,
 *    until the heaviest GPU is within GOOD_ENOUGH of the mean or no swap helps.
 *
 * Cost per layer: a radix sort of E keys, a heap of R−E candidates, R/P − 1 merges of P parts and a few
 * refinement rounds. All scratch lives in typed arrays allocated once per shape in `prepare`, so a call
 * allocates only its output placement. Layers are split over the machine's cores (LayerParallel): the
 * result is the same on any number of threads.
 */
export const bldmSwapBalancer: Balancer = {
  name: 'bldm-swap',
  summary:
    'Apportioned replicas, largest-differencing packing, pairwise-swap refinement, on the latest window',
  runsOn: 'cpu',
  prepare: async (shape): Promise<PreparedBalancer> => {
    const runner = await LayerParallel.create(
      shape,
      (s) => new BldmSwapLayers(s),
      new URL('./bldm-swap-worker.js', import.meta.url),
    );
    return {
      rebalance: (loads: Float32Array): Placement => {
        const { phy2log, logcnt } = runner.run(loads);
        return deriveLog2phy(shape, phy2log, logcnt);
      },
      dispose: () => runner.dispose(),
    };
  },
};

/** A swap must lower the heavier GPU by more than this fraction of it to count (stops float ping-pong). */
const MIN_GAIN = 1e-9;
/** Refinement stops once the heaviest GPU is within this fraction of the mean (per-layer ≥ 0.999). */
const GOOD_ENOUGH = 1e-3;
/** Matching rounds (heaviest with lightest, second with second, …) before the one-pair rounds. */
const MATCHING_ROUNDS = 4;
/** One-pair refinement rounds per layer are capped at this many per GPU; real loads need far fewer. */
const MAX_ROUNDS_PER_GPU = 4;

/** The algorithm on one thread, for a range of layers (see LayerParallel). */
export class BldmSwapLayers implements LayerKernel {
  private readonly E: number;
  private readonly R: number;
  private readonly P: number;
  private readonly S: number;
  private readonly count: Int32Array;
  // Experts heaviest first (radix sort of their float bit patterns).
  private readonly expertKey: Uint32Array;
  private readonly radix: RadixSorter;
  private readonly keyBits = new Float32Array(1);
  private readonly keyBitsU32 = new Uint32Array(this.keyBits.buffer);
  // Replication heap over the candidates, keyed by load/count (max first, ties lowest index).
  private readonly heapKey: Float64Array;
  private readonly heapId: Int32Array;
  // Replicas heaviest first: expert and weight; split replicas are staged, sorted, then merged in.
  private readonly itemExpert: Int32Array;
  private readonly itemWeight: Float64Array;
  private readonly splitExpert: Int32Array;
  private readonly splitWeight: Float64Array;
  // BLDM: parts (sets of replicas) as linked lists of their replicas; partial solutions as P part ids
  // each with their loads, heaviest first.
  private readonly partHead: Int32Array;
  private readonly partTail: Int32Array;
  private readonly itemNext: Int32Array;
  private readonly solutionParts: Int32Array;
  private readonly solutionLoad: Float64Array;
  private readonly solutionSpread: Float64Array;
  private readonly solutionAlive: Uint8Array;
  private readonly itemGpu: Int32Array;
  private readonly gpuFill: Int32Array;
  // GPUs: load, the weight/expert of each slot (GPU-major, heaviest first), and GPUs ordered by load.
  private readonly gpuLoad: Float64Array;
  private readonly slotWeight: Float64Array;
  private readonly slotExpert: Int32Array;
  private readonly order: Int32Array;
  /** How many of the heaviest experts replicate() considered for extra replicas. */
  private candidates = 0;
  // Result of bestSwap (kept in fields so the hot loop allocates nothing).
  private foundA = -1;
  private foundB = -1;

  constructor(shape: Shape) {
    const { experts: E, replicas: R, gpus: P } = shape;
    this.E = E;
    this.R = R;
    this.P = P;
    this.S = slotsPerGpu(shape);
    this.count = new Int32Array(E);
    this.expertKey = new Uint32Array(E);
    this.radix = new RadixSorter(this.expertKey);
    this.heapKey = new Float64Array(E);
    this.heapId = new Int32Array(E);
    this.itemExpert = new Int32Array(R);
    this.itemWeight = new Float64Array(R);
    this.splitExpert = new Int32Array(R);
    this.splitWeight = new Float64Array(R);
    this.solutionLoad = new Float64Array(R);
    this.partHead = new Int32Array(R);
    this.partTail = new Int32Array(R);
    this.itemNext = new Int32Array(R);
    this.solutionParts = new Int32Array(R);
    this.solutionSpread = new Float64Array(this.S);
    this.solutionAlive = new Uint8Array(this.S);
    this.itemGpu = new Int32Array(R);
    this.gpuFill = new Int32Array(P);
    this.gpuLoad = new Float64Array(P);
    this.slotWeight = new Float64Array(R);
    this.slotExpert = new Int32Array(R);
    this.order = new Int32Array(P);
  }

  run(loads: Float32Array, phy2log: Int32Array, logcnt: Int32Array, from: number, to: number): void {
    const { E, R } = this;
    for (let l = from; l < to; l++) {
      const base = l * E;
      this.sortExperts(loads, base);
      this.replicate(loads, base);
      logcnt.set(this.count, base);
      this.listReplicas(loads, base);
      this.pack();
      this.refine();
      phy2log.set(this.slotExpert, l * R);
    }
  }

  /**
   * Experts heaviest first by the top 24 bits of their float32 load (relative precision 2^-15: exact
   * enough for packing, and replicate() widens its candidate set over equal keys to stay exact).
   */
  private sortExperts(loads: Float32Array, base: number): void {
    const { E, expertKey, keyBits, keyBitsU32 } = this;
    for (let e = 0; e < E; e++) {
      keyBits[0] = loads[base + e]!;
      // Float32 bit patterns of non-negative numbers sort like the numbers; inverted: heaviest first.
      expertKey[e] = ~keyBitsU32[0]! >>> 8;
    }
    this.radix.sort(E);
  }

  /** Step 1: D'Hondt apportionment of the R−E extra slots among the R−E heaviest experts. */
  private replicate(loads: Float32Array, base: number): void {
    const { E, R, heapKey, heapId, count } = this;
    const byLoad = this.radix.order;
    const key = this.expertKey;
    count.fill(1);
    let n = Math.min(R - E, E);
    // Experts whose (truncated) key ties the last candidate's may be just as heavy: include them.
    while (n > 0 && n < E && key[byLoad[n]!] === key[byLoad[n - 1]!]) n++;
    this.candidates = n;
    for (let i = 0; i < n; i++) {
      const e = byLoad[i]!;
      heapKey[i] = loads[base + e]!;
      heapId[i] = e;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(heapKey, heapId, n, i);
    for (let extra = R - E; extra > 0; extra--) {
      const e = heapId[0]!;
      const c = ++count[e]!;
      heapKey[0] = loads[base + e]! / c;
      siftDown(heapKey, heapId, n, 0);
    }
  }

  /**
   * All replicas heaviest first. Experts with one replica are already in order; the replicas of
   * experts with several (few: at most 2(R−E)) are sorted apart and merged in.
   */
  private listReplicas(loads: Float32Array, base: number): void {
    const { E, count, itemExpert, itemWeight, splitExpert, splitWeight } = this;
    const byLoad = this.radix.order;
    let splits = 0;
    for (let i = 0; i < this.candidates; i++) {
      const e = byLoad[i]!;
      const c = count[e]!;
      if (c < 2) continue;
      const w = loads[base + e]! / c;
      for (let k = 0; k < c; k++) {
        let j = splits++;
        while (j > 0 && splitWeight[j - 1]! < w) {
          splitWeight[j] = splitWeight[j - 1]!;
          splitExpert[j] = splitExpert[j - 1]!;
          j--;
        }
        splitWeight[j] = w;
        splitExpert[j] = e;
      }
    }
    let r = 0;
    let s = 0;
    for (let i = 0; i < E; i++) {
      const e = byLoad[i]!;
      if (count[e] !== 1) continue;
      const w = loads[base + e]!;
      while (s < splits && splitWeight[s]! >= w) {
        itemWeight[r] = splitWeight[s]!;
        itemExpert[r++] = splitExpert[s++]!;
      }
      itemWeight[r] = w;
      itemExpert[r++] = e;
    }
    while (s < splits) {
      itemWeight[r] = splitWeight[s]!;
      itemExpert[r++] = splitExpert[s++]!;
    }
  }

  /** Step 2: balanced largest differencing over R/P tuples of P consecutive replicas. */
  private pack(): void {
    const { R, P, S, itemWeight, partHead, partTail, itemNext, solutionParts } = this;
    const { solutionLoad, solutionSpread, solutionAlive } = this;
    for (let i = 0; i < R; i++) {
      partHead[i] = i;
      partTail[i] = i;
      itemNext[i] = -1;
      solutionParts[i] = i; // tuple t: parts t·P … t·P+P−1, already heaviest first
      solutionLoad[i] = itemWeight[i]!;
    }
    for (let t = 0; t < S; t++) {
      solutionAlive[t] = 1;
      solutionSpread[t] = solutionLoad[t * P]! - solutionLoad[t * P + P - 1]!;
    }
    for (let merges = 1; merges < S; merges++) {
      // The two partial solutions with the largest spread (S is small: a scan is cheapest).
      let a = -1;
      let b = -1;
      for (let t = 0; t < S; t++) {
        if (!solutionAlive[t]) continue;
        if (a < 0 || solutionSpread[t]! > solutionSpread[a]!) {
          b = a;
          a = t;
        } else if (b < 0 || solutionSpread[t]! > solutionSpread[b]!) b = t;
      }
      const aBase = a * P;
      const bBase = b * P;
      for (let i = 0; i < P; i++) {
        const x = solutionParts[aBase + i]!;
        const y = solutionParts[bBase + P - 1 - i]!;
        solutionLoad[aBase + i] = solutionLoad[aBase + i]! + solutionLoad[bBase + P - 1 - i]!;
        itemNext[partTail[x]!] = partHead[y]!;
        partTail[x] = partTail[y]!;
      }
      solutionAlive[b] = 0;
      // The final solution needs no order: GPUs take its parts as they are.
      if (merges === S - 1) break;
      sortHeaviestFirst(solutionLoad, solutionParts, aBase, aBase + P);
      solutionSpread[a] = solutionLoad[aBase]! - solutionLoad[aBase + P - 1]!;
    }
    let last = 0;
    while (!solutionAlive[last]) last++;
    // GPU g takes the g-th part. Replicas are numbered heaviest first, so dealing them out in number
    // order fills every GPU's slots heaviest first (what refinement's two-pointer search relies on).
    const { itemExpert, gpuLoad, slotWeight, slotExpert, itemGpu, gpuFill } = this;
    for (let g = 0; g < P; g++) {
      const part = solutionParts[last * P + g]!;
      gpuLoad[g] = solutionLoad[last * P + g]!;
      gpuFill[g] = g * S;
      for (let item = partHead[part]!; item >= 0; item = itemNext[item]!) itemGpu[item] = g;
    }
    for (let i = 0; i < R; i++) {
      const k = gpuFill[itemGpu[i]!]!++;
      slotWeight[k] = itemWeight[i]!;
      slotExpert[k] = itemExpert[i]!;
    }
  }

  /**
   * Step 3: pairwise swaps until the heaviest GPU is within GOOD_ENOUGH of the mean or no swap helps.
   * Matching rounds first pair the i-th heaviest GPU with the i-th lightest, fixing many GPUs per
   * round; then rounds pair the heaviest GPU with its best partner among all lighter ones. Every
   * applied swap lowers the heavier GPU of its pair, so the maximum never rises and the sum of squares
   * falls: the loop ends.
   */
  private refine(): void {
    const { P, gpuLoad, order } = this;
    let total = 0;
    for (let g = 0; g < P; g++) {
      order[g] = g;
      total += gpuLoad[g]!;
    }
    const goal = (total / P) * (1 + GOOD_ENOUGH);
    for (let round = 0; round < MATCHING_ROUNDS; round++) {
      insertionSortByLoad(order, gpuLoad);
      if (gpuLoad[order[P - 1]!]! <= goal) return;
      let swaps = 0;
      for (let i = 0; i < P >> 1; i++) {
        const h = order[P - 1 - i]!;
        if (gpuLoad[h]! <= goal) break;
        const g = order[i]!;
        const top = gpuLoad[h]!;
        if (this.bestSwap(h, g, top, gpuLoad[g]!, top * (1 - MIN_GAIN)) >= 0) {
          this.swapSlots(this.foundA, this.foundB);
          swaps++;
        }
      }
      if (swaps === 0) break;
    }
    const maxRounds = MAX_ROUNDS_PER_GPU * P;
    for (let round = 0; round < maxRounds; round++) {
      insertionSortByLoad(order, gpuLoad);
      const h = order[P - 1]!;
      const top = gpuLoad[h]!;
      if (top <= goal) return;
      let bestMax = top * (1 - MIN_GAIN);
      let bestA = -1;
      let bestB = -1;
      for (let oi = 0; oi < P - 1; oi++) {
        const g = order[oi]!;
        const low = gpuLoad[g]!;
        // No swap with g (or any heavier GPU) can bring the pair below their average.
        if ((top + low) / 2 >= bestMax) break;
        const found = this.bestSwap(h, g, top, low, bestMax);
        if (found >= 0) {
          bestMax = found;
          bestA = this.foundA;
          bestB = this.foundB;
        }
      }
      if (bestA < 0) return;
      this.swapSlots(bestA, bestB);
    }
  }

  /**
   * The swap of a replica on h with a lighter one on g that minimises max(new h, new g), if it beats
   * `bound`: returns that max and sets foundA/foundB, else −1. Slots are sorted heaviest first, so for
   * each replica a on h the ideal partner (weight a − gap/2) is found by one pointer walking down g.
   */
  private bestSwap(h: number, g: number, top: number, low: number, bound: number): number {
    const { S, slotWeight } = this;
    const half = (top - low) / 2;
    let best = -1;
    const gStart = g * S;
    const gEnd = gStart + S;
    const hEnd = h * S + S;
    let b = gStart;
    for (let a = h * S; a < hEnd; a++) {
      const wa = slotWeight[a]!;
      const target = wa - half;
      while (b < gEnd - 1 && slotWeight[b]! > target) b++;
      // Candidates: the first partner at or below the target, and the one just above it.
      for (let c = b > gStart ? b - 1 : b; c <= b; c++) {
        const d = wa - slotWeight[c]!;
        if (d <= 0) continue;
        const hi = top - d > low + d ? top - d : low + d;
        if (hi < bound) {
          bound = hi;
          best = hi;
          this.foundA = a;
          this.foundB = c;
        }
      }
    }
    return best;
  }

  /** Swaps two replicas between GPUs, keeping loads and each GPU's heaviest-first slot order. */
  private swapSlots(a: number, b: number): void {
    const { S, slotWeight, slotExpert, gpuLoad } = this;
    const ga = (a / S) | 0;
    const gb = (b / S) | 0;
    const wa = slotWeight[a]!;
    const wb = slotWeight[b]!;
    const ea = slotExpert[a]!;
    gpuLoad[ga] = gpuLoad[ga]! - wa + wb;
    gpuLoad[gb] = gpuLoad[gb]! - wb + wa;
    slotWeight[a] = wb;
    slotExpert[a] = slotExpert[b]!;
    slotWeight[b] = wa;
    slotExpert[b] = ea;
    resort(slotWeight, slotExpert, a, ga * S, ga * S + S);
    resort(slotWeight, slotExpert, b, gb * S, gb * S + S);
  }
}

/** Max-heap sift-down: larger key first, then lower expert index. */
function siftDown(key: Float64Array, id: Int32Array, n: number, i: number): void {
  const k = key[i]!;
  const v = id[i]!;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    const right = child + 1;
    if (right < n && before(key[right]!, id[right]!, key[child]!, id[child]!)) child = right;
    if (!before(key[child]!, id[child]!, k, v)) break;
    key[i] = key[child]!;
    id[i] = id[child]!;
    i = child;
  }
  key[i] = k;
  id[i] = v;
}

function before(keyA: number, idA: number, keyB: number, idB: number): boolean {
  return keyA > keyB || (keyA === keyB && idA < idB);
}

/** Sorts loads[from, to) heaviest first, carrying ids along (nearly flat after a merge: few moves). */
function sortHeaviestFirst(loads: Float64Array, ids: Int32Array, from: number, to: number): void {
  for (let i = from + 1; i < to; i++) {
    const w = loads[i]!;
    const id = ids[i]!;
    let j = i - 1;
    while (j >= from && loads[j]! < w) {
      loads[j + 1] = loads[j]!;
      ids[j + 1] = ids[j]!;
      j--;
    }
    loads[j + 1] = w;
    ids[j + 1] = id;
  }
}

/** Moves the changed slot i to its place in the heaviest-first run [from, to). */
function resort(weight: Float64Array, expert: Int32Array, i: number, from: number, to: number): void {
  const w = weight[i]!;
  const e = expert[i]!;
  while (i > from && weight[i - 1]! < w) {
    weight[i] = weight[i - 1]!;
    expert[i] = expert[i - 1]!;
    i--;
  }
  while (i < to - 1 && weight[i + 1]! > w) {
    weight[i] = weight[i + 1]!;
    expert[i] = expert[i + 1]!;
    i++;
  }
  weight[i] = w;
  expert[i] = e;
}

function lighter(a: number, b: number, load: Float64Array): boolean {
  return load[a]! < load[b]! || (load[a] === load[b] && a < b);
}

/** GPU order by ascending load; nearly sorted after one swap, so insertion sort is linear. */
function insertionSortByLoad(order: Int32Array, load: Float64Array): void {
  for (let i = 1; i < order.length; i++) {
    const g = order[i]!;
    let j = i - 1;
    while (j >= 0 && lighter(g, order[j]!, load)) {
      order[j + 1] = order[j]!;
      j--;
    }
    order[j + 1] = g;
  }
}

/**
 * Stable LSD radix sort of 24-bit keys, 8 bits a pass, producing the permutation `order`. Much faster than
 * TypedArray#sort for a few hundred keys (no comparator), and passes whose byte is the same for every
 * key are skipped. Stability keeps equal keys in index order.
 */
class RadixSorter {
  readonly order: Int32Array;
  private readonly spare: Int32Array;
  private readonly hist = new Uint32Array(3 * 256);

  constructor(private readonly keys: Uint32Array) {
    this.order = new Int32Array(keys.length);
    this.spare = new Int32Array(keys.length);
  }

  sort(n: number): void {
    const { keys, hist } = this;
    hist.fill(0);
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      hist[k & 255]!++;
      hist[256 + ((k >>> 8) & 255)]!++;
      hist[512 + (k >>> 16)]!++;
    }
    let src = this.order;
    let dst = this.spare;
    for (let i = 0; i < n; i++) src[i] = i;
    for (let pass = 0; pass < 3; pass++) {
      const h = pass * 256;
      const shift = pass * 8;
      if (hist[h + ((keys[0]! >>> shift) & 255)] === n) continue;
      let sum = 0;
      for (let b = 0; b < 256; b++) {
        const c = hist[h + b]!;
        hist[h + b] = sum;
        sum += c;
      }
      for (let i = 0; i < n; i++) {
        const r = src[i]!;
        dst[hist[h + ((keys[r]! >>> shift) & 255)]!++] = r;
      }
      const t = src;
      src = dst;
      dst = t;
    }
    if (src !== this.order) this.order.set(src.subarray(0, n));
  }
}
