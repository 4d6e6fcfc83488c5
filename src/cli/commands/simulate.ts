import type { CommandModule } from 'yargs';
import type { Balancer } from '../../eplb/balancer.js';
import { validatePlacement } from '../../eplb/placement.js';
import { defaultBalancer, getBalancer, listBalancers } from '../../eplb/registry.js';
import { type Shape, validateShape } from '../../eplb/shape.js';
import { adapterLabel } from '../../gpu/adapter-info.js';
import { type GpuContext, withGpu } from '../../gpu/device.js';
import { routeReference } from '../../sim/route-reference.js';
import { RouteSimulator } from '../../sim/route-sim.js';
import {
  ROUTE_POLICIES,
  type RouteInput,
  type RoutePolicy,
  type RouteResult,
} from '../../sim/route-types.js';
import { loadTrace, selectWindow } from '../../trace/load.js';
import { windowLoads } from '../../trace/windows.js';
import { assert, check } from '../../util/errors.js';
import { formatTable } from '../../util/table.js';
import { cliIo, say } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';

interface SimulateArgs {
  trace: string;
  window?: number;
  balancer?: string;
  policy: RoutePolicy;
  tokens: number;
  'top-k'?: number;
  'group-limited': boolean;
  seed: number;
  replicas: number;
  gpus: number;
  nodes: number;
  'compare-cpu': boolean;
  json: boolean;
  adapter?: string;
}

/** Token-level figures of one simulated placement. */
export interface RouteSummary {
  /** Σ_l max_g tokens / Σ_l mean_g tokens per layer: what the slowest GPU serves, per layer on average. */
  maxTokensPerGpu: number;
  meanTokensPerGpu: number;
  /** Σ_l mean / Σ_l max over GPUs of routed token-experts (1 = perfectly even), as GPU balancedness. */
  tokenBalancedness: number;
  /** Share of routed token-experts whose replica is on another node than their source GPU. */
  crossNodeShare: number;
  /** Modelled MoE time of one forward over all layers, in µs, and its parts. */
  modelledUs: number;
  computeUs: number;
  transferUs: number;
}

export function summarizeRoute(shape: Shape, r: RouteResult): RouteSummary {
  const { layers: L, gpus: P } = shape;
  let sumMax = 0;
  let sumMean = 0;
  let cross = 0;
  let compute = 0;
  let transfer = 0;
  for (let l = 0; l < L; l++) {
    let max = 0;
    let total = 0;
    for (let g = 0; g < P; g++) {
      const v = r.tokensPerGpu[l * P + g]!;
      total += v;
      if (v > max) max = v;
    }
    sumMax += max;
    sumMean += total / P;
    cross += r.crossNode[l]!;
    compute += r.computeUs[l]!;
    transfer += r.dispatchUs[l]! + r.combineUs[l]!;
  }
  return {
    maxTokensPerGpu: sumMax / L,
    meanTokensPerGpu: sumMean / L,
    tokenBalancedness: sumMax > 0 ? sumMean / sumMax : 1,
    crossNodeShare: r.routed > 0 ? cross / r.routed : 0,
    modelledUs: r.totalTimeUs,
    computeUs: compute,
    transferUs: transfer,
  };
}

/** Runs a balancer once on `loads` and validates its placement (the harness validates, never the balancer). */
async function place(balancer: Balancer, shape: Shape, gpu: GpuContext, seed: number, loads: Float32Array) {
  const prepared = await balancer.prepare(shape, { gpu, seed });
  try {
    const placement = await prepared.rebalance(loads);
    validatePlacement(placement);
    return placement;
  } finally {
    prepared.dispose?.();
  }
}

const throughput = (routed: number, ms: number): number => (ms > 0 ? routed / (ms / 1e3) : Number.NaN);

