import { ShaderCompileError } from '../gpu/kernels.js';
import { oneLine } from '../util/errors.js';

/** One line on stderr and exit code 1; the stack only under --verbose, or for a bug. */
export function reportAndExit(error: unknown, verbose: boolean): void {
  const userFacing =
    error instanceof Error && (error.name === 'UserError' || error instanceof ShaderCompileError);
  process.stderr.write(`adrs: ${oneLine(error)}\n`);
  if (verbose && error instanceof ShaderCompileError && error.detail)
    process.stderr.write(`${error.detail}\n`);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  else if (!userFacing) process.stderr.write('(an internal error: run again with --verbose for details)\n');
  process.exit(1);
}
