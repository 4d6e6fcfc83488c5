import { type Shape, slotsPerGpu } from './shape.js';

/** A swap must lower the objective by more than this fraction of it to count (stops float ping-pong). */
const MIN_GAIN = 1e-9;
/** Swap rounds per layer are capped at this many per GPU. */
const MAX_ROUNDS_PER_GPU = 2;

/**
 * Robust refinement of one layer's placement: pairwise swaps of replicas between GPUs that lower the
 * SUM over scenarios of the heaviest GPU's load — a sample-average estimate of the expected maximum
 * GPU load when the next window is uncertain. Scenarios are plausible next windows (the forecast and
 * the forecast moved by each past window's deviation); a placement that is balanced on all of them
 * spreads the experts whose load moves most, instead of betting on the forecast alone.
 *
 * Replica counts are kept (they were chosen on the forecast); only which GPU holds which replica
 * changes. Every applied swap lowers the objective, so the loop ends. Only GPUs that are the heaviest
 * in some scenario can lower the objective by giving a replica away, so candidate swaps start there:
 * cost per round ≤ J heavy GPUs × R/P slots × R slots × J scenarios.
 */
export class ScenarioRefiner {
  private readonly E: number;
  private readonly R: number;
  private readonly P: number;
  private readonly S: number;
  /** slotLoad[j·R + s]: scenario j's load on slot s. */
  private slotLoad: Float64Array;
  /** gpuLoad[j·P + g]. */
  private gpuLoad: Float64Array;
  private readonly top1 = { value: new Float64Array(0), at: new Int32Array(0) };
  private top2Value: Float64Array = new Float64Array(0);
  private top2At: Int32Array = new Int32Array(0);
  private top3Value: Float64Array = new Float64Array(0);
  private readonly heavy: Uint8Array;
  private rest = new Float64Array(0);
  private weight_ = new Float64Array(0);
  private loadP = new Float64Array(0);
  private loadQ = new Float64Array(0);
  private suffix = new Float64Array(0);
  private readonly pairBound: Float64Array;
  private readonly pairP: Int32Array;
  private readonly pairQ: Int32Array;

  /**
   * Weight of scenario 0 (the forecast) against the others' total: 0 = a plain sample average; larger
   * keeps the placement closer to the one balanced on the forecast (fewer swaps fitted to the few
   * sampled errors).
   */
  forecastWeight = 0;
  /** Swap rounds per layer are capped at this many per GPU. */
  roundsPerGpu = MAX_ROUNDS_PER_GPU;

  constructor(shape: Shape) {
    this.E = shape.experts;
    this.R = shape.replicas;
    this.P = shape.gpus;
    this.S = slotsPerGpu(shape);
    this.slotLoad = new Float64Array(0);
    this.gpuLoad = new Float64Array(0);
    this.heavy = new Uint8Array(this.P);
    this.pairBound = new Float64Array(this.P * this.P);
    this.pairP = new Int32Array(this.P * this.P);
    this.pairQ = new Int32Array(this.P * this.P);
  }

  private weight(j: number, J: number): number {
    return j === 0 && J > 1 && this.forecastWeight > 0 ? this.forecastWeight * (J - 1) : 1;
  }

  /** Scenario j's heaviest GPU load among every GPU but p and q. */
  private restMax(j: number, p: number, q: number): number {
    const a1 = this.top1.at[j]!;
    if (a1 !== p && a1 !== q) return this.top1.value[j]!;
    const a2 = this.top2At[j]!;
    return a2 !== p && a2 !== q ? this.top2Value[j]! : this.top3Value[j]!;
  }

  private ensure(J: number): void {
    if (this.top2Value.length >= J) return;
    this.slotLoad = new Float64Array(J * this.R);
    this.gpuLoad = new Float64Array(J * this.P);
    this.top1.value = new Float64Array(J);
    this.top1.at = new Int32Array(J);
    this.top2Value = new Float64Array(J);
    this.top2At = new Int32Array(J);
    this.top3Value = new Float64Array(J);
    this.rest = new Float64Array(J);
    this.weight_ = new Float64Array(J);
    this.loadP = new Float64Array(J);
    this.loadQ = new Float64Array(J);
    this.suffix = new Float64Array(J + 1);
  }

