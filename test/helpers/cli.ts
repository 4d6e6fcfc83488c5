import type { Argv } from 'yargs';
import { createCli } from '../../src/cli/main.js';

/** One `adrs` command line run in this process (createCli), with what it printed and its exit code. */
export async function runAdrs(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await createCli({
    stdout: (text) => {
      out.push(text);
    },
    stderr: (text) => {
      err.push(text);
    },
  }).run(args);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** The option names a yargs parser declares (getOptions is yargs API its types leave out). */
export function declaredOptions(parser: Argv): string[] {
  return Object.keys(
    (parser as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key,
  );
}
