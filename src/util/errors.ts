/**
 * An error caused by the user's input or environment. The CLI prints its message as one line
 * (no stack trace) and exits 1; anything else is a bug and is shown with its stack under --verbose.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/**
 * Throws a UserError when `condition` is false; keeps input checks to one readable line each. For
 * what the user (or their environment) gave: a flag, a file, a config key, a trace.
 */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new UserError(message);
}

/**
 * Throws a plain Error when an invariant the code relies on is broken (a bug: the CLI shows it as an
 * internal error, its stack under --verbose). Not for input: that is `check`.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** The first line of any thrown value, for one-line reports. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.trim();
}
