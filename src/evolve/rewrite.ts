import {
  allBlocks,
  BLOCK_END,
  BLOCK_START,
  type CandidateFiles,
  joinLines,
  splitLines,
} from './candidate.js';
import type { PatchResult } from './patch.js';

/**
 * Full rewrite of one or more EVOLVE-BLOCKs: the model returns the new body of each block it
 * rewrites, addressed as `file#index` (the labels the prompt shows):
 *
 *     <<<<<<< BLOCK balancer.ts#1
 *     the whole new content between the markers
 *     >>>>>>> END
 *
 * Everything outside the blocks is kept byte for byte, so a rewrite cannot touch fixed code.
 */
const OPEN_RE = /^\s*<{5,9}\s*BLOCK\s+[`'"]?([^\s#`'"]+)#(\d+)[`'"]?\s*$/;
const CLOSE_RE = /^\s*>{5,9}\s*END\b.*$/;
const FENCE_RE = /^\s*(```|~~~)/;

export interface BlockRewrite {
  file: string;
  index: number;
  body: string[];
}

export function parseBlockRewrites(response: string): { rewrites: BlockRewrite[] } | { error: string } {
  const lines = response.replace(/\r\n?/g, '\n').split('\n');
  const rewrites: BlockRewrite[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN_RE.exec(lines[i]!);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !CLOSE_RE.test(lines[j]!)) {
      if (OPEN_RE.test(lines[j]!))
        return {
          error: `rewrite of ${open[1]}#${open[2]} is not closed by '>>>>>>> END' before the next BLOCK`,
        };
      body.push(lines[j]!);
      j++;
    }
    if (j >= lines.length)
      return { error: `rewrite of ${open[1]}#${open[2]} is not closed by '>>>>>>> END'` };
    const fenced = body.length >= 2 && FENCE_RE.test(body[0]!) && FENCE_RE.test(body[body.length - 1]!);
    rewrites.push({
      file: open[1]!.replace(/^\.\//, ''),
      index: Number(open[2]),
      body: fenced ? body.slice(1, -1) : body,
    });
    i = j;
  }
  if (rewrites.length === 0)
    return { error: "no '<<<<<<< BLOCK file#n … >>>>>>> END' rewrite found in the response" };
  return { rewrites };
}

export function applyBlockRewrites(files: CandidateFiles, rewrites: BlockRewrite[]): PatchResult {
  const blocks = allBlocks(files);
  const seen = new Set<string>();
  for (const r of rewrites) {
    const label = `${r.file}#${r.index}`;
    if (seen.has(label))
      return { ok: false, kind: 'malformed', reason: `${label} is rewritten twice in one response` };
    seen.add(label);
    if (!blocks.some((b) => b.file === r.file && b.index === r.index)) {
      return {
        ok: false,
        kind: 'no-match',
        reason: `there is no EVOLVE-BLOCK ${label}; the blocks are ${blocks.map((b) => `${b.file}#${b.index}`).join(', ')}`,
      };
    }
    if (r.body.some((l) => l.includes(BLOCK_START) || l.includes(BLOCK_END))) {
      return {
        ok: false,
        kind: 'outside-block',
        reason: `the rewrite of ${label} contains an EVOLVE-BLOCK marker; send only the lines between the markers`,
      };
    }
  }
  const out: CandidateFiles = { ...files };
  const changed: { file: string; line: number }[] = [];
  for (const file of new Set(rewrites.map((r) => r.file))) {
    const lines = splitLines(files[file]!);
    // Replace from the last block up so earlier line numbers stay valid.
    const mine = blocks.filter((b) => b.file === file).sort((a, b) => b.startLine - a.startLine);
    let next = lines;
    for (const b of mine) {
      const r = rewrites.find((x) => x.file === file && x.index === b.index);
      if (!r) continue;
      next = [...next.slice(0, b.startLine + 1), ...r.body, ...next.slice(b.endLine)];
      changed.push({ file, line: b.startLine + 2 });
    }
    out[file] = joinLines(next);
  }
  return { ok: true, files: out, changed };
}

export function applyRewriteText(files: CandidateFiles, response: string): PatchResult {
  const parsed = parseBlockRewrites(response);
  if ('error' in parsed) return { ok: false, kind: 'malformed', reason: parsed.error };
  return applyBlockRewrites(files, parsed.rewrites);
}
