import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { UserError } from '../util/errors.js';

/** A candidate given by the caller: a folder on disk, or its files in memory (path → text). */
export type CandidateInput = string | { files: Record<string, string> };

/** A candidate's folder on disk, ready to transpile; `dispose` removes a private copy. */
export interface CandidateFolder {
  dir: string;
  /** kernels/*.wgsl by file name. */
  kernels: Record<string, string>;
  dispose(): void;
}

/** Sources beyond this are refused: a balancer is a page of code, not a data smuggling channel. */
const MAX_SOURCE_BYTES = 1 << 20;

/**
 * Resolves a candidate to a folder. A folder that does not exist or has no balancer.ts is a
 * UserError (the evaluation cannot run); in-memory files are written to a private temporary folder
 * so that concurrent evolution never races on disk.
 */
export function openCandidate(input: CandidateInput): CandidateFolder {
  if (typeof input === 'string') {
    const dir = resolve(input);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new UserError(
        `candidate folder '${input}' not found; give a folder holding balancer.ts and kernels/*.wgsl`,
      );
    }
    if (!existsSync(join(dir, 'balancer.ts'))) {
      throw new UserError(
        `'${input}' has no balancer.ts; a candidate folder holds balancer.ts and kernels/*.wgsl`,
      );
    }
    checkCandidateFolder(dir, input);
    return { dir, kernels: readKernels(dir), dispose: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'adrs-candidate-'));
  try {
    for (const [name, text] of Object.entries(input.files)) {
      const rel = normalize(name);
      if (isAbsolute(rel) || rel.startsWith('..'))
        throw new UserError(`candidate file name '${name}' must be relative to the candidate folder`);
      const path = join(dir, rel);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    }
    checkCandidateFolder(dir, 'the candidate');
    return { dir, kernels: readKernels(dir), dispose: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * What the evaluator reads from a candidate folder must be the candidate's own: balancer.ts a
 * regular file within the size cap, kernels/ a real folder of regular files. A symlink could
 * otherwise smuggle a trace (the windows it is scored on) into the candidate's sources.
 * (transpile.ts checks every file esbuild loads by its real path as well.)
 */
export function checkCandidateFolder(dir: string, name: string): void {
  const balancer = lstatSync(join(dir, 'balancer.ts'));
  if (!balancer.isFile()) {
    throw new UserError(
      `${name}: balancer.ts is ${balancer.isSymbolicLink() ? 'a symlink' : 'not a regular file'}; candidates consist of their own files only`,
    );
  }
  if (balancer.size > MAX_SOURCE_BYTES) {
    throw new UserError(
      `${name}: balancer.ts has ${balancer.size} bytes, over the cap of ${MAX_SOURCE_BYTES}`,
    );
  }
  const kdir = join(dir, 'kernels');
  if (!existsSync(kdir) && !isLink(kdir)) return;
  if (!lstatSync(kdir).isDirectory()) {
    throw new UserError(
      `${name}: kernels is not a folder (a symlink?); candidates consist of their own files only`,
    );
  }
  for (const file of readdirSync(kdir)) {
    if (!file.endsWith('.wgsl')) continue;
    if (!lstatSync(join(kdir, file)).isFile()) {
      throw new UserError(
        `${name}: kernels/${file} is not a regular file (a symlink?); candidates consist of their own files only`,
      );
    }
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function readKernels(dir: string): Record<string, string> {
  const kernels: Record<string, string> = {};
  const kdir = join(dir, 'kernels');
  if (!existsSync(kdir)) return kernels;
  let bytes = 0;
  for (const file of readdirSync(kdir).sort()) {
    if (!file.endsWith('.wgsl')) continue;
    // Sized before it is read: this runs in the harness, outside every sandbox, and a (sparse)
    // file of gigabytes would otherwise be read whole into its memory.
    const path = join(kdir, file);
    bytes += statSync(path).size;
    if (bytes > MAX_SOURCE_BYTES)
      throw new UserError(`the candidate's kernels exceed ${MAX_SOURCE_BYTES} bytes (at kernels/${file})`);
    kernels[file] = readFileSync(path, 'utf8');
  }
  return kernels;
}
