import { isRecord } from '../../util/guards.js';
import { promptText, sha256Hex } from './blobs.js';
import type { RefusalClass } from './events.js';
import { isMessages, messagesProblem } from './validate.js';

/**
 * The class of a version-1 refusal, recovered from its wording (version 1 logged only the English
 * reason). Version 2 logs the patcher's own `kind`; this reading exists for old run folders only.
 */
export function legacyRefusalClass(reason: string): RefusalClass {
  if (/matches \d+ places/.test(reason)) return 'ambiguous';
  if (/outside every EVOLVE-BLOCK|EVOLVE-BLOCK marker/.test(reason)) return 'outside-block';
  if (/changes nothing|leaves the program unchanged/.test(reason)) return 'unchanged';
  if (/was not found in|no file '|there is no EVOLVE-BLOCK/.test(reason)) return 'no-match';
  if (
    /no '<<<<<<< (SEARCH|BLOCK)|without a preceding|before the '(=======|>>>>>>> REPLACE)'|no '(=======|>>>>>>> REPLACE)'|is not closed by|SEARCH text is empty|rewritten twice/.test(
      reason,
    )
  ) {
    return 'malformed';
  }
  return 'other';
}

/**
 * A version-1 line (no `v`) as version 2: prompts and answer texts, inline in version 1, move to
 * `texts` (hash → text, served by the BlobStore as if they were files) and the event names their
 * hash; a patch gets its kind from its reason. Returns the problem instead when the line lacks
 * what the migration needs (the version-2 check then judges the rest).
 */
export function migrateV1(
  e: Record<string, unknown>,
  texts: Map<string, string>,
): Record<string, unknown> | string {
  const out: Record<string, unknown> = { ...e, v: 2 };
  switch (e.type) {
    case 'prompt': {
      if (e.messages === undefined) return "prompt event (version 1): missing field 'messages'";
      if (!isMessages(e.messages))
        return `prompt event (version 1): ${messagesProblem(e.messages, 'messages')}`;
      const text = promptText(e.messages);
      const hash = sha256Hex(text);
      texts.set(hash, text);
      delete out.messages;
      out.messages_sha256 = hash;
      break;
    }
    case 'response': {
      const reply = e.reply;
      if (!isRecord(reply) || typeof reply.text !== 'string')
        return "response event (version 1): missing field 'reply.text'";
      const hash = sha256Hex(reply.text);
      texts.set(hash, reply.text);
      const { text: _text, ...rest } = reply;
      out.reply = { ...rest, text_sha256: hash };
      break;
    }
    case 'patch':
      out.kind = e.ok === true ? 'applied' : legacyRefusalClass(typeof e.reason === 'string' ? e.reason : '');
      break;
  }
  return out;
}
