import OpenAI from 'openai';
import { linkedSignal } from '../../util/abort.js';
import { UserError } from '../../util/errors.js';
import type { EvolveConfig, ModelConfig } from '../config.js';
import { Semaphore } from './semaphore.js';
import {
  type ChatMessage,
  costOf,
  type LanguageModel,
  LlmCallError,
  type LlmReply,
  type TokenUsage,
} from './types.js';

/** Starts a timer and returns its cancel; injectable so tests fire timeouts and backoffs without waiting. */
export type Timer = (ms: number, fire: () => void) => () => void;

const realTimer: Timer = (ms, fire) => {
  const t = setTimeout(fire, ms);
  return () => clearTimeout(t);
};

/**
 * Chat completions against any OpenAI-compatible endpoint (hosted, vLLM, llama.cpp, Ollama).
 * Our own retry loop (the client's is switched off) so every retry is visible and the backoff
 * honours Retry-After: 429, 5xx and dropped connections are retried with exponential backoff and
 * jitter; other 4xx are not (they would fail again).
 *
 * Time limits: each attempt gets llm.timeout_s, and its request is aborted when that runs out (the
 * server sees the connection close and can stop generating), so no abandoned request keeps a slot
 * of a local server busy. A timed-out attempt is retried at most once: a model that needed longer
 * than timeout_s for this prompt will most likely need as long again, and the next iteration asks
 * anew anyway. So one call takes at most about 2 × timeout_s plus backoff, not timeout_s × (retries + 1).
 */
export class OpenAiModel implements LanguageModel {
  private readonly client: OpenAI;
  private readonly gate: Semaphore;
  private readonly timer: Timer;
  private readonly now: () => number;
  constructor(
    private readonly llm: EvolveConfig['llm'],
    options: { timer?: Timer; now?: () => number } = {},
  ) {
    this.timer = options.timer ?? realTimer;
    this.now = options.now ?? (() => performance.now());
    let apiKey = 'no-key';
    if (llm.api_key_env) {
      const v = process.env[llm.api_key_env];
      if (!v)
        throw new UserError(
          `llm.api_key_env names $${llm.api_key_env}, which is not set; export it or remove api_key_env for a server without keys`,
        );
      apiKey = v;
    } else if (process.env.OPENAI_API_KEY) apiKey = process.env.OPENAI_API_KEY;
    this.client = new OpenAI({
      baseURL: llm.base_url!,
      apiKey,
      maxRetries: 0,
      // Our own per-attempt timer aborts the request; the client's own limit only backs it up.
      timeout: llm.timeout_s * 1000 + 60_000,
    });
    this.gate = new Semaphore(llm.concurrency);
  }

  complete(
    request: { iteration: number; attempt: number; model: ModelConfig; messages: ChatMessage[] },
    signal?: AbortSignal,
  ): Promise<LlmReply> {
    const queuedAt = this.now();
    return this.gate.run(async () => {
      // The caller's signal may be long-lived (a whole run): link one signal per call to it, and unlink it
      // when the call settles, so the attempts' and backoffs' listeners never land on the caller's signal.
      const call = linkedSignal(signal);
      try {
        return await this.withRetries(request.model, request.messages, this.now() - queuedAt, call.signal);
      } finally {
        call.release();
      }
    });
  }

  /** One HTTP attempt with its own abort: the caller's stop signal or this attempt's timeout. */
  private async attempt(model: ModelConfig, messages: ChatMessage[], signal: AbortSignal) {
    const own = new AbortController();
    let timedOut = false;
    const cancel = this.timer(this.llm.timeout_s * 1000, () => {
      timedOut = true;
      own.abort(new Error('timed out'));
    });
    const onStop = (): void => own.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    try {
      return await this.client.chat.completions.create(
        {
          model: model.name,
          messages,
          temperature: model.temperature ?? this.llm.temperature,
          max_tokens: model.max_tokens ?? this.llm.max_tokens,
        },
        { signal: own.signal },
      );
    } catch (error) {
      if (timedOut) throw new AttemptTimeout(this.llm.timeout_s);
      throw error;
    } finally {
      cancel();
      signal.removeEventListener('abort', onStop);
    }
  }

  private async withRetries(
    model: ModelConfig,
    messages: ChatMessage[],
    queuedMs: number,
    signal: AbortSignal,
  ): Promise<LlmReply> {
    const retried: string[] = [];
    const t0 = this.now();
    let timeouts = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.attempt(model, messages, signal);
        const text = res.choices[0]?.message?.content ?? '';
        const usage: TokenUsage = res.usage
          ? {
              prompt_tokens: res.usage.prompt_tokens,
              completion_tokens: res.usage.completion_tokens,
              estimated: false,
            }
          : {
              prompt_tokens: Math.ceil(messages.reduce((n, m) => n + m.content.length, 0) / 4),
              completion_tokens: Math.ceil(text.length / 4),
              estimated: true,
            };
        return {
          text,
          model: model.name,
          usage,
          cost_usd: costOf(model, usage),
          latency_ms: this.now() - t0,
          queued_ms: queuedMs,
          attempts: attempt,
          retried,
        };
      } catch (error) {
        if (signal.aborted) throw error;
        const { retryable, status, line, retryAfterMs } = classify(error);
        if (error instanceof AttemptTimeout) timeouts++;
        if (!retryable || attempt > this.llm.retries || timeouts > 1) {
          throw new LlmCallError(
            `${model.name}: ${line}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`,
            status,
            attempt,
            status === 401 || status === 403 || status === 404,
          );
        }
        retried.push(line);
        const backoff = this.llm.retry_base_s * 1000 * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
        await this.sleep(Math.max(backoff, retryAfterMs ?? 0), signal);
      }
    }
  }

  /** Waits `ms` on the timer, or rejects when `signal` aborts; either way nothing is left listening. */
  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason ?? new Error('aborted'));
      const onAbort = (): void => {
        cancel();
        reject(signal.reason ?? new Error('aborted'));
      };
      const cancel = this.timer(ms, () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** An attempt aborted by our own timer (not by the caller's stop). */
class AttemptTimeout extends Error {
  constructor(seconds: number) {
    super(`timed out after ${seconds} s`);
  }
}

export function classify(error: unknown): {
  retryable: boolean;
  status?: number;
  line: string;
  retryAfterMs?: number;
} {
  if (error instanceof AttemptTimeout) return { retryable: true, line: error.message };
  if (error instanceof OpenAI.APIConnectionTimeoutError) return { retryable: true, line: 'timed out' };
  if (error instanceof OpenAI.APIConnectionError)
    return { retryable: true, line: `connection failed: ${error.message}` };
  if (error instanceof OpenAI.APIError) {
    const status = error.status;
    const header = error.headers?.get?.('retry-after');
    const retryAfterMs = header && /^\d+(\.\d+)?$/.test(header) ? Number(header) * 1000 : undefined;
    const retryable =
      status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    // The client's message starts with the status itself ("400 Bad request", "400 status code (no body)").
    const text = error.message
      .split('\n')[0]!
      .replace(/^\d{3}\s*/, '')
      .trim();
    const line = `HTTP ${status ?? '?'}${text && text !== 'status code (no body)' ? `: ${text}` : ''}`;
    return {
      retryable,
      ...(status !== undefined ? { status } : {}),
      line,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  return { retryable: false, line: (error as Error)?.message ?? String(error) };
}
