import type { CandidateShape } from './candidate-api.js';

/**
 * Messages between the harness (parent) and a sandboxed worker process, sent over Node's IPC
 * channel with 'advanced' serialization (typed arrays travel as typed arrays). The worker only ever
 * receives what the parent chooses to send: candidate code, kernel sources and one history window
 * per call.
 */
export type ToWorker = (
  | { type: 'load'; id: number; js: string; kernels: Record<string, string> }
  | { type: 'call'; id: number; loads: Float32Array; shape: CandidateShape }
  /** Echo of a call's payload sizes with no candidate code: calibrates the IPC round trip. */
  | { type: 'probe'; id: number; loads: Float32Array; shape: CandidateShape }
) & {
  /**
   * The parent's secret, the same on every message; the worker learns it from the first one (before
   * candidate code loads) and ignores messages without it (a candidate emitting fake requests).
   */
  token: string;
};

/** Why a worker-side step failed; the parent turns it into an artifact. */
export type FailureKind = 'wgsl' | 'import' | 'exception' | 'sandbox' | 'gpu' | 'output';

export interface Failure {
  kind: FailureKind;
  message: string;
  /** Raw stack of the thrown value (candidate frames are named candidate.js). */
  stack?: string;
  /** WGSL diagnostics as "file:line:col: message". */
  diagnostics?: string[];
}

export type FromWorker =
  | { type: 'ready'; adapter: string }
  | { type: 'fatal'; message: string }
  | { type: 'loaded'; id: number; failure?: Failure }
  | {
      type: 'result';
      id: number;
      failure?: Failure;
      /**
       * A copy of what the candidate returned when it is an Int32Array of the expected length, else
       * a short description of what it was (the parent validates either way).
       */
      phy2log?: unknown;
      logcnt?: unknown;
      /** Worker-side ms from the call to the end of the GPU work it submitted. */
      ms: number;
      /** Where that time went (contract 3; measured by candidate-context.ts): diagnostics, not charged. */
      split?: { host_ms: number; gpu_wait_ms: number; gpu_ms: number | null };
    };

/** The file name candidate frames carry in stack traces (set with //# sourceURL). */
export const CANDIDATE_SOURCE_URL = 'candidate.js';

/** Largest message the parent accepts from a worker (a result is ~150 KB for DeepSeek-V3). */
export const MAX_MESSAGE_BYTES = 16 << 20;