export const simulateCommand: CommandModule<object, SimulateArgs> = {
  command: 'simulate',
  describe:
    "Token-level MoE routing on the GPU: place with a balancer on window K−1, route window K's tokens, model layer time",
  builder: (y) =>
    withAdapter(withJson(y))
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
      .option('replicas', { type: 'number', default: 288, describe: 'Physical expert slots R' })
      .option('gpus', { type: 'number', default: 32, describe: 'GPUs P' })
      .option('nodes', { type: 'number', default: 4, describe: 'Nodes N' })
      .option('compare-cpu', {
        type: 'boolean',
        default: false,
        describe:
          'Also run the TypeScript reference on the same input: its throughput, the speed ratio, agreement',
      }),
  handler: async (argv) => {
    check(
      Number.isInteger(argv.tokens) && argv.tokens >= 1,
      `--tokens must be a positive integer, got ${argv.tokens}`,
    );
    const trace = loadTrace(argv.trace);
    const m = trace.manifest;
    const selected = selectWindow(trace, argv.window);
    const tw = selected.windows;
    const simulatedWindow = selected.window;
    const placedOn = simulatedWindow === 0 ? 0 : simulatedWindow - 1;
    const shape: Shape = {
      layers: m.layers,
      experts: m.experts,
      groups: m.groups,
      replicas: argv.replicas,
      gpus: argv.gpus,
      nodes: argv.nodes,
    };
    validateShape(shape);
    check(listBalancers().length > 0, 'no balancer is registered: add one to src/eplb/registry.ts');
    const balancer = argv.balancer ? getBalancer(argv.balancer) : defaultBalancer();
    const topK = argv['top-k'] ?? m.topK;
    const base = {
      loads: windowLoads(tw, simulatedWindow),
      tokens: argv.tokens,
      topK,
      policy: argv.policy,
      seed: argv.seed,
      ...(argv['group-limited'] ? { topKGroups: m.topKGroups } : {}),
    };
    const log = (line: string) => {
      if (!argv.json) cliIo().stderr(`${line}\n`);
    };

    await withGpu({ adapter: argv.adapter }, async (gpu: GpuContext) => {
      const history = windowLoads(tw, placedOn);
      const placement = await place(balancer, shape, gpu, argv.seed, history);
      const baseline = await place(getBalancer('none'), shape, gpu, argv.seed, history);
      const sim = await RouteSimulator.create(gpu, shape, { maxTokens: argv.tokens });
      try {
        log(`routing ${argv.tokens} tokens × top-${topK} × ${m.layers} layers on ${adapterLabel(gpu.info)}…`);
        // The baseline runs first and doubles as the warm-up of the timed balancer run.
        const noneInput: RouteInput = { ...base, placement: baseline };
        const none = await sim.run(noneInput);
        const input: RouteInput = { ...base, placement };
        const result = await sim.run(input);
        let cpu: { result: RouteResult; agree: boolean } | undefined;
        if (argv['compare-cpu']) {
          log('running the TypeScript reference on the same input…');
          const ref = routeReference(input);
          cpu = { result: ref, agree: sameCounters(ref.counters, result.counters) };
          assert(cpu.agree, 'the GPU and the TypeScript reference disagree on the routing counts');
        }
        report(argv, {
          trace: m.name,
          window: simulatedWindow,
          placedOn,
          balancer: balancer.name,
          shape,
          topK,
          topKGroups: base.topKGroups,
          device: gpu.info.name,
          balanced: summarizeRoute(shape, result),
          none: summarizeRoute(shape, none),
          result,
          cpu,
        });
      } finally {
        sim.destroy();
      }
    });
  },
};

