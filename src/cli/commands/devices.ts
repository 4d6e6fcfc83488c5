import type { CommandModule } from 'yargs';
import { type AdapterSummary, adapterLabel, summarizeAdapter } from '../../gpu/adapter-info.js';
import {
  adapterFlags,
  createInstance,
  enumerateAdapters,
  noAdapterError,
  requestAdapter,
} from '../../gpu/dawn.js';
import { say } from '../io.js';
import { printJson, withJson } from '../options.js';

/** Every adapter Dawn sees, with what matters for compute. */
export async function describeAdapters(): Promise<AdapterSummary[]> {
  const summaries: AdapterSummary[] = [];
  for (const entry of await enumerateAdapters()) {
    const adapter = await requestAdapter(createInstance(adapterFlags(entry.name, entry.backend)));
    if (adapter) summaries.push(summarizeAdapter(adapter, entry.name, entry.backend));
  }
  return summaries;
}

export const devicesCommand: CommandModule<object, { json: boolean }> = {
  command: 'devices',
  describe: 'List the GPU adapters Dawn can use',
  builder: (y) => withJson(y),
  handler: async (argv) => {
    const adapters = await describeAdapters();
    if (adapters.length === 0) throw noAdapterError(undefined, []);
    if (argv.json) {
      printJson({ adapters });
      return;
    }
    for (const a of adapters) {
      const l = a.limits;
      say(adapterLabel(a));
      say(`  vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}, ${a.description}`);
      say(`  timestamp-query: ${a.timestampQuery ? 'yes' : 'no'}, subgroups: ${a.subgroups ? 'yes' : 'no'}`);
      say(
        `  workgroup: ≤${l.maxComputeInvocationsPerWorkgroup} invocations, ${l.maxComputeWorkgroupStorageSize} B shared; ` +
          `storage binding ≤${mib(l.maxStorageBufferBindingSize)}, buffer ≤${mib(l.maxBufferSize)}, ` +
          `${l.maxStorageBuffersPerShaderStage} storage buffers/stage`,
      );
    }
  },
};

const mib = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MiB`;
