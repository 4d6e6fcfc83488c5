import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import type { ChatMessage } from '../llm/types.js';
import { isMessages, messagesProblem } from './validate.js';

export type BlobKind = 'prompts' | 'responses';
const EXT: Record<BlobKind, string> = { prompts: 'json', responses: 'txt' };

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A prompt's blob text: its messages as JSON (what the hash names). */
export const promptText = (messages: ChatMessage[]): string => JSON.stringify(messages);

/**
 * The run folder's content-addressed store of prompts and answers: prompts/<sha256>.json and
 * responses/<sha256>.txt, each written once, atomically, before the event that names it. Reads
 * check the hash, so a file edited since it was written is refused, not replayed. Texts that a
 * version-1 log held inline are `known` (the migration hashes them), so old runs read the same way.
 */
export class BlobStore {
  private readonly known = new Map<string, string>();
  constructor(private readonly dir: string) {}

  path(kind: BlobKind, hash: string): string {
    return join(this.dir, kind, `${hash}.${EXT[kind]}`);
  }

  /** Texts recovered from a version-1 log, by hash (kept in memory; the old folder is not rewritten). */
  learn(texts: Map<string, string>): void {
    for (const [h, t] of texts) this.known.set(h, t);
  }

  /** Whether the blob can be read (on disk, or known from a version-1 log); its hash is checked on read. */
  has(kind: BlobKind, hash: string): boolean {
    return this.known.has(hash) || existsSync(this.path(kind, hash));
  }

  /**
   * Stores a text under its hash; call it before logging the event that names the hash. A file
   * already there is kept only when it holds this text: one changed since (or left by a crash of a
   * writer that was not atomic) is replaced, so the event about to name it never names a bad blob.
   */
  put(kind: BlobKind, text: string): string {
    const hash = sha256Hex(text);
    const p = this.path(kind, hash);
    if (!existsSync(p) || sha256Hex(readFileSync(p, 'utf8')) !== hash) writeFileAtomic(p, text);
    return hash;
  }

  get(kind: BlobKind, hash: string): string {
    const p = this.path(kind, hash);
    if (!existsSync(p)) {
      const known = this.known.get(hash);
      if (known !== undefined) return known;
      throw new UserError(`${p} is missing; the run folder is damaged (events.jsonl names it)`);
    }
    const text = readFileSync(p, 'utf8');
    if (sha256Hex(text) !== hash)
      throw new UserError(
        `${p} does not match its sha256; it was changed after it was written, so the run folder cannot be trusted`,
      );
    return text;
  }

  putMessages(messages: ChatMessage[]): string {
    return this.put('prompts', promptText(messages));
  }

  /** A prompt's messages, checked to be a conversation (they are sent to the model again on resume). */
  messages(hash: string): ChatMessage[] {
    const text = this.get('prompts', hash);
    let messages: unknown;
    try {
      messages = JSON.parse(text);
    } catch {
      throw new UserError(`${this.path('prompts', hash)} is not JSON; the run folder is damaged`);
    }
    if (!isMessages(messages))
      throw new UserError(
        `${this.path('prompts', hash)}: ${messagesProblem(messages, 'messages')}; the run folder is damaged`,
      );
    return messages;
  }
}
