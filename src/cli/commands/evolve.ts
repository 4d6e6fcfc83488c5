import type { CommandModule } from 'yargs';
import { CONFIG_FLAGS, type ConfigOverrides, resumeFlagsText } from '../../evolve/config.js';
import type { Activity, Progress } from '../../evolve/controller.js';
import { activityText, progressLine, statusHead, summaryText } from '../../evolve/progress.js';
import { runSession } from '../../evolve/session.js';
import { type Dashboard, serveRun } from '../../report/serve.js';
import { cliIo, say, setExitCode } from '../io.js';
import { printJson, servePort, withJson } from '../options.js';
import { tickingLine } from '../progress.js';

/** The session's own flags; the config keys' flags (--seed, --model, …) come from CONFIG_FLAGS. */
interface EvolveArgs {
  config?: string;
  out?: string;
  resume?: string;
  replay?: string;
  json: boolean;
  quiet?: boolean;
  broker?: string;
  serve?: number | boolean;
  [flag: string]: unknown;
}

/** The config overrides the command line gave (flags win over the file). */
export function configOverrides(argv: Record<string, unknown>): ConfigOverrides {
  const out: Record<string, unknown> = {};
  for (const f of CONFIG_FLAGS) if (argv[f.name] !== undefined) out[f.key] = argv[f.name];
  return out as ConfigOverrides;
}

export const evolveCommand: CommandModule<object, EvolveArgs> = {
  command: 'evolve',
  describe: 'Evolve a candidate (host TypeScript + WGSL) with an LLM; resumable, replayable, within budget',
  builder: (y) =>
    CONFIG_FLAGS.reduce((yy, f) => yy.option(f.name, { type: f.type, describe: f.describe }), withJson(y))
      .option('config', {
        type: 'string',
        describe: 'Run config (YAML or JSON), e.g. examples/eplb/evolve.yaml',
      })
      .option('out', { type: 'string', describe: 'Run folder (default runs/evolve-<time>)' })
      .option('resume', {
        type: 'string',
        describe: `Continue the run in this folder where it stopped (kill -9 included); only ${resumeFlagsText()} may change with it (--iterations no fewer than already committed)`,
      })
      .option('replay', {
        type: 'string',
        describe: 'Re-run a run folder from its recorded responses, without a model',
      })
      .option('quiet', { type: 'boolean', describe: 'No progress line' })
      .option('broker', {
        type: 'string',
        describe:
          'Evaluate on `adrs worker` machines through this Redis broker, redis://[:PASSWORD@]HOST:PORT or rediss:// ("" or the config\'s evaluator.broker without url: $ADRS_BROKER_URL); a replay evaluates locally unless given',
      })
      .option('serve', {
        describe:
          'Also serve a live dashboard of the run on 127.0.0.1:PORT (no value: a free port), read-only, for as long as the run lasts',
      })
      .example(
        '$0 evolve --config examples/eplb/evolve.yaml --base-url http://localhost:8000/v1 --model qwen',
        '',
      )
      .example('$0 evolve --resume runs/evolve-2025-01-01-12-00-00', '')
      .example('$0 evolve --config examples/eplb/evolve.yaml --serve 8080', '') as never,
  handler: async (argv) => {
    const stopper = new AbortController();
    // Taken once: a signal listener may run outside this run's context (cliIo() there is the process's).
    const io = cliIo();
    let interrupts = 0;
    const onSigint = (): void => {
      interrupts++;
      if (interrupts > 1) process.exit(130);
      io.stderr('\nstopping: finishing the checkpoint (Ctrl-C again to quit at once; --resume continues)\n');
      stopper.abort();
    };
    process.on('SIGINT', onSigint);
    const tty = process.stderr.isTTY;
    const port = servePort(argv.serve as number | boolean | undefined);
    let dashboard: Dashboard | null = null;
    // The status line: the last committed iteration, then what each in-flight one waits for, and
    // for how long (redrawn every second on a terminal, so a slow model does not look like a hang).
    let last: Progress | null = null;
    let inflight: { list: Activity[]; at: number; seen: number } = { list: [], at: 0, seen: 0 };
    const show = !argv.quiet && !argv.json;
    const line = tickingLine(
      () => {
        const head = statusHead(last);
        const now = inflight.at + (performance.now() - inflight.seen);
        const waits = activityText(inflight.list, now);
        return waits ? `${head} | waiting: ${waits}` : head;
      },
      show && tty === true,
    );
    try {
      const result = await runSession({
        ...(argv.config !== undefined ? { configPath: argv.config } : {}),
        ...(argv.out !== undefined ? { out: argv.out } : {}),
        ...(argv.resume !== undefined ? { resume: argv.resume } : {}),
        ...(argv.replay !== undefined ? { replay: argv.replay } : {}),
        overrides: configOverrides(argv),
        signal: stopper.signal,
        ...(argv.broker !== undefined ? { broker: argv.broker } : {}),
        ...(port !== null
          ? {
              onFolder: async (dir: string) => {
                dashboard = await serveRun(dir, { port });
                io.stderr(`dashboard of ${dir} at ${dashboard.url} (read-only)\n`);
              },
            }
          : {}),
        ...(show
          ? {
              onProgress: (p: Progress) => {
                last = p;
                if (line.live) line.redraw();
                else io.stderr(`${progressLine(p)}\n`);
              },
              onActivity: (list: Activity[], now: number) => {
                inflight = { list, at: now, seen: performance.now() };
                if (line.live) line.redraw();
              },
            }
          : {}),
      });
      line.stop();
      if (argv.json) printJson(result);
      else say(summaryText(result));
      if (result.stats.replayMismatches && result.stats.replayMismatches.length > 0) setExitCode(1);
    } finally {
      line.stop();
      process.off('SIGINT', onSigint);
      await (dashboard as Dashboard | null)?.close();
    }
  },
};
