import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { encodeFrame, FrameReader } from './framing.js';
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
import {
  CHANNEL_FD,
  type Failure,
  type FromWorker,
  GPU_MEMORY_EXIT,
  MAX_MESSAGE_BYTES,
  type ToWorker,
} from './protocol.js';
import {
  bubblewrap,
  bwrapArgs,
  bwrapPathDenied,
  bwrapSetupFailed,
  nodeDirs,
  osSandboxOff,
  processTree,
  rssMb,
  type SandboxReport,
  sandboxMode,
  sealedStdio,
  withRealPath,
} from './sandbox.js';
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
type Request = ToWorker extends infer T ? (T extends { id: number } ? Omit<T, 'id'> : never) : never;

/**
 * Environment variables the worker (Dawn, Vulkan loader, Mesa) may see; nothing else leaks in, not
 * even PATH (under npm it names the project folder).
 */
const ENV_KEEP = /^(LANG|LC_ALL|LD_LIBRARY_PATH|XDG_RUNTIME_DIR|VK_.*|MESA_.*|LP_.*|GALLIUM_.*|DISPLAY)$/;

/** How one worker is started: the OS sandbox (or not), the launcher without it, the identity. */
interface StartPlan {
  bwrap: string | undefined;
  launcher: WorkerLauncher;
  identity: Identity;
}

/**
 * One sandboxed worker process (worker-main.ts) and its private channel. Layers, outside in:
 * bubblewrap (sandbox.ts: own network, pid, ipc, uts, user and mount namespaces; read-only file
 * system holding only Node, the bundle, webgpu and the system libraries; private /tmp; GPU device
 * nodes only; dies with the harness), a root harness's own unprivileged uid per worker
 * (isolation.ts), no inherited descriptors but the channel (sealedStdio), Node's permission model
 * (reads only the bundle and webgpu; no writes, child processes or worker threads; --allow-addons
 * for Dawn, whose process.dlopen worker-main then disables; no code from strings), and the
 * JavaScript lockdown in the worker (harden.ts, worker-main.ts). The channel is a socket pair on the
 * worker's fd 3 with length-prefixed, bounded frames (framing.ts); stdout and stderr are plain pipes
 * read with a cap. --max-old-space-size plus a resident-memory watch kill a worker over its cap.
 */
export class WorkerProcess {
  private pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private death: WorkerDeath | null = null;
  private stderrTail = '';
  private stdoutTail = '';
  private rssTimer: NodeJS.Timeout | undefined;
  /** The worker's process tree (bubblewrap's processes, then Node), as found when it was ready. */
  private tree: number[] = [];
  /** Replies the harness never asked for. */
  unexpectedReplies = 0;
  peakRssMb = 0;

  private constructor(
    private readonly child: ChildProcess,
    private readonly channel: Writable,
    readonly adapter: string,
    private readonly memoryMb: number,
    /** The sandbox layers this worker runs under (reported with every result). */
    readonly sandbox: SandboxReport,
  ) {}

  /**
   * Starts a worker. In bubblewrap where it works (sandbox.ts); where bubblewrap cannot set the
   * sandbox up, the OS layer is turned off for this process with one loud line on stderr (an error
   * under ADRS_EVAL_SANDBOX=bubblewrap). Under a root harness it runs as an unprivileged uid when
   * that uid can reach Node, the bundle and webgpu (isolation.ts); a start that fails because of the
   * identity (the uid cannot read the worker's files or open the GPU the harness asked for) turns
   * isolation off for this process, with one line on stderr; a start that only timed out is
   * retried once.
   */
  static async spawn(options: WorkerSpawnOptions): Promise<WorkerProcess> {
    const node = options.nodePath ?? process.execPath;
    const launcher = workerLauncher(node, launchTools(), cpuLimitS(options));
    let bwrap: string | undefined;
    try {
      bwrap = bubblewrap();
    } catch (error) {
      throw new WorkerStartError('other', (error as Error).message);
    }
    const programs = (): string[] =>
      bwrap ? [bwrap, node] : launcher.execPath === node ? [node] : [launcher.execPath, node];
    let identity = isolatedIdentity(options.bundle, programs());
    for (let attempt = 1; ; attempt++) {
      try {
        return await WorkerProcess.start(options, { bwrap, launcher, identity });
      } catch (error) {
        const kind = error instanceof WorkerStartError ? error.kind : 'other';
        const why = String((error as Error).message).split('\n')[0];
        if (kind === 'sandbox' && bwrap && sandboxMode() !== 'bubblewrap' && attempt < 4) {
          osSandboxOff(`bubblewrap could not set up a sandbox (${why})`);
          bwrap = undefined;
          identity = isolatedIdentity(options.bundle, programs());
          continue;
        }
        if (kind === 'identity' && identity.uid !== undefined && attempt < 4) {
          isolationFailed(`a worker under an unprivileged uid could not start (${why})`);
          identity = {};
          continue;
        }
        if (kind === 'transient' && attempt < 2 && !options.signal?.aborted) {
          identity = isolatedIdentity(options.bundle, programs());
          continue;
        }
        if (kind === 'other' && identity.uid !== undefined && !options.signal?.aborted)
          (error as Error).message +=
            ' (the worker ran under an unprivileged uid; ADRS_EVAL_SAME_UID=1 runs workers as this user)';
        throw error;
      }
    }
  }