  /**
   * Refines `phy2log` (one layer's R slots, GPU-major) in place. `logcnt`: the layer's E replica
   * counts; `scenarios`: J rows of E expert loads. Deterministic (ties keep the first swap found).
   */
  refine(phy2log: Int32Array, logcnt: Int32Array, scenarios: Float64Array, J: number): void {
    const { E, R, P, S } = this;
    if (J < 1 || P < 2) return;
    this.ensure(J);
    const { slotLoad, gpuLoad, heavy, pairBound, pairP, pairQ } = this;
    const top1Value = this.top1.value;
    const top1At = this.top1.at;
    const { top2Value, top2At, top3Value } = this;
    gpuLoad.fill(0, 0, J * P);
    for (let j = 0; j < J; j++) {
      for (let s = 0; s < R; s++) {
        const e = phy2log[s]!;
        const w = scenarios[j * E + e]! / logcnt[e]!;
        slotLoad[j * R + s] = w;
        gpuLoad[j * P + ((s / S) | 0)]! += w;
      }
    }
    const maxRounds = this.roundsPerGpu * P;
    for (let round = 0; round < maxRounds; round++) {
      // The three heaviest GPUs per scenario: the max of every GPU but p and q is among them.
      let objective = 0;
      heavy.fill(0);
      for (let j = 0; j < J; j++) {
        let v1 = -1;
        let a1 = -1;
        let v2 = -1;
        let a2 = -1;
        let v3 = -1;
        for (let g = 0; g < P; g++) {
          const v = gpuLoad[j * P + g]!;
          if (v > v1) {
            v3 = v2;
            v2 = v1;
            a2 = a1;
            v1 = v;
            a1 = g;
          } else if (v > v2) {
            v3 = v2;
            v2 = v;
            a2 = g;
          } else if (v > v3) v3 = v;
        }
        top1Value[j] = v1;
        top1At[j] = a1;
        top2Value[j] = v2;
        top2At[j] = a2;
        top3Value[j] = v3;
        heavy[a1] = 1;
        objective += this.weight(j, J) * v1;
      }
      if (!(objective > 0)) return;
      let bestDelta = -MIN_GAIN * objective;
      let bestA = -1;
      let bestB = -1;
      // GPU pairs (p heavy somewhere, q any other), most promising first by a lower bound on the
      // change: after any swap between p and q, scenario j's max is at least the max of the other
      // GPUs and at least the pair's average. Pairs whose bound cannot beat the best swap are skipped.
      let pairs = 0;
      for (let p = 0; p < P; p++) {
        if (!heavy[p]) continue;
        for (let q = 0; q < P; q++) {
          if (q === p || (heavy[q] && q < p)) continue;
          let bound = 0;
          for (let j = 0; j < J; j++) {
            const rest = this.restMax(j, p, q);
            const avg = (gpuLoad[j * P + p]! + gpuLoad[j * P + q]!) / 2;
            bound += this.weight(j, J) * ((rest > avg ? rest : avg) - top1Value[j]!);
          }
          if (bound >= bestDelta) continue;
          pairBound[pairs] = bound;
          pairP[pairs] = p;
          pairQ[pairs] = q;
          pairs++;
        }
      }
      for (let k = 0; k < pairs; k++) {
        // Selection of the next most promising pair: usually the first one or two improve, so this
        // beats sorting all of them.
        let m = k;
        for (let i = k + 1; i < pairs; i++) if (pairBound[i]! < pairBound[m]!) m = i;
        swapPairs(pairBound, pairP, pairQ, k, m);
        if (pairBound[k]! >= bestDelta) break;
        const p = pairP[k]!;
        const q = pairQ[k]!;
        // Per scenario, what does not depend on the two slots: the other GPUs' max, the weight, the
        // pair's loads; and suffix[j], a lower bound on the change from scenarios j… (each scenario's
        // max after the swap is at least max(rest, pair average)), so a candidate stops early once it
        // cannot beat the best.
        const { rest, loadP, loadQ, suffix } = this;
        const weight = this.weight_;
        suffix[J] = 0;
        for (let j = J - 1; j >= 0; j--) {
          rest[j] = this.restMax(j, p, q);
          weight[j] = this.weight(j, J);
          loadP[j] = gpuLoad[j * P + p]!;
          loadQ[j] = gpuLoad[j * P + q]!;
          const avg = (loadP[j]! + loadQ[j]!) / 2;
          suffix[j] = suffix[j + 1]! + weight[j]! * ((rest[j]! > avg ? rest[j]! : avg) - top1Value[j]!);
        }
        for (let a = p * S; a < p * S + S; a++) {
          const ea = phy2log[a]!;
          for (let b = q * S; b < q * S + S; b++) {
            if (phy2log[b] === ea) continue;
            let delta = 0;
            let j = 0;
            for (; j < J; j++) {
              const d = slotLoad[j * R + a]! - slotLoad[j * R + b]!;
              const np = loadP[j]! - d;
              const nq = loadQ[j]! + d;
              const r = rest[j]!;
              let m = r > np ? r : np;
              if (nq > m) m = nq;
              delta += weight[j]! * (m - top1Value[j]!);
              if (delta + suffix[j + 1]! >= bestDelta) break;
            }
            if (j === J && delta < bestDelta) {
              bestDelta = delta;
              bestA = a;
              bestB = b;
            }
          }
        }
        // The most promising pair that improves at all is taken (best swap within it): scanning every
        // pair per round costs P× more and, measured, gains nothing.
        if (bestA >= 0) break;
      }
      if (bestA < 0) return;
      const p = (bestA / S) | 0;
      const q = (bestB / S) | 0;
      for (let j = 0; j < J; j++) {
        const wa = slotLoad[j * R + bestA]!;
        const wb = slotLoad[j * R + bestB]!;
        gpuLoad[j * P + p] = gpuLoad[j * P + p]! - wa + wb;
        gpuLoad[j * P + q] = gpuLoad[j * P + q]! - wb + wa;
        slotLoad[j * R + bestA] = wb;
        slotLoad[j * R + bestB] = wa;
      }
      const ea = phy2log[bestA]!;
      phy2log[bestA] = phy2log[bestB]!;
      phy2log[bestB] = ea;
    }
  }
}

function swapPairs(bound: Float64Array, p: Int32Array, q: Int32Array, i: number, j: number): void {
  if (i === j) return;
  const b = bound[i]!;
  bound[i] = bound[j]!;
  bound[j] = b;
  const pi = p[i]!;
  p[i] = p[j]!;
  p[j] = pi;
  const qi = q[i]!;
  q[i] = q[j]!;
  q[j] = qi;
}
