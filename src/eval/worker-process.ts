import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  adapterMismatch,
  type Identity,
  isolatedIdentity,
  isolationFailed,
  type StartFailureKind,
  spawnErrorKind,
  startOutputKind,
  WorkerStartError,
} from './isolation.js';
import { type FromWorker, MAX_MESSAGE_BYTES, type ToWorker } from './protocol.js';
import type { WorkerBundle } from './worker-bundle.js';
import { launchTools, type WorkerLauncher, workerLauncher } from './worker-launch.js';

export interface WorkerSpawnOptions {
  bundle: WorkerBundle;
  /**
   * The exact name of the GPU adapter the worker must open (GpuScorer.adapterName, as `adrs devices`
   * lists it): a worker that opens another one is a failed start (adapterMismatch). Without it the
   * worker takes $ADRS_ADAPTER, then Dawn's choice.
   */
  adapter?: string;
  /** Cap on the worker's resident memory (and V8 heap), MiB. */
  memoryMb: number;
  /** How long device acquisition may take, ms (default 60 s). */
  startTimeoutMs?: number;
  /**
   * The longest a worker may stay busy, seconds: its start plus one evaluation (default 600). Where
   * setpriv is missing it bounds the worker's CPU time, so an orphaned spinner dies (worker-launch.ts).
   */
  lifetimeS?: number;
  /** Cancels a start in progress (the worker is killed and the start rejects). */
  signal?: AbortSignal;
  /** The Node binary the worker runs on (default: this process's). */
  nodePath?: string;
}

/** The CPU-time cap for the cpu-limit guard: every core (lavapipe's threads) busy for the worker's whole life. */
function cpuLimitS(options: WorkerSpawnOptions): number {
  const lifetime = (options.startTimeoutMs ?? 60_000) / 1000 + (options.lifetimeS ?? 600);
  return lifetime * availableParallelism();
}

