import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * How a worker process is started so that it cannot outlive the harness. A harness killed with
 * SIGKILL runs no code, and a worker whose candidate spins in a tight loop runs no JavaScript, so
 * the guard must live in the kernel:
 * - `parent-death-signal`: util-linux `setpriv --pdeathsig KILL` sets PR_SET_PDEATHSIG and then execs
 *   Node in the same process, so the kernel kills the worker the moment its parent dies (set after
 *   the uid switch, which would clear it);
 * - `cpu-limit`: without setpriv, util-linux `prlimit --cpu` caps the worker's CPU time (RLIMIT_CPU,
 *   SIGKILL at the limit), so an orphaned spinner dies once it has used what one evaluation may use;
 * - `none`: neither tool; the worker still exits when the IPC channel closes, unless it is spinning.
 */
export interface WorkerLauncher {
  /** The program to exec (setpriv, prlimit or Node itself). */
  execPath: string;
  /** Arguments before Node's own (they end with `--` and Node's path when a tool wraps it). */
  prefix: string[];
  guard: 'parent-death-signal' | 'cpu-limit' | 'none';
}

export interface LaunchTools {
  /** setpriv with --pdeathsig support. */
  setpriv?: string;
  prlimit?: string;
}

/** The launcher for a worker given the tools found (pure: tested without the tools). */
export function workerLauncher(node: string, tools: LaunchTools, cpuLimitS: number): WorkerLauncher {
  if (tools.setpriv) {
    return {
      execPath: tools.setpriv,
      prefix: ['--pdeathsig', 'KILL', '--', node],
      guard: 'parent-death-signal',
    };
  }
  if (tools.prlimit) {
    const s = Math.max(1, Math.ceil(cpuLimitS));
    // Soft = hard: the kernel sends SIGKILL (not the catchable SIGXCPU) when the limit is reached.
    return { execPath: tools.prlimit, prefix: [`--cpu=${s}:${s}`, '--', node], guard: 'cpu-limit' };
  }
  return { execPath: node, prefix: [], guard: 'none' };
}

let found: LaunchTools | undefined;

/** setpriv (when it knows --pdeathsig) and prlimit on this machine, looked up once; Linux only. */
export function launchTools(): LaunchTools {
  if (found) return found;
  found = {};
  if (process.platform !== 'linux') return found;
  const setpriv = findExecutable('setpriv');
  if (setpriv) {
    const help = spawnSync(setpriv, ['--help'], { encoding: 'utf8', timeout: 5000 });
    if (`${help.stdout}`.includes('--pdeathsig')) found.setpriv = setpriv;
  }
  const prlimit = findExecutable('prlimit');
  if (prlimit) found.prlimit = prlimit;
  return found;
}

/** An executable file named `name` on PATH or in the system folders. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir.startsWith('/')) continue; // a relative PATH entry depends on the folder we run in
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}
