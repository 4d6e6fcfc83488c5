import { describe, expect, it } from 'vitest';
import { allBlocks, programHash } from '../src/evolve/candidate.js';
import { applyModelEdit } from '../src/evolve/edit.js';
import { applyRewriteText } from '../src/evolve/rewrite.js';

/** The controller's entry point for a model's answer to a diff mutation. */
const applyDiff = (f: Record<string, string>, text: string) => applyModelEdit(f, text, 'diff');

const TS = `import type { X } from './x.js';
// EVOLVE-BLOCK-START
function pick(a: number[]): number {
  let best = 0;
  for (const v of a) {
    if (v > best) best = v;
  }
  return best;
}
// EVOLVE-BLOCK-END
export default pick;
`;
const WGSL = `// EVOLVE-BLOCK-START
const K: u32 = 4u;
// EVOLVE-BLOCK-END
@compute @workgroup_size(64) fn main() {}
`;
const files = { 'balancer.ts': TS, 'kernels/k.wgsl': WGSL };

const patch = (file: string, search: string, replace: string): string =>
  `<<<<<<< SEARCH ${file}\n${search}\n=======\n${replace}\n>>>>>>> REPLACE`;

describe('SEARCH/REPLACE patches', () => {
  it('applies a block addressed to a file', () => {
    const r = applyDiff(files, patch('balancer.ts', '  let best = 0;', '  let best = -Infinity;'));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.files['balancer.ts']).toContain('let best = -Infinity;');
      expect(r.files['kernels/k.wgsl']).toBe(WGSL);
      expect(r.changed).toEqual([{ file: 'balancer.ts', line: 4 }]);
    }
  });

  it('finds the file when the name is omitted and the text occurs in exactly one file', () => {
    const r = applyDiff(files, patch('', 'const K: u32 = 4u;', 'const K: u32 = 8u;'));
    expect(r.ok && r.files['kernels/k.wgsl']).toContain('8u');
  });

  it('tolerates fences, CRLF, trailing spaces after markers and a uniform indentation shift', () => {
    const text = [
      'Here is my change:',
      '```typescript',
      '<<<<<<< SEARCH balancer.ts   ',
      'for (const v of a) {',
      '  if (v > best) best = v;',
      '}',
      '=======   ',
      'for (const v of a) best = Math.max(best, v);',
      '>>>>>>> REPLACE  ',
      '```',
    ].join('\r\n');
    const r = applyDiff(files, text);
    expect(r.ok).toBe(true);
    if (r.ok)
      expect(r.files['balancer.ts']).toContain(
        '\n  for (const v of a) best = Math.max(best, v);\n  return best;',
      );
  });

  it('applies several blocks across files, all or nothing', () => {
    const two = `${patch('balancer.ts', '  return best;', '  return best * 2;')}\n${patch('kernels/k.wgsl', 'const K: u32 = 4u;', 'const K: u32 = 2u;')}`;
    const r = applyDiff(files, two);
    expect(r.ok).toBe(true);
    const bad = `${patch('balancer.ts', '  return best;', '  return best * 2;')}\n${patch('kernels/k.wgsl', 'const Q: u32 = 4u;', 'x')}`;
    const r2 = applyDiff(files, bad);
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.reason).toMatch(/^block 2: the SEARCH text was not found in kernels\/k.wgsl/);
  });

  it('refuses malformed responses with the reason', () => {
    const cases: [string, RegExp][] = [
      ['I think the code is fine.', /no '<<<<<<< SEARCH/],
      [
        '<<<<<<< SEARCH balancer.ts\n  let best = 0;\n>>>>>>> REPLACE',
        /block 1: '>>>>>>> REPLACE' at line 3 before the '=======' divider/,
      ],
      [
        '<<<<<<< SEARCH balancer.ts\n  let best = 0;\n=======\n  let best = 1;\n',
        /block 1: no '>>>>>>> REPLACE' marker/,
      ],
      ['=======\nfoo\n>>>>>>> REPLACE', /without a preceding '<<<<<<< SEARCH'/],
      [patch('balancer.ts', '', 'x'), /SEARCH text is empty/],
      [
        patch('nope.ts', 'a', 'b'),
        /no file 'nope.ts' in the candidate \(files: balancer.ts, kernels\/k.wgsl\)/,
      ],
    ];
    for (const [text, reason] of cases) {
      const r = applyDiff(files, text);
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  it('refuses ambiguous search text (twice, or nowhere) and says where', () => {
    const doubled = {
      ...files,
      'balancer.ts': TS.replace('  return best;', '  best += 1;\n  best += 1;\n  return best;'),
    };
    const twice = applyDiff(doubled, patch('balancer.ts', 'best += 1;', 'best += 2;'));
    expect(twice).toEqual({
      ok: false,
      kind: 'ambiguous',
      reason: expect.stringMatching(/matches 2 places \(balancer.ts:8, balancer.ts:9\); include more/),
    });
    const nowhere = applyDiff(files, patch('balancer.ts', '  let best = 0;\n  for (const w of a) {', 'x'));
    expect(nowhere.ok).toBe(false);
    if (!nowhere.ok) {
      expect(nowhere.reason).toMatch(
        /first 1 line\(s\) match balancer.ts:4, but search line 2 'for \(const w of a\) \{' differs/,
      );
    }
  });

  it('refuses edits outside EVOLVE-BLOCKs and to the markers themselves', () => {
    const outside = applyDiff(
      files,
      patch('balancer.ts', 'export default pick;', 'export default () => 1e9;'),
    );
    expect(outside.ok).toBe(false);
    if (!outside.ok)
      expect(outside.reason).toMatch(
        /changes balancer.ts:11-11, outside every EVOLVE-BLOCK.*editable lines: 3-9/,
      );
    const marker = applyDiff(
      files,
      patch('balancer.ts', '// EVOLVE-BLOCK-END\nexport default pick;', 'export default pick;'),
    );
    expect(marker.ok).toBe(false);
    const header = applyDiff(
      files,
      patch(
        'kernels/k.wgsl',
        '@compute @workgroup_size(64) fn main() {}',
        '@compute @workgroup_size(1) fn main() {}',
      ),
    );
    expect(header.ok).toBe(false);
  });

  it('accepts quoted marker lines as unchanged context', () => {
    const r = applyDiff(
      files,
      patch(
        'kernels/k.wgsl',
        '// EVOLVE-BLOCK-START\nconst K: u32 = 4u;',
        '// EVOLVE-BLOCK-START\nconst K: u32 = 16u;',
      ),
    );
    expect(r.ok && r.files['kernels/k.wgsl']).toContain('16u');
  });
});

describe('EVOLVE-BLOCK rewrites', () => {
  it('replaces a block body and keeps everything outside byte for byte', () => {
    const r = applyRewriteText(
      files,
      '```\n<<<<<<< BLOCK balancer.ts#1\nfunction pick(a: number[]): number {\n  return Math.max(...a);\n}\n>>>>>>> END\n```',
    );
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.files['balancer.ts']).toBe(
        "import type { X } from './x.js';\n// EVOLVE-BLOCK-START\nfunction pick(a: number[]): number {\n  return Math.max(...a);\n}\n// EVOLVE-BLOCK-END\nexport default pick;\n",
      );
    }
  });

  it('refuses unknown blocks and bodies with markers', () => {
    const r = applyRewriteText(files, '<<<<<<< BLOCK balancer.ts#2\nx\n>>>>>>> END');
    expect(r).toEqual({
      ok: false,
      kind: 'no-match',
      reason: 'there is no EVOLVE-BLOCK balancer.ts#2; the blocks are balancer.ts#1, kernels/k.wgsl#1',
    });
    const m = applyRewriteText(
      files,
      '<<<<<<< BLOCK kernels/k.wgsl#1\n// EVOLVE-BLOCK-END\nfn evil() {}\n>>>>>>> END',
    );
    expect(m.ok).toBe(false);
  });
});

