import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { NativeStderrFilter } from './native-stderr-filter.js';

/** Environment variable telling the child which descriptors the launcher handed it. */
export const LAUNCHED_ENV = 'ADRS_LAUNCHED_FDS';

/**
 * Signals a user, a supervisor or the terminal sends to the command; the launcher passes each on
 * exactly once. SIGWINCH too: the child has no controlling terminal (own session), so a resize
 * reaches only the launcher, and the progress line would keep the old width.
 */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGWINCH'];

export interface LaunchOptions {
  /** The module to run in the child (the CLI's entry). */
  entry: string;
  args: readonly string[];
}

/**
 * Runs `entry` in a child Node process whose native stderr (fd 2: Dawn, V8) is read through
 * {@link NativeStderrFilter}, while the child's JavaScript stderr writes straight to the real
 * stderr (handed over as fd 3), so terminal detection, progress redraws and ordering stay as if
 * there were no launcher. fd 4 is a socket the child watches to die with the launcher.
 *
 * The child runs in its own session (detached: setsid), so a terminal's Ctrl-C reaches it once
 * (forwarded by the launcher) rather than twice. The launcher exits as the child did: same code, or same signal.
 */
export function launch(options: LaunchOptions): void {
  const child = spawn(process.execPath, [...process.execArgv, options.entry, ...options.args], {
    stdio: ['inherit', 'inherit', 'pipe', 2, 'pipe'],
    env: { ...process.env, [LAUNCHED_ENV]: '3,4' },
    detached: true,
  });
  // Without the launcher, a native write to a stderr nobody reads any more fails unseen (Node
  // ignores SIGPIPE); an EPIPE here must not kill the launcher, and with it the CLI.
  process.stderr.on('error', () => {});
  const filter = new NativeStderrFilter();
  const write = (text: string) => text && process.stderr.write(text);
  child.stdio[2]?.setEncoding('utf8');
  child.stdio[2]?.on('data', (chunk: string) => write(filter.push(chunk)));
  child.stdio[2]?.on('end', () => write(filter.end()));

  const handlers = FORWARDED.map((signal) => {
    const handler = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  // Ctrl-Z: the child's group is orphaned (own session), where the kernel discards SIGTSTP, so it
  // is stopped with SIGSTOP, then the launcher stops itself; `fg` continues both.
  const suspend = () => {
    child.kill('SIGSTOP');
    process.kill(process.pid, 'SIGSTOP');
  };
  const resume = () => child.kill('SIGCONT');
  process.on('SIGTSTP', suspend);
  process.on('SIGCONT', resume);

  child.on('error', (error) => {
    process.stderr.write(`adrs: cannot start the CLI process: ${error.message}\n`);
    process.exitCode = 1;
  });
  child.on('close', (code, signal) => {
    for (const [s, h] of handlers) process.off(s, h);
    process.off('SIGTSTP', suspend);
    process.off('SIGCONT', resume);
    if (signal) {
      // Die the same way, so a shell or supervisor sees what the child saw; but only once the
      // forwarded native stderr still queued for a slow reader is written (a signal would drop it).
      process.stderr.write('', () => dieBy(signal));
      return;
    }
    process.exitCode = code ?? 1;
  });
}

function dieBy(signal: NodeJS.Signals): void {
  // A signal that does not end a Node process (SIGPIPE is ignored, SIGUSR1 starts the inspector)
  // leaves the exit status a shell gives a death by that signal.
  process.exitCode = 128 + (constants.signals[signal] ?? 0);
  process.kill(process.pid, signal);
}
