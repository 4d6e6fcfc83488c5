import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fake answers: a completion text, or an HTTP error (429, 500, ...), optionally after a delay. */
export type FakeReply =
  | { text: string; delayMs?: number; usage?: { prompt_tokens: number; completion_tokens: number } | null }
  | { status: number; body?: string; delayMs?: number; headers?: Record<string, string> };

export interface FakeRequest {
  model: string;
  messages: { role: string; content: string }[];
  /** 0-based order of arrival. */
  index: number;
}

/**
 * A local OpenAI-compatible server (POST /v1/chat/completions) on 127.0.0.1 with scripted replies,
 * so tests exercise the real `openai` client over real HTTP: retries, timeouts, usage accounting.
 */
export class FakeOpenAiServer {
  readonly requests: FakeRequest[] = [];
  private server!: Server;
  constructor(private readonly script: (req: FakeRequest) => FakeReply | Promise<FakeReply>) {}

  static async start(
    script: (req: FakeRequest) => FakeReply | Promise<FakeReply>,
  ): Promise<FakeOpenAiServer> {
    const s = new FakeOpenAiServer(script);
    s.server = createServer((req, res) => {
      void s.handle(req).then(
        ({ status, body, headers }) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(body);
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: `fake server script failed: ${error.message}` } }));
        },
      );
    });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(
    req: IncomingMessage,
  ): Promise<{ status: number; body: string; headers?: Record<string, string> }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      return {
        status: 404,
        body: JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }),
      };
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      model: string;
      messages: FakeRequest['messages'];
    };
    const request: FakeRequest = { model: body.model, messages: body.messages, index: this.requests.length };
    this.requests.push(request);
    const reply = await this.script(request);
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    if ('status' in reply) {
      return {
        status: reply.status,
        body:
          reply.body ??
          JSON.stringify({ error: { message: `scripted HTTP ${reply.status}`, type: 'scripted' } }),
        ...(reply.headers ? { headers: reply.headers } : {}),
      };
    }
    const promptChars = body.messages.reduce((n, m) => n + m.content.length, 0);
    const usage =
      reply.usage === null
        ? undefined
        : (reply.usage ?? {
            prompt_tokens: Math.ceil(promptChars / 4),
            completion_tokens: Math.ceil(reply.text.length / 4),
          });
    return {
      status: 200,
      body: JSON.stringify({
        id: `chatcmpl-${request.index}`,
        object: 'chat.completion',
        created: 0,
        model: body.model,
        choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: reply.text } }],
        ...(usage
          ? { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }
          : {}),
      }),
    };
  }
}
