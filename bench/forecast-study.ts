/**
 * Design study for the `forecast` balancer (not a test): next-window GPU balancedness of placements
 * computed from different forecasts of the next window, on a per-step or window trace, for several
 * window sizes and deployments, reported separately on the first and second half of the series.
 *
 *   npm run build && esbuild bench/forecast-study.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=dist/eval/bench-forecast-study.mjs && \
 *     node dist/eval/bench-forecast-study.mjs TRACE [WINDOW_STEPS...]
 */
import { BldmSwapLayers } from '../src/eplb/balancers/bldm-swap.js';
import { forecastShares, windowShares } from '../src/eplb/forecast.js';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { deriveLog2phy } from '../src/eplb/placement.js';
import { ScenarioRefiner } from '../src/eplb/scenario-refine.js';
import type { Shape } from '../src/eplb/shape.js';
import { loadTrace } from '../src/trace/load.js';
import { traceWindows, windowLoads } from '../src/trace/windows.js';

type Variant = (hist: Float32Array[], L: number, E: number) => Float32Array;
/** Variants whose placement is refined on scenarios: [forecast loads, J, scenarios [L][J][E]]. */
type SaaVariant = (hist: Float32Array[], L: number, E: number) => [Float32Array, number, Float64Array];

const saa =
  (mode: 'centred' | 'raw' | 'resid', layerWeight = 0.5): SaaVariant =>
  (h, L, E) => {
    const f = forecastShares(h, L, E, { layerWeight });
    const sh = h.map((w) => windowShares(w, L, E));
    const T = sh.length;
    if (mode === 'resid') {
      const J = T;
      const out = new Float64Array(L * J * E);
      for (let l = 0; l < L; l++) {
        for (let e = 0; e < E; e++) out[l * J * E + e] = f.shares[l * E + e]!;
      }
      // Residual t: window t minus the forecast made from windows before it (same per-layer rate).
      for (let t = 1; t < T; t++) {
        const prev = forecastShares(h.slice(0, t), L, E, { layerWeight });
        for (let l = 0; l < L; l++) {
          for (let e = 0; e < E; e++) {
            const i = l * E + e;
            out[(l * J + t) * E + e] = Math.max(0, f.shares[i]! + sh[t]![i]! - prev.shares[i]!);
          }
        }
      }
      return [Float32Array.from(f.shares), J, out];
    }
    const J = T + 1;
    const out = new Float64Array(L * J * E);
    for (let l = 0; l < L; l++) {
      for (let e = 0; e < E; e++) {
        const i = l * E + e;
        let mean = 0;
        for (const s of sh) mean += s[i]!;
        mean /= T;
        out[(l * J + 0) * E + e] = f.shares[i]!;
        for (let t = 0; t < T; t++) {
          const v = mode === 'raw' ? sh[t]![i]! : f.shares[i]! + sh[t]![i]! - mean;
          out[(l * J + 1 + t) * E + e] = Math.max(0, v);
        }
      }
    }
    return [Float32Array.from(f.shares), J, out];
  };
const saaVariants: Record<string, SaaVariant> = {
  'saa-resid': saa('resid'),
};

const f32 = (a: Float64Array) => Float32Array.from(a);
const variants: Record<string, Variant> = {
  last: (h) => h[h.length - 1]!,
  mean: (h, L, E) => f32(forecastShares(h, L, E, { rates: [0.0001] }).shares),
  'ewma.5': (h, L, E) => f32(forecastShares(h, L, E, { rates: [0.5] }).shares),
  'ewma.25': (h, L, E) => f32(forecastShares(h, L, E, { rates: [0.25] }).shares),
  'auto-global': (h, L, E) => f32(forecastShares(h, L, E, { layerWeight: 0 }).shares),
  'auto-.5': (h, L, E) => f32(forecastShares(h, L, E, { layerWeight: 0.5 }).shares),
  'auto-layer': (h, L, E) => f32(forecastShares(h, L, E, { layerWeight: 1 }).shares),
  ...Object.fromEntries(
    [0.5, 1, 2].map((k) => [
      `auto+${k}sd`,
      ((h, L, E) => {
        const f = forecastShares(h, L, E);
        return Float32Array.from(f.shares, (s, i) => s + k * Math.sqrt(f.errorVariance[i]!));
      }) as Variant,
    ]),
  ),
};

