import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** kernels/ at the package root: the same relative path from src/gpu and from dist/gpu. */
export const KERNELS_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

export function readKernel(file: string): string {
  const path = `${KERNELS_DIR}${file}`;
  if (!existsSync(path)) throw new Error(`kernel file not found: ${path}`);
  return readFileSync(path, 'utf8');
}
