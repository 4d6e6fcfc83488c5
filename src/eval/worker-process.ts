import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type FromWorker, MAX_MESSAGE_BYTES, type ToWorker } from './protocol.js';
import type { WorkerBundle } from './worker-bundle.js';

export interface WorkerSpawnOptions {
  bundle: WorkerBundle;
  adapter?: string;
  /** Cap on the worker's resident memory (and V8 heap), MiB. */
  memoryMb: number;
  /** How long device acquisition may take, ms. */
  startTimeoutMs?: number;
}

/** The worker died or was killed; `kind` says whether the candidate's resources were the cause. */
export class WorkerDeath extends Error {
  override name = 'WorkerDeath';
  constructor(
    readonly kind: 'crash' | 'resource' | 'killed' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

type Reply = Extract<FromWorker, { id: number }>;
type Request = ToWorker extends infer T
  ? T extends { id: number }
    ? Omit<T, 'id' | 'token'>
    : never
  : never;

/**
 * Environment variables the worker (Dawn, Vulkan loader, Mesa) may see; nothing else leaks in, not
 * even PATH (under npm it names the project folder).
 */
const ENV_KEEP = /^(LANG|LC_ALL|LD_LIBRARY_PATH|XDG_RUNTIME_DIR|VK_.*|MESA_.*|LP_.*|GALLIUM_.*|DISPLAY)$/;

/**
 * One sandboxed worker process (worker-main.ts) and its IPC. Node permission model: reads only
 * the worker bundle and the webgpu package; no writes, child processes or worker threads (none
 * granted); --allow-addons because Dawn is a native addon (worker-main disables process.dlopen
 * once Dawn is loaded); --disallow-code-generation-from-strings (no eval); signals, the network
 * and the IPC channel are locked by worker-main, and a root harness runs each worker under its own
 * uid (isolatedIdentity); incoming messages are capped (capIncomingMessages); the intrinsics are deep-frozen in the worker (harden.ts, not
 * --frozen-intrinsics, which slows every typed-array store tenfold) so candidates cannot patch what
 * the harness uses;
 * --max-old-space-size plus a resident-memory watch that kills the process over the cap.
 */
export class WorkerProcess {
  private pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private death: WorkerDeath | null = null;
  private stderrTail = '';
  private stdoutTail = '';
  private rssTimer: NodeJS.Timeout | undefined;
  private readonly token = randomBytes(16).toString('hex');
  /** Replies the harness never asked for: a candidate forging messages. */
  unexpectedReplies = 0;
  peakRssMb = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly adapter: string,
    private readonly memoryMb: number,
  ) {}

  /**
   * Starts a worker. Under a root harness it runs as an unprivileged uid when that uid can reach
   * Node, the bundle and webgpu; if such a worker still cannot start (e.g. a GPU device node only
   * root's group may open), the harness says so once on stderr and runs workers as itself from then
   * on — the JavaScript lockdown still applies.
   */
  static async spawn(options: WorkerSpawnOptions): Promise<WorkerProcess> {
    const identity = isolatedIdentity(options.bundle);
    if (identity.uid === undefined) return WorkerProcess.start(options, {});
    try {
      return await WorkerProcess.start(options, identity);
    } catch (error) {
      isolationBroken = `a worker under an unprivileged uid could not start (${String((error as Error).message).split('\n')[0]})`;
      warnNoIsolation(isolationBroken);
      return WorkerProcess.start(options, {});
    }
  }

  private static start(
    options: WorkerSpawnOptions,
    identity: { uid?: number; gid?: number },
  ): Promise<WorkerProcess> {
    const { bundle, memoryMb } = options;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (ENV_KEEP.test(k)) env[k] = v;
    env.XDG_RUNTIME_DIR ??= '/tmp';
    const child = fork(bundle.entry, [options.adapter ?? process.env.ADRS_ADAPTER ?? ''], {
      cwd: bundle.dir,
      env,
      execPath: process.execPath,
      execArgv: [
        '--experimental-permission',
        `--allow-fs-read=${bundle.entry}`,
        `--allow-fs-read=${bundle.webgpuDir}/`,
        '--allow-addons',
        // No eval/new Function: code built from strings could import() modules the bundler refused.
        '--disallow-code-generation-from-strings',
        `--max-old-space-size=${memoryMb}`,
        '--no-warnings',
      ],
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      ...identity,
    });
    const cap: { over: () => void } = { over: () => child.kill('SIGKILL') };
    capIncomingMessages(child, () => cap.over());
    return new Promise((resolve, reject) => {
      let tail = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `the evaluation worker did not open a GPU device within ${(options.startTimeoutMs ?? 60_000) / 1000} s`,
          ),
        );
      }, options.startTimeoutMs ?? 60_000);
      child.stderr?.on('data', (d: Buffer) => {
        tail = (tail + d.toString()).slice(-2000);
      });
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(
          new Error(
            `the evaluation worker exited during start (${signal ?? `code ${code}`}): ${lastLines(tail)}`,
          ),
        );
      };
      child.once('exit', onExit);
      child.once('message', (m: FromWorker) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        if (m.type !== 'ready') {
          child.kill('SIGKILL');
          reject(
            new Error(`the evaluation worker could not start: ${m.type === 'fatal' ? m.message : m.type}`),
          );
          return;
        }
        const worker = new WorkerProcess(child, String(m.adapter).slice(0, 200), memoryMb);
        cap.over = () =>
          worker.kill(
            new WorkerDeath(
              'resource',
              `the worker sent a message over ${MAX_MESSAGE_BYTES >> 20} MiB to the harness and was killed`,
            ),
          );
        worker.stderrTail = tail;
        worker.attach();
        resolve(worker);
      });
    });
  }

  private attach(): void {
    const child = this.child;
    child.stdout?.on('data', (d: Buffer) => {
      this.stdoutTail = (this.stdoutTail + d.toString()).slice(-4000);
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4000);
    });
    child.on('message', (m: FromWorker) => {
      if (m === null || typeof m !== 'object') {
        this.unexpectedReplies++;
        return;
      }
      if (m.type === 'fatal') {
        this.die(new WorkerDeath('crash', String(m.message).slice(0, 2000)));
        return;
      }
      if (!('id' in m)) return;
      const waiter = this.pending.get(m.id);
      if (!waiter) {
        this.unexpectedReplies++;
        return;
      }
      this.pending.delete(m.id);
      waiter.resolve(m);
    });
    child.on('exit', (code, signal) => {
      clearInterval(this.rssTimer);
      if (this.death) return this.rejectAll();
      const stderr = this.stderrTail;
      if (/heap out of memory|Reached heap limit|Allocation failed/i.test(stderr)) {
        this.die(
          new WorkerDeath(
            'resource',
            `out of memory: the JavaScript heap reached its ${this.memoryMb} MiB cap`,
          ),
        );
      } else {
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        const why = lastLines(stderr);
        this.die(new WorkerDeath('crash', `the worker process ${how}${why ? `: ${why}` : ''}`));
      }
    });
    child.on('error', () => {});
    this.rssTimer = setInterval(() => this.watchMemory(), 50);
    this.rssTimer.unref();
  }

  private watchMemory(): void {
    const pid = this.child.pid;
    if (pid === undefined || this.death) return;
    let rssMb: number;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      if (!m) return;
      rssMb = Number(m[1]) / 1024;
    } catch {
      return; // not Linux, or the process is gone
    }
    this.peakRssMb = Math.max(this.peakRssMb, rssMb);
    if (rssMb > this.memoryMb) {
      this.kill(
        new WorkerDeath(
          'resource',
          `memory use reached ${Math.round(rssMb)} MiB, over the cap of ${this.memoryMb} MiB`,
        ),
      );
    }
  }

  /** Sends a request and waits for its reply; rejects with WorkerDeath if the worker dies first. */
  request(message: Request): Promise<Reply> {
    if (this.death) return Promise.reject(this.death);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.child.send({ ...message, id, token: this.token } as ToWorker);
      } catch (error) {
        this.pending.delete(id);
        reject(error as Error);
      }
    });
  }

  /** Kills the process now (SIGKILL): the only safe end for a worker that ran untrusted code. */
  kill(reason: WorkerDeath = new WorkerDeath('killed', 'the worker was stopped')): void {
    this.die(reason);
    clearInterval(this.rssTimer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** The worker's process id (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get dead(): WorkerDeath | null {
    return this.death;
  }

  /** What the candidate printed (stdout), last 4000 characters. */
  get output(): string {
    return this.stdoutTail;
  }

  private die(reason: WorkerDeath): void {
    this.death ??= reason;
    this.rejectAll();
  }

  private rejectAll(): void {
    for (const waiter of this.pending.values()) waiter.reject(this.death!);
    this.pending.clear();
  }
}

