import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { servePort } from '../src/cli/options.js';
import { runAdrs } from './helpers/cli.js';
import { tempDirs } from './helpers/temp-dirs.js';

const tempDir = tempDirs('adrs-cli-report-');
const RUN = join(import.meta.dirname, 'fixtures', 'evolve-v1-run');

describe('adrs report', () => {
  it('says where it wrote --html on the injected stderr, the report on stdout', async () => {
    const html = join(tempDir(), 'run.html');
    const r = await runAdrs('report', RUN, '--html', html);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`wrote ${html}\n`);
    expect(r.stdout).toMatch(/\S/);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!doctype html>/i);
  });

  it('reads --serve as a port: none, any free one, or 0..65535', () => {
    expect([undefined, false, true, 0, 8080].map(servePort)).toEqual([null, null, 0, 0, 8080]);
    expect(() => servePort(65536)).toThrow('--serve takes a port between 0 and 65535, got 65536');
    expect(() => servePort('x' as never)).toThrow('got x');
  });
});
