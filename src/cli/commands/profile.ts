import type { CommandModule } from 'yargs';
import { openCandidate } from '../../eval/sources.js';
import { adapterLabel } from '../../gpu/adapter-info.js';
import { type GpuContext, withGpu } from '../../gpu/device.js';
import {
  findProfilableKernels,
  type KernelProfile,
  PROFILABLE_KERNELS,
  PROFILE_SIZES,
  type ProfileSize,
  profileKernel,
} from '../../sim/profile.js';
import { type CandidateProfile, profileCandidate, type TimeStats } from '../../sim/profile-candidate.js';
import { loadTrace } from '../../trace/load.js';
import { check } from '../../util/errors.js';
import { formatTable, NO_VALUE } from '../../util/table.js';
import { type DeploymentArgs, historyOf, shapeOf, withDeployment } from '../deployment.js';
import { cliIo, say } from '../io.js';
import { printJson, withAdapter, withJson } from '../options.js';

/** The trace `adrs profile DIR` runs a candidate on by default (the evaluator's). */
const DEFAULT_CANDIDATE_TRACE = 'synthetic-v4-windows';

interface ProfileArgs extends DeploymentArgs {
  dir?: string;
  trace: string;
  windows?: number;
  passes: number;
  timestamps: boolean;
  kernel: string;
  size: ProfileSize;
  repeat: number;
  batch?: number;
  reference: boolean;
  seed: number;
  json: boolean;
  adapter?: string;
}

export const profileCommand: CommandModule<object, ProfileArgs> = {
  command: 'profile [dir]',
  describe:
    "Profile the project's GPU kernels (GPU time, dispatches, bytes moved, wall time, speed-up over the TS reference), or with DIR a candidate folder: per-call host, GPU-wait and GPU time and each ctx.dispatch kernel's GPU time",
  builder: (y) =>
    withDeployment(withAdapter(withJson(y)), {
      context: 'With DIR:',
      history: 'windows of history per call, the latest included',
    })
      .positional('dir', {
        type: 'string',
        describe:
          'A candidate folder (balancer.ts + kernels/*.wgsl) to profile; it runs in this process, outside the sandbox',
      })
      .option('trace', {
        type: 'string',
        default: DEFAULT_CANDIDATE_TRACE,
        describe: 'With DIR: the trace whose windows the candidate is called on, in time order',
      })
      .option('windows', {
        type: 'number',
        describe: 'With DIR: calls per pass (default: all windows but the last)',
      })
      .option('passes', {
        type: 'number',
        default: 3,
        describe: 'With DIR: passes over the windows, each with a fresh module instance and context',
      })
      .option('timestamps', {
        type: 'boolean',
        default: true,
        describe:
          'With DIR: time kernels with timestamp queries when the adapter has them (--no-timestamps: wall time around onSubmittedWorkDone)',
      })
      .option('kernel', {
        type: 'string',
        default: 'all',
        describe: `Kernel to profile: ${PROFILABLE_KERNELS.map((k) => k.name).join(', ')} or all`,
      })
      .option('size', {
        choices: PROFILE_SIZES,
        default: 'v3' as ProfileSize,
        describe: 'Workload size: small (toy shape), v3 (DeepSeek-V3 leaderboard shape), large',
      })
      .option('repeat', {
        type: 'number',
        default: 20,
        describe: 'Timed calls per kernel (after one warm-up)',
      })
      .option('batch', {
        type: 'number',
        describe:
          'Work items per call, overriding the size default (placement-eval: pairs; smoke: floats; route-sim: tokens; gpu-lpt: layers)',
      })
      .option('reference', {
        type: 'boolean',
        default: true,
        describe: 'Also time the plain TypeScript reference on the same inputs (--no-reference to skip)',
      })
      .option('seed', { type: 'number', default: 1, describe: 'Seed of the generated workload' }),
  handler: async (argv) => {
    if (argv.dir !== undefined) return profileCandidateCommand(argv);
    const kernels = findProfilableKernels(argv.kernel);
    await withGpu({ adapter: argv.adapter }, async (gpu) => {
      const device = `${adapterLabel(gpu.info)}${gpu.hasTimestamps ? '' : ' (no timestamp queries: wall time only)'}`;
      if (!argv.json) say(`device: ${device}`);
      const profiles: KernelProfile[] = [];
      for (const kernel of kernels) {
        cliIo().stderr(`profiling ${kernel.name} (${argv.size}, ${argv.repeat} runs)…\n`);
        profiles.push(
          await profileKernel(gpu, kernel, {
            size: argv.size,
            batch: argv.batch,
            seed: argv.seed,
            repeat: argv.repeat,
            reference: argv.reference,
          }),
        );
      }
      if (argv.json) printJson({ device: gpu.info, timestampQuery: gpu.hasTimestamps, profiles });
      else printTable(profiles);
    });
  },
};

