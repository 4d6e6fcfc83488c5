/**
 * GPU memory a candidate holds, bounded like its host memory. The worker's other caps (V8's heap,
 * the parent's resident-set watch) do not see a discrete GPU's memory, nor buffers a driver
 * allocates lazily (lavapipe's, untouched): without this a candidate could hold the whole GPU's
 * memory, so that the harness's scorer and the other workers on the GPU fail in its stead.
 *
 * Wraps GPUDevice.prototype.createBuffer / createTexture / createQuerySet and the destroy methods
 * of what they make, before the prototypes are frozen. Sizes are read from the created object with
 * getters captured here (never from the candidate's descriptor, whose getters could answer one
 * thing to the count and another to Dawn). A destroyed or garbage-collected object no longer
 * counts. An allocation that takes the total past the cap calls `over` (the worker reports a
 * resource failure and exits: the candidate cannot catch it).
 */

export interface GpuMemoryAccount {
  /** Bytes held now. */
  held(): number;
}

/** Bytes per texel, an upper bound for formats not listed (the widest: rgba32float). */
const TEXEL_BYTES: Record<string, number> = {
  r8unorm: 1,
  r8snorm: 1,
  r8uint: 1,
  r8sint: 1,
  stencil8: 1,
  r16uint: 2,
  r16sint: 2,
  r16float: 2,
  rg8unorm: 2,
  rg8snorm: 2,
  rg8uint: 2,
  rg8sint: 2,
  depth16unorm: 2,
  r32uint: 4,
  r32sint: 4,
  r32float: 4,
  rg16uint: 4,
  rg16sint: 4,
  rg16float: 4,
  rgba8unorm: 4,
  'rgba8unorm-srgb': 4,
  rgba8snorm: 4,
  rgba8uint: 4,
  rgba8sint: 4,
  bgra8unorm: 4,
  'bgra8unorm-srgb': 4,
  rgb10a2unorm: 4,
  rg11b10ufloat: 4,
  rgb9e5ufloat: 4,
  depth32float: 4,
  depth24plus: 4,
  'depth24plus-stencil8': 4,
  rg32uint: 8,
  rg32sint: 8,
  rg32float: 8,
  rgba16uint: 8,
  rgba16sint: 8,
  rgba16float: 8,
  'depth32float-stencil8': 8,
};

export function installGpuMemoryCap(capBytes: number, over: (heldBytes: number) => void): GpuMemoryAccount {
  const apply = Reflect.apply;
  const getter = (proto: object | undefined, name: string): ((this: unknown) => unknown) | undefined =>
    proto ? (Object.getOwnPropertyDescriptor(proto, name)?.get as (() => unknown) | undefined) : undefined;
  const sizes = new WeakMap<object, number>();
  const weakGet = WeakMap.prototype.get;
  const weakSet = WeakMap.prototype.set;
  const weakDelete = WeakMap.prototype.delete;
  const toNumber = Number;
  const finite = Number.isFinite;
  let held = 0;
  // A token per object: the registry's callback gets the bytes, unregistered on destroy.
  const registry = new FinalizationRegistry<number>((bytes) => {
    held -= bytes;
  });
  const register = FinalizationRegistry.prototype.register;
  const unregister = FinalizationRegistry.prototype.unregister;

  const num = (get: ((this: unknown) => unknown) | undefined, of: object, fallback: number): number => {
    if (!get) return fallback;
    const v = toNumber(apply(get, of, []));
    return finite(v) && v >= 0 ? v : fallback;
  };
  const account = (object: unknown, bytes: number): void => {
    if (object === null || typeof object !== 'object') return;
    apply(weakSet, sizes, [object, bytes]);
    apply(register, registry, [object, bytes, object]);
    held += bytes;
    if (held > capBytes) over(held);
  };
  const release = (object: unknown): void => {
    if (object === null || typeof object !== 'object') return;
    const bytes = apply(weakGet, sizes, [object]) as number | undefined;
    if (bytes === undefined) return;
    apply(weakDelete, sizes, [object]);
    apply(unregister, registry, [object]);
    held -= bytes;
  };

  const g = globalThis as unknown as Record<string, { prototype: object } | undefined>;
  const wrapCreate = (name: string, bytesOf: (object: object) => number): void => {
    const proto = g.GPUDevice?.prototype;
    const original = proto ? (Reflect.get(proto, name) as unknown) : undefined;
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      const object = apply(original as (...a: unknown[]) => unknown, this, args);
      if (object !== null && typeof object === 'object') account(object, bytesOf(object));
      return object;
    };
    Object.defineProperty(proto, name, { value: wrapped, writable: true, configurable: true });
  };
  const wrapDestroy = (cls: string): void => {
    const proto = g[cls]?.prototype;
    const original = proto ? (Reflect.get(proto, 'destroy') as unknown) : undefined;
    if (typeof original !== 'function') return;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      const result = apply(original as (...a: unknown[]) => unknown, this, args);
      release(this);
      return result;
    };
    Object.defineProperty(proto, 'destroy', { value: wrapped, writable: true, configurable: true });
  };

  const bufferSize = getter(g.GPUBuffer?.prototype, 'size');
  wrapCreate('createBuffer', (b) => num(bufferSize, b, 0));
  const texture = g.GPUTexture?.prototype;
  const [width, height, layers, mips, samples, format] = [
    'width',
    'height',
    'depthOrArrayLayers',
    'mipLevelCount',
    'sampleCount',
    'format',
  ].map((n) => getter(texture, n));
  wrapCreate('createTexture', (t) => {
    const f = format ? String(apply(format, t, [])) : '';
    const texel = Object.hasOwn(TEXEL_BYTES, f) ? TEXEL_BYTES[f]! : 16;
    // A mip chain holds less than twice its first level: a bound, not the driver's exact figure.
    const chain = num(mips, t, 1) > 1 ? 2 : 1;
    return num(width, t, 1) * num(height, t, 1) * num(layers, t, 1) * num(samples, t, 1) * texel * chain;
  });
  const count = getter(g.GPUQuerySet?.prototype, 'count');
  wrapCreate('createQuerySet', (q) => 8 * num(count, q, 0));
  for (const cls of ['GPUBuffer', 'GPUTexture', 'GPUQuerySet']) wrapDestroy(cls);
  return { held: () => held };
}
