import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEEPSEEK_V3_SHAPE } from '../src/eplb/shape.js';
import { COUNTERS_PER_GPU } from '../src/sim/cost-model.js';
import { checkSimulateOptions, firstDifference } from '../src/sim/simulate.js';
import { loadTrace } from '../src/trace/load.js';

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

describe('simulate options that need no GPU', () => {
  const trace = loadTrace('sglang-r1-prefill-in512');
  const shape = { ...DEEPSEEK_V3_SHAPE, layers: trace.manifest.layers, experts: trace.manifest.experts };

  it("take the trace's top-k when none is given", () => {
    expect(() => checkSimulateOptions({ trace, shape, tokens: 1024 })).not.toThrow();
  });

  it.each([
    [{ tokens: 0 }, /tokens must be a positive integer, got 0/],
    [{ tokens: 64, topK: 17 }, /top-k must be an integer in \[1, 16\], got 17/],
    [{ tokens: 64, topK: 2.5 }, /top-k must be an integer/],
  ])('refuses %o in one line', (o, why) => {
    expect(() => checkSimulateOptions({ trace, shape, ...o })).toThrow(why);
  });

  it('are refused before a GPU is looked for (here there is none to find)', () => {
    const r = spawnSync(
      process.execPath,
      [
        join(import.meta.dirname, '..', 'bin', 'adrs.js'),
        'simulate',
        '--trace',
        'sglang-r1-prefill-in512',
        '--top-k',
        '99',
      ],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          VK_DRIVER_FILES: '/nonexistent/icd.json',
          VK_ICD_FILENAMES: '/nonexistent/icd.json',
        },
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('adrs: top-k must be an integer in [1, 16], got 99');
  });
});
