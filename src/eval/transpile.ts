import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { builtinModules, createRequire, SourceMap } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UserError } from '../util/errors.js';
import { CANDIDATE_SOURCE_URL } from './protocol.js';
import {
  bubblewrap,
  bwrapArgs,
  bwrapSetupFailed,
  osSandboxOff,
  processTree,
  rssMb,
  sandboxMode,
  sealedStdio,
} from './sandbox.js';
import { ownedTempDir } from './worker-bundle.js';

/** A candidate's balancer.ts (and the files it imports) as one ESM module, with its source map. */
export interface CompiledCandidate {
  js: string;
  /** Maps candidate.js line:col back to the candidate's own .ts files. */
  mapStack(stack: string): string[];
  /** Where it was transpiled: inside bubblewrap, or in its own process without it. */
  sandbox: 'bubblewrap' | 'process';
}

/** Why a candidate could not be transpiled; `key` is the artifact it becomes. */
export class TranspileError extends Error {
  override name = 'TranspileError';
  constructor(
    readonly diagnostics: string[],
    readonly key: 'transpile' | 'timeout' | 'resource' = 'transpile',
  ) {
    super(diagnostics[0] ?? 'transpile failed');
  }
}

const BUILTINS = new Set(builtinModules);

/**
 * The only Node built-ins a candidate may import: pure computation. Everything else is refused at
 * transpile time, by name and by default (an allow-list, so new and underscore modules such as
 * `_http_client` or `_tls_wrap` are refused too): no file system (fs can write to any descriptor,
 * the harness channel included; the permission model checks only paths), network, processes,
 * threads, module loading, code generation, native engines (crypto.setEngine) or terminal streams
 * (tty wraps any descriptor). A balancer computes from its input.
 */
export const ALLOWED_BUILTINS: ReadonlySet<string> = new Set([
  'assert',
  'assert/strict',
  'buffer',
  'events',
  'path',
  'path/posix',
  'path/win32',
  'perf_hooks',
  'string_decoder',
  'timers',
  'timers/promises',
  'url',
  'util',
  'util/types',
  'zlib',
]);

/** All candidate sources (balancer.ts and what it imports) together: a page of code, not a data channel. */
export const MAX_CANDIDATE_TS_BYTES = 1 << 20;
/** Largest transpiled output read back (the sources are capped far below it). */
const MAX_OUTPUT_BYTES = 16 << 20;

export interface TranspileLimits {
  /** The candidate's time limit, seconds (default 60): the transpile is stopped past it. */
  timeoutS?: number;
  /** The candidate's memory cap, MiB (default 2048): the transpile is stopped over it. */
  memoryMb?: number;
}

/**
 * Transpiles and bundles balancer.ts with esbuild, as untrusted input: esbuild's own binary runs in
 * a process of this candidate's alone (nothing a candidate can crash is shared with the next one),
 * under the candidate's time and memory bounds, inside bubblewrap where available, in a sandbox
 * that holds only the esbuild binary, the candidate folder (read-only) and an empty output folder:
 * no network, nothing else to read. Imports are limited to the candidate's own files (type-only
 * imports, such as the candidate API, are erased; every file loaded must lie inside the folder after
 * resolving symlinks: in the sandbox nothing else exists, and the metafile is checked all the same)
 * and ALLOWED_BUILTINS. Dynamic `import()` is compiled into a require that always fails in the
 * worker (there is no `require` in its ES module). Errors come back as "file:line:col: message".
 */
