import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { closest, editDistance } from '../util/did-you-mean.js';
import { UserError } from '../util/errors.js';
import { setWarningSink } from '../util/warn.js';
import { commands } from './commands/index.js';
import { type CliIo, note, PROCESS_IO, withIo } from './io.js';
import { errorReport } from './report-error.js';
import { wantsVerbose } from './verbose.js';

/** yargs' own usage errors (unknown flag or command, missing option) are the user's. */
class UsageError extends UserError {}

interface DeclaredOptions {
  getOptions(): { key: Record<string, unknown> };
}

/**
 * A yargs usage message made to say what was wrong and what was meant: "Unknown argument: seeed"
 * gains " (did you mean --seed?)" for each unknown flag (not a stray positional) within two edits of
 * a declared one; yargs' bare "Did you mean evolve?" becomes "Unknown command: evolv (did you mean
 * evolve?)".
 */
export function usageMessage(message: string, declared: readonly string[], argv: readonly string[]): string {
  const meant = /^Did you mean (.+)\?$/.exec(message)?.[1];
  if (meant !== undefined) {
    // yargs names the suggestion, not the word typed: the positional closest to it.
    const typed = argv
      .filter((a) => !a.startsWith('-'))
      .reduce<string | undefined>(
        (best, a) => (best === undefined || editDistance(a, meant) < editDistance(best, meant) ? a : best),
        undefined,
      );
    return `Unknown command: ${typed} (did you mean ${meant}?)`;
  }
  const unknown = /^Unknown arguments?: (.*)$/.exec(message)?.[1]?.split(', ') ?? [];
  const given = (name: string) =>
    argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`) || a === `-${name}`);
  const hints = unknown.flatMap((name) => {
    const near = given(name) ? closest(name, declared) : undefined;
    return near === undefined ? [] : [{ name, near }];
  });
  if (hints.length === 0) return message;
  if (unknown.length === 1) return `${message} (did you mean --${hints[0]!.near}?)`;
  return `${message} (did you mean ${hints.map((h) => `--${h.near} for ${h.name}`).join(', ')}?)`;
}

/** The `adrs` command line, for the executable and for tests. */
export interface Cli {
  /** The configured yargs parser of `argv` (every command, strict, usage errors thrown). */
  parser(argv: readonly string[]): Argv;
  /**
   * Runs one command line with its output on `io`; resolves to the exit code: 0, the command's own
   * (e.g. a diverged replay), or 1 after a one-line error on stderr. Never exits the process.
   */
  run(argv: readonly string[]): Promise<number>;
}

export function createCli(io: CliIo = PROCESS_IO): Cli {
  // Library warnings (src/util/warn.ts) go to the stderr of the run they happen in.
  setWarningSink(note);
  const parser = (argv: readonly string[]): Argv => {
    let cli = yargs([...argv])
      .scriptName('adrs')
      .usage(
        '$0 <command> [options]\n\nEvolve and evaluate Mixture-of-Experts load balancers (EPLB) on the GPU.',
      )
      .option('verbose', { type: 'boolean', describe: 'Show stack traces on errors', global: true })
      .strict()
      .demandCommand(1, 'name a command; `adrs --help` lists them')
      .recommendCommands()
      .wrap(Math.min(110, process.stdout.columns || 110))
      // --help and --version print through run()'s io, and a parse never ends the process (tests run
      // the CLI in theirs; runAsEntry decides the exit).
      .exitProcess(false)
      .fail((message, error) => {
        // yargs validation messages are user errors; thrown errors are reported by run().
        if (error) throw error;
        // The parser holds the options of the command being parsed (yargs' getOptions, untyped).
        const declared = Object.keys((cli as unknown as DeclaredOptions).getOptions().key);
        throw new UsageError(usageMessage(message, declared, argv));
      });
    for (const command of commands) cli = cli.command(command);
    return cli.help().version();
  };
  return {
    parser,
    run: async (argv) => {
      try {
        // With a parse callback, yargs hands over the text of --help and --version instead of printing it.
        let shown = '';
        const code = await withIo(io, argv, () =>
          parser(argv).parseAsync([...argv], {}, (_error, _args, output) => {
            shown = output;
          }),
        );
        if (shown) io.stdout(`${shown}\n`);
        return code;
      } catch (error) {
        io.stderr(errorReport(error, wantsVerbose(argv)));
        return 1;
      }
    },
  };
}

let started = false;

/**
 * The executable: `adrs` with the process's arguments and streams. Idempotent, so a launcher may
 * both import this module and call it.
 */
export async function runAsEntry(): Promise<void> {
  if (started) return;
  started = true;
  // `adrs … | head` closes stdout early: that is the reader's choice, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const code = await createCli().run(hideBin(process.argv));
  // An error exits at once; otherwise Dawn's native threads may keep the loop alive briefly after the
  // last device is destroyed, and the process ends when they do.
  if (code !== 0) process.exit(code);
  process.exitCode ??= 0;
}

/** Whether this module is the process's entry (`node dist/cli/main.js`); launch.ts calls runAsEntry itself. */
function isEntry(): boolean {
  const real = (path: string): string | null => {
    try {
      return realpathSync(path);
    } catch {
      return null;
    }
  };
  const entry = process.argv[1] ? real(process.argv[1]) : null;
  if (entry === null) return false;
  return entry === real(fileURLToPath(import.meta.url));
}

if (isEntry()) void runAsEntry();