async function profileCandidateCommand(argv: ProfileArgs): Promise<void> {
  const dir = argv.dir!;
  check(
    argv.kernel === 'all',
    "--kernel selects one of the project's own kernels; with a candidate folder every kernel it dispatches through ctx.dispatch is profiled",
  );
  openCandidate(dir).dispose();
  const trace = loadTrace(argv.trace);
  const m = trace.manifest;
  const shape = shapeOf(m, argv);
  await withGpu({ adapter: argv.adapter }, async (gpu: GpuContext) => {
    cliIo().stderr(
      `profiling ${dir} in this process, outside the sandbox (profile only code you trust): ${argv.passes} pass(es) over ${trace.manifest.name}…\n`,
    );
    const profile = await profileCandidate(gpu, dir, {
      trace,
      shape,
      history: historyOf(argv),
      passes: argv.passes,
      timestamps: argv.timestamps,
      ...(argv.windows !== undefined ? { windows: argv.windows } : {}),
    });
    if (argv.json) printJson({ device: gpu.info, timestampQuery: gpu.hasTimestamps, ...profile });
    else printCandidate(profile, adapterLabel(gpu.info));
  });
}

function printCandidate(p: CandidateProfile, device: string): void {
  const s = p.shape;
  say(
    `${p.candidate} on ${p.trace} (${s.layers}×${s.experts}, R=${s.replicas}, ${s.gpus} GPUs, ${s.nodes} nodes, ${s.groups} groups), ${device}`,
  );
  say('  ran in this process, outside the sandbox');
  say(
    `  ${p.calls} calls (${p.passes} pass(es), history ≤ ${p.history} windows), after a first call per pass of ${p.first_call_ms.map((t) => ms(t)).join(', ')} (warm-up: JIT, pipeline compilation)`,
  );
  say(`  kernel GPU time: ${p.timing}`);
  const row = (name: string, t: TimeStats | null) => [
    name,
    ...(t ? [t.mean_ms, t.median_ms, t.p95_ms].map(ms) : [NO_VALUE, NO_VALUE, NO_VALUE]),
  ];
  const rows = [
    ['per call', 'mean', 'median', 'p95'],
    row('total', p.per_call.total),
    row('host (JavaScript)', p.per_call.host),
    row('waiting for the GPU', p.per_call.gpu_wait),
    row('GPU (ctx.dispatch)', p.per_call.gpu),
  ];
  printRows(rows);
  if (p.kernels.length > 0) {
    printRows([
      ['kernel', 'disp/call', 'GPU mean', 'median', 'p95', 'of call'],
      ...p.kernels.map((k) => [
        k.kernel,
        k.dispatches_per_call.toFixed(1),
        ms(k.per_call.mean_ms),
        ms(k.per_call.median_ms),
        ms(k.per_call.p95_ms),
        `${(100 * k.share_of_call).toFixed(1)} %`,
      ]),
    ]);
  } else say('  no kernel ran through ctx.dispatch (GPU work done otherwise is not attributed)');
  say(
    `  GPU balancedness on the next window (first pass, no relabelling): ${p.balancedness_next.toFixed(4)}`,
  );
}

function printRows(rows: string[][]): void {
  for (const line of formatTable(rows, { indent: '  ' })) say(line);
}

function printTable(profiles: KernelProfile[]): void {
  const header = [
    'kernel',
    'items',
    'disp',
    'GPU med',
    'GPU p95',
    'wall med',
    'wall p95',
    'up',
    'down',
    'touched',
    'items/s (wall)',
    'TS ref items/s',
    'vs TS',
  ];
  const rows = profiles.map((p) => [
    p.kernel,
    `${p.items} ${p.unit}`,
    String(p.dispatches),
    p.gpuMs ? ms(p.gpuMs.median_ms) : NO_VALUE,
    p.gpuMs ? ms(p.gpuMs.p95_ms) : NO_VALUE,
    ms(p.wallMs.median_ms),
    ms(p.wallMs.p95_ms),
    bytes(p.bytes.uploaded),
    bytes(p.bytes.readBack),
    bytes(p.bytes.touchedEstimate),
    rate(p.perSecond.wall),
    p.reference ? rate(p.reference.perSecond) : NO_VALUE,
    p.reference ? `${p.reference.wallSpeedup.toFixed(2)}×` : NO_VALUE,
  ]);
  for (const line of formatTable([header, ...rows], { align: ['left', 'left', 'right'] })) say(line);
  for (const p of profiles) {
    const resident = p.bytes.resident > 0 ? `; ${bytes(p.bytes.resident)} resident, uploaded once` : '';
    say(`  ${p.kernel}: ${p.workload}${resident}`);
  }
}

const ms = (v: number): string =>
  v >= 100 ? `${v.toFixed(0)} ms` : v >= 1 ? `${v.toFixed(2)} ms` : `${(v * 1000).toFixed(0)} µs`;

function bytes(v: number): string {
  if (v >= 2 ** 30) return `${(v / 2 ** 30).toFixed(2)} GiB`;
  if (v >= 2 ** 20) return `${(v / 2 ** 20).toFixed(1)} MiB`;
  if (v >= 2 ** 10) return `${(v / 2 ** 10).toFixed(1)} KiB`;
  return `${v} B`;
}

function rate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(1);
}
