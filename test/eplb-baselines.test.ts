import { describe, expect, it } from 'vitest';
import { noneBalancer, randomBalancer } from '../src/eplb/balancers/baselines.js';
import { placementProblem } from '../src/eplb/placement.js';
import { getBalancer, listBalancers } from '../src/eplb/registry.js';
import { DEEPSEEK_V3_SHAPE, type Shape } from '../src/eplb/shape.js';

const small: Shape = { layers: 2, experts: 6, replicas: 10, groups: 2, nodes: 1, gpus: 2 };
const loadsFor = (s: Shape) => Float32Array.from({ length: s.layers * s.experts }, (_, i) => (i * 13) % 7);

describe('none baseline', () => {
  it('puts expert s in slot s and the extra slots on the first experts in order', async () => {
    const p = await (await noneBalancer.prepare(small, {})).rebalance(loadsFor(small));
    expect(placementProblem(p)).toBeNull();
    const row = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3];
    expect(Array.from(p.phy2log)).toEqual([...row, ...row]);
    expect(Array.from(p.logcnt)).toEqual([2, 2, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1]);
    // Expert 0 lives in slots 0 and 6.
    expect(Array.from(p.log2phy.subarray(0, 2))).toEqual([0, 6]);
  });

  it('wraps around when R − E exceeds E', async () => {
    const shape: Shape = { layers: 1, experts: 3, replicas: 8, groups: 1, nodes: 1, gpus: 2 };
    const p = await (await noneBalancer.prepare(shape, {})).rebalance(new Float32Array(3));
    expect(Array.from(p.phy2log)).toEqual([0, 1, 2, 0, 1, 2, 0, 1]);
    expect(placementProblem(p)).toBeNull();
  });
});

describe('random baseline', () => {
  it('is valid, and the same seed gives the same placement on every call', async () => {
    const shape = DEEPSEEK_V3_SHAPE;
    const loads = loadsFor(shape);
    const a = await randomBalancer.prepare(shape, { seed: 7 });
    const b = await randomBalancer.prepare(shape, { seed: 7 });
    const pa = await a.rebalance(loads);
    expect(placementProblem(pa)).toBeNull();
    expect(Array.from((await a.rebalance(loads)).phy2log)).toEqual(Array.from(pa.phy2log));
    expect(Array.from((await b.rebalance(loads)).phy2log)).toEqual(Array.from(pa.phy2log));
  });

  it('differs between seeds and between layers, and defaults to seed 0', async () => {
    const shape = DEEPSEEK_V3_SHAPE;
    const loads = loadsFor(shape);
    const p0 = await (await randomBalancer.prepare(shape, {})).rebalance(loads);
    const pz = await (await randomBalancer.prepare(shape, { seed: 0 })).rebalance(loads);
    const p1 = await (await randomBalancer.prepare(shape, { seed: 1 })).rebalance(loads);
    expect(Array.from(p0.phy2log)).toEqual(Array.from(pz.phy2log));
    expect(Array.from(p0.phy2log)).not.toEqual(Array.from(p1.phy2log));
    const R = shape.replicas;
    expect(Array.from(p0.phy2log.subarray(0, R))).not.toEqual(Array.from(p0.phy2log.subarray(R, 2 * R)));
    // Shuffled: the extra replicas are not all at the end, unlike `none`.
    expect(Array.from(p0.phy2log.subarray(0, 256))).not.toEqual(Array.from({ length: 256 }, (_, i) => i));
  });

  it('refuses loads of the wrong size', async () => {
    const prepared = await randomBalancer.prepare(small, {});
    expect(() => prepared.rebalance(new Float32Array(5))).toThrow(/2×6 = 12/);
  });
});

describe('registry', () => {
  it('lists deepseek, none and random, deepseek before the baselines', () => {
    const names = listBalancers().map((b) => b.name);
    expect(names).toEqual(expect.arrayContaining(['deepseek', 'none', 'random']));
    expect(names.indexOf('deepseek')).toBeLessThan(names.indexOf('none'));
    expect(names.indexOf('none')).toBeLessThan(names.indexOf('random'));
    expect(getBalancer('deepseek').summary).toMatch(/exact port/);
  });
});
