import type { CommandModule } from 'yargs';
import type { Balancer, BalancerContext, PreparedBalancer } from '../../eplb/balancer.js';
import { historyUpTo } from '../../eplb/history.js';
import { balanceMetrics } from '../../eplb/metrics.js';
import { type Placement, placementToJson } from '../../eplb/placement.js';
import { defaultBalancer, getBalancer, listBalancers } from '../../eplb/registry.js';
import { describeShape } from '../../eplb/shape.js';
import { placeAll, timeCalls } from '../../eplb/timed-run.js';
import { acquireGpu, type GpuContext } from '../../gpu/device.js';
import { loadLoads, type WindowSelection } from '../../trace/load.js';
import { windowLoads } from '../../trace/windows.js';
import { check } from '../../util/errors.js';
import { type DeploymentArgs, historyOf, shapeOf, withDeployment } from '../deployment.js';
import { say } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';

interface RebalanceArgs extends DeploymentArgs {
  balancer?: string;
  weights: string;
  window?: number;
  repeat: number;
  json: boolean;
  adapter?: string;
}

export const rebalanceCommand: CommandModule<object, RebalanceArgs> = {
  command: 'rebalance',
  describe: 'Compute an expert placement for one load matrix and time the balancer',
  builder: (y) =>
    withAdapter(
      withJson(
        withDeployment(y, {
          history:
            'history windows the balancer gets: window K and the ones before it, at most this many (a plain [layers][experts] file is a history of one)',
        })
          .option('balancer', {
            type: 'string',
            describe: `Balancer to run (${listBalancers()
              .map((b) => b.name)
              .join(', ')}); default: the best one`,
          })
          .option('weights', {
            type: 'string',
            demandOption: true,
            describe: 'Loads: a JSON array [layers][experts], or any trace adrs reads (file or bundled name)',
          })
          .option('window', {
            type: 'number',
            describe:
              'Which load window of a trace (a per-step trace is cut into windows of 100 steps ending at its last step; default: the last window); the balancer gets the windows up to it as its history',
          })
          .option('repeat', { type: 'number', default: 1, describe: 'Timed runs after one warm-up' }),
      ),
    ),
  handler: async (argv) => {
    check(
      Number.isInteger(argv.repeat) && argv.repeat >= 1,
      `--repeat must be a positive integer, got ${argv.repeat}`,
    );
    const historyLength = historyOf(argv);
    const balancer: Balancer = argv.balancer ? getBalancer(argv.balancer) : defaultBalancer();
    const step = loadLoads(argv.weights, argv.window);
    const tw = step.windows;
    const history = historyUpTo(
      { count: tw.count, window: (k) => windowLoads(tw, k) },
      step.window,
      historyLength,
    );
    // The trace's groups unless --groups says, as in every command (a plain [layers][experts] file
    // gets the import's default routing: DeepSeek-V3's 8 groups for 256 experts, else 1).
    const shape = shapeOf(
      { layers: step.layers, experts: step.experts, groups: step.trace.manifest.groups },
      argv,
    );

    let gpu: GpuContext | undefined;
    let prepared: PreparedBalancer | undefined;
    try {
      const ctx: BalancerContext = { history: historyLength };
      if (balancer.runsOn === 'gpu') {
        gpu = await acquireGpu({ ...(argv.adapter ? { adapter: argv.adapter } : {}) });
        ctx.gpu = gpu;
      }
      prepared = await balancer.prepare(shape, ctx);
      // One warm-up call (validated), then --repeat timed calls.
      const [placement] = (await placeAll(prepared, [step.loads], [history])) as [Placement];
      const { timing, gpuTiming } = await timeCalls(prepared, [step.loads], { repeat: argv.repeat }, [
        history,
      ]);
      if (argv.json) {
        printJson(
          {
            balancer: balancer.name,
            window: step.window,
            history_windows: history.length,
            ...placementToJson(placement),
            timing,
            ...(gpuTiming ? { gpu_timing: gpuTiming } : {}),
          },
          { compact: true },
        );
        return;
      }
      const m = balanceMetrics(placement, step.loads);
      say(
        `${balancer.name} on ${step.trace.manifest.name} (${windowLabel(step)}; history of ${history.length} window${history.length === 1 ? '' : 's'}): ${describeShape(shape)}`,
      );
      say(
        `GPU balancedness ${m.gpuBalancedness.toFixed(4)}, slot balancedness ${m.slotBalancedness.toFixed(4)}, ` +
          `inter-node share ${(100 * m.interNodeShare).toFixed(1)} % (placed and scored on the same loads)`,
      );
      say(
        `time: median ${timing.median_ms.toFixed(3)} ms, p95 ${timing.p95_ms.toFixed(3)} ms over ${timing.runs} run(s)` +
          (gpuTiming ? `; GPU ${gpuTiming.median_ms.toFixed(3)} ms` : ''),
      );
      say('(--json prints phy2log, logcnt and log2phy)');
    } finally {
      prepared?.dispose?.();
      gpu?.destroy();
    }
  },
};

/** "window 3", or for a per-step trace "window 1 = steps 150–249 of 250". */
function windowLabel(sel: WindowSelection): string {
  const w = sel.windows;
  if (w.stepsPerWindow === 1) return `window ${sel.window}`;
  const first = w.offset + sel.window * w.stepsPerWindow;
  return `window ${sel.window} = steps ${first}–${first + w.stepsPerWindow - 1} of ${sel.trace.manifest.steps}`;
}
