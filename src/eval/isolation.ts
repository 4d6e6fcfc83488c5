import { randomInt } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { warn } from '../util/warn.js';
import type { WorkerBundle } from './worker-bundle.js';

/**
 * OS isolation under the JavaScript lockdown: when the harness runs as root (CI does), each worker
 * runs under its own unprivileged uid and gid (no passwd entry needed; Node drops the supplementary
 * groups), so the kernel refuses its signals to the harness, to other workers and to every other
 * process, whatever the candidate reaches. It needs Node, the worker bundle, webgpu and the launcher
 * (worker-launch.ts) to be reachable by other users (a project under /root is not);
 * ADRS_EVAL_SAME_UID=1 turns it off.
 */
export interface Identity {
  uid?: number;
  gid?: number;
}

/**
 * Why an isolated worker did not start, which decides what the harness does next:
 * - `identity`: the unprivileged uid itself is the problem (the kernel refused it, it cannot read
 *   the worker's files, or it cannot open the GPU the harness uses): isolation is turned off for this
 *   process, once, with a warning;
 * - `transient`: the machine is busy (start timeout, out of processes or files): retried isolated;
 * - `sandbox`: bubblewrap could not set the OS sandbox up (no user namespaces, say): the OS layer is
 *   turned off for this process, once, with a warning (unless ADRS_EVAL_SANDBOX=bubblewrap);
 * - `other`: anything else, reported as it is.
 */
export type StartFailureKind = 'identity' | 'transient' | 'sandbox' | 'other';

export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  constructor(
    readonly kind: StartFailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** Kind of a failed spawn by its errno code. */
export function spawnErrorKind(code: unknown): StartFailureKind {
  if (code === 'EPERM' || code === 'EINVAL' || code === 'EACCES') return 'identity';
  if (code === 'EAGAIN' || code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM') return 'transient';
  return 'other';
}

/**
 * Kind of a start that failed inside the worker, by what it said (its fatal message or stderr): it
 * could not read its bundle or webgpu, or saw no GPU adapter (the harness found one, so the device
 * node is closed to the worker's uid, e.g. /dev/dri/renderD* 0660 root:render).
 */
export function startOutputKind(text: string): StartFailureKind {
  return /EACCES|EPERM|permission denied|operation not permitted|ERR_ACCESS_DENIED|no GPU adapter (matches|found)/i.test(
    text,
  )
    ? 'identity'
    : 'other';
}

/**
 * Why a worker that reported `ready` on adapter `opened` must not be used when `requested` was
 * asked for, or undefined when it may. A worker must time candidates on the adapter the harness
 * chose; an isolated worker that cannot open it may quietly start on another one (lavapipe).
 */
export function adapterMismatch(requested: string | undefined, opened: string): string | undefined {
  if (requested === undefined || requested === opened) return undefined;
  return `the worker opened the GPU adapter '${opened}', not '${requested}'`;
}

/** Isolated ids lie in [2^30, 2^31): above system and login ranges, below 65534-style specials near 2^32. */
const ID_LOW = 0x40000000;
const BLOCK = 4096;
const BLOCKS = 0x40000;
/** This harness process's block of ids, drawn at random so two harnesses (almost surely) never share one. */
let block: number | undefined;
let used = 0;
let taken: Set<number> | undefined;
/** Why OS isolation is off for this process (set once, reported once). */
let broken: string | undefined;
let warned = false;

/**
 * The identity for the next worker: a fresh unprivileged uid (gid the same number) when the harness
 * is root and isolation is possible, else {} (the worker runs as the harness user). `programs` are
 * what the worker is executed as (Node, and setpriv or prlimit in front of it).
 */
export function isolatedIdentity(
  bundle: WorkerBundle,
  programs: readonly string[] = [process.execPath],
): Identity {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  if (process.env.ADRS_EVAL_SAME_UID === '1' || broken) return {};
  const needs: Array<[string, number, string]> = [
    ...programs.map((p): [string, number, string] => [p, 0o005, 'executable']),
    [bundle.entry, 0o004, 'readable'],
    [join(bundle.webgpuDir, 'index.js'), 0o004, 'readable'],
  ];
  const missing = needs.find(([path, bits]) => !reachableByOthers(path, bits));
  if (missing) {
    isolationFailed(`${missing[0]} is not ${missing[2]} by other users`);
    return {};
  }
  const id = nextId();
  return { uid: id, gid: id };
}

/** Turns isolation off for this process and says so once on stderr. */
export function isolationFailed(reason: string): void {
  broken ??= reason;
  if (warned) return;
  warned = true;
  warn(
    `evaluation workers run as root, without a uid of their own: ${reason}; the other sandbox layers still apply ` +
      '(set ADRS_EVAL_SAME_UID=1 to silence this)',
  );
}

function nextId(): number {
  taken ??= existingIds();
  for (;;) {
    block ??= ID_LOW + randomInt(BLOCKS) * BLOCK;
    for (let i = 0; i < BLOCK; i++) {
      const id = block + (used++ % BLOCK);
      if (!taken.has(id)) return id;
    }
    block = undefined; // every id of the block belongs to someone: draw another
  }
}

/** Uids and gids named in /etc/passwd and /etc/group within the isolated range (not to be borrowed). */
function existingIds(): Set<number> {
  const ids = new Set<number>();
  for (const [file, fields] of [
    ['/etc/passwd', [2, 3]],
    ['/etc/group', [2]],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const parts = line.split(':');
      for (const f of fields) {
        const id = Number(parts[f]);
        if (Number.isInteger(id) && id >= ID_LOW) ids.add(id);
      }
    }
  }
  return ids;
}

/**
 * Whether a user other than the owner can use `path`: every ancestor searchable, and the file has
 * the `bits` for others (0o004 to read, 0o005 to run a program).
 */
function reachableByOthers(path: string, bits: number): boolean {
  try {
    let p = realpathSync(path);
    if ((statSync(p).mode & bits) !== bits) return false;
    for (p = dirname(p); ; p = dirname(p)) {
      if ((statSync(p).mode & 0o001) === 0) return false;
      if (p === dirname(p)) return true;
    }
  } catch {
    return false;
  }
}
