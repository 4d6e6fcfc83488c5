import type {
  BindingDecl,
  KernelContract,
  OverrideDecl,
  OverrideValues,
  StructDecls,
} from './kernel-contract.js';
import { readKernel } from './kernel-files.js';

/** A WGSL compilation failure, with every error as "file:line:col: message". */
export class ShaderCompileError extends Error {
  override name = 'ShaderCompileError';
  constructor(
    readonly file: string,
    readonly diagnostics: string[],
    /** Dawn's full, multi-line text (the diagnostics keep each message's first line); shown with --verbose. */
    readonly detail?: string,
  ) {
    super(`${file}: WGSL compilation failed: ${diagnostics[0] ?? 'unknown error'}`);
  }
}

export interface PipelineKey {
  /** A file name under kernels/ (e.g. "smoke.wgsl"), or any label when `code` is given. */
  file: string;
  entry: string;
  /** Pipeline-overridable constants (WGSL `override` declarations). */
  constants?: Record<string, number>;
  /** WGSL source; read from kernels/<file> when absent. */
  code?: string;
  /**
   * The pipeline layout; 'auto' (the default) derives it from the WGSL, which only candidates'
   * ctx.pipeline relies on: the project's kernels go through kernelPipeline with their contract's.
   */
  layout?: GPUPipelineLayout | 'auto';
  /** Lines prepended to the file's own text in `code` (diagnostics are mapped back past them). */
  headerLines?: number;
}

/** The explicit layouts of one kernel contract on one device. */
export interface ContractLayouts {
  groups: GPUBindGroupLayout[];
  pipeline: GPUPipelineLayout;
}

/**
 * Compiles WGSL modules and compute pipelines once and caches them by (file, entry, overrides),
 * so the hot path never creates a pipeline.
 */
export class KernelCache {
  private modules = new Map<string, Promise<GPUShaderModule>>();
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private contractLayouts = new Map<KernelContract, ContractLayouts>();
  private layoutIds = new Map<GPUPipelineLayout, number>();

  constructor(private readonly device: GPUDevice) {}

