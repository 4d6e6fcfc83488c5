/**
 * A single self-overwriting status line on stderr, for commands that run longer than a second.
 * Silent when stderr is not a terminal (CI logs, pipes) or when disabled (--json).
 */
export function progressLine(
  enabled: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): { update: (message: string) => void; done: () => void; live: boolean } {
  const live = enabled && stream.isTTY === true;
  const started = performance.now();
  let shown = false;
  return {
    live,
    update: (message) => {
      if (!live) return;
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      const text = `[${seconds}s] ${message}`.slice(0, (stream.columns || 100) - 1);
      stream.write(`\r\x1b[2K${text}`);
      shown = true;
    },
    done: () => {
      if (live && shown) stream.write('\r\x1b[2K');
    },
  };
}

/**
 * A status line redrawn once a second from `render()` while a long command runs, so a wait (a slow
 * model, a long evaluation) shows its growing time instead of looking like a hang. TTY only.
 */
export function tickingLine(
  render: () => string,
  enabled = true,
  stream: NodeJS.WriteStream = process.stderr,
) {
  const line = progressLine(enabled, stream);
  const timer = line.live ? setInterval(() => line.update(render()), 1000) : null;
  timer?.unref();
  return {
    live: line.live,
    redraw: () => line.update(render()),
    stop: () => {
      if (timer) clearInterval(timer);
      line.done();
    },
  };
}
