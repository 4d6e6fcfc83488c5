import type { CallSplit, CandidateShape } from './candidate-api.js';

export type { CallSplit } from './candidate-api.js';

/**
 * Messages between the harness (parent) and a sandboxed worker process, over the private harness
 * channel (a socket pair on the worker's fd 3, framed by framing.ts: typed arrays travel as binary
 * sections). The worker only ever receives what the parent chooses to send: candidate code once,
 * then one history per call; nothing else in the worker can read or write the channel.
 */
export type ToWorker =
  /** The candidate's code and kernels; accepted once per worker (a second `load` is refused). */
  | { type: 'load'; id: number; js: string; kernels: Record<string, string> }
  | {
      type: 'call';
      id: number;
      loads: Float32Array;
      /**
       * The windows up to and including the latest, oldest first (the last has `loads`' values);
       * when absent the worker gives the candidate `[loads]`.
       */
      history?: Float32Array[];
      shape: CandidateShape;
    }
  /** Echo of a call's payload sizes with no candidate code: calibrates the channel's round trip. */
  | { type: 'probe'; id: number; loads: Float32Array; history?: Float32Array[]; shape: CandidateShape };

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
  /** The worker holds its device; `uid` is its user id as it sees it (inside its user namespace). */
  | { type: 'ready'; adapter: string; uid?: number }
  /** `kind: 'resource'`: the worker went over its memory cap (GPU memory, gpu-memory.ts). */
  | { type: 'fatal'; message: string; kind?: 'resource' }
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
      split?: CallSplit;
    };

/** The file name candidate frames carry in stack traces (set with //# sourceURL). */
export const CANDIDATE_SOURCE_URL = 'candidate.js';

/** Largest frame the parent accepts from a worker (a result is ~150 KB for DeepSeek-V3). */
export const MAX_MESSAGE_BYTES = 16 << 20;
/** Largest frame a worker accepts from the parent (candidate code, or a call with its history). */
export const MAX_REQUEST_BYTES = 256 << 20;
/** The worker's exit code when its candidate went over the GPU memory cap (gpu-memory.ts). */
export const GPU_MEMORY_EXIT = 75;
/** The worker's end of the harness channel. */
export const CHANNEL_FD = 3;