  pipeline(key: PipelineKey): Promise<GPUComputePipeline> {
    const layout = key.layout && key.layout !== 'auto' ? this.layoutId(key.layout) : 'auto';
    // Constants by sorted name: the same values given in another order are the same pipeline.
    const constants = Object.entries(key.constants ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const id = `${key.file}\u0000${key.entry}\u0000${JSON.stringify(constants)}\u0000${layout}\u0000${key.code ?? ''}`;
    let p = this.pipelines.get(id);
    if (!p) {
      p = this.createPipeline(key);
      this.pipelines.set(id, p);
      p.catch(() => this.pipelines.delete(id));
    }
    return p;
  }

  /**
   * The compute pipeline of a contract's kernel: its generated WGSL, its explicit layout, and
   * pipeline constants checked against its declared overrides. Cached like pipeline().
   */
  kernelPipeline<O extends Record<string, OverrideDecl>>(
    contract: KernelContract<StructDecls, Record<string, BindingDecl>, O>,
    entry: string,
    overrides: OverrideValues<O>,
  ): Promise<GPUComputePipeline> {
    const c = contract as KernelContract;
    let key: PipelineKey;
    try {
      // A body that re-declares a contract name, or an undeclared override, fails here (rejecting).
      key = {
        file: c.file,
        entry,
        code: c.wgsl(),
        headerLines: c.headerLines,
        constants: c.constants(overrides),
      };
    } catch (error) {
      return Promise.reject(error);
    }
    return this.pipeline({ ...key, layout: this.layouts(c).pipeline });
  }

  /** A contract's bind-group and pipeline layouts on this device, made once (labelled by the file). */
  layouts(c: KernelContract): ContractLayouts {
    let l = this.contractLayouts.get(c);
    if (!l) {
      const groups = Array.from({ length: c.groupCount }, (_, g) =>
        this.device.createBindGroupLayout({ label: `${c.file} group ${g}`, entries: c.layoutEntries(g) }),
      );
      l = { groups, pipeline: this.device.createPipelineLayout({ label: c.file, bindGroupLayouts: groups }) };
      this.contractLayouts.set(c, l);
    }
    return l;
  }

  /**
   * A bind group of a contract's kernel with buffers given by binding name (every binding of the
   * group, nothing else): no positional matching against the WGSL.
   */
  bindGroup<B extends Record<string, BindingDecl>>(
    contract: KernelContract<StructDecls, B>,
    label: string,
    buffers: { [K in keyof B]: GPUBuffer },
    group = 0,
  ): GPUBindGroup {
    const c = contract as KernelContract;
    const layout = this.layouts(c).groups[group];
    if (!layout) throw new Error(`${label}: kernels/${c.file} has no bind group ${group}`);
    const wanted = Object.entries(c.decl.bindings).filter(([, b]) => (b.group ?? 0) === group);
    const given = buffers as Record<string, GPUBuffer>;
    for (const name of Object.keys(given)) {
      if (!wanted.some(([n]) => n === name))
        throw new Error(`${label}: kernels/${c.file} has no binding '${name}' in group ${group}`);
    }
    return this.device.createBindGroup({
      label,
      layout,
      entries: wanted.map(([name, b]) => {
        const buffer = given[name];
        if (!buffer) throw new Error(`${label}: no buffer for binding '${name}' of kernels/${c.file}`);
        return { binding: b.binding, resource: { buffer } };
      }),
    });
  }

  module(file: string, code?: string, headerLines = 0): Promise<GPUShaderModule> {
    // headerLines belongs to the key: it decides the lines an error of this compilation names.
    const id = `${file}\u0000${headerLines}\u0000${code ?? ''}`;
    let m = this.modules.get(id);
    if (!m) {
      m = compileModule(this.device, file, code ?? readKernel(file), headerLines);
      this.modules.set(id, m);
      m.catch(() => this.modules.delete(id));
    }
    return m;
  }

  clear(): void {
    this.modules.clear();
    this.pipelines.clear();
    this.contractLayouts.clear();
    this.layoutIds.clear();
  }

  private layoutId(layout: GPUPipelineLayout): number {
    let id = this.layoutIds.get(layout);
    if (id === undefined) {
      id = this.layoutIds.size;
      this.layoutIds.set(layout, id);
    }
    return id;
  }

  private async createPipeline(key: PipelineKey): Promise<GPUComputePipeline> {
    const module = await this.module(key.file, key.code, key.headerLines);
    // No error scope here: scopes are one stack per device, so a scope held across this await would
    // catch (and pop) errors of creations running concurrently. The async creation reports its own
    // validation failure by rejecting.
    return this.device
      .createComputePipelineAsync({
        label: `${key.file}:${key.entry}`,
        layout: key.layout ?? 'auto',
        compute: { module, entryPoint: key.entry, constants: key.constants ?? {} },
      })
      .catch((error: unknown) => {
        const full = String((error as Error).message ?? error);
        throw new ShaderCompileError(key.file, [`${key.entry}: ${full.split('\n')[0]}`], full);
      });
  }
}

/**
 * Compiles WGSL and turns compiler errors into "file:line:col: message" diagnostics. With a
 * generated header of `headerLines` lines before the file's text, lines are the file's own, and an
 * error inside the header says so.
 */
export async function compileModule(
  device: GPUDevice,
  file: string,
  code: string,
  headerLines = 0,
): Promise<GPUShaderModule> {
  // Push and pop in the same tick: a scope left open across an await would collect (and hide) the
  // errors of other creations running meanwhile. The diagnostics come from getCompilationInfo.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: file, code });
  const popped = device.popErrorScope();
  const info = await module.getCompilationInfo();
  const scopeError = await popped;
  const failed = info.messages.filter((m) => m.type === 'error');
  const where = (m: GPUCompilationMessage) =>
    m.lineNum === 0
      ? file // a message about the whole module has no line (lineNum 0), not one in the header
      : m.lineNum > headerLines
        ? `${file}:${m.lineNum - headerLines}:${m.linePos}`
        : `${file} (generated contract declarations):${m.lineNum}:${m.linePos}`;
  const errors = failed.map((m) => `${where(m)}: ${m.message.split('\n')[0]}`);
  const full = failed.map((m) => `${where(m)}: ${m.message}`).join('\n');
  if (errors.length > 0) throw new ShaderCompileError(file, errors, full);
  // An invalid module without compiler messages: returned, it would fail later as a pipeline
  // error that hides why.
  if (scopeError)
    throw new ShaderCompileError(file, [`${file}: ${scopeError.message.split('\n')[0]}`], scopeError.message);
  return module;
}
