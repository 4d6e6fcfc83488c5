/**
 * A single self-overwriting status line on stderr, for commands that run longer than a second.
 * Silent when stderr is not a terminal (CI logs, pipes) or when disabled (--json).
 */
export function progressLine(enabled: boolean): { update: (message: string) => void; done: () => void } {
  const live = enabled && process.stderr.isTTY === true;
  const started = performance.now();
  let shown = false;
  return {
    update: (message) => {
      if (!live) return;
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      const text = `[${seconds}s] ${message}`.slice(0, (process.stderr.columns || 100) - 1);
      process.stderr.write(`\r\x1b[2K${text}`);
      shown = true;
    },
    done: () => {
      if (live && shown) process.stderr.write('\r\x1b[2K');
    },
  };
}
