import { create, globals } from 'webgpu';
import { UserError } from '../util/errors.js';

/** WebGPU's enum objects (GPUBufferUsage, GPUMapMode, …) are globals in a browser; Dawn exports them. */
Object.assign(globalThis, globals);

export const NO_ADAPTER_FIX =
  'install a Vulkan driver: on Debian, libvulkan1 and mesa-vulkan-drivers from bookworm-backports (Mesa ≥ 23; ' +
  "bookworm's Mesa 22 lavapipe is refused by Dawn), or your GPU vendor's Vulkan driver; `bash .ci/install-vulkan` does it";

/** Dawn-specific instance flags: timestamps unquantized (we time our own kernels, not a web page). */
function instanceFlags(extra: string[]): string[] {
  return ['disable-dawn-features=timestamp_quantization', ...extra];
}

/**
 * A Dawn instance. Dawn keeps the process alive while an instance is referenced, so callers drop
 * every reference (see GpuContext.destroy) to let the process exit.
 */
export function createInstance(extra: string[] = []): GPU {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  return create(instanceFlags(extra));
}

export interface AdapterEntry {
  backend: string;
  name: string;
}

/**
 * Every adapter Dawn can see. Dawn's node binding has no enumeration API; asking for an adapter
 * name that cannot exist makes it list the available ones in its error, which we parse.
 */
export async function enumerateAdapters(): Promise<AdapterEntry[]> {
  const gpu = createInstance(['adapter=\u0001adrs-list-adapters']);
  let message = '';
  try {
    await gpu.requestAdapter();
  } catch (error) {
    message = error instanceof Error ? error.message : String(error);
  }
  const entries: AdapterEntry[] = [];
  for (const m of message.matchAll(/backend: '([^']*)', name: '([^']*)'/g)) {
    if (m[1] !== 'null') entries.push({ backend: m[1]!, name: m[2]! });
  }
  return entries;
}

/** Requests one adapter, by (substring of) name when given. Null when none matches. */
export async function requestAdapter(gpu: GPU): Promise<GPUAdapter | null> {
  try {
    return await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch {
    return null;
  }
}

/** Instance flags that select an adapter by name (Dawn matches a substring) and optionally backend. */
export function adapterFlags(adapter: string | undefined, backend?: string): string[] {
  const flags: string[] = [];
  if (adapter) flags.push(`adapter=${adapter}`);
  if (backend) flags.push(`backend=${backend}`);
  return flags;
}

export function noAdapterError(wanted: string | undefined, available: AdapterEntry[]): UserError {
  if (wanted) {
    const names = available.map((a) => `'${a.name}'`).join(', ') || 'none';
    return new UserError(
      `no GPU adapter matches '${wanted}' (available: ${names}); pick one from \`adrs devices\``,
    );
  }
  return new UserError(`no GPU adapter found: ${NO_ADAPTER_FIX}`);
}
