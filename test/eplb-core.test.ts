import { describe, expect, it } from 'vitest';
import { adrsScore, balanceMetrics } from '../src/eplb/metrics.js';
import {
  countReplicas,
  deriveLog2phy,
  type Placement,
  placementFromPhy2log,
  placementProblem,
  placementToJson,
  validatePlacement,
} from '../src/eplb/placement.js';
import type { Shape } from '../src/eplb/shape.js';
import { UserError } from '../src/util/errors.js';

/**
 * A hand-checked deployment: 4 experts, 8 slots on 4 GPUs (2 slots each), 2 nodes (GPUs 0–1 and 2–3).
 * Layer 0 phy2log [0,1 | 2,3 | 0,1 | 2,0]: counts e0 3 (slots 0,4,7), e1 2 (1,5), e2 2 (2,6), e3 1 (3).
 * Layer 1 phy2log [3,2 | 1,0 | 3,3 | 0,0]: counts e0 3 (3,6,7), e1 1 (2), e2 1 (1), e3 3 (0,4,5).
 */
const shape: Shape = { layers: 2, experts: 4, replicas: 8, groups: 2, nodes: 2, gpus: 4 };
const PHY2LOG = [0, 1, 2, 3, 0, 1, 2, 0, 3, 2, 1, 0, 3, 3, 0, 0];
const LOADS = Float32Array.from([30, 20, 10, 5, 6, 4, 8, 12]);

const valid = (): Placement => placementFromPhy2log(shape, Int32Array.from(PHY2LOG));
/** A copy of the valid placement with some fields replaced. */
const broken = (changes: Partial<Placement>): Placement => {
  const p = valid();
  return {
    ...p,
    phy2log: p.phy2log.slice(),
    logcnt: p.logcnt.slice(),
    log2phy: p.log2phy.slice(),
    ...changes,
  };
};
/** Index of log2phy[l][e][k] for the valid placement (X = 3). */
const at = (l: number, e: number, k: number) => (l * 4 + e) * 3 + k;

describe('deriveLog2phy / placementFromPhy2log', () => {
  it('counts replicas and lists each expert’s slots in increasing order, padded with −1', () => {
    const p = valid();
    expect(Array.from(p.logcnt)).toEqual([3, 2, 2, 1, 3, 1, 1, 3]);
    expect(p.maxReplicas).toBe(3);
    expect(placementToJson(p).log2phy).toEqual([
      [
        [0, 4, 7],
        [1, 5, -1],
        [2, 6, -1],
        [3, -1, -1],
      ],
      [
        [3, 6, 7],
        [2, -1, -1],
        [1, -1, -1],
        [0, 4, 5],
      ],
    ]);
    expect(placementProblem(p)).toBeNull();
  });

  it('uses X = 1 when every expert has one replica', () => {
    const s: Shape = { ...shape, layers: 1, replicas: 4 };
    const p = deriveLog2phy(s, Int32Array.from([2, 0, 3, 1]), Int32Array.from([1, 1, 1, 1]));
    expect(p.maxReplicas).toBe(1);
    expect(Array.from(p.log2phy)).toEqual([1, 3, 0, 2]);
  });

  it('countReplicas ignores out-of-range ids (the validator reports them)', () => {
    const s: Shape = { ...shape, layers: 1, replicas: 4 };
    expect(Array.from(countReplicas(s, Int32Array.from([0, 0, 9, -1])))).toEqual([2, 0, 0, 0]);
  });
});