describe("a model's answer in either format", () => {
  const diff = patch('kernels/k.wgsl', 'const K: u32 = 4u;', 'const K: u32 = 8u;');
  const rewrite = '<<<<<<< BLOCK kernels/k.wgsl#1\nconst K: u32 = 2u;\n>>>>>>> END';

  it('accepts a rewrite where a diff was asked, and a diff where a rewrite was asked', () => {
    const r = applyModelEdit(files, rewrite, 'diff');
    expect(r.ok && r.files['kernels/k.wgsl']).toContain('2u');
    const d = applyModelEdit(files, diff, 'rewrite');
    expect(d.ok && d.files['kernels/k.wgsl']).toContain('8u');
  });

  it('lets the mutation asked for decide when an answer holds both formats', () => {
    const both = `${diff}\n${rewrite}`;
    const asRewrite = applyModelEdit(files, both, 'rewrite');
    expect(asRewrite.ok && asRewrite.files['kernels/k.wgsl']).toContain('2u');
    const asDiff = applyModelEdit(files, both, 'crossover');
    expect(asDiff.ok && asDiff.files['kernels/k.wgsl']).toContain('8u');
  });

  it('names the format that was asked for when neither is found', () => {
    expect(applyModelEdit(files, 'No change.', 'rewrite')).toEqual({
      ok: false,
      kind: 'malformed',
      reason: "no '<<<<<<< BLOCK file#n … >>>>>>> END' rewrite found in the response",
    });
    const d = applyModelEdit(files, 'No change.', 'diff');
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.reason).toMatch(/no '<<<<<<< SEARCH/);
  });
});

describe('program identity', () => {
  it('ignores formatting and comment-only differences, not code', () => {
    const reformatted = { ...files, 'balancer.ts': `${TS.replace(/\n/g, '  \r\n')}\n\n// a note\n` };
    expect(programHash(reformatted)).toBe(programHash(files));
    expect(programHash({ ...files, 'balancer.ts': TS.replace('0;', '1;') })).not.toBe(programHash(files));
  });

  it('lists the blocks of every file', () => {
    expect(allBlocks(files).map((b) => `${b.file}#${b.index}`)).toEqual([
      'balancer.ts#1',
      'kernels/k.wgsl#1',
    ]);
  });
});