/** Unprivileged ids for workers of a root harness: a block of 4096 per harness process, one id per worker. */
const ISOLATED_ID_BASE = 0x40000000;
let isolatedCount = 0;
/** Why OS isolation is off for this process (set once, reported once). */
let isolationBroken: string | undefined;
let isolationWarned = false;

/**
 * OS isolation under the JavaScript lockdown: when the harness runs as root (CI does), each worker
 * runs under its own unprivileged uid and gid (no passwd entry needed), so the kernel refuses its
 * signals to the harness, to other workers and to every other process, whatever the candidate
 * reaches. It needs Node, the worker bundle and webgpu to be reachable by other users (a project
 * under /root is not); ADRS_EVAL_SAME_UID=1 turns it off.
 */
export function isolatedIdentity(bundle: WorkerBundle): { uid?: number; gid?: number } {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  if (process.env.ADRS_EVAL_SAME_UID === '1' || isolationBroken) return {};
  const needed = [process.execPath, bundle.entry, join(bundle.webgpuDir, 'index.js')];
  const unreachable = needed.find((path) => !reachableByOthers(path));
  if (unreachable) {
    isolationBroken = `${unreachable} is not readable by other users`;
    warnNoIsolation(isolationBroken);
    return {};
  }
  const id = ISOLATED_ID_BASE + ((process.pid % 0x40000) << 12) + (isolatedCount++ % 4096);
  return { uid: id, gid: id };
}

