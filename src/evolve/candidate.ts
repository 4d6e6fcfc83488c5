import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { UserError } from '../util/errors.js';

/** A candidate program: its files by path relative to the candidate folder (contract: balancer.ts + kernels/*.wgsl). */
export type CandidateFiles = Record<string, string>;

const TEXT_EXTENSIONS = ['.ts', '.wgsl', '.js', '.json', '.md'];

/** Reads every text source file under `dir` (recursively); paths use '/' whatever the platform. */
export function loadCandidateDir(dir: string): CandidateFiles {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(
      `candidate folder '${dir}' does not exist; point 'candidate' in the config at a folder holding balancer.ts`,
    );
  }
  if (!st.isDirectory()) throw new UserError(`candidate '${dir}' is not a folder`);
  const files: CandidateFiles = {};
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && TEXT_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) {
        files[relative(dir, path).split(sep).join('/')] = readFileSync(path, 'utf8');
      }
    }
  };
  walk(dir);
  if (Object.keys(files).length === 0) throw new UserError(`candidate folder '${dir}' holds no source files`);
  return files;
}

/** Files in a stable order (sorted by path) so hashes and prompts never depend on insertion order. */
export function sortedPaths(files: CandidateFiles): string[] {
  return Object.keys(files).sort();
}

/**
 * The code with formatting noise removed: CRLF, trailing spaces, blank lines and whole-line `//`
 * comments (both TypeScript and WGSL use them). Two programs that normalise alike behave alike, so
 * the second is never evaluated.
 */
export function normaliseSource(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('//'))
    .join('\n');
}

/** Content hash of the normalised program (file names included): the identity used for duplicate suppression. */
export function programHash(files: CandidateFiles): string {
  const h = createHash('sha256');
  for (const path of sortedPaths(files)) {
    h.update(path);
    h.update('\0');
    h.update(normaliseSource(files[path]!));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

export interface EvolveBlock {
  file: string;
  /** 1-based index among the blocks of this file, as shown in prompts (`balancer.ts#1`). */
  index: number;
  /** 0-based line numbers of the START and END marker lines; editable lines lie strictly between. */
  startLine: number;
  endLine: number;
}

export const BLOCK_START = 'EVOLVE-BLOCK-START';
export const BLOCK_END = 'EVOLVE-BLOCK-END';

/** The EVOLVE-BLOCK regions of one file; unbalanced or nested markers are an error in the candidate. */
export function findBlocks(file: string, text: string): EvolveBlock[] {
  const lines = splitLines(text);
  const blocks: EvolveBlock[] = [];
  let open = -1;
  lines.forEach((line, i) => {
    if (line.includes(BLOCK_START)) {
      if (open >= 0)
        throw new UserError(
          `${file}:${i + 1}: ${BLOCK_START} inside another EVOLVE-BLOCK (blocks cannot nest)`,
        );
      open = i;
    } else if (line.includes(BLOCK_END)) {
      if (open < 0) throw new UserError(`${file}:${i + 1}: ${BLOCK_END} without a matching ${BLOCK_START}`);
      blocks.push({ file, index: blocks.length + 1, startLine: open, endLine: i });
      open = -1;
    }
  });
  if (open >= 0) throw new UserError(`${file}:${open + 1}: ${BLOCK_START} is never closed by ${BLOCK_END}`);
  return blocks;
}

/** Every EVOLVE-BLOCK of the candidate, files in sorted order. */
export function allBlocks(files: CandidateFiles): EvolveBlock[] {
  return sortedPaths(files).flatMap((path) => findBlocks(path, files[path]!));
}

/** Lines of a text with CRLF tolerated; a final newline does not create an extra line. */
export function splitLines(text: string): string[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function joinLines(lines: readonly string[]): string {
  return `${lines.join('\n')}\n`;
}

/** The seed of a run: its files, refused when no EVOLVE-BLOCK marks anything it may change. */
export function loadSeed(dir: string): CandidateFiles {
  const files = loadCandidateDir(dir);
  if (allBlocks(files).length === 0) {
    throw new UserError(
      `the seed candidate '${dir}' has no EVOLVE-BLOCK-START/END markers, so nothing may evolve`,
    );
  }
  return files;
}
