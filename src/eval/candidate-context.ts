/**
 * The candidate context (candidate-api.ts's CandidateContext) and the measurement of where a call's
 * time goes (CallSplit), shared by the sandboxed worker (worker-main.ts) and `adrs profile DIR`.
 *
 * The helpers (buffer, upload, dispatch, read) exist so that a candidate's whole GPU path fits in
 * a few lines inside its EVOLVE-BLOCKs: buffers by name, kept between calls; a dispatch whose
 * bindings are resolved by the kernel's WGSL variable names (wgsl-bindings.ts) through an explicit
 * pipeline layout built from its declarations, with uniform params packed from a record; a
 * readback into a staging buffer kept between calls. Pipelines, bind groups, buffers and staging
 * are created once and reused while sizes repeat, so a steady-state call allocates no GPU objects.
 *
 * Recorded passes go into one pending command encoder, submitted at the next read (together with
 * the copy, so one submission per readback), at an explicit submit, before a harness write to a
 * buffer a recorded pass uses (so writes and passes keep program order), and at the end of the
 * call (the worker calls flush() inside the timed region).
 *
 * gpu_ms comes from timestamp queries written by each ctx.dispatch pass and resolved, with the
 * results, in the same readback as ctx.read, so measuring it adds no round trip to the call.
 */
import type { KernelCache } from '../gpu/kernels.js';
import { PassTimer } from '../gpu/timing.js';
import type {
  CallSplit,
  CandidateContext,
  CandidateShape,
  DispatchBinding,
  DispatchSpec,
  ReadArray,
  ReadArrayType,
  RebalanceInput,
} from './candidate-api.js';
import type { GpuWaitClock } from './gpu-wait-clock.js';
import {
  packStruct,
  reflectWgsl,
  type StructLayout,
  structLayout,
  usedBindings,
  type WgslBinding,
  type WgslModule,
} from './wgsl-bindings.js';

export { type GpuWaitClock, installGpuWaitTiming, waitAccounting } from './gpu-wait-clock.js';

/** Timed passes per readback interval; passes beyond it in one call run untimed (gpu_ms null). */
export const MAX_TIMED_PASSES = 128;

/** What the context needs of the GPU (a GpuContext has it). */
export interface ContextGpu {
  device: GPUDevice;
  kernels: KernelCache;
  hasTimestamps: boolean;
}

export interface RuntimeOptions {
  /** The wait clock installed before the WebGPU prototypes were frozen (installGpuWaitTiming). */
  waits?: GpuWaitClock;
  /** Time ctx.dispatch passes with timestamp queries (default: when the device has them). */
  timestamps?: boolean;
  /**
   * Profiling without timestamps: submit every dispatch at once and time it from submit to
   * onSubmittedWorkDone (wall time, which includes the queue's earlier work).
   */
  waitEachDispatch?: boolean;
}

/** One ctx.dispatch of the current (or last) call. */
export interface DispatchRecord {
  /** "file:entry". */
  label: string;
  /** Its GPU time, ms; null while not (or never) read back. */
  gpuMs: number | null;
  /** timestamp: timestamp queries; wall: submit → onSubmittedWorkDone (waitEachDispatch). */
  source: 'timestamp' | 'wall' | null;
}

/** The harness's handle on a candidate's context. */
export interface CandidateRuntime {
  readonly ctx: CandidateContext;
  /** Starts a call: clears the per-call records and starts the wait clock. */
  beginCall(): void;
  /** Submits recorded passes (the end of a call, inside the timed region). */
  flush(): void;
  /** Ends a call that took `ms` (harness clock) and returns where its time went. */
  endCall(ms: number): CallSplit;
  /** The last call's dispatches. */
  dispatches(): readonly DispatchRecord[];
  /** Reads back the timestamps of passes the last call did not read (profiling; adds a round trip). */
  resolveLeftovers(): Promise<void>;
  /** The last call's gpu_ms by the rule of CallSplit. */
  gpuMs(): number | null;
  destroy(): void;
}

/** The input a call gives the candidate; a message without history gets a history of one. */
export function candidateInput(m: {
  loads: Float32Array;
  shape: CandidateShape;
  history?: Float32Array[] | undefined;
}): RebalanceInput {
  const history = Array.isArray(m.history) && m.history.length > 0 ? m.history : [m.loads];
  return { loads: m.loads, history, shape: m.shape };
}

