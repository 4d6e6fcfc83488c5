/**
 * Figures of the deepseek port on the real DeepSeek-V3/R1 snapshots (R=288, G=8, N=4, P=32): GPU
 * balancedness placed and scored on the same snapshot (EPLB.md's reference table gives 0.817 for
 * the original), and the time of one rebalance call (the original: ≈ 280 ms in PyTorch): wall-clock
 * median/p95/min, and process CPU time per call (steadier on a shared machine).
 *
 * Run: npx esbuild test/reference/measure-deepseek.ts --bundle --platform=node --format=esm \
 *        --packages=external --outfile=dist/measure-deepseek.mjs && node dist/measure-deepseek.mjs [dir]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deepseekBalancer } from '../../src/eplb/balancers/deepseek.js';
import { balanceMetrics } from '../../src/eplb/metrics.js';
import { validatePlacement } from '../../src/eplb/placement.js';
import { DEEPSEEK_V3_SHAPE } from '../../src/eplb/shape.js';
import { summarizeTimes, timeRepeated } from '../../src/util/stats.js';

const dir = process.argv[2] ?? '/work/shared/traces/sglang-deepseek-r1';
const DENSE_LAYERS = 3;
const shape = DEEPSEEK_V3_SHAPE;
const prepared = await deepseekBalancer.prepare(shape, {});
const rows: string[] = [];
let sumBalancedness = 0;
const allTimes: number[] = [];
let cpuMicros = 0;
const REPEAT = 50;
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
for (const file of files) {
  const counts = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { logical_count: number[][] })
    .logical_count;
  const loads = Float32Array.from(counts.slice(DENSE_LAYERS).flat());
  const placement = await prepared.rebalance(loads);
  validatePlacement(placement);
  const m = balanceMetrics(placement, loads);
  const cpu0 = process.cpuUsage();
  const times = await timeRepeated(REPEAT, () => prepared.rebalance(loads));
  const cpu = process.cpuUsage(cpu0);
  cpuMicros += cpu.user + cpu.system;
  allTimes.push(...times);
  sumBalancedness += m.gpuBalancedness;
  const t = summarizeTimes(times);
  rows.push(
    `${file.padEnd(28)} balancedness ${m.gpuBalancedness.toFixed(4)}  inter-node ${m.interNodeShare.toFixed(4)}  ` +
      `median ${t.median_ms.toFixed(3)} ms  p95 ${t.p95_ms.toFixed(3)} ms`,
  );
}
console.log(rows.join('\n'));
const all = summarizeTimes(allTimes);
console.log(
  `mean balancedness ${(sumBalancedness / files.length).toFixed(4)} over ${files.length} snapshots; ` +
    `median ${all.median_ms.toFixed(3)} ms, p95 ${all.p95_ms.toFixed(3)} ms, ` +
    `min ${Math.min(...allTimes).toFixed(3)} ms over ${all.runs} calls; ` +
    `process CPU time ${(cpuMicros / 1000 / (files.length * (REPEAT + 1))).toFixed(3)} ms per call`,
);
