import { copyFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCandidate } from '../src/eval/sources.js';
import { UserError } from '../src/util/errors.js';

/**
 * The harness reads a candidate's kernels itself, outside every sandbox: a kernel file of hundreds
 * of megabytes (sparse: it costs no disk) must be refused by its size, not read whole into the
 * harness's memory (before: 1.1 GB resident for a 600 MB file, then an internal error, no verdict).
 */
const scratch = mkdtempSync(join(tmpdir(), 'adrs-eval-sources-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('hostile: candidate files the harness reads', () => {
  it('a huge (sparse) kernel file is refused by its size with a one-line error', () => {
    const dir = join(scratch, 'big-kernel');
    mkdirSync(join(dir, 'kernels'), { recursive: true });
    copyFileSync('test/fixtures/candidates/valid-naive/balancer.ts', join(dir, 'balancer.ts'));
    writeFileSync(join(dir, 'kernels', 'a.wgsl'), '@compute @workgroup_size(1) fn main() {}\n');
    const big = join(dir, 'kernels', 'big.wgsl');
    writeFileSync(big, '');
    truncateSync(big, 600 << 20);
    const open = () => openCandidate(dir);
    expect(open).toThrow(UserError);
    expect(open).toThrow(/kernels exceed 1048576 bytes \(at kernels\/big\.wgsl\)/);
  });

  it('kernels within the cap are read', () => {
    const dir = join(scratch, 'small');
    mkdirSync(join(dir, 'kernels'), { recursive: true });
    copyFileSync('test/fixtures/candidates/valid-naive/balancer.ts', join(dir, 'balancer.ts'));
    writeFileSync(join(dir, 'kernels', 'a.wgsl'), 'x');
    expect(openCandidate(dir).kernels).toEqual({ 'a.wgsl': 'x' });
  });
});
