import { build } from 'esbuild';
import { writeFileAtomic } from '../../src/util/files.js';

/**
 * The whole CLI (src/cli/main.ts, which runs itself as a process's entry) bundled into one file at
 * `outfile`, inside the repo so its packages resolve, for tests that run it as a child process.
 * Written through a temporary file and a rename: test files run in parallel, and one may start the
 * bundle another is rewriting.
 */
export async function bundleCli(outfile: string): Promise<string> {
  const result = await build({
    entryPoints: ['src/cli/main.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    outfile,
    write: false,
    logLevel: 'error',
  });
  writeFileAtomic(outfile, result.outputFiles[0]!.contents);
  return outfile;
}
