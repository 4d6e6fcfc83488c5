import { describe, expect, it } from 'vitest';
import { applyOverrides, resumeConfig, validateConfig } from '../src/evolve/config.js';

/** The evaluator keys of `adrs evolve` this branch adds: deployment, history, objective, secret series. */
describe('evolve evaluator config', () => {
  const base = {
    llm: { models: [{ name: 'm' }] },
    evaluator: { trace: 'synthetic-v4-windows' },
  };

  it('trains on a drawn secret series by default; the seed is left for the run to draw', () => {
    const c = validateConfig(base);
    expect(c.evaluator.secret_series).toBe(true);
    expect(c.evaluator.series_seed).toBeNull();
    expect(c.evaluator.history).toBeNull();
  });

  it('takes the deployment, history, the moe-time objective and a named series', () => {
    const c = validateConfig({
      ...base,
      evaluator: {
        trace: 'synthetic-v4-windows',
        objective: 'moe-time',
        history: 4,
        replicas: 80,
        gpus: 16,
        nodes: 2,
        groups: 4,
        secret_series: false,
        series_seed: 9,
      },
    });
    expect(c.evaluator).toMatchObject({
      objective: 'moe-time',
      history: 4,
      replicas: 80,
      gpus: 16,
      nodes: 2,
      groups: 4,
      secret_series: false,
      series_seed: 9,
    });
  });

  it('refuses wrong types with the key named', () => {
    expect(() => validateConfig({ ...base, evaluator: { secret_series: 'yes' } })).toThrow(
      /evaluator.secret_series must be true or false/,
    );
    expect(() => validateConfig({ ...base, evaluator: { history: 0 } })).toThrow(/evaluator.history/);
    expect(() => validateConfig({ ...base, evaluator: { objective: 'speed' } })).toThrow(
      /evaluator.objective/,
    );
  });

  it('flags set the deployment; a resume refuses them, since they change every score', () => {
    const c = applyOverrides(validateConfig(base), { gpus: 16, replicas: 64, history: 2 });
    expect([c.evaluator.gpus, c.evaluator.replicas, c.evaluator.history]).toEqual([16, 64, 2]);
    expect(() => resumeConfig(c, { gpus: 8 }, 0)).toThrow(/--gpus 8 cannot be given with --resume/);
    expect(resumeConfig(c, { gpus: 16 }, 0).evaluator.gpus).toBe(16);
  });
});
