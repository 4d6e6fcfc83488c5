import { realpathSync, statSync } from 'node:fs';
import { builtinModules, SourceMap } from 'node:module';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { build, type Message } from 'esbuild';
import { CANDIDATE_SOURCE_URL } from './protocol.js';

/** A candidate's balancer.ts (and the files it imports) as one ESM module, with its source map. */
export interface CompiledCandidate {
  js: string;
  /** Maps candidate.js line:col back to the candidate's own .ts files. */
  mapStack(stack: string): string[];
}

export class TranspileError extends Error {
  override name = 'TranspileError';
  constructor(readonly diagnostics: string[]) {
    super(diagnostics[0] ?? 'transpile failed');
  }
}

const BUILTINS = new Set(builtinModules);

/**
 * Built-ins a candidate may not import: the network, processes and threads (the permission model
 * does not restrict networking), ways to load other modules or compile code at run time (module,
 * vm, repl), to observe the harness's own async work (async_hooks, diagnostics_channel, inspector),
 * and os (setPriority renices other processes). File system modules stay importable: the
 * permission model refuses every read and write beyond the worker's own code.
 */
export const DENIED_BUILTINS: ReadonlySet<string> = new Set([
  'async_hooks',
  'child_process',
  'cluster',
  'dgram',
  'diagnostics_channel',
  'dns',
  'dns/promises',
  'domain',
  'http',
  'http2',
  'https',
  'inspector',
  'inspector/promises',
  'module',
  'net',
  'os',
  'repl',
  'test',
  'tls',
  'trace_events',
  'v8',
  'vm',
  'wasi',
  'worker_threads',
]);

/** All candidate sources (balancer.ts and what it imports) together: a page of code, not a data channel. */
export const MAX_CANDIDATE_TS_BYTES = 1 << 20;

/**
 * Transpiles and bundles balancer.ts with esbuild. Imports are limited to the candidate's own files
 * (type-only imports, such as the candidate API, are erased; every file loaded must lie inside the
 * folder after resolving symlinks) and static imports of Node built-ins other than DENIED_BUILTINS
 * (which the sandbox then restricts at run time). Dynamic `import()` is compiled into a require that
 * always fails in the worker (there is no `require` in its ES module), so a computed specifier
 * cannot reach a denied module at run time. Errors come back as "file:line:col: message".
 */
export async function transpileCandidate(dir: string): Promise<CompiledCandidate> {
  const root = realpathSync(resolve(dir));
  let bytes = 0;
  let result: Awaited<ReturnType<typeof build>>;
  try {
    result = await build({
      entryPoints: [join(root, 'balancer.ts')],
      outfile: join(root, 'candidate.js'),
      absWorkingDir: root,
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'external',
      sourcesContent: false,
      logLevel: 'silent',
      tsconfigRaw: { compilerOptions: {} },
      supported: { 'dynamic-import': false },
      plugins: [
        {
          name: 'candidate-imports',
          setup(b) {
            // Every file esbuild reads, the entry included: inside the folder once symlinks are
            // resolved (a symlinked trace must not be inlined), and within the size cap.
            b.onLoad({ filter: /.*/ }, (args) => {
              let real: string;
              try {
                real = realpathSync(args.path);
              } catch {
                return undefined; // esbuild reports the missing file itself
              }
              if (real !== root && !real.startsWith(root + sep)) {
                return {
                  errors: [
                    {
                      text: `'${relative(root, args.path)}' resolves outside the candidate folder (a symlink?); candidates consist of their own files only`,
                    },
                  ],
                };
              }
              bytes += statSync(real).size;
              if (bytes > MAX_CANDIDATE_TS_BYTES) {
                return {
                  errors: [
                    {
                      text: `the candidate's sources exceed ${MAX_CANDIDATE_TS_BYTES} bytes (a balancer is a page of code)`,
                    },
                  ],
                };
              }
              return undefined;
            });
            b.onResolve({ filter: /.*/ }, (args) => {
              if (args.kind === 'entry-point') return undefined;
              const spec = args.path;
              if (spec.startsWith('node:') || BUILTINS.has(spec)) {
                const name = spec.replace(/^node:/, '');
                if (DENIED_BUILTINS.has(name) || !BUILTINS.has(name)) {
                  return {
                    errors: [
                      {
                        text: `'${spec}' is not available to candidates (no network, processes, threads, module loading or code generation); a balancer computes from its input`,
                      },
                    ],
                  };
                }
                return { path: `node:${name}`, external: true };
              }
              if (spec.startsWith('.') || spec.startsWith('/')) {
                const target = resolve(args.resolveDir, spec);
                if (target !== root && !target.startsWith(root + sep)) {
                  return {
                    errors: [
                      {
                        text: `imports outside the candidate folder are not allowed: '${spec}' (use 'import type' for the candidate API)`,
                      },
                    ],
                  };
                }
                return undefined;
              }
              return {
                errors: [
                  {
                    text: `package imports are not allowed: '${spec}'; candidates import only their own files and node: built-ins`,
                  },
                ],
              };
            });
          },
        },
      ],
    });
  } catch (error) {
    const errors = (error as { errors?: Message[] }).errors;
    if (errors?.length) throw new TranspileError(errors.slice(0, 5).map((m) => formatMessage(root, m)));
    throw new TranspileError([String((error as Error).message ?? error).split('\n')[0]!]);
  }
  const outputs = result.outputFiles ?? [];
  const js = outputs.find((f) => f.path.endsWith('.js'))!.text;
  const mapText = outputs.find((f) => f.path.endsWith('.map'))?.text;
  const map = mapText ? new SourceMap(JSON.parse(mapText)) : null;
  return { js, mapStack: (stack) => mapCandidateStack(stack, map, root) };
}

function formatMessage(root: string, m: Message): string {
  if (!m.location) return m.text;
  const file = relative(root, resolve(root, m.location.file)) || m.location.file;
  return `${file}:${m.location.line}:${m.location.column + 1}: ${m.text}`;
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
