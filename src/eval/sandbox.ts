import type { StdioOptions } from 'node:child_process';
import { openSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { warn } from '../util/warn.js';
import { findExecutable } from './worker-launch.js';

/**
 * The OS layer of the sandbox: bubblewrap (Debian `bubblewrap`) around every worker and every
 * transpile. Each sandbox gets its own mount, pid, network, ipc, uts and user namespaces: no network
 * at all (an empty network namespace: no TCP, no UDP, no abstract Unix sockets shared with the
 * host), a file system that is read-only and holds only what the process needs (system libraries,
 * Node, the worker bundle, webgpu; for a transpile only esbuild and the candidate folder), a private
 * /tmp that disappears with it, only the GPU's device nodes, a new session, no further user
 * namespaces, no capabilities, and death with its parent. Node's permission model and the
 * JavaScript lockdown (worker-main.ts, harden.ts) stay inside it as the inner layer.
 *
 * ADRS_EVAL_SANDBOX picks the layer: `auto` (default: bubblewrap when it works, else one warning and
 * none), `bubblewrap` (required: a worker that cannot get it fails to start), `none` (off).
 */
export interface SandboxReport {
  /** The OS layer around the worker. */
  os: 'bubblewrap' | 'none';
  /** The network the worker sees: `none` (its own empty network namespace) or the host's. */
  network: 'none' | 'host';
  /** `read-only`: only what the worker needs, read-only, with a private /tmp; `host`: the host's (Node's permission model still refuses reads and writes). */
  filesystem: 'read-only' | 'host';
  /** The worker's uid as the host kernel sees it (null where unknown), and whether it is its own rather than the harness's. */
  uid: number | null;
  own_uid: boolean;
  /** Node's permission model (reads limited to the bundle and webgpu; no writes, processes, threads). */
  node_permissions: boolean;
  /** Intrinsics, globals and WebGPU objects locked before candidate code loads. */
  hardened: boolean;
  /** The harness channel: a socket pair reachable only from the harness's closures, framed and bounded. */
  channel: 'private';
  /** Where the candidate was transpiled: in bubblewrap, or in its own process without it. */
  transpile?: 'bubblewrap' | 'process';
}

export type SandboxMode = 'auto' | 'bubblewrap' | 'none';

export function sandboxMode(): SandboxMode {
  const v = (process.env.ADRS_EVAL_SANDBOX ?? 'auto').toLowerCase();
  if (v === 'none' || v === 'off' || v === '0') return 'none';
  if (v === 'bubblewrap' || v === 'bwrap' || v === 'require' || v === 'required') return 'bubblewrap';
  return 'auto';
}

let bwrapPath: string | null | undefined;
/** Why the OS layer is off for this process (set once, reported once). */
let broken: string | undefined;
let warned = false;

/** bubblewrap's path when the OS layer should be used, else undefined. */
export function bubblewrap(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const mode = sandboxMode();
  if (mode === 'none') {
    osSandboxOff('ADRS_EVAL_SANDBOX=none');
    return undefined;
  }
  if (broken && mode === 'auto') return undefined;
  if (bwrapPath === undefined) bwrapPath = findExecutable('bwrap') ?? null;
  if (bwrapPath === null) {
    if (mode === 'bubblewrap')
      throw new Error(
        'ADRS_EVAL_SANDBOX=bubblewrap but bwrap is not installed (Debian: apt-get install bubblewrap)',
      );
    osSandboxOff('bwrap is not installed (Debian: apt-get install bubblewrap)');
    return undefined;
  }
  return bwrapPath;
}

/**
 * Turns the OS layer off for this process and says so once, loudly, on stderr. Under
 * ADRS_EVAL_SANDBOX=bubblewrap the caller fails instead (see bubblewrap()).
 */
export function osSandboxOff(reason: string): void {
  broken ??= reason;
  if (warned) return;
  warned = true;
  warn(
    `WARNING: candidates run WITHOUT the OS sandbox (bubblewrap: no network namespace, no read-only file system): ${reason}; only Node's permission model and the JavaScript lockdown confine them (ADRS_EVAL_SANDBOX=bubblewrap makes this an error)`,
  );
}

/** Whether a failed start's output says bubblewrap itself could not set the sandbox up. */
export function bwrapSetupFailed(output: string): boolean {
  return /^bwrap: /m.test(output);
}

/**
 * Whether bubblewrap failed only because the uid it ran as cannot reach a path it was to bind (a
 * file the harness user can read and the worker's own uid cannot): an identity problem, not a
 * missing OS layer.
 */
export function bwrapPathDenied(output: string): boolean {
  return /^bwrap: Can't (find source path|open|access).*Permission denied/m.test(output);
}

export interface BwrapSpec {
  /** Paths bound read-only at the same place. */
  readOnly: string[];
  /** Paths bound read-write at the given place: [host, inside]. */
  readWrite?: Array<[string, string]>;
  /** Paths bound read-only at another place: [host, inside]. */
  readOnlyAt?: Array<[string, string]>;
  /** System folders (/usr, /lib…, /etc, /sys) and GPU device nodes (a worker); a transpile needs none. */
  system: boolean;
  /** Working folder inside. */
  chdir: string;
  /** uid and gid inside the user namespace (the same as outside unless given). */
  uid?: number;
}

/** bubblewrap's arguments for one sandbox (everything before `--` and the command). */
export function bwrapArgs(spec: BwrapSpec): string[] {
  const args = [
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
  ];
  if (spec.uid !== undefined) args.push('--uid', String(spec.uid), '--gid', String(spec.uid));
  if (spec.system) {
    for (const dir of ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc']) {
      const link = symlinkTarget(dir);
      if (link !== undefined) args.push('--symlink', link, dir);
      else if (isDir(dir)) args.push('--ro-bind', dir, dir);
    }
    // GPU drivers enumerate devices through /sys (read-only; no secrets, but it does describe the host).
    if (isDir('/sys')) args.push('--ro-bind', '/sys', '/sys');
    args.push('--dev', '/dev');
    for (const node of gpuDeviceNodes()) args.push('--dev-bind', node, node);
  }
  args.push('--proc', '/proc');
  // Private and small: gone with the sandbox (a Unix socket bound here reaches nobody outside).
  args.push('--size', String(16 << 20), '--tmpfs', '/tmp');
  if (spec.system) {
    // Driver libraries and Vulkan driver lists named by the environment (after /tmp: they may lie there).
    for (const dir of (process.env.LD_LIBRARY_PATH ?? '').split(':'))
      if (isAbsolute(dir) && !underSystem(dir)) args.push('--ro-bind-try', dir, dir);
    for (const name of ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'VK_ADD_DRIVER_FILES', 'VK_LAYER_PATH'])
      for (const path of (process.env[name] ?? '').split(':'))
        if (isAbsolute(path) && !underSystem(path)) args.push('--ro-bind-try', path, path);
  }
  for (const path of spec.readOnly) args.push('--ro-bind', path, path);
  for (const [host, inside] of spec.readOnlyAt ?? []) args.push('--ro-bind', host, inside);
  for (const [host, inside] of spec.readWrite ?? []) args.push('--bind', host, inside);
  args.push('--remount-ro', '/', '--chdir', spec.chdir);
  return args;
}