describe('placement validator', () => {
  it('accepts log2phy in any slot order (DeepSeek lists replicas by rank, not by slot)', () => {
    const p = broken({});
    p.log2phy.set([7, 0, 4], at(0, 0, 0));
    expect(placementProblem(p)).toBeNull();
  });

  const cases: [string, () => Placement, RegExp][] = [
    [
      'phy2log of the wrong length',
      () => broken({ phy2log: new Int32Array(15) }),
      /phy2log must be .* 16 entries/,
    ],
    [
      'phy2log of the wrong type',
      () => broken({ phy2log: Float32Array.from(PHY2LOG) as unknown as Int32Array }),
      /phy2log must be an Int32Array.*Float32Array of 16/,
    ],
    [
      'logcnt of the wrong length',
      () => broken({ logcnt: new Int32Array(9) }),
      /logcnt must be .* 8 entries/,
    ],
    ['maxReplicas of 0', () => broken({ maxReplicas: 0 }), /maxReplicas must be an integer in \[1, 8\]/],
    ['maxReplicas not an integer', () => broken({ maxReplicas: 2.5 }), /maxReplicas must be an integer/],
    ['maxReplicas above R', () => broken({ maxReplicas: 9 }), /maxReplicas must be an integer in \[1, 8\]/],
    ['log2phy of the wrong length', () => broken({ log2phy: new Int32Array(23) }), /log2phy must be .*2×4×3/],
    [
      'log2phy missing',
      () => broken({ log2phy: undefined as unknown as Int32Array }),
      /log2phy must be .* got undefined/,
    ],
    [
      'an expert id ≥ E',
      () => {
        const p = broken({});
        p.phy2log[5] = 4;
        return p;
      },
      /layer 0: slot 5 holds expert 4, outside \[0, 4\)/,
    ],
    [
      'a negative expert id',
      () => {
        const p = broken({});
        p.phy2log[8 + 2] = -1;
        return p;
      },
      /layer 1: slot 2 holds expert -1/,
    ],
    [
      'an expert without replica',
      () => {
        // Slot 3 held expert 3's only replica; give it to expert 1 and keep logcnt consistent otherwise.
        const p = broken({});
        p.phy2log[3] = 1;
        p.logcnt[1] = 3;
        p.logcnt[3] = 0;
        return p;
      },
      /layer 0: expert 3 has no replica/,
    ],
    [
      'logcnt disagreeing with phy2log',
      () => {
        const p = broken({});
        p.logcnt[4 + 1] = 2;
        return p;
      },
      /layer 1: logcnt says expert 1 has 2 replicas, phy2log holds 1/,
    ],
    [
      'more replicas than log2phy has room for',
      () => {
        const p = valid();
        return { ...p, maxReplicas: 2, log2phy: new Int32Array(2 * 4 * 2).fill(-1) };
      },
      /layer 0: expert 0 has 3 replicas but log2phy has room for 2/,
    ],
    [
      'log2phy naming a slot of another expert',
      () => {
        const p = broken({});
        p.log2phy[at(0, 0, 1)] = 1;
        return p;
      },
      /layer 0: log2phy lists slot 1 for expert 0, but phy2log puts expert 1 there/,
    ],
    [
      'log2phy naming a slot out of range',
      () => {
        const p = broken({});
        p.log2phy[at(1, 3, 2)] = 8;
        return p;
      },
      /layer 1: log2phy of expert 3 lists slot 8, outside \[0, 8\)/,
    ],
    [
      'log2phy with −1 where a replica belongs',
      () => {
        const p = broken({});
        p.log2phy[at(0, 1, 1)] = -1;
        return p;
      },
      /layer 0: log2phy of expert 1 lists slot -1/,
    ],
    [
      'log2phy listing a slot twice',
      () => {
        const p = broken({});
        p.log2phy[at(0, 0, 2)] = 0;
        return p;
      },
      /layer 0: slot 0 is listed twice in log2phy/,
    ],
    [
      'log2phy padding that is not −1',
      () => {
        const p = broken({});
        p.log2phy[at(0, 3, 1)] = 7;
        return p;
      },
      /layer 0: log2phy of expert 3 has 7 past its 1 replicas \(must be −1\)/,
    ],
  ];

  for (const [what, make, message] of cases) {
    it(`rejects ${what}`, () => {
      const p = make();
      expect(placementProblem(p)).toMatch(message);
      expect(() => validatePlacement(p)).toThrow(UserError);
      expect(() => validatePlacement(p)).toThrow(/^invalid placement: /);
    });
  }
});