function sameCounters(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Report {
  trace: string;
  window: number;
  placedOn: number;
  balancer: string;
  shape: Shape;
  topK: number;
  topKGroups: number | undefined;
  device: string;
  balanced: RouteSummary;
  none: RouteSummary;
  result: RouteResult;
  cpu: { result: RouteResult; agree: boolean } | undefined;
}

function report(argv: SimulateArgs, r: Report): void {
  const routed = r.result.routed;
  const gpuMs = r.result.gpuMs;
  const perf = {
    routed,
    gpuMs: gpuMs ?? null,
    wallMs: r.result.wallMs,
    routedPerSecondGpu: gpuMs !== undefined ? throughput(routed, gpuMs) : null,
    routedPerSecondWall: throughput(routed, r.result.wallMs),
    cpu: r.cpu
      ? {
          wallMs: r.cpu.result.wallMs,
          routedPerSecond: throughput(routed, r.cpu.result.wallMs),
          speedupWall: r.cpu.result.wallMs / r.result.wallMs,
          speedupGpu: gpuMs !== undefined ? r.cpu.result.wallMs / gpuMs : null,
          agree: r.cpu.agree,
        }
      : null,
  };
  const speedup = r.balanced.modelledUs > 0 ? r.none.modelledUs / r.balanced.modelledUs : Number.NaN;
  if (argv.json) {
    printJson({
      trace: r.trace,
      window: r.window,
      placedOnWindow: r.placedOn,
      balancer: r.balancer,
      policy: argv.policy,
      tokens: argv.tokens,
      topK: r.topK,
      topKGroups: r.topKGroups ?? null,
      seed: argv.seed,
      shape: r.shape,
      device: r.device,
      placement: r.balanced,
      none: r.none,
      modelledSpeedupOverNone: speedup,
      perLayer: {
        layerTimeUs: Array.from(r.result.layerTimeUs),
        crossNode: Array.from(r.result.crossNode),
        tokensPerGpu: Array.from({ length: r.shape.layers }, (_, l) =>
          Array.from(r.result.tokensPerGpu.subarray(l * r.shape.gpus, (l + 1) * r.shape.gpus)),
        ),
      },
      performance: perf,
    });
    return;
  }
  const f = (x: number, d = 0) =>
    x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const groups = r.topKGroups !== undefined ? `, group-limited ${r.topKGroups}/${r.shape.groups}` : '';
  say(
    `${r.trace}: window ${r.window} (placed on ${r.placedOn}), ${argv.tokens} tokens, top-${r.topK}${groups}, policy ${argv.policy}, seed ${argv.seed}`,
  );
  const rows = [
    ['', r.balancer, 'none'],
    ['max tokens/GPU/layer', f(r.balanced.maxTokensPerGpu), f(r.none.maxTokensPerGpu)],
    ['mean tokens/GPU/layer', f(r.balanced.meanTokensPerGpu), f(r.none.meanTokensPerGpu)],
    ['token balancedness', f(r.balanced.tokenBalancedness, 4), f(r.none.tokenBalancedness, 4)],
    ['cross-node share', f(r.balanced.crossNodeShare, 4), f(r.none.crossNodeShare, 4)],
    ['modelled MoE ms', f(r.balanced.modelledUs / 1e3, 3), f(r.none.modelledUs / 1e3, 3)],
    ['  compute ms', f(r.balanced.computeUs / 1e3, 3), f(r.none.computeUs / 1e3, 3)],
    ['  all-to-all ms', f(r.balanced.transferUs / 1e3, 3), f(r.none.transferUs / 1e3, 3)],
  ];
  for (const line of formatTable(rows, { indent: '  ' })) say(line);
  say(`  modelled speed-up over none: ${f(speedup, 3)}×`);
  const gpuPart =
    gpuMs !== undefined ? `GPU ${f(gpuMs, 1)} ms (${f(perf.routedPerSecondGpu! / 1e6, 1)} M routed/s), ` : '';
  say(
    `  ${f(routed)} routed token-experts on ${r.device}: ${gpuPart}wall ${f(r.result.wallMs, 1)} ms (${f(perf.routedPerSecondWall / 1e6, 1)} M/s)`,
  );
  if (perf.cpu) {
    const byGpu = perf.cpu.speedupGpu !== null ? `, ${f(perf.cpu.speedupGpu, 2)}× by GPU time` : '';
    say(
      `  TS reference: wall ${f(perf.cpu.wallMs, 1)} ms (${f(perf.cpu.routedPerSecond / 1e6, 1)} M/s); speed ratio (TS time / GPU time): ${f(perf.cpu.speedupWall, 2)}× by wall${byGpu}; counts agree: ${perf.cpu.agree ? 'yes' : 'NO'}`,
    );
  }
}
