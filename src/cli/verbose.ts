/**
 * Whether the command line asks for --verbose, read before yargs parses it: the launcher decides
 * on it before the CLI loads, and an error report needs it when parsing itself failed.
 */
export function wantsVerbose(args: readonly string[]): boolean {
  return args.some((a) => a === '--verbose' || a === '--verbose=true');
}
