/**
 * The worker's end of the harness channel: fd 3, a socket pair the harness handed over explicitly,
 * read and written synchronously with functions captured when this module loads (before any
 * candidate code exists). No stream, handle or listener exists for it: nothing a candidate can
 * wrap (process.nextTick, stream or socket prototypes, EventEmitter) ever sees a message, and the
 * descriptor itself is out of reach (no fs or net for candidates, no stream class on process.stdout,
 * see worker-stdio.ts). The worker blocks on the channel between calls, so no candidate code runs
 * while the harness is not waiting for it.
 */
import { readSync, writeSync } from 'node:fs';
import { declaredLength, decodeBody, encodeFrame, FrameError } from './framing.js';
import { CHANNEL_FD, MAX_REQUEST_BYTES } from './protocol.js';

const read = readSync;
const write = writeSync;
const Uint8 = Uint8Array;

/** Fills `buf` from the channel; false at end of stream (the harness is gone). */
function readFully(buf: Uint8Array): boolean {
  let at = 0;
  while (at < buf.length) {
    let n: number;
    try {
      n = read(CHANNEL_FD, buf, at, buf.length - at, null);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'EAGAIN' || code === 'EINTR') continue;
      throw error;
    }
    if (n === 0) return false;
    at += n;
  }
  return true;
}

/** The next message from the harness (blocking), or null when the harness has closed the channel. */
export function receive(): Record<string, unknown> | null {
  const head = new Uint8(4);
  if (!readFully(head)) return null;
  const length = declaredLength(head);
  if (length > MAX_REQUEST_BYTES) throw new FrameError(`a request of ${length} bytes`);
  const body = new Uint8(length);
  if (!readFully(body)) return null;
  return decodeBody(body);
}

/** Sends one message to the harness (blocking until it is written). */
export function send(message: Record<string, unknown>): void {
  const frame = encodeFrame(message);
  let at = 0;
  while (at < frame.length) {
    try {
      at += write(CHANNEL_FD, frame, at, frame.length - at);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'EAGAIN' || code === 'EINTR') continue;
      throw error;
    }
  }
}
