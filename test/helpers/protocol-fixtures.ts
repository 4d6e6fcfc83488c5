import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The protocol-* hostile candidates share modules (the honest greedy placement, window matching, the
 * lite placement) kept once in test/fixtures/protocol-shared/ and imported from there as
 * '../../protocol-shared/NAME.js', which in-process imports and the typecheck resolve. The evaluator
 * bundles only a candidate's own folder, so before evaluating one, materialise it: its own files,
 * those imports pointed at './NAME.js', and each shared module it needs (and those they import).
 */
const CANDIDATES = 'test/fixtures/candidates';
const SHARED = 'test/fixtures/protocol-shared';
const SHARED_IMPORT = /'\.\.\/\.\.\/protocol-shared\/(\w+)\.js'/g;
const LOCAL_IMPORT = /from '\.\/(\w+)\.js'/g;

/** Writes candidate `name` (e.g. 'protocol-memory-successor') under `root`; returns its folder. */
export function materialiseProtocolFixture(root: string, name: string): string {
  const dir = join(root, name);
  cpSync(join(CANDIDATES, name), dir, { recursive: true });
  const needed: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    for (const m of text.matchAll(SHARED_IMPORT)) needed.push(m[1]!);
    writeFileSync(
      path,
      text.replace(SHARED_IMPORT, (_, mod: string) => `'./${mod}.js'`),
    );
  }
  const copied = new Set<string>();
  while (needed.length > 0) {
    const mod = needed.pop()!;
    if (copied.has(mod)) continue;
    copied.add(mod);
    const text = readFileSync(join(SHARED, `${mod}.ts`), 'utf8');
    for (const m of text.matchAll(LOCAL_IMPORT)) needed.push(m[1]!);
    writeFileSync(join(dir, `${mod}.ts`), text);
  }
  return dir;
}
