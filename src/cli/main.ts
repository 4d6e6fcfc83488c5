import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { reportAndExit } from './report-error.js';

const verbose = process.argv.includes('--verbose');

// `adrs … | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName('adrs')
    .usage(
      '$0 <command> [options]\n\nEvolve and evaluate Mixture-of-Experts load balancers (EPLB) on the GPU.',
    )
    .option('verbose', { type: 'boolean', describe: 'Show stack traces on errors', global: true })
    .strict()
    .demandCommand(1, 'name a command; `adrs --help` lists them')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, error) => {
      // yargs validation messages are user errors; thrown errors are handled below.
      if (error) throw error;
      throw new UsageError(message);
    });
  for (const command of commands) cli = cli.command(command);
  await cli.help().version().parseAsync();
}

class UsageError extends Error {
  override name = 'UserError';
}

main().then(
  () => {
    // Dawn's native threads can keep the loop alive briefly after the last device is destroyed.
    process.exitCode ??= 0;
  },
  (error: unknown) => reportAndExit(error, verbose),
);
