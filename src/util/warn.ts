/**
 * One way for library code to warn the user (a sandbox layer missing, a worker thread lost, a
 * broker error): one line, prefixed `adrs:`. The CLI points the sink at its io (src/cli/main.ts),
 * so a run in a test process gets its own warnings; library callers outside the CLI get stderr.
 */
export type WarningSink = (line: string) => void;

const toStderr: WarningSink = (line) => void process.stderr.write(`${line}\n`);
let sink: WarningSink = toStderr;

export function warn(message: string): void {
  sink(`adrs: ${message}`);
}

/** Replaces where warnings go; returns the previous sink (to restore it). */
export function setWarningSink(next: WarningSink): WarningSink {
  const previous = sink;
  sink = next;
  return previous;
}
