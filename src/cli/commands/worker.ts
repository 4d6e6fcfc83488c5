import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { BROKER_URL_ENV, parseBrokerUrl, resolveBrokerUrl } from '../../distributed/broker-url.js';
import { checkBroker } from '../../distributed/connection.js';
import { DEFAULT_QUEUE } from '../../distributed/run-evaluator.js';
import { DEFAULT_TIMING } from '../../distributed/timing.js';
import { startWorkerLoop } from '../../distributed/worker-loop.js';
import { acquireGpu } from '../../gpu/device.js';
import { UserError } from '../../util/errors.js';
import { cliIo } from '../io.js';

interface WorkerArgs {
  broker?: string;
  workers: number;
  adapter?: string;
  queue: string;
  'evaluator-module'?: string;
  'lock-s': number;
  'stall-check-s': number;
  'max-tries': number;
  'trace-dir': string[];
}

export const workerCommand: CommandModule<object, WorkerArgs> = {
  command: 'worker',
  describe:
    'Evaluate candidates from a broker queue on this machine (for `adrs evolve --broker` / `adrs eval --broker`)',
  builder: (y) =>
    y
      .option('broker', {
        type: 'string',
        describe: `Redis broker, redis://[:PASSWORD@]HOST:PORT or rediss:// for TLS (default: $${BROKER_URL_ENV})`,
      })
      .option('workers', { type: 'number', default: 1, describe: 'Evaluations at once on this machine' })
      .option('adapter', {
        type: 'string',
        describe:
          'GPU adapter (substring of its name, as in `adrs devices`); default ADRS_ADAPTER, then Dawn’s choice',
      })
      .option('queue', {
        type: 'string',
        default: DEFAULT_QUEUE,
        describe: 'Queue to take jobs from: one per GPU model, so a run compares times from one model',
      })
      .option('evaluator-module', {
        type: 'string',
        describe:
          'A plug-in evaluator module (as evaluator.module in an evolve config) instead of the GPU pool',
      })
      .option('trace-dir', {
        type: 'string',
        array: true,
        default: ['.'],
        describe:
          'Folders where trace files named by jobs are looked up by file name (bundled traces are always found); each is checked against the controller’s sha256',
      })
      .option('lock-s', {
        type: 'number',
        default: DEFAULT_TIMING.lockMs / 1000,
        describe:
          "A job's lock, renewed while this worker lives: a dead worker's job returns to the queue after about this long",
      })
      .option('stall-check-s', {
        type: 'number',
        default: DEFAULT_TIMING.stalledIntervalMs / 1000,
        describe: 'How often lapsed locks are looked for',
      })
      .option('max-tries', {
        type: 'number',
        default: DEFAULT_TIMING.maxTries,
        describe:
          'Workers a candidate may take down with it before it is invalid (with an artifact saying so)',
      })
      .example('ADRS_BROKER_URL=redis://:PASSWORD@10.0.0.5:6379 $0 worker --workers 2', '')
      .example('$0 worker --broker rediss://:PASSWORD@broker.internal:6380 --queue h100', ''),
  handler: async (argv) => {
    const url = resolveBrokerUrl(argv.broker, null);
    if (!url) throw new UserError(`no broker: give --broker redis://HOST:PORT or set ${BROKER_URL_ENV}`);
    const address = parseBrokerUrl(url);
    const int = (v: number, flag: string, min: number) => {
      if (!Number.isInteger(v) || v < min)
        throw new UserError(`${flag} must be an integer ≥ ${min}, got ${v}`);
      return v;
    };
    const pos = (v: number, flag: string) => {
      if (!(v > 0)) throw new UserError(`${flag} must be a number of seconds > 0, got ${v}`);
      return v;
    };
    const timing = {
      lockMs: pos(argv['lock-s'], '--lock-s') * 1000,
      stalledIntervalMs: pos(argv['stall-check-s'], '--stall-check-s') * 1000,
      maxTries: int(argv['max-tries'], '--max-tries', 1),
    };
    const workers = int(argv.workers, '--workers', 1);
    const module = argv['evaluator-module'] ? resolve(argv['evaluator-module']) : null;
    await checkBroker(address);
    // The adapter this machine's verdicts are timed on, said up front and carried by every result.
    let adapter: string;
    if (module) adapter = argv.adapter ?? 'unspecified (plug-in evaluator)';
    else {
      const gpu = await acquireGpu(argv.adapter !== undefined ? { adapter: argv.adapter } : {});
      adapter = gpu.info.name;
      gpu.destroy();
    }
    // The io taken once: the signal listeners below (and the queue client's events) may run outside
    // this run's context, where cliIo() is the process's.
    const io = cliIo();
    const log = (line: string) => io.stderr(`${new Date().toISOString()} ${line}\n`);
    const running = await startWorkerLoop({
      address,
      queue: argv.queue,
      workers,
      adapter,
      module,
      timing,
      traceDirs: argv['trace-dir'].map((d) => resolve(d)),
      log,
    });
    log(
      `adrs worker ${running.name}: adapter ${adapter}; queue '${argv.queue}' at ${address.display}; ${workers} at once; ` +
        'Ctrl-C finishes the jobs in hand (twice: hands them back)',
    );
    await new Promise<void>((done) => {
      let stops = 0;
      const stop = (): void => {
        stops++;
        const force = stops > 1;
        log(
          force
            ? 'handing back the jobs in hand: other workers take them once their locks lapse'
            : 'stopping: finishing the jobs in hand (Ctrl-C again to hand them back)',
        );
        // Handing back: leave now; the jobs' locks lapse and the broker gives them to other workers
        // (BullMQ's close would still wait for the evaluations in hand).
        if (force) process.exit(130);
        running.close().then(done, (error: Error) => {
          log(`close failed: ${error.message}`);
          done();
        });
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    log('stopped');
  },
};
