import {
  BLOCK_END,
  BLOCK_START,
  type CandidateFiles,
  type EvolveBlock,
  findBlocks,
  joinLines,
  sortedPaths,
  splitLines,
} from './candidate.js';
import type { RefusalKind } from './run-log/events.js';

/**
 * SEARCH/REPLACE patches (contract):
 *
 *     <<<<<<< SEARCH balancer.ts
 *     exact lines from the current file
 *     =======
 *     replacement lines
 *     >>>>>>> REPLACE
 *
 * Tolerated: code fences around blocks (or just inside the markers), CRLF, trailing spaces after
 * markers and on lines, a uniform indentation shift of the whole search text. Refused with the
 * reason: no block, a malformed block, search text found nowhere or more than once, an edit that
 * touches lines outside an EVOLVE-BLOCK. A patch applies all-or-nothing.
 */
export interface SearchReplaceBlock {
  /** Target file, or undefined when the model left it out. */
  file?: string;
  search: string[];
  replace: string[];
}

/** `kind`: the class of a refusal, logged with it (so a report never reads the English reason). */
export type PatchResult =
  | { ok: true; files: CandidateFiles; changed: { file: string; line: number }[] }
  | { ok: false; kind: RefusalKind; reason: string };

const SEARCH_RE = /^\s*<{5,9}\s*SEARCH\b\s*(.*?)\s*$/;
const DIVIDER_RE = /^\s*={5,9}\s*$/;
const REPLACE_RE = /^\s*>{5,9}\s*REPLACE\b.*$/;
const FENCE_RE = /^\s*(```|~~~)/;

export function parseSearchReplace(response: string): { blocks: SearchReplaceBlock[] } | { error: string } {
  const lines = response.replace(/\r\n?/g, '\n').split('\n');
  const blocks: SearchReplaceBlock[] = [];
  let i = 0;
  while (i < lines.length) {
    const head = SEARCH_RE.exec(lines[i]!);
    if (!head) {
      if (DIVIDER_RE.test(lines[i]!) || REPLACE_RE.test(lines[i]!)) {
        return { error: `line ${i + 1}: '${lines[i]!.trim()}' without a preceding '<<<<<<< SEARCH' marker` };
      }
      i++;
      continue;
    }
    const n = blocks.length + 1;
    const file = cleanFileName(head[1]!);
    const search: string[] = [];
    const replace: string[] = [];
    let j = i + 1;
    while (j < lines.length && !DIVIDER_RE.test(lines[j]!)) {
      if (SEARCH_RE.test(lines[j]!) || REPLACE_RE.test(lines[j]!)) {
        return { error: `block ${n}: '${lines[j]!.trim()}' at line ${j + 1} before the '=======' divider` };
      }
      search.push(lines[j]!);
      j++;
    }
    if (j >= lines.length) return { error: `block ${n}: no '=======' divider after '<<<<<<< SEARCH'` };
    j++;
    while (j < lines.length && !REPLACE_RE.test(lines[j]!)) {
      if (SEARCH_RE.test(lines[j]!) || DIVIDER_RE.test(lines[j]!)) {
        return {
          error: `block ${n}: '${lines[j]!.trim()}' at line ${j + 1} before the '>>>>>>> REPLACE' marker`,
        };
      }
      replace.push(lines[j]!);
      j++;
    }
    if (j >= lines.length) return { error: `block ${n}: no '>>>>>>> REPLACE' marker closes it` };
    blocks.push({
      ...(file ? { file } : {}),
      search: stripInnerFence(search),
      replace: stripInnerFence(replace),
    });
    i = j + 1;
  }
  if (blocks.length === 0) {
    return { error: "no '<<<<<<< SEARCH … ======= … >>>>>>> REPLACE' block found in the response" };
  }
  return { blocks };
}

/** Models write `balancer.ts`, `` `balancer.ts` ``, `file: balancer.ts` or `./balancer.ts`. */
function cleanFileName(raw: string): string | undefined {
  const name = raw
    .replace(/^(file|path)\s*[:=]\s*/i, '')
    .replace(/[`'"*]/g, '')
    .replace(/^\.\//, '')
    .trim();
  return name === '' ? undefined : name;
}

/** A fence opened right after a marker and closed right before the next one. */
function stripInnerFence(lines: string[]): string[] {
  if (lines.length >= 2 && FENCE_RE.test(lines[0]!) && FENCE_RE.test(lines[lines.length - 1]!)) {
    return lines.slice(1, -1);
  }
  return lines;
}

interface Match {
  start: number;
  /** How to re-indent the replacement so that it lines up with the file. */
  shift: (line: string) => string;
}

const indentOf = (line: string): string => /^[ \t]*/.exec(line)![0];
const blank = (line: string): boolean => line.trim() === '';

/** Every position where `search` matches `lines`, exactly (ignoring trailing spaces) or with one uniform indent shift. */
function findMatches(lines: string[], search: string[]): Match[] {
  const exact: Match[] = [];
  const shifted: Match[] = [];
  const first = search.findIndex((l) => !blank(l));
  for (let s = 0; s + search.length <= lines.length; s++) {
    let same = true;
    for (let k = 0; k < search.length && same; k++) same = lines[s + k]!.trimEnd() === search[k]!.trimEnd();
    if (same) {
      exact.push({ start: s, shift: (l) => l });
      continue;
    }
    const fileFirst = lines[s + first]!;
    const searchFirst = search[first]!;
    if (fileFirst.trim() !== searchFirst.trim()) continue;
    const fi = indentOf(fileFirst);
    const si = indentOf(searchFirst);
    let shift: ((l: string) => string) | undefined;
    if (fi.startsWith(si)) {
      const add = fi.slice(si.length);
      shift = (l) => (blank(l) ? l : add + l);
    } else if (si.startsWith(fi)) {
      const cut = si.slice(fi.length);
      if (!search.every((l) => blank(l) || l.startsWith(cut))) continue;
      shift = (l) => (l.startsWith(cut) ? l.slice(cut.length) : l.trimStart());
    } else continue;
    let ok = true;
    for (let k = 0; k < search.length && ok; k++) {
      const want = search[k]!;
      ok = blank(want) ? blank(lines[s + k]!) : lines[s + k]!.trimEnd() === shift(want).trimEnd();
    }
    if (ok) shifted.push({ start: s, shift });
  }
  return exact.length > 0 ? exact : shifted;
}

/** The longest prefix of `search` found anywhere, to tell the model exactly where its text diverges. */
function closestMiss(file: string, lines: string[], search: string[]): string {
  let best = { at: -1, len: 0 };
  for (let s = 0; s < lines.length; s++) {
    let k = 0;
    while (k < search.length && s + k < lines.length && lines[s + k]!.trim() === search[k]!.trim()) k++;
    if (k > best.len) best = { at: s, len: k };
  }
  if (best.len === 0)
    return `its first line '${clip(search.find((l) => !blank(l)) ?? '')}' appears nowhere in ${file}`;
  const found = lines[best.at + best.len];
  return (
    `its first ${best.len} line(s) match ${file}:${best.at + 1}, but search line ${best.len + 1} ` +
    `'${clip(search[best.len] ?? '')}' differs from the file's '${clip(found ?? '<end of file>')}'`
  );
}

const clip = (s: string): string => {
  const t = s.trim();
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
};

/** Which block (if any) contains the whole line range [from, to) strictly inside its markers (from === to: an insertion). */
function enclosingBlock(blocks: EvolveBlock[], from: number, to: number): EvolveBlock | undefined {
  return blocks.find((b) => from > b.startLine && to <= b.endLine && from <= b.endLine);
}

const same = (a: string, b: string): boolean => a.trimEnd() === b.trimEnd();

/** Applies a parsed patch to a candidate; every block must land inside an EVOLVE-BLOCK. */
export function applySearchReplace(files: CandidateFiles, blocks: SearchReplaceBlock[]): PatchResult {
  const current: Record<string, string[]> = {};
  for (const path of sortedPaths(files)) current[path] = splitLines(files[path]!);
  const changed: { file: string; line: number }[] = [];
  for (const [bi, block] of blocks.entries()) {
    const n = `block ${bi + 1}`;
    const search = trimBlankEdges(block.search);
    if (search.length === 0) {
      return {
        ok: false,
        kind: 'malformed',
        reason: `${n}: the SEARCH text is empty; copy the exact lines to replace from the current file`,
      };
    }
    let targets: string[];
    if (block.file !== undefined) {
      if (!(block.file in current)) {
        return {
          ok: false,
          kind: 'no-match',
          reason: `${n}: no file '${block.file}' in the candidate (files: ${Object.keys(current).join(', ')})`,
        };
      }
      targets = [block.file];
    } else targets = Object.keys(current);
    const hits = targets.flatMap((file) => findMatches(current[file]!, search).map((m) => ({ file, ...m })));
    if (hits.length === 0) {
      const where = block.file ?? (targets.length === 1 ? targets[0]! : 'any file');
      const why =
        block.file !== undefined || targets.length === 1
          ? closestMiss(targets[0]!, current[targets[0]!]!, search)
          : targets.map((f) => closestMiss(f, current[f]!, search)).join('; ');
      return {
        ok: false,
        kind: 'no-match',
        reason: `${n}: the SEARCH text was not found in ${where}: ${why}`,
      };
    }
    if (hits.length > 1) {
      const at = hits.map((h) => `${h.file}:${h.start + 1}`).join(', ');
      return {
        ok: false,
        kind: 'ambiguous',
        reason: `${n}: the SEARCH text matches ${hits.length} places (${at}); include more surrounding lines so it matches exactly one`,
      };
    }
    const hit = hits[0]!;
    const lines = current[hit.file]!;
    const replacement = trimBlankEdges(block.replace).map(hit.shift);
    // Only the lines that really change must lie inside a block: models often quote a marker line as context.
    const original = lines.slice(hit.start, hit.start + search.length);
    let head = 0;
    while (head < original.length && head < replacement.length && same(original[head]!, replacement[head]!))
      head++;
    let tail = 0;
    while (
      tail < original.length - head &&
      tail < replacement.length - head &&
      same(original[original.length - 1 - tail]!, replacement[replacement.length - 1 - tail]!)
    ) {
      tail++;
    }
    const from = hit.start + head;
    const to = hit.start + search.length - tail;
    const inserted = replacement.slice(head, replacement.length - tail);
    if (inserted.some((l) => l.includes(BLOCK_START) || l.includes(BLOCK_END))) {
      return {
        ok: false,
        kind: 'outside-block',
        reason: `${n}: the replacement adds or moves an EVOLVE-BLOCK marker; markers cannot be edited`,
      };
    }
    if (from === to && inserted.length === 0) {
      return {
        ok: false,
        kind: 'unchanged',
        reason: `${n}: the REPLACE text is identical to the SEARCH text, so it changes nothing`,
      };
    }
    const fileBlocks = findBlocks(hit.file, joinLines(lines));
    if (!enclosingBlock(fileBlocks, from, to)) {
      const regions = fileBlocks.map((b) => `${b.startLine + 2}-${b.endLine}`).join(', ') || 'none';
      return {
        ok: false,
        kind: 'outside-block',
        reason:
          `${n}: it changes ${hit.file}:${from + 1}-${Math.max(to, from + 1)}, outside every EVOLVE-BLOCK; ` +
          `only lines between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END may change (${hit.file} editable lines: ${regions})`,
      };
    }
    current[hit.file] = [...lines.slice(0, from), ...inserted, ...lines.slice(to)];
    changed.push({ file: hit.file, line: from + 1 });
  }
  const out: CandidateFiles = {};
  for (const path of sortedPaths(files)) {
    out[path] = changed.some((c) => c.file === path) ? joinLines(current[path]!) : files[path]!;
  }
  return { ok: true, files: out, changed };
}

function trimBlankEdges(lines: string[]): string[] {
  let a = 0;
  let b = lines.length;
  while (a < b && blank(lines[a]!)) a++;
  while (b > a && blank(lines[b - 1]!)) b--;
  return lines.slice(a, b);
}
