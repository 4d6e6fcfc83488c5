/**
 * Temporal calibration of generator v2 (bench/calibration.md): the real DeepSeek-V2-Lite per-step
 * series against SEEDS series generated from the calibrated parameters, at several window sizes;
 * then the bundled synthetic-v4 series (58×256, DeepSeek-V3 deployment 288/32/4) and, for contrast,
 * synthetic-v3-windows. Placement: bldm-swap on window k (or a forecast from windows ≤ k), scored
 * on k+1 (GPU balancedness).
 *
 * Run: npx esbuild bench/temporal-calibration.ts --bundle --platform=node --format=esm --packages=external \
 *        --outfile=dist/bench/temporal-calibration.mjs && node dist/bench/temporal-calibration.mjs
 * Env: SEEDS (5), WINDOW_SIZES (50,100,200), REAL (path of the real per-step manifest).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { bldmSwapBalancer } from '../src/eplb/balancers/bldm-swap.js';
import { DEEPSEEK_V3_SHAPE } from '../src/eplb/shape.js';
import { CALIBRATED_TEMPORAL_PARAMS } from '../src/trace/calibrated.js';
import { loadTrace } from '../src/trace/load.js';
import { fitTemporalParams } from '../src/trace/temporal-fit.js';
import { temporalCalibration, temporalCalibrationTable } from '../src/trace/temporal-report.js';
import { FORECASTS, temporalStatistics } from '../src/trace/temporal-stats.js';
import { traceWindows } from '../src/trace/windows.js';

const real = resolve(
  process.env.REAL ?? '../shared/traces/deepseek-v2-lite-routing/deepseek-v2-lite-routing.json',
);
const seeds = Array.from({ length: Number(process.env.SEEDS ?? 5) }, (_, i) => i + 1);
const windowSizes = (process.env.WINDOW_SIZES ?? '50,100,200').split(',').map(Number);

if (existsSync(real)) {
  const trace = loadTrace(real);
  const tokensFile = join(dirname(real), 'tokens-per-step.json');
  const tokensPerStep = existsSync(tokensFile) ? JSON.parse(readFileSync(tokensFile, 'utf8')) : undefined;
  const fit = fitTemporalParams(trace, tokensPerStep ? { tokensPerStep } : {});
  const same = Object.entries(CALIBRATED_TEMPORAL_PARAMS).every(
    ([k, v]) => Math.abs(fit.params[k as keyof typeof fit.params] - v) <= 1e-6 * Math.max(1, Math.abs(v)),
  );
  console.log(`# fit on ${trace.manifest.name} (${fit.steps} steps, ${fit.tokens} tokens)`);
  console.log(JSON.stringify(fit.params));
  console.log(`same as CALIBRATED_TEMPORAL_PARAMS: ${same}\n`);
  console.log('# real vs generated, 26×64 top-6, deployment R=80 P=8 N=1 (bldm-swap)\n');
  const rows = await temporalCalibration(
    trace,
    CALIBRATED_TEMPORAL_PARAMS,
    { replicas: 80, gpus: 8, nodes: 1 },
    { seeds, windowSizes },
  );
  console.log(temporalCalibrationTable(rows));
} else {
  console.log(`${real} is absent: real-vs-generated part skipped\n`);
}

console.log('# bundled series, 58×256, deployment R=288 P=32 N=4 (bldm-swap), windows as stored\n');
console.log(
  `| trace | windows | lag-1 share corr | next-window, last | ${FORECASTS.slice(1)
    .map((f) => `gain ${f}`)
    .join(' | ')} |`,
);
console.log(
  `|---|---|---|---|${FORECASTS.slice(1)
    .map(() => '---')
    .join('|')}|`,
);
for (const name of ['synthetic-v4-windows', 'synthetic-v4-heldout', 'synthetic-v3-windows']) {
  const t = loadTrace(name);
  const s = await temporalStatistics(traceWindows(t), bldmSwapBalancer, DEEPSEEK_V3_SHAPE);
  console.log(
    `| ${name} | ${s.windows} | ${s.lag1ShareCorrelation.toFixed(3)} | ${s.nextWindow.last.toFixed(3)} | ${FORECASTS.slice(
      1,
    )
      .map((f) => s.gainPoints[f as Exclude<typeof f, 'last'>].toFixed(2))
      .join(' | ')} |`,
  );
}