export async function transpileCandidate(
  dir: string,
  limits: TranspileLimits = {},
): Promise<CompiledCandidate> {
  const root = realpathSync(resolve(dir));
  const esbuild = esbuildBinary();
  const out = ownedTempDir();
  try {
    let bwrap: string | undefined;
    try {
      bwrap = bubblewrap();
    } catch (error) {
      throw new Error(`cannot transpile the candidate: ${(error as Error).message}`);
    }
    for (;;) {
      const run = await runEsbuild(esbuild, root, out, bwrap, limits);
      if (
        bwrap &&
        run.code !== 0 &&
        run.code !== 1 &&
        bwrapSetupFailed(run.stderr) &&
        sandboxMode() !== 'bubblewrap'
      ) {
        osSandboxOff(`bubblewrap could not set up a sandbox (${run.stderr.split('\n')[0]})`);
        bwrap = undefined;
        continue;
      }
      return finish(run, root, out, bwrap ? 'bubblewrap' : 'process');
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

interface EsbuildRun {
  code: number | null;
  signal: string | null;
  stderr: string;
  over?: { kind: 'timeout' | 'resource'; message: string };
}

/** esbuild's flags (besides the output paths): ESM for Node 20, only ALLOWED_BUILTINS external. */
function esbuildFlags(): string[] {
  const flags = [
    'balancer.ts',
    '--bundle',
    '--format=esm',
    // neutral: no built-in is external unless listed, so every other one fails to resolve, with its location.
    '--platform=neutral',
    '--main-fields=',
    '--target=node20',
    '--log-level=error',
    '--color=false',
    '--log-limit=5',
    '--supported:dynamic-import=false',
    '--tsconfig-raw={}',
    '--sourcemap=external',
    '--sources-content=false',
  ];
  for (const name of ALLOWED_BUILTINS) flags.push(`--external:${name}`, `--external:node:${name}`);
  return flags;
}

function runEsbuild(
  esbuild: string,
  root: string,
  out: string,
  bwrap: string | undefined,
  limits: TranspileLimits,
): Promise<EsbuildRun> {
  const timeoutMs = (limits.timeoutS ?? 60) * 1000;
  const memoryMb = limits.memoryMb ?? 2048;
  let file: string;
  let args: string[];
  if (bwrap) {
    const sandbox = bwrapArgs({
      system: false,
      readOnly: [root],
      readOnlyAt: [[esbuild, '/.esbuild']],
      readWrite: [[out, '/.out']],
      chdir: root,
    });
    file = bwrap;
    args = [
      ...sandbox,
      '--',
      '/.esbuild',
      ...esbuildFlags(),
      '--outfile=/.out/candidate.js',
      '--metafile=/.out/meta.json',
    ];
  } else {
    file = esbuild;
    args = [
      ...esbuildFlags(),
      `--outfile=${join(out, 'candidate.js')}`,
      `--metafile=${join(out, 'meta.json')}`,
    ];
  }
  return new Promise((done) => {
    let child: ChildProcess;
    const result: EsbuildRun = { code: null, signal: null, stderr: '' };
    try {
      child = spawn(file, args, { cwd: root, env: {}, stdio: sealedStdio(['ignore', 'ignore', 'pipe']) });
    } catch (error) {
      result.code = -1;
      result.stderr = `could not start esbuild: ${(error as Error).message}`;
      done(result);
      return;
    }
    const stop = (kind: 'timeout' | 'resource', message: string): void => {
      result.over ??= { kind, message };
      const pids = child.pid !== undefined ? processTree(child.pid) : [];
      child.kill('SIGKILL');
      for (const pid of pids.slice(1)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    };
    const timer = setTimeout(
      () =>
        stop(
          'timeout',
          `timeout: transpiling balancer.ts exceeded the candidate's ${timeoutMs / 1000} s limit and was stopped`,
        ),
      timeoutMs,
    );
    const watch = setInterval(() => {
      if (child.pid === undefined) return;
      let total = 0;
      for (const pid of processTree(child.pid)) total += rssMb(pid) ?? 0;
      if (total > memoryMb)
        stop(
          'resource',
          `transpiling balancer.ts used ${Math.round(total)} MiB, over the candidate's cap of ${memoryMb} MiB, and was stopped`,
        );
    }, 50);
    // The first 64 KB: the errors come first (a crashing Go runtime prints megabytes of stack after them).
    child.stderr?.on('data', (d: Buffer) => {
      if (result.stderr.length < 65536) result.stderr += d.toString().slice(0, 65536 - result.stderr.length);
    });
    child.stderr?.on('error', () => {});
    child.on('error', (error) => {
      result.stderr += `could not start esbuild: ${error.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(watch);
      result.code = code;
      result.signal = signal;
      done(result);
    });
  });
}

function finish(
  run: EsbuildRun,
  root: string,
  out: string,
  sandbox: 'bubblewrap' | 'process',
): CompiledCandidate {
  if (run.over) throw new TranspileError([run.over.message], run.over.kind);
  if (run.code !== 0) {
    const errors = parseErrors(run.stderr, root);
    if (run.code === 1 && errors.length > 0) throw new TranspileError(errors.slice(0, 5));
    const first = run.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('goroutine') && !l.startsWith('runtime.'));
    const how = run.signal ? `killed by ${run.signal}` : `exit code ${run.code}`;
    throw new TranspileError([
      `esbuild stopped on this candidate (${how}): ${first.slice(0, 2).join(' | ').slice(0, 400) || 'no message'}`,
    ]);
  }
  const read = (name: string): string => {
    const path = join(out, name);
    if (!existsSync(path)) throw new TranspileError([`esbuild wrote no ${name}`]);
    if (statSync(path).size > MAX_OUTPUT_BYTES)
      throw new TranspileError([`the transpiled candidate exceeds ${MAX_OUTPUT_BYTES} bytes`]);
    return readFileSync(path, 'utf8');
  };
  checkMetafile(read('meta.json'), root);
  const js = read('candidate.js').replace(/\n\/\/# sourceMappingURL=\S*\s*$/, '\n');
  let map: SourceMap | null = null;
  try {
    const payload = JSON.parse(read('candidate.js.map')) as { sources?: unknown };
    const outDir = sandbox === 'bubblewrap' ? '/.out' : out;
    if (Array.isArray(payload.sources))
      payload.sources = payload.sources.map((s) => (typeof s === 'string' ? resolve(outDir, s) : s));
    map = new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    map = null; // stack frames then stay as candidate.js:line:col
  }
  return { js, mapStack: (stack) => mapCandidateStack(stack, map, root), sandbox };
}

/**
 * Every file esbuild loaded lies inside the folder (after resolving symlinks) and together they
 * are within the size cap; every import left external is an allowed built-in. (In bubblewrap
 * nothing else exists to load; without it this is the check.)
 */
function checkMetafile(text: string, root: string): void {
  let meta: {
    inputs?: Record<
      string,
      { bytes?: unknown; imports?: Array<{ path?: unknown; external?: unknown; original?: unknown }> }
    >;
  };
  try {
    meta = JSON.parse(text);
  } catch {
    throw new TranspileError(['esbuild wrote an unreadable metafile']);
  }
  const inputs = meta.inputs ?? {};
  let bytes = 0;
  for (const [name, input] of Object.entries(inputs)) {
    const path = resolve(root, name);
    let real = path;
    try {
      real = realpathSync(path);
    } catch {}
    if (!inside(root, path) || !inside(root, real)) {
      const importer = Object.entries(inputs).find(([, i]) =>
        (i.imports ?? []).some((imp) => imp.path === name),
      );
      const spec = importer?.[1].imports?.find((imp) => imp.path === name)?.original;
      const where = importer
        ? locate(root, importer[0], typeof spec === 'string' ? spec : name)
        : 'balancer.ts';
      throw new TranspileError([
        `${where}: '${relative(root, real)}' resolves outside the candidate folder (a symlink?); candidates consist of their own files only`,
      ]);
    }
    bytes += typeof input.bytes === 'number' ? input.bytes : 0;
    for (const imp of input.imports ?? []) {
      // '<runtime>': esbuild's stand-in for a computed import(), a require that always fails in the worker.
      if (imp.external !== true || typeof imp.path !== 'string' || imp.path === '<runtime>') continue;
      const spec = imp.path.replace(/^node:/, '');
      if (!ALLOWED_BUILTINS.has(spec))
        throw new TranspileError([`${locate(root, name, imp.path)}: ${builtinMessage(imp.path)}`]);
    }
  }
  if (bytes > MAX_CANDIDATE_TS_BYTES) {
    throw new TranspileError([
      `the candidate's sources exceed ${MAX_CANDIDATE_TS_BYTES} bytes (a balancer is a page of code)`,
    ]);
  }
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root + sep);
}

/** "file:line:col" of the first quoted occurrence of `spec` in a candidate file (its import), else "file". */
function locate(root: string, file: string, spec: string): string {
  try {
    const text = readFileSync(resolve(root, file), 'utf8');
    for (const q of ["'", '"', '`']) {
      const at = text.indexOf(`${q}${spec}${q}`);
      if (at < 0) continue;
      const before = text.slice(0, at).split('\n');
      return `${file}:${before.length}:${before[before.length - 1]!.length + 1}`;
    }
  } catch {}
  return file;
}

function builtinMessage(spec: string): string {
  return `'${spec}' is not available to candidates (no file system, network, processes, threads, module loading or code generation); a balancer computes from its input`;
}

/** esbuild's "✘ [ERROR] text" blocks with their "file:line:col:" (0-based column), rewritten by the import policy. */
function parseErrors(stderr: string, root: string): string[] {
  const lines = stderr.split('\n');
  const errors: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\S* ?\[ERROR\] (.*)$/.exec(lines[i]!);
    if (!m) continue;
    let text = m[1]!;
    let where: { file: string; line: number; col: number } | undefined;
    for (let j = i + 1; j < lines.length && j < i + 4; j++) {
      const loc = /^\s+(.+):(\d+):(\d+):$/.exec(lines[j]!);
      if (loc) {
        where = { file: loc[1]!, line: Number(loc[2]), col: Number(loc[3]) + 1 };
        break;
      }
    }
    const unresolved = /^Could not resolve "(.*)"$/.exec(text);
    if (unresolved)
      text = importPolicy(root, where ? dirname(resolve(root, where.file)) : root, unresolved[1]!) ?? text;
    errors.push(where ? `${where.file}:${where.line}:${where.col}: ${text}` : text);
  }
  return errors;
}

/** Why an import esbuild could not resolve is refused, or undefined when it simply does not exist. */
function importPolicy(root: string, fromDir: string, spec: string): string | undefined {
  if (spec.startsWith('node:') || BUILTINS.has(spec)) return builtinMessage(spec);
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const target = resolve(fromDir, spec);
    if (!inside(root, target))
      return `imports outside the candidate folder are not allowed: '${spec}' (use 'import type' for the candidate API)`;
    for (const candidate of [
      target,
      `${target}.ts`,
      `${target}.js`,
      `${target}.json`,
      join(target, 'index.ts'),
    ]) {
      let real: string;
      try {
        real = realpathSync(candidate);
      } catch {
        continue;
      }
      if (!inside(root, real))
        return `'${relative(root, real)}' resolves outside the candidate folder (a symlink?); candidates consist of their own files only`;
    }
    return undefined;
  }
  return `package imports are not allowed: '${spec}'; candidates import only their own files and node: built-ins`;
}

/** esbuild's native binary (the JavaScript API would share one long-lived service between candidates). */
function esbuildBinary(): string {
  const fromEnv = process.env.ESBUILD_BINARY_PATH;
  if (fromEnv && isAbsolute(fromEnv)) return fromEnv;
  const require = createRequire(import.meta.url);
  const pkg = `@esbuild/${process.platform}-${process.arch}`;
  const bin = process.platform === 'win32' ? 'esbuild.exe' : 'bin/esbuild';
  try {
    return realpathSync(require.resolve(`${pkg}/${bin}`));
  } catch {
    // The environment, not a bug: a one-line error that says what to do.
    throw new UserError(`esbuild's binary for this platform (${pkg}) is not installed; run npm ci`);
  }
}

const FRAME = new RegExp(
  `^\\s*at (?:(.*?) \\()?${CANDIDATE_SOURCE_URL.replace('.', '\\.')}:(\\d+):(\\d+)\\)?$`,
);

/** The candidate's own stack frames, mapped to its .ts files; harness frames are dropped. */
export function mapCandidateStack(stack: string, map: SourceMap | null, root: string): string[] {
  const frames: string[] = [];
  for (const line of stack.split('\n')) {
    const m = FRAME.exec(line);
    if (!m) continue;
    const fn = m[1];
    let where = `${CANDIDATE_SOURCE_URL}:${m[2]}:${m[3]}`;
    const entry = map?.findEntry(Number(m[2]) - 1, Number(m[3]) - 1) as
      | { originalSource?: string; originalLine?: number; originalColumn?: number }
      | undefined;
    if (entry?.originalSource !== undefined && entry.originalLine !== undefined) {
      const source = entry.originalSource.replace(/^file:\/\//, '');
      const file = isAbsolute(source) ? relative(root, source) : source;
      where = `${file}:${entry.originalLine + 1}:${(entry.originalColumn ?? 0) + 1}`;
    }
    frames.push(`    at ${fn ? `${fn.replace(/^Module\./, '')} (${where})` : where}`);
    if (frames.length >= 8) break;
  }
  return frames;
}
