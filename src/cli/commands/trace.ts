import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { CALIBRATED_TEMPORAL_PARAMS, generateCalibratedSeries } from '../../trace/calibrated.js';
import { calibrationTable, type TraceStatistics, traceStatistics } from '../../trace/calibration.js';
import { describeTrace } from '../../trace/describe.js';
import { writeTrace } from '../../trace/io.js';
import { listBundledTraces, loadTrace, nameFromFile } from '../../trace/load.js';
import { defaultAnchorNames, generateTrace } from '../../trace/synthetic.js';
import { fitTemporalParams } from '../../trace/temporal-fit.js';
import { temporalCalibration, temporalCalibrationTable } from '../../trace/temporal-report.js';
import { TRACE_NAME_PATTERN } from '../../trace/trace.js';
import { check } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { formatTable } from '../../util/table.js';
import { type DeploymentArgs, deploymentOf, withDeployment } from '../deployment.js';
import { say } from '../io.js';
import { printJson, withJson } from '../options.js';

interface InfoArgs {
  trace: string;
  json: boolean;
}
interface GenArgs {
  out?: string;
  generator: 'v1' | 'v2';
  layers: number;
  experts: number;
  groups: number;
  'top-k': number;
  seed: number;
  windows: number;
  'steps-per-window': number;
  'tokens-per-step': number;
  name?: string;
  report: boolean | string;
  json: boolean;
}
interface ImportArgs {
  file: string;
  out: string;
  name?: string;
  source?: string;
  attribution?: string;
  json: boolean;
}

const info: CommandModule<object, InfoArgs> = {
  command: 'info <trace>',
  describe: 'Shape, provenance, total load and per-layer skew of a trace (bundled name or file)',
  builder: (y) =>
    withJson(y).positional('trace', {
      type: 'string',
      demandOption: true,
      describe: `a bundled trace (${listBundledTraces().join(', ') || 'none'}) or a file loadTrace reads`,
    }) as Argv<InfoArgs>,
  handler: (argv) => {
    const d = describeTrace(loadTrace(argv.trace));
    if (argv.json) return printJson(d);
    const plural = d.steps === 1 ? '' : 's';
    const unit =
      d.granularity === 'window'
        ? `window${plural} of ${d.stepsPerWindow} steps`
        : `${d.granularity}${plural}`;
    say(`${d.name}  (${d.path})`);
    say(
      `  ${d.model}: ${d.layers} layers × ${d.experts} experts, ${d.groups} groups, top-${d.topK}, top-${d.topKGroups} groups`,
    );
    say(
      `  ${d.steps} ${unit}; total load ${d.totalLoad.toLocaleString('en-US')} (${Math.round(d.meanLoadPerStep).toLocaleString('en-US')} per ${d.granularity})`,
    );
    say(`  source: ${d.source}`);
    if (d.attribution) say(`  attribution: ${d.attribution}`);
    say('  per-layer skew (mean / median / p10 / p90 over steps × layers):');
    const skew = Object.entries(d.skew).map(([key, s]) => [
      key,
      [s.mean, s.median, s.p10, s.p90].map((x) => x.toFixed(3)).join(' / '),
    ]);
    for (const line of formatTable(skew, { indent: '    ', align: ['left'] })) say(line);
  },
};

