import { describe, expect, it } from 'vitest';
import { COUNTERS_PER_GPU } from '../src/sim/cost-model.js';
import { firstDifference } from '../src/sim/simulate.js';

describe('simulate --compare-cpu: where the GPU and the TS reference disagree', () => {
  const gpus = 3;
  const layers = 2;
  const reference = Uint32Array.from({ length: layers * gpus * COUNTERS_PER_GPU }, (_, i) => i * 7);

  it('agrees with an identical copy', () => {
    expect(firstDifference(gpus, reference.slice(), reference)).toBeNull();
  });

  it('names the layer, GPU and counter of the first difference, with both values', () => {
    const gpu = reference.slice();
    // layer 1, GPU 2, counter 3 (sent intra-node); a later difference is not the first.
    const at = (1 * gpus + 2) * COUNTERS_PER_GPU + 3;
    gpu[at] = 999;
    gpu[at + 1] = 998;
    expect(firstDifference(gpus, gpu, reference)).toBe(
      `layer 1, GPU 2, sent intra-node: GPU 999, TS ${reference[at]}`,
    );
  });

  it('says when the two have different sizes', () => {
    expect(firstDifference(gpus, reference.subarray(1), reference)).toBe(
      'the GPU gave 29 counters, the TS reference 30',
    );
  });
});