function symlinkTarget(path: string): string | undefined {
  try {
    const real = realpathSync(path);
    if (real === path) return undefined;
    // /bin -> usr/bin on merged-/usr systems: recreate the link.
    return real.startsWith('/') ? real.slice(1) : real;
  } catch {
    return undefined;
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function underSystem(path: string): boolean {
  return /^\/(usr|etc|lib|lib32|lib64|libx32|bin|sbin)(\/|$)/.test(path);
}

/** The GPU device nodes present: /dev/dri and every /dev/nvidia* (lavapipe needs none). */
export function gpuDeviceNodes(): string[] {
  const nodes: string[] = [];
  if (isDir('/dev/dri')) nodes.push('/dev/dri');
  try {
    for (const name of readdirSync('/dev').sort()) if (name.startsWith('nvidia')) nodes.push(`/dev/${name}`);
  } catch {}
  return nodes;
}

/** A path and its real location (both must exist inside a sandbox when the path is a symlink). */
export function withRealPath(path: string): string[] {
  try {
    const real = realpathSync(path);
    return real === path ? [path] : [real];
  } catch {
    return [path];
  }
}

/** The folder of the Node binary when it lies outside the system folders (bound into the sandbox). */
export function nodeDirs(node: string): string[] {
  const real = withRealPath(node)[0]!;
  return underSystem(real) ? [] : [dirname(real)];
}

let devNull: number | undefined;

/**
 * The stdio array for a spawn that hands the child exactly `base` and nothing else. A child
 * inherits every descriptor of this process that lacks close-on-exec (Node's own all have it; one
 * this process inherited from its caller may not, e.g. a shell's `exec 5>>file`), and neither
 * libuv nor bubblewrap closes them; so each such descriptor is replaced, in the child, by
 * /dev/null opened read-only.
 */
export function sealedStdio(base: Array<'ignore' | 'pipe' | number>): StdioOptions {
  const stdio: Array<'ignore' | 'pipe' | number> = [...base];
  for (const fd of inheritableFds()) {
    if (fd < base.length) continue;
    devNull ??= openSync('/dev/null', 'r');
    while (stdio.length < fd) stdio.push('ignore');
    stdio[fd] = devNull;
  }
  return stdio;
}

/** This process's descriptors without close-on-exec, above stderr (Linux; none elsewhere). */
export function inheritableFds(): number[] {
  const fds: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return fds;
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      // O_CLOEXEC is 02000000 in the octal flags field.
      if (flags && (Number.parseInt(flags[1]!, 8) & 0o2000000) === 0) fds.push(fd);
    } catch {}
  }
  return fds.sort((a, b) => a - b);
}

/** A process and its descendants (Linux /proc; the process alone where children are not listed). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length && out.length < 64; i++) {
    const p = out[i]!;
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(' ')) out.push(Number(k));
      }
    } catch {}
  }
  return out;
}

/** Resident memory of a process, MiB (undefined when it is gone or this is not Linux). */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
