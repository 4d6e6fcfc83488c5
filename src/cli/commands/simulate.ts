import type { CommandModule } from 'yargs';
import { defaultBalancer, getBalancer, listBalancers } from '../../eplb/registry.js';
import { withGpu } from '../../gpu/device.js';
import { ROUTE_POLICIES, type RoutePolicy } from '../../sim/route-types.js';
import {
  checkSimulateOptions,
  type SimulateOptions,
  type SimulateReport,
  simulateRouting,
} from '../../sim/simulate.js';
import { loadTrace } from '../../trace/load.js';
import { check } from '../../util/errors.js';
import { formatTable } from '../../util/table.js';
import { type DeploymentArgs, shapeOf, withDeployment } from '../deployment.js';
import { note, say, setExitCode } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';

interface SimulateArgs extends DeploymentArgs {
  trace: string;
  window?: number;
  balancer?: string;
  policy: RoutePolicy;
  tokens: number;
  'top-k'?: number;
  'group-limited': boolean;
  seed: number;
  'compare-cpu': boolean;
  json: boolean;
  adapter?: string;
}

export const simulateCommand: CommandModule<object, SimulateArgs> = {
  command: 'simulate',
  describe:
    "Token-level MoE routing on the GPU: place with a balancer on window K−1, route window K's tokens, model layer time",
  builder: (y) =>
    withDeployment(withAdapter(withJson(y)))
      .option('trace', {
        type: 'string',
        demandOption: true,
        describe: 'Trace: a bundled name (`adrs trace list`) or a file',
      })
      .option('window', {
        type: 'number',
        describe:
          'Window K to simulate (negative counts from the end; default the last). The placement comes from window K−1, or from K itself when K = 0 (a single-snapshot trace has nothing earlier)',
      })
      .option('balancer', {
        type: 'string',
        describe: 'Balancer computing the placement (default: the registry default)',
      })
      .option('policy', {
        choices: ROUTE_POLICIES,
        default: 'round-robin' as RoutePolicy,
        describe:
          'Replica choice: round-robin (vLLM), static-local (SGLang static + node locality), random (SGLang dynamic)',
      })
      .option('tokens', {
        type: 'number',
        default: 131072,
        describe: 'Tokens per layer, spread evenly over the GPUs',
      })
      .option('top-k', { type: 'number', describe: "Experts per token (default: the trace's top-k)" })
      .option('group-limited', {
        type: 'boolean',
        default: true,
        describe: "Group-limited routing with the trace's top-k groups (--no-group-limited: any experts)",
      })
      .option('seed', { type: 'number', default: 1, describe: 'Routing seed' })
      .option('compare-cpu', {
        type: 'boolean',
        default: false,
        describe:
          'Also run the TypeScript reference on the same input: its throughput, the speed ratio, agreement',
      }) as never,
  handler: async (argv) => {
    const trace = loadTrace(argv.trace);
    const shape = shapeOf(trace.manifest, argv);
    check(listBalancers().length > 0, 'no balancer is registered: add one to src/eplb/registry.ts');
    const balancer = argv.balancer ? getBalancer(argv.balancer) : defaultBalancer();
    const options: SimulateOptions = {
      trace,
      ...(argv.window !== undefined ? { window: argv.window } : {}),
      balancer,
      shape,
      policy: argv.policy,
      tokens: argv.tokens,
      ...(argv['top-k'] !== undefined ? { topK: argv['top-k'] } : {}),
      groupLimited: argv['group-limited'],
      seed: argv.seed,
      compareCpu: argv['compare-cpu'],
      ...(argv.json ? {} : { log: note }),
    };
    checkSimulateOptions(options); // before a device is taken
    const report = await withGpu({ adapter: argv.adapter }, (gpu) => simulateRouting(gpu, options));
    if (argv.json) printJson(report);
    else printReport(report);
    // The report is out either way; a disagreement of the kernel with its reference is a failure.
    if (report.performance.cpu && !report.performance.cpu.agree) setExitCode(1);
  },
};

const f = (x: number, d = 0) =>
  x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

function printReport(r: SimulateReport): void {
  const groups = r.top_k_groups !== null ? `, group-limited ${r.top_k_groups}/${r.shape.groups}` : '';
  say(
    `${r.trace}: window ${r.window} (placed on ${r.placed_on_window}), ${r.tokens} tokens, top-${r.top_k}${groups}, policy ${r.policy}, seed ${r.seed}`,
  );
  const a = r.placement;
  const b = r.none;
  const rows = [
    ['', r.balancer, 'none'],
    ['max tokens/GPU/layer', f(a.max_tokens_per_gpu), f(b.max_tokens_per_gpu)],
    ['mean tokens/GPU/layer', f(a.mean_tokens_per_gpu), f(b.mean_tokens_per_gpu)],
    ['token balancedness', f(a.token_balancedness, 4), f(b.token_balancedness, 4)],
    ['cross-node share', f(a.cross_node_share, 4), f(b.cross_node_share, 4)],
    ['modelled MoE ms', f(a.modelled_us / 1e3, 3), f(b.modelled_us / 1e3, 3)],
    ['  compute ms', f(a.compute_us / 1e3, 3), f(b.compute_us / 1e3, 3)],
    ['  all-to-all ms', f(a.transfer_us / 1e3, 3), f(b.transfer_us / 1e3, 3)],
  ];
  for (const line of formatTable(rows, { indent: '  ' })) say(line);
  say(`  modelled speed-up over none: ${f(r.modelled_speedup_over_none, 3)}×`);
  const p = r.performance;
  const gpuPart =
    p.gpu_ms !== null
      ? `GPU ${f(p.gpu_ms, 1)} ms (${f(p.routed_per_second_gpu! / 1e6, 1)} M routed/s), `
      : '';
  say(
    `  ${f(p.routed)} routed token-experts on ${r.device}: ${gpuPart}wall ${f(p.wall_ms, 1)} ms (${f(p.routed_per_second_wall / 1e6, 1)} M/s)`,
  );
  if (p.cpu) {
    const byGpu = p.cpu.speedup_gpu !== null ? `, ${f(p.cpu.speedup_gpu, 2)}× by GPU time` : '';
    say(
      `  TS reference: wall ${f(p.cpu.wall_ms, 1)} ms (${f(p.cpu.routed_per_second / 1e6, 1)} M/s); speed ratio (TS time / GPU time): ${f(p.cpu.speedup_wall, 2)}× by wall${byGpu}; counts agree: ${p.cpu.agree ? 'yes' : `NO (first at ${p.cpu.first_difference})`}`,
    );
  }
}
