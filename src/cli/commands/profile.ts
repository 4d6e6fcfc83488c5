import type { CommandModule } from 'yargs';
import { adapterLabel } from '../../gpu/adapter-info.js';
import { withGpu } from '../../gpu/device.js';
import {
  findProfilableKernels,
  type KernelProfile,
  PROFILABLE_KERNELS,
  PROFILE_SIZES,
  type ProfileSize,
  profileKernel,
} from '../../sim/profile.js';
import { printJson, withAdapter, withJson } from '../options.js';

interface ProfileArgs {
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
  command: 'profile',
  describe:
    'Profile the GPU kernels: GPU time, dispatches, bytes moved, wall time, speed-up over the TS reference',
  builder: (y) =>
    withAdapter(withJson(y))
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
    const kernels = findProfilableKernels(argv.kernel);
    await withGpu({ adapter: argv.adapter }, async (gpu) => {
      const device = `${adapterLabel(gpu.info)}${gpu.hasTimestamps ? '' : ' (no timestamp queries: wall time only)'}`;
      if (!argv.json) console.log(`device: ${device}`);
      const profiles: KernelProfile[] = [];
      for (const kernel of kernels) {
        process.stderr.write(`profiling ${kernel.name} (${argv.size}, ${argv.repeat} runs)…\n`);
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
    p.gpuMs ? ms(p.gpuMs.median_ms) : '—',
    p.gpuMs ? ms(p.gpuMs.p95_ms) : '—',
    ms(p.wallMs.median_ms),
    ms(p.wallMs.p95_ms),
    bytes(p.bytes.uploaded),
    bytes(p.bytes.readBack),
    bytes(p.bytes.touchedEstimate),
    rate(p.perSecond.wall),
    p.reference ? rate(p.reference.perSecond) : '—',
    p.reference ? `${p.reference.wallSpeedup.toFixed(2)}×` : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  for (const p of profiles) {
    const resident = p.bytes.resident > 0 ? `; ${bytes(p.bytes.resident)} resident, uploaded once` : '';
    console.log(`  ${p.kernel}: ${p.workload}${resident}`);
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