/** The worker died or was killed; `kind` says whether the candidate's resources were the cause. */
export class WorkerDeath extends Error {
  override name = 'WorkerDeath';
  constructor(
    /** `evaluator`: the harness could not get the worker ready; not the candidate's fault. */
    readonly kind: 'crash' | 'resource' | 'killed' | 'timeout' | 'evaluator',
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
 * uid (isolation.ts); the worker dies with the harness (worker-launch.ts); incoming messages are capped (capIncomingMessages); the intrinsics are deep-frozen in the worker (harden.ts, not
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
   * Node, the bundle and webgpu (isolation.ts). An isolated start that fails because of the identity
   * (the kernel refuses the uid, the uid cannot read the worker's files or open the GPU the harness
   * asked for) turns isolation off for this process, with one line on stderr, and the worker runs as
   * the harness user (the JavaScript lockdown still applies); a start that only timed out is retried
   * isolated once. The worker is launched so that it dies with the harness (worker-launch.ts).
   */
  static async spawn(options: WorkerSpawnOptions): Promise<WorkerProcess> {
    const node = options.nodePath ?? process.execPath;
    const launcher = workerLauncher(node, launchTools(), cpuLimitS(options));
    const programs = launcher.execPath === node ? [node] : [launcher.execPath, node];
    let identity = isolatedIdentity(options.bundle, programs);
    if (identity.uid === undefined) return WorkerProcess.start(options, launcher, {});
    for (let attempt = 1; ; attempt++) {
      try {
        return await WorkerProcess.start(options, launcher, identity);
      } catch (error) {
        const kind = error instanceof WorkerStartError ? error.kind : 'other';
        const why = String((error as Error).message).split('\n')[0];
        if (kind === 'identity') {
          isolationFailed(`a worker under an unprivileged uid could not start (${why})`);
          return WorkerProcess.start(options, launcher, {});
        }
        if (kind === 'transient' && attempt < 2 && !options.signal?.aborted) {
          identity = isolatedIdentity(options.bundle, programs);
          if (identity.uid === undefined) return WorkerProcess.start(options, launcher, {});
          continue;
        }
        if (kind === 'other' && !options.signal?.aborted)
          (error as Error).message +=
            ' (the worker ran under an unprivileged uid; ADRS_EVAL_SAME_UID=1 runs workers as this user)';
        throw error;
      }
    }
  }

  /** One start attempt; rejects with a WorkerStartError that says what kind of failure it was. */
  private static start(
    options: WorkerSpawnOptions,
    launcher: WorkerLauncher,
    identity: Identity,
  ): Promise<WorkerProcess> {
    const { bundle, memoryMb, signal } = options;
    const startTimeoutMs = options.startTimeoutMs ?? 60_000;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (ENV_KEEP.test(k)) env[k] = v;
    env.XDG_RUNTIME_DIR ??= '/tmp';
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new WorkerStartError('other', 'the worker start was cancelled'));
        return;
      }
      let child: ChildProcess;
      try {
        child = fork(bundle.entry, [options.adapter ?? process.env.ADRS_ADAPTER ?? ''], {
          cwd: bundle.dir,
          env,
          // setpriv/prlimit exec Node in the same process: the worker's pid is the one forked here.
          execPath: launcher.execPath,
          execArgv: [
            ...launcher.prefix,
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
      } catch (error) {
        // Node throws some spawn errors at once (EPERM for a uid the kernel refuses, EINVAL).
        const e = error as NodeJS.ErrnoException;
        reject(
          new WorkerStartError(spawnErrorKind(e.code), `could not start the evaluation worker: ${e.message}`),
        );
        return;
      }
      let tail = '';
      let settled = false;
      const cap: { over: () => void } = { over: () => child.kill('SIGKILL') };
      capIncomingMessages(child, () => cap.over());
      const fail = (kind: StartFailureKind, message: string): void => {
        if (settled) return;
        settled = true;
        cleanup();
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(new WorkerStartError(kind, message));
      };
      const timer = setTimeout(
        () =>
          fail(
            'transient',
            `the evaluation worker did not open a GPU device within ${startTimeoutMs / 1000} s`,
          ),
        startTimeoutMs,
      );
      const onAbort = () => fail('other', 'the worker start was cancelled');
      signal?.addEventListener('abort', onAbort, { once: true });
      const onStderr = (d: Buffer) => {
        tail = (tail + d.toString()).slice(-2000);
      };
      // Others (ENOENT, EACCES, EAGAIN, EMFILE) arrive as an 'error' event after fork returns.
      const onError = (error: NodeJS.ErrnoException) =>
        fail(spawnErrorKind(error.code), `could not start the evaluation worker: ${error.message}`);
      const onExit = (code: number | null, sig: string | null) => {
        const why = lastLines(tail);
        fail(
          startOutputKind(why),
          `the evaluation worker exited during start (${sig ?? `code ${code}`}): ${why}`,
        );
      };
      const onMessage = (m: FromWorker) => {
        if (m === null || typeof m !== 'object' || m.type !== 'ready') {
          const why = m?.type === 'fatal' ? String(m.message) : String(m?.type);
          fail(startOutputKind(why), `the evaluation worker could not start: ${why}`);
          return;
        }
        const adapter = String(m.adapter).slice(0, 200);
        const mismatch = adapterMismatch(options.adapter, adapter);
        if (mismatch) {
          fail('identity', mismatch);
          return;
        }
        settled = true;
        cleanup();
        const worker = new WorkerProcess(child, adapter, memoryMb);
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
      };
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        child.stderr?.off('data', onStderr);
        child.off('error', onError);
        child.off('exit', onExit);
        child.off('message', onMessage);
      };
      child.on('error', () => {}); // after the start: a failed kill or send is handled where it happens
      child.on('error', onError);
      child.stderr?.on('data', onStderr);
      child.once('exit', onExit);
      child.once('message', onMessage);
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
