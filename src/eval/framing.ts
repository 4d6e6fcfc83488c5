/**
 * The binary framing of the harness channel (harness <-> sandboxed worker). One frame:
 *
 *   u32 LE  body length (bounded by the reader before anything is buffered)
 *   u32 LE  header length H
 *   H bytes UTF-8 JSON header: { m: plain fields, b: [[key, type, length, index], ...] }
 *   0-3 bytes of padding, then the binary sections in the order of `b`, each length × 4 bytes
 *
 * Typed arrays travel as binary sections ('f32' Float32Array, 'i32' Int32Array); `index` is -1 for
 * a field holding one array and 0, 1, … for the elements of a field holding an array of them (the
 * history windows). Everything else travels as JSON. Decoding is total: any malformed input is a
 * FrameError, never another exception, and nothing beyond the declared bound is ever buffered.
 *
 * Everything this module calls at run time is captured when it loads, which in the worker is before
 * any candidate code exists: a candidate cannot observe or change what the harness sends.
 */

const Uint8 = Uint8Array;
const Float32 = Float32Array;
const Int32 = Int32Array;
const DataViewOf = DataView;
const apply = Reflect.apply;
const defineProperty = Object.defineProperty;
const isArray = Array.isArray;
const isView = ArrayBuffer.isView;
const jsonStringify = JSON.stringify;
const jsonParse = JSON.parse;
const keysOf = Object.keys;
const typedArrayProto = Object.getPrototypeOf(Int32Array.prototype) as object;
const tagOf = Object.getOwnPropertyDescriptor(typedArrayProto, Symbol.toStringTag)!.get!;
const bufferOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'buffer')!.get!;
const byteOffsetOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'byteOffset')!.get!;
const byteLengthOf = Object.getOwnPropertyDescriptor(typedArrayProto, 'byteLength')!.get!;
const uint8Set = Uint8Array.prototype.set;
const uint8Slice = Uint8Array.prototype.slice;
const setUint32 = DataView.prototype.setUint32;
const getUint32 = DataView.prototype.getUint32;
const encoder = new TextEncoder();
const encode = TextEncoder.prototype.encode;
const decoder = new TextDecoder('utf-8', { fatal: true });
const decode = TextDecoder.prototype.decode;
const push = Array.prototype.push;

export class FrameError extends Error {
  override name = 'FrameError';
}

/** A field's binary section: [key, type, element count, index (-1: the field itself)]. */
type Section = [string, 'f32' | 'i32', number, number];

/** Largest JSON header accepted (failure messages and stacks are clipped far below this). */
const MAX_HEADER_BYTES = 4 << 20;
/** Most binary sections in one frame. */
const MAX_SECTIONS = 256;
/** Field names that would reach an object's prototype if assigned. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function tag(value: unknown): string | undefined {
  return isView(value) ? (apply(tagOf, value, []) as string | undefined) : undefined;
}

/** The frame for one message (a plain object whose fields are JSON values, typed arrays or arrays of Float32Array). */
export function encodeFrame(message: Record<string, unknown>): Uint8Array {
  const plain: Record<string, unknown> = {};
  const sections: Section[] = [];
  const blobs: Uint8Array[] = [];
  const addBlob = (key: string, value: unknown, index: number): boolean => {
    const t = tag(value);
    if (t !== 'Float32Array' && t !== 'Int32Array') return false;
    const bytes = new Uint8(
      apply(bufferOf, value, []) as ArrayBuffer,
      apply(byteOffsetOf, value, []) as number,
      apply(byteLengthOf, value, []) as number,
    );
    apply(push, sections, [[key, t === 'Float32Array' ? 'f32' : 'i32', bytes.length / 4, index]]);
    apply(push, blobs, [bytes]);
    return true;
  };
  for (const key of keysOf(message)) {
    const value = message[key];
    if (addBlob(key, value, -1)) continue;
    if (isArray(value) && value.length > 0 && tag(value[0]) === 'Float32Array') {
      for (let i = 0; i < value.length; i++) {
        if (!addBlob(key, value[i], i)) throw new FrameError(`field ${key}[${i}] is not a Float32Array`);
      }
      continue;
    }
    if (value !== undefined) plain[key] = value;
  }
  const header = apply(encode, encoder, [jsonStringify({ m: plain, b: sections })]) as Uint8Array;
  const headerEnd = 8 + header.length;
  const dataStart = (headerEnd + 3) & ~3;
  let total = dataStart;
  for (const b of blobs) total += b.length;
  const frame = new Uint8(total);
  const view = new DataViewOf(frame.buffer);
  apply(setUint32, view, [0, total - 4, true]);
  apply(setUint32, view, [4, header.length, true]);
  apply(uint8Set, frame, [header, 8]);
  let at = dataStart;
  for (const b of blobs) {
    apply(uint8Set, frame, [b, at]);
    at += b.length;
  }
  return frame;
}

/** The body length a frame's first four bytes declare. */
export function declaredLength(head: Uint8Array): number {
  return apply(getUint32, new DataViewOf(head.buffer, head.byteOffset, 4), [0, true]) as number;
}

/**
 * Decodes one frame body (everything after the length word). Throws FrameError, and only
 * FrameError, on anything malformed.
 */
