import { describe, expect, it } from 'vitest';
import { readPlacementArtifact } from '../src/evolve/placement-artifact.js';

const shape = { layers: 1, experts: 4, replicas: 4, groups: 1, nodes: 1, gpus: 2 };
const plugIn = {
  shape,
  window: 3,
  loads: [4, 3, 2, 1],
  phy2log: [0, 3, 1, 2],
  logcnt: [1, 1, 1, 1],
};
const text = (edit: Record<string, unknown>) => JSON.stringify({ ...plugIn, ...edit });

describe("an evaluation's placement artifact, read for the report", () => {
  it("reads the EPLB evaluator's GPU loads", () => {
    const a = readPlacementArtifact(
      JSON.stringify({ format: 'gpu-loads/1', window: 5, layers: 2, gpus: 2, loads: [1, 2, 3, 4] }),
    );
    expect(a).toMatchObject({ format: 'gpu-loads/1', window: 5, layers: 2, gpus: 2, loads: [1, 2, 3, 4] });
  });

  it("reads a plug-in evaluator's placement and checks it with the one validator", () => {
    const a = readPlacementArtifact(JSON.stringify(plugIn));
    expect(typeof a).toBe('object');
    if (typeof a === 'string') return;
    expect(a.format).toBe('placement');
    expect(a.window).toBe(3);
    expect(Array.from(a.loads)).toEqual([4, 3, 2, 1]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{"format":', /not JSON/],
    ['an array', '[1,2]', /not an object/],
    [
      'GPU loads of the wrong count',
      JSON.stringify({ format: 'gpu-loads/1', layers: 2, gpus: 2, loads: [1] }),
      /2×2 loads/,
    ],
    [
      'a negative GPU load',
      JSON.stringify({ format: 'gpu-loads/1', layers: 1, gpus: 2, loads: [1, -1] }),
      /loads ≥ 0/,
    ],
    ['a fractional window', text({ window: 1.5 }), /window/],
    ['no shape', text({ shape: undefined }), /shape is invalid/],
    [
      'a shape whose GPUs do not divide its slots',
      text({ shape: { ...shape, gpus: 3 } }),
      /shape is invalid/,
    ],
    ['loads that are not numbers', text({ loads: ['4', 3, 2, 1] }), /4 loads ≥ 0/],
    ['a phy2log of the wrong length', text({ phy2log: [0, 1, 2] }), /phy2log and logcnt/],
    ['an expert id outside the layer', text({ phy2log: [0, 9, 1, 2] }), /placement is invalid/],
    [
      'an expert without a replica',
      text({ phy2log: [0, 0, 1, 2], logcnt: [2, 1, 1, 0] }),
      /placement is invalid/,
    ],
  ];
  it.each(bad)('explains, without throwing, an artifact with %s', (_, input, why) => {
    const a = readPlacementArtifact(input);
    expect(typeof a).toBe('string');
    expect(a).toMatch(why);
  });
});
