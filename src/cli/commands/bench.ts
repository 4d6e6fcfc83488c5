import type { CommandModule } from 'yargs';
import { formatBenchTable } from '../../benchmark/bench-table.js';
import { runBench } from '../../benchmark/run-bench.js';
import { getBalancer, listBalancers } from '../../eplb/registry.js';
import { withGpu } from '../../gpu/device.js';
import { benchHtml } from '../../report/bench-html.js';
import { ROUTE_POLICIES, type RoutePolicy } from '../../sim/route-types.js';
import { listBundledTraces, loadTrace } from '../../trace/load.js';
import { check } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { type DeploymentArgs, deploymentOf, historyOf, withDeployment } from '../deployment.js';
import { commandLine, say } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';
import { tickingLine } from '../progress.js';

interface BenchArgs extends DeploymentArgs {
  trace?: string[];
  balancers?: string;
  repeat: number;
  tokens: number;
  policy: RoutePolicy;
  interval: number;
  windowSteps?: number;
  headroom: boolean;
  seed: number;
  json: boolean;
  out?: string;
  html?: string;
  adapter?: string;
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench',
  describe:
    'Benchmark balancers on traces: time, balancedness (same and next window), ADRS score, modelled MoE time',
  builder: (y) =>
    withAdapter(
      withJson(
        withDeployment(y, {
          history:
            'history windows each balancer call gets: window k and the ones before it, at most this many',
        })
          .option('trace', {
            type: 'string',
            array: true,
            describe: 'Traces (files or bundled names; repeatable); default: every bundled trace',
          })
          .option('balancers', {
            type: 'string',
            describe: `Comma-separated balancers (${listBalancers()
              .map((b) => b.name)
              .join(', ')}); default: all (bldm-swap only as the last-window row)`,
          })
          .option('window-steps', {
            type: 'number',
            describe:
              "Stored steps summed into one window (a per-step trace's default: its manifest's stepsPerWindow, else 100)",
          })
          .option('headroom', {
            type: 'boolean',
            default: true,
            describe:
              'Add the oracle row (bldm-swap placed on the scored window: the ceiling) and the last-window row (bldm-swap on window k); --no-headroom leaves them out',
          })
          .option('repeat', { type: 'number', default: 20, describe: 'Timed calls per balancer and trace' })
          .option('tokens', {
            type: 'number',
            default: 16384,
            describe: 'Tokens per step in the routing simulation',
          })
          .option('policy', {
            choices: ROUTE_POLICIES as readonly string[],
            default: 'round-robin',
            describe: 'How tokens pick a replica in the simulation',
          })
          .option('interval', {
            type: 'number',
            default: 3000,
            describe: "Steps between two rebalances (vLLM's default 3000)",
          })
          .option('seed', {
            type: 'number',
            default: 1,
            describe: 'Seed of the simulation and of random balancers',
          })
          .option('out', { type: 'string', describe: 'Also write the JSON report to this file' })
          .option('html', {
            type: 'string',
            describe:
              'Also write a self-contained HTML page (plots and the table; no network needed) to this file',
          }),
      ),
    ) as never,
  handler: async (argv) => {
    check(
      Number.isInteger(argv.repeat) && argv.repeat >= 1,
      `--repeat must be a positive integer, got ${argv.repeat}`,
    );
    check(
      Number.isInteger(argv.tokens) && argv.tokens >= 1,
      `--tokens must be a positive integer, got ${argv.tokens}`,
    );
    check(argv.interval > 0, `--interval must be positive, got ${argv.interval}`);
    check(
      argv.windowSteps === undefined || (Number.isInteger(argv.windowSteps) && argv.windowSteps >= 1),
      `--window-steps must be a positive integer, got ${argv.windowSteps}`,
    );
    const traceNames = argv.trace?.length ? argv.trace : listBundledTraces();
    check(traceNames.length > 0, 'no trace to benchmark: pass --trace FILE (no bundled traces found)');
    const traces = traceNames.map((name) => loadTrace(name));
    const balancers = argv.balancers
      ? argv.balancers
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
          .map(getBalancer)
      : // bldm-swap is the last-window row already when the reference rows are on.
        listBalancers().filter((b) => !(argv.headroom && b.name === 'bldm-swap'));
    check(balancers.length > 0, '--balancers names no balancer');
    // On a terminal: which trace and balancer run now, of how many, and for how long (ticking).
    const steps = traces.length * balancers.length;
    let step = 0;
    let current = 'starting the GPU device';
    const progress = tickingLine(() => `bench ${Math.min(step, steps)}/${steps}: ${current}`, !argv.json);
    const update = (message: string): void => {
      step++;
      current = message;
      progress.redraw();
    };
    const report = await withGpu(argv.adapter ? { adapter: argv.adapter } : {}, (gpu) =>
      runBench(gpu, {
        traces,
        balancers,
        repeat: argv.repeat,
        tokens: argv.tokens,
        policy: argv.policy,
        rebalanceInterval: argv.interval,
        deployment: deploymentOf(argv),
        history: historyOf(argv),
        ...(argv.windowSteps !== undefined ? { windowSteps: argv.windowSteps } : {}),
        headroom: argv.headroom,
        seed: argv.seed,
        command: commandLine(),
        progress: update,
      }),
    ).finally(() => progress.stop());
    if (argv.out) writeFileAtomic(argv.out, `${JSON.stringify(report, null, 2)}\n`);
    if (argv.html) writeFileAtomic(argv.html, benchHtml(report));
    if (argv.json) printJson(report);
    else say(formatBenchTable(report));
  },
};
