import { AsyncLocalStorage } from 'node:async_hooks';
import { assert } from '../util/errors.js';

/**
 * Where a command's output goes: the process's stdout and stderr, or what a test injects through
 * createCli (src/cli/main.ts). Commands write through `say`, `note` and `printJson`, never to
 * process.stdout directly, so one CLI run in a test process captures its own output, even beside
 * another. Terminal-only status lines (src/cli/progress.ts) stay on process.stderr.
 */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const PROCESS_IO: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

interface RunState {
  io: CliIo;
  /** The arguments of the run, as given to createCli().run (not process.argv: a test runs several in one process). */
  args: readonly string[];
  /** A command's verdict when it finishes without throwing (e.g. 1 for a replay that diverged). */
  exitCode: number;
}

// Per run, not a module variable that createCli sets: two runs in one process (tests run them
// concurrently) each keep their own output and exit code, and no helper needs the io passed down.
const current = new AsyncLocalStorage<RunState>();
/** Outside a CLI run (a helper called from a script), output goes to the process. */
const OUTSIDE: RunState = Object.freeze({ io: PROCESS_IO, args: process.argv.slice(2), exitCode: 0 });
const state = (): RunState => current.getStore() ?? OUTSIDE;

/** Runs `fn`, the command line `args`, with its output sent to `io`; resolves to the exit code the command set (0 by default). */
export async function withIo(
  io: CliIo,
  args: readonly string[],
  fn: () => Promise<unknown>,
): Promise<number> {
  const run: RunState = { io, args, exitCode: 0 };
  await current.run(run, fn);
  return run.exitCode;
}

/**
 * The output of the command running now. A listener on an event whose source was made outside the
 * run (a process signal another module listens to as well, a client's socket events) runs outside
 * the run's context: a command that writes from one takes `const io = cliIo()` up front.
 */
export const cliIo = (): CliIo => state().io;

/** The command line of the run now, e.g. 'adrs bench --trace x' (recorded in a bench report). */
export const commandLine = (): string => ['adrs', ...state().args].join(' ');

/** One line on stdout. */
export function say(line: string): void {
  state().io.stdout(`${line}\n`);
}

/** One line on stderr (progress notes, warnings). */
export function note(line: string): void {
  state().io.stderr(`${line}\n`);
}

/** Sets the exit code of a command that finishes without throwing. */
export function setExitCode(code: number): void {
  const run = current.getStore();
  // Outside a run nothing reads it: the verdict would be lost without a word.
  assert(run !== undefined, 'setExitCode called outside a CLI run (createCli().run)');
  run.exitCode = code;
}