// ---------------------------------------------------------------------------------------------
// The context

interface NamedBuffer {
  buffer: GPUBuffer;
  /** Bytes asked for (reads default to them); the buffer's size is this rounded up to 16. */
  bytes: number;
  usage: number;
}

interface OwnedBuffer {
  buffer: GPUBuffer;
  /** The bytes last written (for bindings the kernel cannot write), to skip identical writes. */
  last: Uint8Array | null;
}

interface Staging {
  buffer: GPUBuffer;
  busy: boolean;
  /** Made for one read because the kept one was mapped by a concurrent read; destroyed after it. */
  temporary: boolean;
}

interface PipelineEntry {
  label: string;
  file: string;
  pipeline: GPUComputePipeline;
  /** Bind group index → the bindings it holds (every group up to the highest used). */
  groups: Array<{ layout: GPUBindGroupLayout; bindings: WgslBinding[] }>;
  used: WgslBinding[];
  module: WgslModule;
  bindGroups: Map<string, GPUBindGroup>;
  layouts: Map<string, StructLayout | string>;
}

const READ_TYPES: ReadonlySet<unknown> = new Set([Int32Array, Uint32Array, Float32Array]);
const BIND_GROUP_CACHE = 64;
const SMALL_WRITE = 4096;

const align = (n: number, to: number): number => Math.ceil(n / to) * to;
const sizeFor = (bytes: number): number => Math.max(16, align(bytes, 16));

