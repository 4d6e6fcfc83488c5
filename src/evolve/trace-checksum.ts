import { createHash } from 'node:crypto';
import type { Trace } from '../trace/trace.js';

/**
 * sha256 over the manifest and the loads exactly as scored (the bytes in memory, not a file found
 * again by path), so a reproducer names the data its scores came from wherever the trace lives.
 */
export function traceChecksum(t: Trace): string {
  return createHash('sha256')
    .update(JSON.stringify(t.manifest))
    .update(new Uint8Array(t.loads.buffer, t.loads.byteOffset, t.loads.byteLength))
    .digest('hex');
}
