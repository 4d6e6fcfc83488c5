import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { isatty, WriteStream } from 'node:tty';
import { LAUNCHED_ENV } from './launcher.js';

/**
 * In a child started by {@link launch}: makes `process.stderr` the real stderr the launcher handed
 * over (so only native writes go through its filter), and exits when the launcher dies, as if the
 * two were one process. Returns false when this process was not started by the launcher.
 */
export function adoptLauncherStreams(): boolean {
  const fds = process.env[LAUNCHED_ENV];
  if (!fds) return false;
  // Grandchildren (eval workers, esbuild) must not think they were launched.
  delete process.env[LAUNCHED_ENV];
  const [stderrFd, lifelineFd] = fds.split(',').map(Number);
  // Anything but the two descriptors the launcher passes: not launched (the CLI runs unfiltered).
  if (!isPassedFd(stderrFd) || !isPassedFd(lifelineFd)) return false;

  const stderr = isatty(stderrFd) ? terminalWriter(stderrFd) : syncWriter(stderrFd);
  Object.defineProperty(process, 'stderr', {
    configurable: true,
    enumerable: true,
    get: () => stderr,
  });

  // The launcher holds the other end: end of stream means it is gone (even by SIGKILL).
  const lifeline = new Socket({ fd: lifelineFd, readable: true, writable: false });
  lifeline.on('end', () => process.kill(process.pid, 'SIGKILL'));
  lifeline.on('error', () => process.kill(process.pid, 'SIGKILL'));
  lifeline.resume();
  lifeline.unref();
  return true;
}

/**
 * A terminal writer, kept at the terminal's size as Node keeps its own process.stderr: on SIGWINCH
 * (which the launcher forwards) it re-reads the size and emits 'resize'.
 */
function terminalWriter(fd: number): WriteStream {
  const stream = new WriteStream(fd);
  process.on('SIGWINCH', () => (stream as WriteStream & { _refreshSize(): void })._refreshSize());
  return stream;
}

/** A synchronous writer, as Node's own stderr is for files and pipes (nothing lost on exit). */
function syncWriter(fd: number): Writable {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        writeAll(fd, chunk);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  return Object.assign(stream, { fd, isTTY: false });
}

/** One 32-bit cell to Atomics.wait on: a synchronous pause without spinning. */
const pauseCell = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd: number, chunk: Buffer): void {
  let offset = 0;
  while (offset < chunk.length) {
    try {
      offset += writeSync(fd, chunk, offset);
    } catch (error) {
      // The shared descriptor may be non-blocking (the launcher's libuv set it so), and a full pipe
      // (a paused pager) then answers EAGAIN: retry after a millisecond rather than spin a core.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      Atomics.wait(pauseCell, 0, 0, 1);
    }
  }
}

const isPassedFd = (fd: number | undefined): fd is number => Number.isInteger(fd) && fd! > 2;