/** Builds the context for one loaded candidate (kernels: file name → WGSL source). */
export function createCandidateRuntime(
  gpu: ContextGpu,
  kernelSources: Record<string, string>,
  options: RuntimeOptions = {},
): CandidateRuntime {
  const device = gpu.device;
  const queue = device.queue;
  const files = Object.keys(kernelSources).sort();
  const timing = (options.timestamps ?? true) && gpu.hasTimestamps;
  const waitEach = options.waitEachDispatch === true && !timing;

  const named = new Map<string, NamedBuffer>();
  const owned = new Map<string, OwnedBuffer>();
  const staging = new Map<string, Staging>();
  const modules = new Map<string, WgslModule>();
  const pipelines = new Map<string, Promise<PipelineEntry>>();
  const ids = new WeakMap<GPUBuffer, number>();
  let nextId = 1;
  const idOf = (b: GPUBuffer): number => {
    let id = ids.get(b);
    if (id === undefined) {
      id = nextId++;
      ids.set(b, id);
    }
    return id;
  };

  let pending: GPUCommandEncoder | null = null;
  const pendingUses = new Set<GPUBuffer>();
  const timer = timing ? new PassTimer(device, MAX_TIMED_PASSES, 'ctx') : null;
  /** Per call: every dispatch, the record of each timed pass, the first pass not yet read back. */
  let records: DispatchRecord[] = [];
  let passRecords: DispatchRecord[] = [];
  let readFrom = 0;

  const source = (file: string): string => {
    const code = kernelSources[file];
    if (code === undefined)
      throw new Error(`no kernel '${file}' (the candidate has: ${files.join(', ') || 'none'})`);
    return code;
  };
  const kernelFile = (file: unknown, what: string): string => {
    if (typeof file !== 'string')
      throw new Error(`${what}: kernel must be a file name such as '${files[0] ?? 'x.wgsl'}'`);
    const f = file.startsWith('kernels/') ? file.slice('kernels/'.length) : file;
    source(f);
    return f;
  };
  const reflect = (file: string): WgslModule => {
    let m = modules.get(file);
    if (!m) {
      m = reflectWgsl(source(file));
      modules.set(file, m);
    }
    return m;
  };

  const flush = (): void => {
    if (!pending) return;
    const encoder = pending;
    pending = null;
    pendingUses.clear();
    queue.submit([encoder.finish()]);
  };
  /** Before the harness writes `buffer`: passes recorded earlier must see the old contents. */
  const beforeWrite = (buffer: GPUBuffer): void => {
    if (pendingUses.has(buffer)) flush();
  };
  const write = (buffer: GPUBuffer, offset: number, data: ArrayBufferView): void => {
    beforeWrite(buffer);
    if (data.byteLength % 4 === 0)
      queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
    else {
      const padded = new Uint8Array(align(data.byteLength, 4));
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      queue.writeBuffer(buffer, offset, padded);
    }
  };

  const usageOf = (usage: unknown, what: string): number => {
    if (usage === undefined || usage === 'storage')
      return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    if (usage === 'uniform') return GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    if (typeof usage === 'number' && Number.isInteger(usage) && usage > 0) return usage;
    throw new Error(
      `${what}: usage must be 'storage', 'uniform' or GPUBufferUsage flags, got ${String(usage)}`,
    );
  };
  const checkName = (name: unknown, what: string): string => {
    if (typeof name !== 'string' || name.length === 0 || name.length > 200)
      throw new Error(`${what}: the buffer name must be a non-empty string, got ${describeValue(name)}`);
    return name;
  };
  const makeNamed = (name: string, bytes: number, usage: number): NamedBuffer => {
    const old = named.get(name);
    if (old) {
      beforeWrite(old.buffer);
      old.buffer.destroy();
    }
    const entry = { buffer: device.createBuffer({ label: name, size: sizeFor(bytes), usage }), bytes, usage };
    named.set(name, entry);
    return entry;
  };
  const listNamed = (): string => [...named.keys()].map((n) => `'${n}'`).join(', ') || 'none';

  const buffer = (name: string, bytes: number, usage?: 'storage' | 'uniform' | number): GPUBuffer => {
    const what = `ctx.buffer(${JSON.stringify(name)})`;
    checkName(name, what);
    // Buffers are allocated rounded up to 16 bytes: the limit applies to the rounded size.
    const max = Math.floor(device.limits.maxBufferSize / 16) * 16;
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > max)
      throw new Error(`${what}: bytes must be an integer in 1…${max}, got ${String(bytes)}`);
    const u = usageOf(usage, what);
    const existing = named.get(name);
    if (existing && existing.bytes === bytes && existing.usage === u) return existing.buffer;
    return makeNamed(name, bytes, u).buffer;
  };

  const upload = (name: string, data: ArrayBufferView, offset = 0): GPUBuffer => {
    const what = `ctx.upload(${JSON.stringify(name)})`;
    checkName(name, what);
    if (!ArrayBuffer.isView(data))
      throw new Error(`${what}: data must be a typed array, got ${describeValue(data)}`);
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0)
      throw new Error(`${what}: offset must be a non-negative multiple of 4 bytes, got ${String(offset)}`);
    const end = offset + data.byteLength;
    let entry = named.get(name);
    if (!entry) entry = makeNamed(name, Math.max(end, 4), usageOf('storage', what));
    else if (entry.buffer.size < end) {
      if (offset > 0)
        throw new Error(
          `${what}: bytes ${offset}…${end} do not fit the buffer's ${entry.bytes} bytes; make it larger with ctx.buffer('${name}', ${end})`,
        );
      entry = makeNamed(name, end, entry.usage);
    }
    if (!(entry.usage & GPUBufferUsage.COPY_DST))
      throw new Error(
        `${what}: buffer '${name}' was created without COPY_DST usage, so it cannot be written`,
      );
    write(entry.buffer, offset, data);
    return entry.buffer;
  };

  const buildPipeline = async (
    file: string,
    entry: string,
    constants: Record<string, number>,
  ): Promise<PipelineEntry> => {
    const label = `${file}:${entry}`;
    const module = reflect(file);
    const used = usedBindings(module, entry, `kernels/${file}`);
    for (const b of used) {
      if (b.space === 'handle')
        throw new Error(
          `ctx.dispatch(${label}): '${b.name}' is not a buffer (${b.type}); ctx.dispatch binds buffers only, use ctx.pipeline and the device for textures and samplers`,
        );
    }
    const maxGroup = used.reduce((m, b) => Math.max(m, b.group), -1);
    if (maxGroup >= device.limits.maxBindGroups)
      throw new Error(
        `ctx.dispatch(${label}): @group(${maxGroup}) exceeds the device's ${device.limits.maxBindGroups} bind groups`,
      );
    const shader = await gpu.kernels.module(`kernels/${file}`, source(file));
    device.pushErrorScope('validation');
    const groups = Array.from({ length: maxGroup + 1 }, (_, g) => {
      const bindings = used.filter((b) => b.group === g);
      const layout = device.createBindGroupLayout({
        label: `${label} group ${g}`,
        entries: bindings.map((b) => ({
          binding: b.binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: {
            type: (b.space === 'uniform'
              ? 'uniform'
              : b.access === 'read'
                ? 'read-only-storage'
                : 'storage') as GPUBufferBindingType,
          },
        })),
      });
      return { layout, bindings };
    });
    const layout = device.createPipelineLayout({ label, bindGroupLayouts: groups.map((g) => g.layout) });
    // Popped in the same tick as it was pushed: a scope held across an await would also catch (and
    // hide) the errors of creations running meanwhile. The async creation rejects on its own.
    const layoutError = await device.popErrorScope();
    if (layoutError)
      throw new Error(`kernels/${file}: pipeline for '${entry}': ${layoutError.message.split('\n')[0]}`);
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await device.createComputePipelineAsync({
        label,
        layout,
        compute: { module: shader, entryPoint: entry, constants },
      });
    } catch (error) {
      throw new Error(`kernels/${file}: pipeline for '${entry}': ${firstLine(error)}`);
    }
    return { label, file, pipeline, groups, used, module, bindGroups: new Map(), layouts: new Map() };
  };

  const layoutFor = (p: PipelineEntry, b: WgslBinding): StructLayout | string => {
    let l = p.layouts.get(b.name);
    if (l === undefined) {
      l = structLayout(p.module, b.type);
      p.layouts.set(b.name, l);
    }
    return l;
  };

  /** A buffer the harness keeps for one binding of one kernel (record or typed-array values). */
  const ownedFor = (p: PipelineEntry, b: WgslBinding, bytes: number): OwnedBuffer => {
    const key = `${p.file}\u0000${b.name}`;
    const size = sizeFor(bytes);
    let o = owned.get(key);
    if (!o || o.buffer.size !== size) {
      if (o) {
        beforeWrite(o.buffer);
        o.buffer.destroy();
      }
      const usage =
        b.space === 'uniform'
          ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
          : GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
      o = { buffer: device.createBuffer({ label: `${p.label} ${b.name}`, size, usage }), last: null };
      owned.set(key, o);
    }
    return o;
  };
  const writeOwned = (o: OwnedBuffer, b: WgslBinding, bytes: Uint8Array): void => {
    // A binding the kernel can write may have changed on the GPU: always rewrite it.
    const constant = b.space === 'uniform' || b.access === 'read';
    if (constant && bytes.byteLength <= SMALL_WRITE) {
      if (o.last && equalBytes(o.last, bytes)) return;
      o.last = bytes.slice();
    } else o.last = null;
    write(o.buffer, 0, bytes);
  };

  const resolveBinding = (p: PipelineEntry, b: WgslBinding, value: DispatchBinding): GPUBuffer => {
    const what = `ctx.dispatch(${p.label}): binding '${b.name}' (var<${b.space}${b.space === 'storage' ? `, ${b.access}` : ''}> ${b.name}: ${b.type})`;
    const needs = b.space === 'uniform' ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE;
    const needsWord = b.space === 'uniform' ? "'uniform'" : "'storage'";
    let buf: GPUBuffer;
    if (typeof value === 'string') {
      const n = named.get(value);
      if (!n)
        throw new Error(
          `${what}: no ctx buffer named '${value}' (ctx buffers: ${listNamed()}); create it with ctx.buffer('${value}', bytes) or ctx.upload('${value}', data)`,
        );
      if (!(n.usage & needs))
        throw new Error(
          `${what}: ctx buffer '${value}' lacks ${needsWord} usage; create it with ctx.buffer('${value}', bytes, ${needsWord})`,
        );
      buf = n.buffer;
    } else if (isGpuBuffer(value)) {
      const usage = (value as { usage?: unknown }).usage;
      if (typeof usage === 'number' && !(usage & needs))
        throw new Error(`${what}: the GPUBuffer lacks ${needsWord} usage`);
      buf = value;
    } else if (ArrayBuffer.isView(value)) {
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      const o = ownedFor(p, b, bytes.byteLength);
      writeOwned(o, b, bytes);
      buf = o.buffer;
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const layout = layoutFor(p, b);
      if (typeof layout === 'string')
        throw new Error(`${what}: a record of numbers cannot be packed: ${layout}`);
      const bytes = new Uint8Array(layout.size);
      packStruct(layout, value, new DataView(bytes.buffer), `${what}: ${b.type}`);
      const o = ownedFor(p, b, bytes.byteLength);
      writeOwned(o, b, bytes);
      buf = o.buffer;
    } else {
      throw new Error(
        `${what}: give a ctx buffer name, a record of numbers (packed into ${b.type}), a typed array or a GPUBuffer, got ${describeValue(value)}`,
      );
    }
    const layout = layoutFor(p, b);
    if (typeof layout !== 'string' && buf.size < layout.size)
      throw new Error(`${what}: the buffer has ${buf.size} bytes, ${b.type} needs ${layout.size}`);
    return buf;
  };

  const workgroupsOf = (w: unknown, label: string): [number, number, number] => {
    const list = typeof w === 'number' ? [w] : Array.isArray(w) ? w : null;
    const max = device.limits.maxComputeWorkgroupsPerDimension;
    if (!list || list.length < 1 || list.length > 3)
      throw new Error(`ctx.dispatch(${label}): workgroups must be x or [x, y?, z?], got ${describeValue(w)}`);
    const out: [number, number, number] = [1, 1, 1];
    for (let i = 0; i < list.length; i++) {
      const v = list[i] as unknown;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
        throw new Error(
          `ctx.dispatch(${label}): workgroups[${i}] must be an integer in 0…${max}, got ${String(v)}`,
        );
      out[i] = v;
    }
    return out;
  };

  const dispatch = async (spec: DispatchSpec): Promise<void> => {
    if (spec === null || typeof spec !== 'object')
      throw new Error('ctx.dispatch: give { kernel, entry, bindings, workgroups, constants? }');
    const file = kernelFile(spec.kernel, 'ctx.dispatch');
    if (typeof spec.entry !== 'string' || spec.entry === '')
      throw new Error(`ctx.dispatch(${file}): entry must name a @compute function`);
    const label = `${file}:${spec.entry}`;
    const bindings = spec.bindings ?? {};
    if (typeof bindings !== 'object')
      throw new Error(`ctx.dispatch(${label}): bindings must be a record by WGSL variable name`);
    const constants = spec.constants ?? {};
    let constKey = '';
    for (const k of Object.keys(constants).sort()) {
      const v = constants[k];
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new Error(`ctx.dispatch(${label}): constant '${k}' must be a finite number, got ${String(v)}`);
      constKey += `${k}=${v};`;
    }
    const groups = workgroupsOf(spec.workgroups, label);
    const key = `${file}\u0000${spec.entry}\u0000${constKey}`;
    let promise = pipelines.get(key);
    if (!promise) {
      promise = buildPipeline(file, spec.entry, { ...constants });
      pipelines.set(key, promise);
      promise.catch(() => pipelines.delete(key));
    }
    const p = await promise;
    for (const name of Object.keys(bindings)) {
      if (!p.module.bindings.has(name))
        throw new Error(
          `ctx.dispatch(${label}): kernels/${file} declares no binding '${name}' (it declares: ${[...p.module.bindings.keys()].join(', ') || 'none'}; ${spec.entry} uses: ${p.used.map((b) => b.name).join(', ') || 'none'})`,
        );
    }
    const resolved: GPUBuffer[] = [];
    for (const b of p.used) {
      const value = (bindings as Record<string, DispatchBinding>)[b.name];
      if (value === undefined)
        throw new Error(
          `ctx.dispatch(${label}): bindings has no '${b.name}', which ${spec.entry} uses (@group(${b.group}) @binding(${b.binding}) var<${b.space}> ${b.name}: ${b.type}); it uses: ${p.used.map((u) => u.name).join(', ')}`,
        );
      resolved.push(resolveBinding(p, b, value));
    }
    // After the writes above (which may have flushed), record into the pending encoder.
    const bindGroups: GPUBindGroup[] = [];
    let at = 0;
    for (let g = 0; g < p.groups.length; g++) {
      const group = p.groups[g]!;
      const buffers = resolved.slice(at, at + group.bindings.length);
      at += group.bindings.length;
      const gkey = `${g}:${buffers.map(idOf).join(',')}`;
      let bg = p.bindGroups.get(gkey);
      if (!bg) {
        if (p.bindGroups.size >= BIND_GROUP_CACHE) p.bindGroups.clear();
        bg = device.createBindGroup({
          label: `${label} group ${g}`,
          layout: group.layout,
          entries: group.bindings.map((b, i) => ({ binding: b.binding, resource: { buffer: buffers[i]! } })),
        });
        p.bindGroups.set(gkey, bg);
      }
      bindGroups.push(bg);
    }
    const record: DispatchRecord = { label, gpuMs: null, source: null };
    records.push(record);
    let timestampWrites: GPUComputePassTimestampWrites | undefined;
    if (timer && passRecords.length < MAX_TIMED_PASSES) {
      timestampWrites = timer.writes(passRecords.length);
      passRecords.push(record);
    }
    pending ??= device.createCommandEncoder({ label: 'ctx.dispatch' });
    const pass = pending.beginComputePass({ label, ...(timestampWrites ? { timestampWrites } : {}) });
    pass.setPipeline(p.pipeline);
    for (let g = 0; g < bindGroups.length; g++) pass.setBindGroup(g, bindGroups[g]!);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    for (const b of resolved) pendingUses.add(b);
    if (waitEach) {
      flush();
      const t0 = performance.now();
      await queue.onSubmittedWorkDone();
      record.gpuMs = performance.now() - t0;
      record.source = 'wall';
    }
  };

  /** The staging buffer kept for `name`, or a temporary one while that one is mapped by a concurrent read. */
  const stagingFor = (name: string, bytes: number): Staging => {
    const s = staging.get(name);
    if (s && !s.busy && s.buffer.size >= bytes) return s;
    const buffer = device.createBuffer({
      label: `${name} staging`,
      size: sizeFor(bytes),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (s?.busy) return { buffer, busy: false, temporary: true };
    s?.buffer.destroy();
    const fresh = { buffer, busy: false, temporary: false };
    staging.set(name, fresh);
    return fresh;
  };

  const read = async (
    name: string,
    typeOrInto: ReadArrayType | ReadArray,
    length?: number,
  ): Promise<ReadArray> => {
    const what = `ctx.read(${JSON.stringify(name)})`;
    checkName(name, what);
    const entry = named.get(name);
    if (!entry) throw new Error(`${what}: no ctx buffer named '${name}' (ctx buffers: ${listNamed()})`);
    if (!(entry.usage & GPUBufferUsage.COPY_SRC))
      throw new Error(
        `${what}: buffer '${name}' was created without COPY_SRC usage, so it cannot be read back`,
      );
    let into: ReadArray | null = null;
    let Type: ReadArrayType;
    if (typeof typeOrInto === 'function' && READ_TYPES.has(typeOrInto)) Type = typeOrInto;
    else if (ArrayBuffer.isView(typeOrInto) && READ_TYPES.has(typeOrInto.constructor)) {
      into = typeOrInto;
      Type = typeOrInto.constructor as ReadArrayType;
    } else
      throw new Error(
        `${what}: give Int32Array, Uint32Array or Float32Array, or an array of one of them to fill`,
      );
    const count = into ? into.length : (length ?? Math.floor(entry.bytes / 4));
    if (!Number.isInteger(count) || count < 0 || count * 4 > entry.buffer.size)
      throw new Error(
        `${what}: ${String(count)} elements do not fit the buffer's ${entry.bytes} bytes (${Math.floor(entry.bytes / 4)} elements)`,
      );
    const bytes = count * 4;
    const from = readFrom;
    const timed = passRecords.length - from;
    const tsOffset = align(bytes, 8);
    const total = timed > 0 ? tsOffset + 16 * timed : bytes;
    if (total === 0) {
      flush();
      return into ?? new Type(0);
    }
    const s = stagingFor(name, timing ? tsOffset + 16 * MAX_TIMED_PASSES : bytes);
    const encoder = pending ?? device.createCommandEncoder({ label: 'ctx.read' });
    pending = null;
    pendingUses.clear();
    if (bytes > 0) encoder.copyBufferToBuffer(entry.buffer, 0, s.buffer, 0, bytes);
    if (timed > 0) timer!.resolveInto(encoder, timed, s.buffer, tsOffset, from);
    readFrom = passRecords.length;
    const timedRecords = passRecords.slice(from, from + timed);
    queue.submit([encoder.finish()]);
    s.busy = true;
    try {
      await s.buffer.mapAsync(GPUMapMode.READ, 0, total);
      const mapped = s.buffer.getMappedRange(0, total);
      const view = new Type(mapped, 0, count);
      const out = into ?? new Type(count);
      out.set(view);
      if (timed > 0) timestamped(timedRecords, PassTimer.passMs(mapped, tsOffset, timed));
      s.buffer.unmap();
      return out;
    } finally {
      s.busy = false;
      if (s.temporary) s.buffer.destroy();
    }
  };

  const ctx: CandidateContext = {
    device,
    kernels: files,
    kernelSource: source,
    pipeline: (file, entry, constants) =>
      gpu.kernels.pipeline({
        file: `kernels/${file}`,
        entry,
        code: source(file),
        // 'auto' on purpose: the candidate binds with pipeline.getBindGroupLayout(g), and a layout
        // from our reflection (which over-approximates use and knows no texture or sampler types)
        // could demand bindings its bind groups rightly leave out. ctx.dispatch builds explicit ones.
        layout: 'auto',
        ...(constants ? { constants } : {}),
      }),
    hasTimestamps: gpu.hasTimestamps,
    cache: new Map(),
    buffer,
    upload,
    dispatch,
    submit: flush,
    read: read as CandidateContext['read'],
  };

  const gpuMs = (): number | null => {
    if (records.length === 0) return null;
    let sum = 0;
    for (const r of records) {
      if (r.gpuMs === null || r.source !== 'timestamp') return null;
      sum += r.gpuMs;
    }
    return sum;
  };

  return {
    ctx,
    beginCall() {
      flush();
      records = [];
      passRecords = [];
      readFrom = 0;
      options.waits?.begin();
    },
    flush,
    endCall(ms: number): CallSplit {
      const waited = options.waits ? Math.min(options.waits.end(), ms) : 0;
      return { host_ms: Math.max(0, ms - waited), gpu_wait_ms: waited, gpu_ms: gpuMs() };
    },
    dispatches: () => records,
    async resolveLeftovers() {
      const from = readFrom;
      const timed = passRecords.length - from;
      if (timed <= 0 || !timer) return;
      flush();
      const s = device.createBuffer({
        label: 'ctx timestamps leftover',
        size: 16 * timed,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const encoder = device.createCommandEncoder({ label: 'ctx timestamps leftover' });
      timer.resolveInto(encoder, timed, s, 0, from);
      queue.submit([encoder.finish()]);
      readFrom = passRecords.length;
      await s.mapAsync(GPUMapMode.READ);
      timestamped(passRecords.slice(from, from + timed), PassTimer.passMs(s.getMappedRange(), 0, timed));
      s.unmap();
      s.destroy();
    },
    gpuMs,
    destroy() {
      pending = null;
      pendingUses.clear();
      for (const b of named.values()) b.buffer.destroy();
      for (const b of owned.values()) b.buffer.destroy();
      for (const s of staging.values()) s.buffer.destroy();
      named.clear();
      owned.clear();
      staging.clear();
      pipelines.clear();
      timer?.destroy();
    },
  };
}

/** Records the timestamp GPU time of each of `records` (ms[i] for records[i]). */
function timestamped(records: readonly DispatchRecord[], ms: readonly number[]): void {
  for (let i = 0; i < records.length; i++) {
    records[i]!.gpuMs = ms[i]!;
    records[i]!.source = 'timestamp';
  }
}

function isGpuBuffer(v: unknown): v is GPUBuffer {
  const C = (globalThis as { GPUBuffer?: unknown }).GPUBuffer;
  return typeof C === 'function' && v instanceof (C as new () => GPUBuffer);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (ArrayBuffer.isView(v))
    return `${v.constructor.name} of ${(v as unknown as { length?: number }).length ?? v.byteLength}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v).slice(0, 40)}`;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!;
}
