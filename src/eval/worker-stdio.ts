/**
 * The worker's standard streams, replaced before anything else runs in it (worker-main.ts imports
 * this module first). Node would make process.stdout a net.Socket over the pipe (a pipe's stream
 * class is the TCP socket class: `new process.stdout.constructor()` opens TCP, and `{ fd: 3 }`
 * wraps any descriptor, the harness channel included), or a SyncWriteStream (which writes to any fd
 * it is given). Here they are plain frozen objects whose `write` forwards, up to a budget, to the
 * pipe the harness reads (with its own cap); no stream class, handle or descriptor is reachable.
 * The global console binds to them lazily, on first use, so console.log still works.
 */
import { writeSync } from 'node:fs';

const write = writeSync;
const stringOf = String;
const isView = ArrayBuffer.isView;
const apply = Reflect.apply;
const slice = String.prototype.slice;
const freeze = Object.freeze;
const defineProperty = Object.defineProperty;
const Uint8 = Uint8Array;
const typedArrayProto = Object.getPrototypeOf(Int32Array.prototype) as object;
const bufferOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'buffer')!.get!;
const byteOffsetOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'byteOffset')!.get!;
const byteLengthOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'byteLength')!.get!;

/** What one worker may print in all (the harness keeps the last few KB of it anyway). */
const BUDGET_BYTES = 1 << 20;

function writer(fd: number): object {
  let left = BUDGET_BYTES;
  const self: Record<string, unknown> = {};
  const chain = (): object => stream;
  const forward = (chunk: unknown): void => {
    if (left <= 0) return;
    try {
      if (isView(chunk)) {
        const n = Math.min(apply(byteLengthOf, chunk, []) as number, left);
        left -= n;
        const bytes = new Uint8(
          apply(bufferOf, chunk, []) as ArrayBuffer,
          apply(byteOffsetOf, chunk, []) as number,
          n,
        );
        write(fd, bytes, 0, n);
      } else {
        let text = stringOf(chunk);
        if (text.length > left) text = apply(slice, text, [0, left]) as string;
        left -= text.length;
        write(fd, text);
      }
    } catch {
      // A full or closed pipe loses output, never the call.
    }
  };
  self.write = (chunk: unknown, encoding?: unknown, done?: unknown): boolean => {
    forward(chunk);
    const cb = typeof encoding === 'function' ? encoding : done;
    if (typeof cb === 'function') cb();
    return true;
  };
  self.end = (chunk?: unknown): object => {
    if (chunk !== undefined && typeof chunk !== 'function') forward(chunk);
    return stream;
  };
  for (const name of [
    'on',
    'once',
    'off',
    'addListener',
    'removeListener',
    'prependListener',
    'removeAllListeners',
    'cork',
    'uncork',
    'setEncoding',
  ])
    self[name] = chain;
  self.emit = () => false;
  self.listenerCount = () => 0;
  self.listeners = () => [];
  self.isTTY = false;
  self.writable = true;
  self.columns = 80;
  self.hasColors = () => false;
  self.getColorDepth = () => 1;
  const stream = freeze(self);
  return stream;
}

const proc = process as unknown as Record<string, unknown>;
const lock = (name: string, value: unknown): void => {
  defineProperty(proc, name, { value, writable: false, enumerable: false, configurable: false });
};
lock('stdout', writer(1));
lock('stderr', writer(2));
lock('stdin', undefined);
lock('openStdin', () => {
  throw new Error('candidates may not read standard input');
});
