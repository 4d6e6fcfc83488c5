import { check } from '../../util/errors.js';
import type { Balancer, PreparedBalancer } from '../balancer.js';
import { DEFAULT_HISTORY } from '../balancer.js';
import { forecastScenarios, forecastShares } from '../forecast.js';
import { checkedHistory } from '../history.js';
import { LayerParallel } from '../layer-parallel.js';
import { deriveLog2phy, type Placement } from '../placement.js';
import { ScenarioRefiner } from '../scenario-refine.js';
import { BldmSwapLayers } from './bldm-swap.js';

/**
 * `forecast`, the default balancer: places for the NEXT window, not the last one.
 *
 * 1. Forecast (src/eplb/forecast.ts): each window's per-layer shares, exponentially weighted; the rate
 *    (weight of the latest window) is chosen per layer from the history itself — the one with the
 *    smallest one-step-ahead error over the history, a layer's own error weighed half against the
 *    error pooled over layers. A noisy but stationary series gets a long average; a drifting one the
 *    latest window (rate 1 = `bldm-swap`'s behaviour).
 * 2. Packing: `bldm-swap` (apportioned replicas, largest differencing, pairwise swaps) on the forecast.
 * 3. Robustness: pairwise swaps that lower the sum, over plausible next windows (the forecast plus each
 *    of its past one-step errors), of the heaviest GPU's load — a sample estimate of the expected
 *    maximum under the forecast's error (src/eplb/scenario-refine.ts), with the forecast itself
 *    weighing as much as all error scenarios together.
 *
 * On the real DeepSeek-V2-Lite series (windows of 50–200 steps, 26×64 on 8 GPUs) this lifts next-window
 * GPU balancedness by 2–3 points over placing on the last window (bench/results/forecast-*.txt); on a
 * series where the last window is the best forecast it chooses rate 1 and stays close to `bldm-swap`.
 * With a history of one window it is `bldm-swap` followed by the (then single-scenario) refinement.
 * Stateless between calls: everything comes from the history passed (at most ctx.history windows).
 */
export const forecastBalancer: Balancer = {
  name: 'forecast',
  summary:
    'Forecast of the next window (EWMA, rate chosen from the history), bldm-swap packing, refined for expected max load (default)',
  runsOn: 'cpu',
  prepare: async (shape, ctx): Promise<PreparedBalancer> => {
    const maxHistory = ctx.history ?? DEFAULT_HISTORY;
    check(
      Number.isInteger(maxHistory) && maxHistory >= 1,
      `history must be a positive integer, got ${maxHistory}`,
    );
    const { layers: L, experts: E, replicas: R } = shape;
    const runner = await LayerParallel.create(
      shape,
      (s) => new BldmSwapLayers(s),
      new URL('./bldm-swap-worker.js', import.meta.url),
    );
    const refiner = new ScenarioRefiner(shape);
    // Half the objective on the forecast, half on the sampled errors: a plain sample average over a
    // handful of past errors overfits them when the noise is independent between experts (measured:
    // up to −0.7 points on a multinomial series), while on the real series both are within noise.
    refiner.forecastWeight = 1;
    const forecastLoads = new Float32Array(L * E);
    return {
      rebalance: (loads: Float32Array, history?: readonly Float32Array[]): Placement => {
        check(loads.length === L * E, `loads must hold ${L}×${E} = ${L * E} values, got ${loads.length}`);
        const all = checkedHistory(loads, history, L * E);
        const hist = all.length > maxHistory ? all.slice(all.length - maxHistory) : all;
        const forecast = forecastShares(hist, L, E);
        forecastLoads.set(forecast.shares);
        const { phy2log, logcnt } = runner.run(forecastLoads);
        const scenarios = forecastScenarios(hist, forecast, L, E);
        const J = scenarios.count;
        for (let l = 0; l < L; l++) {
          refiner.refine(
            phy2log.subarray(l * R, (l + 1) * R),
            logcnt.subarray(l * E, (l + 1) * E),
            scenarios.shares.subarray(l * J * E, (l + 1) * J * E),
            J,
          );
        }
        return deriveLog2phy(shape, phy2log, logcnt);
      },
      dispose: () => runner.dispose(),
    };
  },
};
