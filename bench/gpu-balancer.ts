/**
 * gpu-lpt on the real DeepSeek-R1 snapshots (R=288, G=8, N=4, P=32): end-to-end time per call (upload,
 * dispatch, readback, log2phy) and GPU time from timestamp queries, median and p95 after warm-up;
 * quality (GPU balancedness, placed and scored on the same snapshot) against its TypeScript reference
 * and the default CPU balancer; exact agreement with the reference.
 *
 * Run: npx esbuild bench/gpu-balancer.ts --bundle --platform=node --format=esm --packages=external \
 *        --outfile=dist/bench/gpu-balancer.mjs && XDG_RUNTIME_DIR=/tmp node dist/bench/gpu-balancer.mjs [runs]
 * Env: ADRS_ADAPTER (adapter), WG (workgroup size), MAX_SWAPS, MATCH_ROUNDS, CPU_BALANCER (to compare).
 */
import { createGpuLptBalancer } from '../src/eplb/balancers/gpu-balancer.js';
import { DEFAULT_GPU_LPT_OPTIONS, gpuLptReference } from '../src/eplb/balancers/gpu-balancer-reference.js';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { placementProblem } from '../src/eplb/placement.js';
import { listBalancers } from '../src/eplb/registry.js';
import { DEEPSEEK_V3_SHAPE } from '../src/eplb/shape.js';
import { withGpu } from '../src/gpu/device.js';
import { listBundledTraces, loadTrace } from '../src/trace/load.js';
import { stepLoads } from '../src/trace/trace.js';
import { summarizeTimes } from '../src/util/stats.js';

const runs = Number(process.argv[2] ?? 50);
const shape = DEEPSEEK_V3_SHAPE;

await withGpu({}, async (gpu) => {
  console.log(`adapter: ${gpu.info.name} (timestamps: ${gpu.hasTimestamps})`);
  const workgroupSize = process.env.WG ? Number(process.env.WG) : undefined;
  const maxSwaps = process.env.MAX_SWAPS ? Number(process.env.MAX_SWAPS) : DEFAULT_GPU_LPT_OPTIONS.maxSwaps;
  const matchingRounds = process.env.MATCH_ROUNDS
    ? Number(process.env.MATCH_ROUNDS)
    : DEFAULT_GPU_LPT_OPTIONS.matchingRounds;
  const options = { maxSwaps, matchingRounds, workgroupSize };
  const prepared = await createGpuLptBalancer(options).prepare(shape, { gpu });
  // The CPU balancer to compare with (the best one registered; CPU_BALANCER names another).
  const cpuBalancer =
    listBalancers().find((b) => b.name === process.env.CPU_BALANCER) ??
    listBalancers().find((b) => b.runsOn === 'cpu');
  const cpu = cpuBalancer ? await cpuBalancer.prepare(shape, {}) : undefined;
  const wall: number[] = [];
  const gpuMs: number[] = [];
  // Process CPU time per call: on a software adapter (lavapipe runs in-process) it is the work done,
  // a steadier figure than wall time on a loaded machine.
  const cpuMs: number[] = [];
  try {
    for (const file of listBundledTraces().filter((name) => name.startsWith('sglang-r1-'))) {
      const loads = stepLoads(loadTrace(file), 0);
      const placement = await prepared.rebalance(loads);
      const reference = gpuLptReference(shape, loads, options);
      const exact = placement.phy2log.every((v, i) => v === reference.phy2log[i]);
      const q = balanceMetrics(placement, loads).gpuBalancedness;
      const qCpu = cpu ? balanceMetrics(await cpu.rebalance(loads), loads).gpuBalancedness : Number.NaN;
      const swaps = reference.swaps.reduce((a, b) => Math.max(a, b), 0);
      const fileWall: number[] = [];
      for (let i = 0; i < runs; i++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await prepared.rebalance(loads);
        fileWall.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpuMs.push((c.user + c.system) / 1000);
        const g = prepared.lastGpuMs?.();
        if (g !== undefined) gpuMs.push(g);
      }
      wall.push(...fileWall);
      const t = summarizeTimes(fileWall);
      console.log(
        `${file.padEnd(28)} gpu-lpt ${q.toFixed(5)}  ${cpuBalancer?.name ?? 'cpu'} ${qCpu.toFixed(5)}  exact=${exact}  ` +
          `valid=${placementProblem(placement) === null}  max swaps/layer ${swaps}  ` +
          `e2e median ${t.median_ms.toFixed(3)} ms p95 ${t.p95_ms.toFixed(3)} ms`,
      );
    }
  } finally {
    prepared.dispose?.();
  }
  const w = summarizeTimes(wall);
  const g = summarizeTimes(gpuMs);
  const c = summarizeTimes(cpuMs);
  console.log(
    `all: e2e median ${w.median_ms.toFixed(3)} ms, p95 ${w.p95_ms.toFixed(3)} ms (${w.runs} runs); ` +
      `GPU (timestamps) median ${g.median_ms.toFixed(3)} ms, p95 ${g.p95_ms.toFixed(3)} ms; ` +
      `process CPU time median ${c.median_ms.toFixed(3)} ms`,
  );
});