const gen: CommandModule<object, GenArgs> = {
  command: 'gen',
  describe: 'Generate a synthetic window-granularity trace calibrated on the bundled real snapshots',
  builder: (y) =>
    withJson(y)
      .option('out', { type: 'string', describe: 'folder, or <name>.json path, to write the trace to' })
      .option('generator', {
        choices: ['v1', 'v2'] as const,
        default: 'v2' as const,
        describe:
          'v2: requests with temporal dynamics fitted on a real per-step series (src/trace/calibrated.ts); v1: the older snapshot-calibrated windows',
      })
      .option('layers', { type: 'number', default: 58, describe: 'v2: MoE layers' })
      .option('experts', { type: 'number', default: 256, describe: 'v2: routed experts per layer' })
      .option('groups', { type: 'number', default: 8, describe: 'v2: expert groups' })
      .option('top-k', { type: 'number', default: 8, describe: 'v2: experts per token' })
      .option('seed', { type: 'number', default: 1, describe: 'random seed (same seed → identical bytes)' })
      .option('windows', { type: 'number', default: 16, describe: 'number of windows' })
      .option('steps-per-window', {
        type: 'number',
        default: 100,
        describe: 'serving steps summed per window',
      })
      .option('tokens-per-step', {
        type: 'number',
        default: 4096,
        describe: 'v1: tokens per serving step (v2 draws them from the fitted distribution)',
      })
      .option('name', { type: 'string', describe: 'trace name (default: from --out, else "synthetic")' })
      .option('report', {
        describe:
          'print the calibration table, real snapshots vs the generated trace (or write it to the given .md file)',
      }) as unknown as Argv<GenArgs>,
  handler: (argv) => {
    check(argv.out !== undefined || argv.report, 'give --out DIR|FILE, --report, or both');
    const name =
      argv.name ?? (argv.out && extname(argv.out) === '.json' ? nameFromFile(argv.out) : 'synthetic');
    check(TRACE_NAME_PATTERN.test(name), `--name must be letters, digits, '.', '_' or '-', got '${name}'`);
    const trace =
      argv.generator === 'v1'
        ? generateTrace({
            name,
            seed: argv.seed,
            windows: argv.windows,
            stepsPerWindow: argv['steps-per-window'],
            tokensPerStep: argv['tokens-per-step'],
          })
        : generateCalibratedSeries({
            name,
            seed: argv.seed,
            windows: argv.windows,
            stepsPerWindow: argv['steps-per-window'],
            layers: argv.layers,
            experts: argv.experts,
            groups: argv.groups,
            topK: argv['top-k'],
          });
    const written = argv.out ? writeTrace(trace, argv.out) : undefined;
    let report: { real: TraceStatistics; generated: TraceStatistics; table: string } | undefined;
    if (argv.report) {
      const real = traceStatistics(defaultAnchorNames().map((n) => loadTrace(n)));
      const generated = traceStatistics([trace]);
      report = { real, generated, table: calibrationTable(real, generated) };
      if (typeof argv.report === 'string' && argv.report.length > 0)
        writeFileAtomic(argv.report, `${report.table}\n`);
    }
    if (argv.json) return printJson({ written, manifest: trace.manifest, report });
    if (written)
      say(`wrote ${written} (${trace.manifest.steps} windows, ${trace.loads.byteLength} bytes of loads)`);
    if (report) say(report.table);
  },
};

interface FitArgs extends DeploymentArgs {
  trace: string;
  tokens?: string;
  compare: number;
  'window-sizes': string;
  json: boolean;
}