  /** The command line of one start: bubblewrap around Node, or the launcher (setpriv/prlimit) in front of it. */
  private static command(options: WorkerSpawnOptions, plan: StartPlan): { file: string; args: string[] } {
    const { bundle, memoryMb } = options;
    const node = options.nodePath ?? process.execPath;
    const nodeArgs = [
      '--experimental-permission',
      `--allow-fs-read=${bundle.entry}`,
      `--allow-fs-read=${bundle.webgpuDir}/`,
      '--allow-addons',
      // No eval/new Function: code built from strings could import() modules the bundler refused.
      '--disallow-code-generation-from-strings',
      `--max-old-space-size=${memoryMb}`,
      '--no-warnings',
      bundle.entry,
      options.adapter ?? process.env.ADRS_ADAPTER ?? '',
      // The worker's cap on the GPU memory its candidate holds (gpu-memory.ts).
      String(memoryMb),
    ];
    if (plan.bwrap) {
      const sandbox = bwrapArgs({
        system: true,
        readOnly: [
          ...new Set([bundle.dir, bundle.webgpuDir, ...withRealPath(bundle.webgpuDir), ...nodeDirs(node)]),
        ],
        chdir: bundle.dir,
        ...(plan.identity.uid !== undefined ? { uid: plan.identity.uid } : {}),
      });
      return { file: plan.bwrap, args: [...sandbox, '--', node, ...nodeArgs] };
    }
    return { file: plan.launcher.execPath, args: [...plan.launcher.prefix, ...nodeArgs] };
  }

