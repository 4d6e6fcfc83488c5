import type { ModelConfig } from '../config.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  /** True when the server sent no usage and the counts were estimated from the text (4 characters a token). */
  estimated: boolean;
}

export interface LlmReply {
  text: string;
  model: string;
  usage: TokenUsage;
  cost_usd: number;
  /** The model's own time: from sending the request to the answer, retries and their backoff included. */
  latency_ms: number;
  /** Time queued behind llm.concurrency before the request went out (absent in older recordings). */
  queued_ms?: number;
  /** HTTP attempts made (1 = no retry); the failures that were retried, one line each. */
  attempts: number;
  retried: string[];
}

/** Anything that answers a chat: the real OpenAI-compatible client, or a replay of recorded responses. */
export interface LanguageModel {
  complete(
    request: { iteration: number; attempt: number; model: ModelConfig; messages: ChatMessage[] },
    signal?: AbortSignal,
  ): Promise<LlmReply>;
}

export function costOf(model: ModelConfig, usage: TokenUsage): number {
  return (
    (usage.prompt_tokens * model.price_input_per_mtok +
      usage.completion_tokens * model.price_output_per_mtok) /
    1e6
  );
}

/** A call that failed for good (not retryable, or retries exhausted); the iteration records it and moves on. */
export class LlmCallError extends Error {
  override name = 'LlmCallError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly attempts: number,
    /** 401/403/404: the configuration is wrong and every later call would fail the same way. */
    readonly fatal: boolean,
  ) {
    super(message);
  }
}
