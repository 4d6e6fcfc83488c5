import { ShaderCompileError } from '../gpu/kernels.js';
import { oneLine } from '../util/errors.js';

/** What the CLI prints for a thrown error: one line, the stack only under --verbose, or a hint for a bug. */
export function errorReport(error: unknown, verbose: boolean): string {
  const userFacing =
    error instanceof Error && (error.name === 'UserError' || error instanceof ShaderCompileError);
  let text = `adrs: ${oneLine(error)}\n`;
  if (verbose && error instanceof ShaderCompileError && error.detail) text += `${error.detail}\n`;
  if (verbose && error instanceof Error && error.stack) text += `${error.stack}\n`;
  else if (!userFacing) text += '(an internal error: run again with --verbose for details)\n';
  return text;
}