const tracePath = process.argv[2]!;
const sizes = process.argv.slice(3).map(Number);
const hs = (process.env.HS ?? '8').split(',').map(Number);
const deployments: Array<[string, Pick<Shape, 'replicas' | 'gpus' | 'nodes'>]> = (
  process.env.DEPLOY ?? '80/8/1,64/8/1,96/8/1'
)
  .split(',')
  .map((d) => {
    const [r, p, n] = d.split('/').map(Number);
    return [d, { replicas: r!, gpus: p!, nodes: n! }];
  });
const trace = loadTrace(tracePath);
const m = trace.manifest;
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n ? (n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2) : Number.NaN;
};
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
for (const size of sizes.length ? sizes : [undefined]) {
  const tw = traceWindows(trace, size);
  for (const [label, dep] of deployments) {
    const shape: Shape = { layers: m.layers, experts: m.experts, groups: m.groups, ...dep };
    if (shape.replicas % shape.gpus) continue;
    const kernel = new BldmSwapLayers(shape);
    const place = (loads: Float32Array) => {
      const phy2log = new Int32Array(shape.layers * shape.replicas);
      const logcnt = new Int32Array(shape.layers * shape.experts);
      kernel.run(loads, phy2log, logcnt, 0, shape.layers);
      return deriveLog2phy(shape, phy2log, logcnt);
    };
    const refiner = new ScenarioRefiner(shape);
    refiner.roundsPerGpu = Number(process.env.ROUNDS ?? 2);
    refiner.forecastWeight = Number(process.env.FW ?? 1);
    const placeSaa = ([loads, J, scen]: [Float32Array, number, Float64Array]) => {
      const phy2log = new Int32Array(shape.layers * shape.replicas);
      const logcnt = new Int32Array(shape.layers * shape.experts);
      kernel.run(loads, phy2log, logcnt, 0, shape.layers);
      const { layers: L, experts: E, replicas: R } = shape;
      for (let l = 0; l < L; l++) {
        refiner.refine(
          phy2log.subarray(l * R, (l + 1) * R),
          logcnt.subarray(l * E, (l + 1) * E),
          scen.subarray(l * J * E, (l + 1) * J * E),
          J,
        );
      }
      return deriveLog2phy(shape, phy2log, logcnt);
    };
    for (const H of hs) {
      console.log(`\n${m.name} windows=${tw.count} x ${tw.stepsPerWindow} steps, R/P/N=${label}, H=${H}`);
      console.log('variant        first-half med  mean   | second-half med  mean   | all med');
      const half = Math.floor(tw.count / 2);
      const histOf = (k: number) => {
        const hist: Float32Array[] = [];
        for (let j = Math.max(0, k - H + 1); j <= k; j++) hist.push(windowLoads(tw, j));
        return hist;
      };
      const row = (
        name: string,
        fn: (k: number) => Float32Array,
        saaFn?: (k: number) => ReturnType<SaaVariant>,
      ) => {
        const a: number[] = [];
        const b: number[] = [];
        // Scored windows k+1 for k ≥ 1 (at least two windows of history for every forecast).
        for (let k = 1; k + 1 < tw.count; k++) {
          const placement = saaFn ? placeSaa(saaFn(k)) : place(fn(k));
          const bal = balanceMetrics(placement, windowLoads(tw, k + 1)).gpuBalancedness;
          (k + 1 < half ? a : b).push(bal);
        }
        console.log(
          `${name.padEnd(14)} ${median(a).toFixed(4)} ${mean(a).toFixed(4)} | ${median(b).toFixed(4)} ${mean(b).toFixed(4)} | ${median([...a, ...b]).toFixed(4)}`,
        );
      };
      row('oracle', (k) => windowLoads(tw, k + 1));
      for (const [name, v] of Object.entries(variants)) {
        row(name, (k) => {
          const hist: Float32Array[] = [];
          for (let j = Math.max(0, k - H + 1); j <= k; j++) hist.push(windowLoads(tw, j));
          return v(hist, shape.layers, shape.experts);
        });
      }
      for (const [name, v] of Object.entries(saaVariants)) {
        row(
          name,
          () => new Float32Array(0),
          (k) => v(histOf(k), shape.layers, shape.experts),
        );
      }
    }
  }
}
