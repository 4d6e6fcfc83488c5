import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** kernels/ at the package root: the same relative path from src/gpu and from dist/gpu. */
export const KERNELS_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

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
}

/**
 * Compiles WGSL modules and compute pipelines once and caches them by (file, entry, overrides),
 * so the hot path never creates a pipeline.
 */
export class KernelCache {
  private modules = new Map<string, Promise<GPUShaderModule>>();
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(private readonly device: GPUDevice) {}

  pipeline(key: PipelineKey): Promise<GPUComputePipeline> {
    const id = `${key.file}\u0000${key.entry}\u0000${JSON.stringify(key.constants ?? {})}\u0000${key.code ?? ''}`;
    let p = this.pipelines.get(id);
    if (!p) {
      p = this.createPipeline(key);
      this.pipelines.set(id, p);
      p.catch(() => this.pipelines.delete(id));
    }
    return p;
  }

  module(file: string, code?: string): Promise<GPUShaderModule> {
    const id = `${file}\u0000${code ?? ''}`;
    let m = this.modules.get(id);
    if (!m) {
      m = compileModule(this.device, file, code ?? readKernel(file));
      this.modules.set(id, m);
      m.catch(() => this.modules.delete(id));
    }
    return m;
  }

  clear(): void {
    this.modules.clear();
    this.pipelines.clear();
  }

  private async createPipeline(key: PipelineKey): Promise<GPUComputePipeline> {
    const module = await this.module(key.file, key.code);
    // No error scope here: scopes are one stack per device, so a scope held across this await would
    // catch (and pop) errors of creations running concurrently. The async creation reports its own
    // validation failure by rejecting.
    return this.device
      .createComputePipelineAsync({
        label: `${key.file}:${key.entry}`,
        layout: 'auto',
        compute: { module, entryPoint: key.entry, constants: key.constants ?? {} },
      })
      .catch((error: unknown) => {
        const full = String((error as Error).message ?? error);
        throw new ShaderCompileError(key.file, [`${key.entry}: ${full.split('\n')[0]}`], full);
      });
  }
}

export function readKernel(file: string): string {
  const path = `${KERNELS_DIR}${file}`;
  if (!existsSync(path)) throw new Error(`kernel file not found: ${path}`);
  return readFileSync(path, 'utf8');
}

/** Compiles WGSL and turns compiler errors into "file:line:col: message" diagnostics. */
export async function compileModule(device: GPUDevice, file: string, code: string): Promise<GPUShaderModule> {
  // Push and pop in the same tick: a scope left open across an await would collect (and hide) the
  // errors of other creations running meanwhile. The diagnostics come from getCompilationInfo.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: file, code });
  const popped = device.popErrorScope();
  const info = await module.getCompilationInfo();
  await popped;
  const failed = info.messages.filter((m) => m.type === 'error');
  const errors = failed.map((m) => `${file}:${m.lineNum}:${m.linePos}: ${m.message.split('\n')[0]}`);
  const full = failed.map((m) => `${file}:${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
  if (errors.length > 0) throw new ShaderCompileError(file, errors, full);
  return module;
}
