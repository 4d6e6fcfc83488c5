import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleCli as bundleCliAt } from './cli-bundle.js';

/**
 * What the distributed tests need: a private redis-server on a free loopback port (its own temp
 * folder, no persistence, stopped by the test), the CLI bundled for child processes, `adrs worker`
 * children, and a hook server through which a test evaluator announces each evaluation and waits
 * for the test's answer, so a test knows a worker is mid-evaluation without sleeping.
 */

export class RedisServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
    readonly password: string | null,
  ) {}

  static async start(options: { password?: string } = {}): Promise<RedisServer> {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'adrs-redis-'));
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
    ];
    if (options.password) args.push('--requirepass', options.password);
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForLine(child, /Ready to accept connections/, 'redis-server');
    return new RedisServer(child, port, dir, options.password ?? null);
  }

  get url(): string {
    return `redis://${this.password ? `:${encodeURIComponent(this.password)}@` : ''}127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves when the child prints a line matching `re` (stdout or stderr); rejects if it exits first. */
export function waitForLine(child: ChildProcess, re: RegExp, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const line = seen.split('\n').find((l) => re.test(l));
      if (line !== undefined) {
        cleanup();
        resolve(line);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${what} exited (${code}) before printing ${re}: ${seen.slice(-2000)}`));
    };
    const cleanup = () => {
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

const BUNDLE_DIR = join('node_modules', '.cache', 'adrs-distributed-test');
export const CLI = join(BUNDLE_DIR, 'adrs.mjs');

/** The whole CLI as one file (see cli-bundle.ts), for `adrs worker` and `adrs evolve` children. */
export const bundleCli = (): Promise<string> => bundleCliAt(CLI);

export interface WorkerChild {
  child: ChildProcess;
  pid: number;
  /** Everything it printed so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `adrs worker` and resolves once it has said which adapter it runs on (it is taking jobs). */
export async function startWorker(
  args: string[],
  env: Record<string, string> = {},
  cli = CLI,
): Promise<WorkerChild> {
  const child = spawn(process.execPath, [cli, 'worker', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  await waitForLine(child, /adrs worker .*: adapter /, 'adrs worker');
  return { child, pid: child.pid!, output: () => out, exited };
}

export async function stopWorker(w: WorkerChild): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGKILL');
  await w.exited;
}

/** One evaluation as announced by the test evaluator: which process, which program, which split. */
export interface HookCall {
  pid: number;
  split: string;
  spread: number;
  width: number;
  ts: string;
}

/** The test decides each evaluation: 'go' scores it, 'crash' makes its worker SIGKILL itself. */
export class HookServer {
  readonly calls: HookCall[] = [];
  private server!: Server;
  constructor(private readonly decide: (call: HookCall) => Promise<'go' | 'crash'> | 'go' | 'crash') {}

  static async start(decide: HookServer['decide']): Promise<HookServer> {
    const h = new HookServer(decide);
    h.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const call = JSON.parse(Buffer.concat(chunks).toString()) as HookCall;
        h.calls.push(call);
        void Promise.resolve(h.decide(call)).then((answer) => {
          res.writeHead(200);
          res.end(answer);
        });
      });
    });
    await new Promise<void>((r) => h.server.listen(0, '127.0.0.1', r));
    return h;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/**
 * A plug-in evaluator for `adrs worker --evaluator-module`: the toy problem's score (from the
 * toy project's own module), announced to the hook server first when BROKER_TEST_HOOK is set.
 * Its traces come from BROKER_TEST_TRACES (JSON), so a test can give a worker other data.
 */
export function writeHookEvaluator(projectDir: string): string {
  const path = join(projectDir, 'hook-evaluator.mjs');
  writeFileSync(
    path,
    `import { score } from './toy-evaluator.mjs';
export async function createEvaluator(options) {
  return {
    workers: options.evaluator.workers,
    async evaluate(files, split) {
      const ts = files['balancer.ts'] ?? '';
      const wgsl = files['kernels/toy.wgsl'] ?? '';
      if (process.env.BROKER_TEST_HOOK) {
        const res = await fetch(process.env.BROKER_TEST_HOOK, {
          method: 'POST',
          body: JSON.stringify({
            pid: process.pid, split, ts,
            spread: Number(/SPREAD = (-?\\d+)/.exec(ts)?.[1]),
            width: Number(/WIDTH: u32 = (\\d+)u/.exec(wgsl)?.[1]),
          }),
        });
        if ((await res.text()) === 'crash') process.kill(process.pid, 'SIGKILL');
      }
      return score(files);
    },
    hasHeldOut: () => false,
    traces: () => JSON.parse(process.env.BROKER_TEST_TRACES ?? '{}'),
    async close() {},
  };
}
`,
  );
  return path;
}

/** A promise with its resolve exposed. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