/** Whether a user other than the owner can read `path`: every ancestor searchable, the file readable. */
function reachableByOthers(path: string): boolean {
  try {
    let p = realpathSync(path);
    if ((statSync(p).mode & 0o004) === 0) return false;
    for (p = dirname(p); ; p = dirname(p)) {
      if ((statSync(p).mode & 0o001) === 0) return false;
      if (p === dirname(p)) return true;
    }
  } catch {
    return false;
  }
}

function warnNoIsolation(reason: string): void {
  if (isolationWarned) return;
  isolationWarned = true;
  process.stderr.write(
    `adrs: evaluation workers run as root without OS isolation: ${reason}; the JavaScript sandbox still applies ` +
      '(set ADRS_EVAL_SAME_UID=1 to silence this)\n',
  );
}

/**
 * Bounds what the parent buffers for one incoming IPC message: Node's 'advanced' channel reads a
 * 4-byte length, then accumulates that many bytes before deserializing, so a worker that gained
 * the channel could make the harness buffer gigabytes. The wrapper looks at the declared length
 * and the bytes buffered (Node's own counters on the channel) after every read and calls `over`
 * past MAX_MESSAGE_BYTES. The worker's harness only ever sends bounded messages (worker-main.ts);
 * this is the parent's own check in case a candidate reaches the channel anyway.
 */
export function capIncomingMessages(child: ChildProcess, over: () => void): void {
  // The pipe handle (Node keeps it under a symbol next to the public `channel` control object).
  const handleKey = Object.getOwnPropertySymbols(child).find((k) => k.description === 'kChannelHandle');
  const channel = handleKey
    ? ((child as unknown as Record<symbol, Record<string | symbol, unknown> | undefined>)[handleKey] ??
      undefined)
    : undefined;
  if (!channel || typeof channel.onread !== 'function') return;
  const find = (name: string) => Object.getOwnPropertySymbols(channel).find((s) => s.description === name);
  const onread = channel.onread as (...a: unknown[]) => unknown;
  let tripped = false;
  channel.onread = function (this: unknown, ...args: unknown[]): unknown {
    if (tripped) return undefined;
    const result = onread.apply(this, args);
    const sizeKey = find('kMessageBufferSize');
    const bufferKey = find('kMessageBuffer');
    const buffered = sizeKey ? Number(channel[sizeKey]) : 0;
    const head = bufferKey ? (channel[bufferKey] as Uint8Array[] | undefined)?.[0] : undefined;
    const declared =
      head && head.length >= 4 ? ((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0 : 0;
    if (buffered > MAX_MESSAGE_BYTES || declared > MAX_MESSAGE_BYTES) {
      tripped = true;
      over();
    }
    return result;
  };
}

/** The last meaningful stderr lines, without Dawn's limit warnings. */
function lastLines(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^Warning: max\w+ artificially reduced/.test(l))
    .slice(-3)
    .join(' | ')
    .slice(0, 400);
}