  /** One start attempt; rejects with a WorkerStartError that says what kind of failure it was. */
  private static start(options: WorkerSpawnOptions, plan: StartPlan): Promise<WorkerProcess> {
    const { bundle, memoryMb, signal } = options;
    const startTimeoutMs = options.startTimeoutMs ?? 60_000;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (ENV_KEEP.test(k)) env[k] = v;
    env.XDG_RUNTIME_DIR ??= '/tmp';
    const { file, args } = WorkerProcess.command(options, plan);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new WorkerStartError('other', 'the worker start was cancelled'));
        return;
      }
      let child: ChildProcess;
      try {
        child = spawn(file, args, {
          cwd: bundle.dir,
          env,
          // stdin /dev/null, stdout and stderr pipes, the channel on fd 3; every other descriptor
          // this process could pass on is replaced by /dev/null (sealedStdio).
          stdio: sealedStdio(['ignore', 'pipe', 'pipe', 'pipe']),
          ...plan.identity,
        });
      } catch (error) {
        // Node throws some spawn errors at once (EPERM for a uid the kernel refuses, EINVAL).
        const e = error as NodeJS.ErrnoException;
        reject(
          new WorkerStartError(spawnErrorKind(e.code), `could not start the evaluation worker: ${e.message}`),
        );
        return;
      }
      const channel = child.stdio[CHANNEL_FD] as (Readable & Writable) | null | undefined;
      let tail = '';
      let settled = false;
      let worker: WorkerProcess | undefined;
      const reader = new FrameReader(MAX_MESSAGE_BYTES);
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
      // Others (ENOENT, EACCES, EAGAIN, EMFILE) arrive as an 'error' event after spawn returns.
      const onError = (error: NodeJS.ErrnoException) =>
        fail(spawnErrorKind(error.code), `could not start the evaluation worker: ${error.message}`);
      const onExit = (code: number | null, sig: string | null) => {
        const why = lastLines(tail);
        const kind: StartFailureKind =
          plan.bwrap && bwrapSetupFailed(tail)
            ? plan.identity.uid !== undefined && bwrapPathDenied(tail)
              ? 'identity'
              : 'sandbox'
            : startOutputKind(why);
        fail(kind, `the evaluation worker exited during start (${sig ?? `code ${code}`}): ${why}`);
      };
      const onStartMessage = (m: FromWorker) => {
        if (m.type !== 'ready') {
          const why = m.type === 'fatal' ? m.message : m.type;
          fail(startOutputKind(why), `the evaluation worker could not start: ${why}`);
          return;
        }
        const adapter = m.adapter.slice(0, 200);
        const mismatch = adapterMismatch(options.adapter, adapter);
        if (mismatch) {
          fail('identity', mismatch);
          return;
        }
        settled = true;
        cleanup();
        const hostUid = plan.identity.uid ?? (typeof process.getuid === 'function' ? process.getuid() : null);
        worker = new WorkerProcess(child, channel!, adapter, memoryMb, {
          os: plan.bwrap ? 'bubblewrap' : 'none',
          network: plan.bwrap ? 'none' : 'host',
          filesystem: plan.bwrap ? 'read-only' : 'host',
          uid: hostUid,
          own_uid: plan.identity.uid !== undefined,
          node_permissions: true,
          hardened: true,
          channel: 'private',
        });
        worker.stderrTail = tail;
        worker.attach();
        resolve(worker);
      };
      // Every frame goes through here, before and after the start; nothing a worker sends can throw
      // out of it (the reader and the message check are total).
      const onData = (d: Buffer) => {
        const r = reader.push(d);
        if ('error' in r) {
          if (worker) worker.broken(r.error);
          else fail('other', `the evaluation worker broke the harness protocol during start: ${r.error}`);
          return;
        }
        for (const raw of r.messages) {
          const m = checkFromWorker(raw);
          if (typeof m === 'string') {
            if (worker) worker.broken(m);
            else fail('other', `the evaluation worker broke the harness protocol during start: ${m}`);
            return;
          }
          if (worker) worker.onMessage(m);
          else onStartMessage(m);
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        child.stderr?.off('data', onStderr);
        child.off('error', onError);
        child.off('exit', onExit);
      };
      child.on('error', () => {}); // after the start: a failed kill is handled where it happens
      child.on('error', onError);
      // Pipes can report errors (EPIPE once the worker is gone): never an uncaught 'error' event.
      for (const stream of [child.stdout, child.stderr, channel]) stream?.on('error', () => {});
      child.stderr?.on('data', onStderr);
      child.once('exit', onExit);
      if (!channel) {
        fail('other', 'could not open the harness channel to the evaluation worker');
        return;
      }
      channel.on('data', onData);
    });
  }

  private attach(): void {
    const child = this.child;
    this.tree = child.pid !== undefined ? processTree(child.pid) : [];
    child.stdout?.on('data', (d: Buffer) => {
      this.stdoutTail = (this.stdoutTail + d.toString()).slice(-4000);
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4000);
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
      } else if (code === GPU_MEMORY_EXIT) {
        // Its fatal message (which names the figures) did not arrive before the exit.
        this.die(new WorkerDeath('resource', `GPU memory: over the cap of ${this.memoryMb} MiB`));
      } else {
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        const why = lastLines(stderr);
        this.die(new WorkerDeath('crash', `the worker process ${how}${why ? `: ${why}` : ''}`));
      }
    });
    this.rssTimer = setInterval(() => this.watchMemory(), 50);
    this.rssTimer.unref();
  }

  /** A checked message from the worker. */
  private onMessage(m: FromWorker): void {
    if (m.type === 'fatal') {
      this.die(new WorkerDeath(m.kind === 'resource' ? 'resource' : 'crash', m.message.slice(0, 2000)));
      return;
    }
    if (m.type === 'ready') {
      this.unexpectedReplies++;
      return;
    }
    const waiter = this.pending.get(m.id);
    if (!waiter) {
      this.unexpectedReplies++;
      return;
    }
    this.pending.delete(m.id);
    waiter.resolve(m);
  }

  /** The worker sent something that is not a frame of the protocol: it is killed, the candidate invalid. */
  private broken(why: string): void {
    this.kill(
      new WorkerDeath('crash', `the worker broke the harness protocol and was killed: ${why.slice(0, 300)}`),
    );
  }

  private watchMemory(): void {
    if (this.death) return;
    let total = 0;
    let seen = false;
    for (const pid of this.tree) {
      const mb = rssMb(pid);
      if (mb === undefined) continue;
      seen = true;
      total += mb;
    }
    if (!seen) return; // not Linux, or the process is gone
    this.peakRssMb = Math.max(this.peakRssMb, total);
    if (total > this.memoryMb) {
      this.kill(
        new WorkerDeath(
          'resource',
          `memory use reached ${Math.round(total)} MiB, over the cap of ${this.memoryMb} MiB`,
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
        this.channel.write(encodeFrame({ ...message, id } as ToWorker as unknown as Record<string, unknown>));
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
    // bubblewrap kills its sandbox when it dies; the worker itself is killed too, without waiting.
    for (const pid of this.tree.slice(1)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }

  /** The worker's Node process id (for tests and diagnostics; bubblewrap's own processes are its parents). */
  get pid(): number | undefined {
    return this.tree.length > 0 ? this.tree[this.tree.length - 1] : this.child.pid;
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

const FAILURE_KINDS = new Set(['wgsl', 'import', 'exception', 'sandbox', 'gpu', 'output']);

/**
 * A frame's message as a FromWorker, or why it is not one. Everything the harness reads later is
 * checked here (types, ranges, lengths), so no field of a worker's message can throw in the
 * harness: strings are clipped, arrays are typed arrays or short descriptions, numbers are numbers.
 */
export function checkFromWorker(raw: Record<string, unknown>): FromWorker | string {
  const str = (v: unknown, n: number): string | undefined =>
    typeof v === 'string' ? v.slice(0, n) : undefined;
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const type = raw.type;
  if (type === 'ready') {
    const adapter = str(raw.adapter, 200);
    if (adapter === undefined) return 'a ready message without an adapter name';
    const uid = num(raw.uid);
    return { type, adapter, ...(uid !== undefined ? { uid } : {}) };
  }
  if (type === 'fatal')
    return {
      type,
      message: str(raw.message, 2000) ?? 'no message',
      ...(raw.kind === 'resource' ? { kind: 'resource' as const } : {}),
    };
  const id = raw.id;
  if (typeof id !== 'number' || !Number.isInteger(id))
    return `a ${String(type).slice(0, 20)} message without an id`;
  let failure: Failure | undefined;
  if (raw.failure !== undefined) {
    const f = raw.failure as Record<string, unknown> | null;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) return 'a malformed failure';
    const kind = f.kind;
    const message = str(f.message, 8000);
    if (typeof kind !== 'string' || !FAILURE_KINDS.has(kind) || message === undefined)
      return 'a malformed failure';
    failure = { kind: kind as Failure['kind'], message };
    const stack = str(f.stack, 16_000);
    if (stack !== undefined) failure.stack = stack;
    if (Array.isArray(f.diagnostics))
      failure.diagnostics = f.diagnostics
        .slice(0, 20)
        .map((d) => (typeof d === 'string' ? d.slice(0, 2000) : '?'));
  }
  if (type === 'loaded') return { type, id, ...(failure ? { failure } : {}) };
  if (type !== 'result') return `an unknown message type '${String(type).slice(0, 20)}'`;
  const ms = num(raw.ms);
  if (ms === undefined) return 'a result without a time';
  const answer = (v: unknown): unknown =>
    v instanceof Int32Array
      ? v
      : v === undefined
        ? undefined
        : (str(v, 200) ?? 'a value the harness cannot read');
  const out: Extract<FromWorker, { type: 'result' }> = { type, id, ms };
  if (failure) out.failure = failure;
  const phy2log = answer(raw.phy2log);
  const logcnt = answer(raw.logcnt);
  if (phy2log !== undefined) out.phy2log = phy2log;
  if (logcnt !== undefined) out.logcnt = logcnt;
  const split = raw.split as Record<string, unknown> | undefined;
  if (split !== undefined) {
    if (split === null || typeof split !== 'object') return 'a malformed time split';
    const host = num(split.host_ms);
    const wait = num(split.gpu_wait_ms);
    const gpu = split.gpu_ms === null ? null : num(split.gpu_ms);
    if (host === undefined || wait === undefined || gpu === undefined) return 'a malformed time split';
    out.split = { host_ms: host, gpu_wait_ms: wait, gpu_ms: gpu };
  }
  return out;
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