describe('balance metrics on the hand-checked deployment', () => {
  // Replica load = load / count.
  // Layer 0, loads [30,20,10,5]: replica loads e0 10, e1 10, e2 5, e3 5.
  //   slots [10,10 | 5,5 | 10,10 | 5,10] → GPU loads [20, 10, 20, 15], total 65, mean 16.25, max 20;
  //   slot mean 65/8 = 8.125, slot max 10.
  // Layer 1, loads [6,4,8,12]: replica loads e0 2, e1 4, e2 8, e3 4.
  //   slots [4,8 | 4,2 | 4,4 | 2,2] → GPU loads [12, 6, 8, 4], total 30, mean 7.5, max 12;
  //   slot mean 30/8 = 3.75, slot max 8.
  const m = balanceMetrics(valid(), LOADS);

  it('GPU balancedness is a ratio of sums over layers, not a mean of ratios', () => {
    // (16.25 + 7.5) / (20 + 12) = 23.75 / 32 = 0.7421875 (the mean of per-layer ratios would be 0.71875).
    expect(m.gpuBalancedness).toBeCloseTo(0.7421875, 12);
    expect(m.sumMaxGpuLoad).toBeCloseTo(32, 12);
  });

  it('per-layer GPU balancedness', () => {
    // 16.25 / 20 = 0.8125 and 7.5 / 12 = 0.625.
    expect(Array.from(m.perLayerGpuBalancedness)).toEqual([0.8125, 0.625]);
  });

  it('slot balancedness, overall and per layer', () => {
    // (8.125 + 3.75) / (10 + 8) = 11.875 / 18; per layer 8.125/10 = 0.8125 and 3.75/8 = 0.46875.
    expect(m.slotBalancedness).toBeCloseTo(11.875 / 18, 12);
    expect(Array.from(m.perLayerSlotBalancedness)).toEqual([0.8125, 0.46875]);
  });

  it('inter-node share: load of experts present on one node only, times the share of other nodes', () => {
    // Nodes: slots 0–3 and 4–7. Layer 0: e0, e1, e2 are on both nodes; e3 (load 5) only on node 0 → 5 · ½.
    // Layer 1: e0, e3 on both; e1 (4) and e2 (8) only on node 0 → (4 + 8) · ½.
    // (2.5 + 6) / (65 + 30) = 8.5 / 95.
    expect(m.interNodeShare).toBeCloseTo(8.5 / 95, 12);
  });

  it('scores on loads other than those it was placed on, and counts an idle layer as balanced', () => {
    const loads = Float32Array.from([0, 0, 0, 0, 6, 4, 8, 12]);
    const idle = balanceMetrics(valid(), loads);
    expect(idle.perLayerGpuBalancedness[0]).toBe(1);
    expect(idle.perLayerSlotBalancedness[0]).toBe(1);
    // The idle layer adds nothing to either sum: 7.5 / 12.
    expect(idle.gpuBalancedness).toBeCloseTo(0.625, 12);
    expect(balanceMetrics(valid(), new Float32Array(8)).gpuBalancedness).toBe(1);
  });

  it('a perfectly balanced placement scores 1', () => {
    // Every expert twice, loads equal: each GPU gets the same.
    const s: Shape = { ...shape, layers: 1 };
    const p = placementFromPhy2log(s, Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]));
    const b = balanceMetrics(p, Float32Array.from([7, 7, 7, 7]));
    expect(b.gpuBalancedness).toBe(1);
    expect(b.slotBalancedness).toBe(1);
    expect(b.interNodeShare).toBe(0);
  });

  it('refuses loads of the wrong size instead of returning NaN', () => {
    expect(() => balanceMetrics(valid(), new Float32Array(7))).toThrow(UserError);
  });
});

describe('adrsScore', () => {
  it('follows 90·b + 5·min(0.002/t, 2) − (t > 10 ms ? min(20·t, 20) : 0)', () => {
    // 1 ms: speed term capped at 5·2 = 10 → 72 + 10.
    expect(adrsScore(0.8, 0.001)).toBeCloseTo(82, 12);
    // Faster than 1 ms earns no more.
    expect(adrsScore(0.8, 0.0001)).toBeCloseTo(82, 12);
    expect(adrsScore(0.8, 0)).toBeCloseTo(82, 12);
    // 4 ms: 5 · 0.5 = 2.5 → 74.5.
    expect(adrsScore(0.8, 0.004)).toBeCloseTo(74.5, 12);
    // Exactly 10 ms: 5 · 0.2 = 1, no penalty yet → 73.
    expect(adrsScore(0.8, 0.01)).toBeCloseTo(73, 12);
    // 20 ms: 5 · 0.1 = 0.5, penalty 20 · 0.02 = 0.4 → 72.1.
    expect(adrsScore(0.8, 0.02)).toBeCloseTo(72.1, 12);
    // 2 s: 45 + 5 · 0.001 − min(40, 20) = 25.005.
    expect(adrsScore(0.5, 2)).toBeCloseTo(25.005, 12);
    // DeepSeek's original, ≈ 280 ms at balancedness 0.817: 73.53 + 0.0357 − 5.6.
    expect(adrsScore(0.817, 0.28)).toBeCloseTo(73.53 + 0.01 / 0.28 - 5.6, 12);
  });
});
