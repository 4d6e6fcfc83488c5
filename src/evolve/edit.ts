import type { CandidateFiles } from './candidate.js';
import type { Mutation } from './database.js';
import { applySearchReplace, type PatchResult, parseSearchReplace } from './patch.js';
import { applyRewriteText } from './rewrite.js';

/**
 * Applies a model's answer to the parent's files: SEARCH/REPLACE blocks or EVOLVE-BLOCK rewrites.
 * Either format is accepted whatever was asked (models mix them up, and both are checked the same
 * way); when an answer holds both, the mutation asked for decides.
 */
export function applyModelEdit(
  files: CandidateFiles,
  text: string,
  mutation: Exclude<Mutation, 'seed'>,
): PatchResult {
  const hasBlocks = /^\s*<{5,9}\s*BLOCK\s/m.test(text);
  const hasDiff = /^\s*<{5,9}\s*SEARCH\b/m.test(text);
  if (hasBlocks && (!hasDiff || mutation === 'rewrite')) return applyRewriteText(files, text);
  const parsed = parseSearchReplace(text);
  if ('error' in parsed) {
    return {
      ok: false,
      kind: 'malformed',
      reason:
        mutation === 'rewrite' && !hasDiff
          ? "no '<<<<<<< BLOCK file#n … >>>>>>> END' rewrite found in the response"
          : parsed.error,
    };
  }
  return applySearchReplace(files, parsed.blocks);
}
