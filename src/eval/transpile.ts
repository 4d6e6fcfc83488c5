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
 * Transpiles and bundles balancer.ts with esbuild. Imports are limited to the candidate's own files
 * (type-only imports, such as the candidate API, are erased) and Node built-ins (which the sandbox
 * then restricts at run time). Errors come back as "file:line:col: message".
 */
export async function transpileCandidate(dir: string): Promise<CompiledCandidate> {
  const root = resolve(dir);
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
      plugins: [
        {
          name: 'candidate-imports',
          setup(b) {
            b.onResolve({ filter: /.*/ }, (args) => {
              if (args.kind === 'entry-point') return undefined;
              const spec = args.path;
              if (spec.startsWith('node:') || BUILTINS.has(spec)) return { path: spec, external: true };
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