const fit: CommandModule<object, FitArgs> = {
  command: 'fit <trace>',
  describe:
    'Fit the generator-v2 parameters on a real per-step series; with --compare N, real vs N generated series (temporal calibration)',
  builder: (y) =>
    withDeployment(withJson(y), {
      context: 'Balancedness rows:',
      keys: ['replicas', 'gpus', 'nodes'],
      // DeepSeek-V2-Lite's 64 experts on one 8-GPU node, the model of the per-step series.
      defaults: { replicas: 80, gpus: 8, nodes: 1 },
    })
      .positional('trace', {
        type: 'string',
        demandOption: true,
        describe: 'a per-step trace (one step per request)',
      })
      .option('tokens', { type: 'string', describe: 'JSON array of tokens per step (default: hits / topK)' })
      .option('compare', {
        type: 'number',
        default: 0,
        describe: 'seeds of generated series to compare with',
      })
      .option('window-sizes', {
        type: 'string',
        default: '50,100,200',
        describe: 'steps per window, comma-separated',
      }) as Argv<FitArgs>,
  handler: async (argv) => {
    const trace = loadTrace(argv.trace);
    let tokensPerStep: number[] | undefined;
    if (argv.tokens) {
      try {
        tokensPerStep = JSON.parse(readFileSync(argv.tokens, 'utf8'));
      } catch (error) {
        check(false, `${argv.tokens}: not readable JSON (${(error as Error).message.split('\n')[0]})`);
      }
      check(
        Array.isArray(tokensPerStep) && tokensPerStep.every((n) => typeof n === 'number'),
        `${argv.tokens}: expected a JSON array of numbers`,
      );
    }
    const result = fitTemporalParams(trace, tokensPerStep ? { tokensPerStep } : {});
    check(Number.isInteger(argv.compare) && argv.compare >= 0, '--compare must be an integer ≥ 0');
    const windowSizes = argv['window-sizes'].split(',').map(Number);
    check(
      windowSizes.every((w) => Number.isInteger(w) && w >= 1),
      '--window-sizes must be positive integers',
    );
    const rows = argv.compare
      ? await temporalCalibration(trace, result.params, deploymentOf(argv), {
          seeds: Array.from({ length: argv.compare }, (_, i) => i + 1),
          windowSizes,
        })
      : undefined;
    if (argv.json) return printJson({ ...result, bundled: CALIBRATED_TEMPORAL_PARAMS, calibration: rows });
    say(`fit on ${trace.manifest.name}: ${result.steps} steps, ${result.tokens} tokens`);
    const params = Object.entries(result.params).map(([k, v]) => [
      k,
      String(v),
      `(bundled: ${CALIBRATED_TEMPORAL_PARAMS[k as keyof typeof CALIBRATED_TEMPORAL_PARAMS]})`,
    ]);
    for (const line of formatTable(params, { indent: '  ', align: ['left'] })) say(line);
    say('  autocovariance of relative share deviations (lags in steps): value / fitted');
    const lags = result.autocovariance.map((b) => [
      `${b.from}-${b.to}`,
      `${b.value.toFixed(5)} / ${b.fitted.toFixed(5)}`,
    ]);
    for (const line of formatTable(lags, { indent: '    ', align: ['left'] })) say(line);
    if (rows) say(`\n${temporalCalibrationTable(rows)}`);
  },
};

const importCmd: CommandModule<object, ImportArgs> = {
  command: 'import <file>',
  describe:
    'Convert a trace (SGLang snapshot, expert-load.json, plain [layers][experts] array) to the adrs format',
  builder: (y) =>
    withJson(y)
      .positional('file', { type: 'string', demandOption: true, describe: 'any file loadTrace reads' })
      .option('out', { type: 'string', demandOption: true, describe: 'folder, or <name>.json path' })
      .option('name', { type: 'string', describe: 'trace name (default: from the file name)' })
      .option('source', { type: 'string', describe: "text for the manifest's source field" })
      .option('attribution', {
        type: 'string',
        describe: 'credit and licence of the data',
      }) as Argv<ImportArgs>,
  handler: (argv) => {
    const name =
      argv.name ?? (extname(argv.out) === '.json' ? nameFromFile(argv.out) : nameFromFile(argv.file));
    check(TRACE_NAME_PATTERN.test(name), `--name must be letters, digits, '.', '_' or '-', got '${name}'`);
    const trace = loadTrace(argv.file, { name });
    const manifest = {
      ...trace.manifest,
      name,
      ...(argv.source !== undefined ? { source: argv.source } : {}),
      ...(argv.attribution !== undefined ? { attribution: argv.attribution } : {}),
    };
    const written = writeTrace({ manifest, loads: trace.loads }, argv.out);
    if (argv.json) return printJson({ written, manifest });
    say(
      `wrote ${written}: ${manifest.steps} ${manifest.granularity}(s) of ${manifest.layers}×${manifest.experts}`,
    );
  },
};

const list: CommandModule<object, { json: boolean }> = {
  command: 'list',
  describe: 'List the bundled traces',
  builder: (y) => withJson(y),
  handler: (argv) => {
    const names = listBundledTraces();
    if (argv.json) return printJson({ traces: names });
    for (const n of names) say(n);
  },
};

export const traceCommand: CommandModule<object, object> = {
  command: 'trace <command>',
  describe: 'Inspect, import and generate expert-load traces',
  builder: (y) =>
    y
      .command(info)
      .command(gen)
      .command(fit)
      .command(importCmd)
      .command(list)
      .demandCommand(1, 'name a trace command: info, gen, fit, import or list'),
  handler: () => {},
};