export function decodeBody(body: Uint8Array): Record<string, unknown> {
  try {
    return decodeBodyUnchecked(body);
  } catch (error) {
    if (error instanceof FrameError) throw error;
    throw new FrameError(`malformed frame (${describeError(error)})`);
  }
}

function describeError(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message).slice(0, 200) : 'not an Error';
  } catch {
    return 'an error that cannot be described';
  }
}

function decodeBodyUnchecked(body: Uint8Array): Record<string, unknown> {
  if (body.length < 4) throw new FrameError('frame shorter than its header length');
  const view = new DataViewOf(body.buffer, body.byteOffset, body.length);
  const headerLength = apply(getUint32, view, [0, true]) as number;
  if (headerLength > MAX_HEADER_BYTES || 4 + headerLength > body.length)
    throw new FrameError(`header of ${headerLength} bytes does not fit the frame`);
  const text = apply(decode, decoder, [body.subarray(4, 4 + headerLength)]) as string;
  const parsed: unknown = jsonParse(text);
  if (parsed === null || typeof parsed !== 'object' || isArray(parsed))
    throw new FrameError('frame header is not an object');
  const { m, b } = parsed as { m?: unknown; b?: unknown };
  if (m === null || typeof m !== 'object' || isArray(m)) throw new FrameError('frame has no message object');
  if (!isArray(b) || b.length > MAX_SECTIONS) throw new FrameError('frame has no valid section list');
  const message = m as Record<string, unknown>;
  for (const key of keysOf(message)) {
    if (FORBIDDEN_KEYS.has(key)) throw new FrameError(`frame field '${key}' is not allowed`);
  }
  // Byte offsets are relative to the frame start (the length word is 4 bytes before `body`).
  let at = ((4 + 4 + headerLength + 3) & ~3) - 4;
  const lists = new Map<string, unknown[]>();
  for (const entry of b as unknown[]) {
    if (!isArray(entry) || entry.length !== 4) throw new FrameError('malformed section entry');
    const [key, type, length, index] = entry as unknown[];
    if (typeof key !== 'string' || FORBIDDEN_KEYS.has(key) || key.length > 64)
      throw new FrameError('malformed section key');
    if (type !== 'f32' && type !== 'i32') throw new FrameError(`unknown section type ${String(type)}`);
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0)
      throw new FrameError('malformed section length');
    if (typeof index !== 'number' || !Number.isInteger(index) || index < -1)
      throw new FrameError('malformed section index');
    const bytes = length * 4;
    if (at + bytes > body.length) throw new FrameError('section runs past the end of the frame');
    // A copy: the message owns its arrays (no view shares a buffer with the frame).
    const copy = apply(uint8Slice, body, [at, at + bytes]) as Uint8Array;
    at += bytes;
    const array = type === 'f32' ? new Float32(copy.buffer) : new Int32(copy.buffer);
    if (index === -1) {
      if (key in message || lists.has(key)) throw new FrameError(`field '${key}' given twice`);
      defineProperty(message, key, { value: array, writable: true, enumerable: true, configurable: true });
      continue;
    }
    let list = lists.get(key);
    if (!list) {
      if (key in message) throw new FrameError(`field '${key}' given twice`);
      list = [];
      lists.set(key, list);
      defineProperty(message, key, { value: list, writable: true, enumerable: true, configurable: true });
    }
    if (index !== list.length) throw new FrameError(`field '${key}' has its elements out of order`);
    list.push(array);
  }
  if (at !== body.length) throw new FrameError('frame has bytes after its last section');
  return message;
}

/**
 * Reassembles frames from a byte stream (the harness's side of the channel). A frame that declares
 * more than `maxBody` bytes is refused as soon as its length word arrives, before it is buffered.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed: string | null = null;

  constructor(private readonly maxBody: number) {}

  /** The messages completed by `chunk`, or the reason the stream is broken (then and forever). */
  push(chunk: Uint8Array): { messages: Array<Record<string, unknown>> } | { error: string } {
    if (this.failed !== null) return { error: this.failed };
    try {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      const messages: Array<Record<string, unknown>> = [];
      for (;;) {
        if (this.buffered < 4) break;
        const head = this.peek(4);
        const length = declaredLength(head);
        if (length > this.maxBody)
          throw new FrameError(`a frame of ${length} bytes, over the bound of ${this.maxBody}`);
        if (this.buffered < 4 + length) break;
        const frame = this.take(4 + length);
        messages.push(decodeBody(frame.subarray(4)));
      }
      return { messages };
    } catch (error) {
      this.failed = error instanceof FrameError ? error.message : `malformed frame (${describeError(error)})`;
      this.chunks = [];
      this.buffered = 0;
      return { error: this.failed };
    }
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.take(n, false);
  }

  private take(n: number, consume = true): Uint8Array {
    const out = new Uint8(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - filled);
      out.set(c.subarray(0, k), filled);
      filled += k;
      i++;
    }
    if (consume) {
      let left = n;
      while (left > 0) {
        const c = this.chunks[0]!;
        if (c.length <= left) {
          left -= c.length;
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(left);
          left = 0;
        }
      }
      this.buffered -= n;
    }
    return out;
  }
}
