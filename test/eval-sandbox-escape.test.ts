import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvalResult, EvaluatorPool } from '../src/eval/index.js';
import { loadTrace } from '../src/trace/load.js';

/**
 * Issue 8's "escape or damage" mechanisms (5-10) as candidates, through the whole pipeline
 * (transpile, worker, cascade): each is refused or gains nothing, leaves nothing behind, and the
 * pool stays healthy. The variants are derived from two fixtures: escape-routes (one body, one
 * route per variant) and esbuild-bomb (one valid balancer, one hostile expression per variant).
 * Layers below the bundler (what still holds when a route gets past it) are tested in
 * eval-sandbox-layers.test.ts.
 */
const FIXTURES = 'test/fixtures/candidates';
const TIMEOUT_S = 8;
// The series these routes were written against; quality is not what is tested here.
const trace = loadTrace('synthetic-v3-windows');
// A fixed relabelling seed: the routes' naive placement swings with the relabelling (see harness test).
const opts = { trace, objective: 'default' as const, windows: 1, repeats: 2, seed: '5eed5eed5eed' };
const MARK = `/tmp/adrs-escape-routes-${process.pid}.mark`;
const routesSource = readFileSync(join(FIXTURES, 'escape-routes/balancer.ts'), 'utf8');
const bombSource = readFileSync(join(FIXTURES, 'esbuild-bomb/balancer.ts'), 'utf8');

let pool: EvaluatorPool;
let listener: Server;
let port = 0;
/** Connections the harness's listener received (from a candidate that reached the network). */
let connections = 0;

beforeAll(async () => {
  rmSync(MARK, { force: true });
  listener = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
  port = (listener.address() as { port: number }).port;
  pool = await EvaluatorPool.create({ workers: 2, timeoutS: TIMEOUT_S, memoryMb: 1024 });
}, 60_000);
afterAll(async () => {
  await pool?.close();
  listener?.close();
  rmSync(MARK, { force: true });
});

/** The escape-routes fixture with one route, its import (or none) and this test's port and marker. */
function route(name: string, importSpec: string | null): string {
  const lines = routesSource.split('\n').map((line) => {
    if (line.endsWith('// ROUTE-IMPORT'))
      return importSpec ? `import * as mod from '${importSpec}';` : 'const mod = {};';
    if (line.endsWith('// ROUTE-NAME')) return `const ROUTE: string = '${name}';`;
    if (line.endsWith('// ROUTE-PORT')) return `const PORT = ${port};`;
    if (line.endsWith('// ROUTE-MARK')) return `const MARK = '${MARK}';`;
    return line;
  });
  return lines.join('\n');
}

const evaluate = (source: string): Promise<EvalResult> =>
  pool.evaluate({ files: { 'balancer.ts': source } }, opts);

describe('escape routes (issue 8, mechanisms 5-9)', () => {
  it('5: the underscore network modules are refused at transpile time, and nothing connects', async () => {
    for (const spec of ['node:_http_client', '_http_agent', 'node:_tls_wrap', 'node:_http_server']) {
      const r = await evaluate(route('http-client', spec));
      expect(r.valid).toBe(false);
      expect(r.artifacts.transpile).toMatch(
        /^balancer\.ts:7:\d+: '.*_(http|tls)_\w+' is not available to candidates/,
      );
    }
    expect(connections).toBe(0);
  });

  it('5: process.stdout is no socket class: no TCP without imports (the fixture is valid, nothing connects)', async () => {
    const r = await evaluate(route('stdout-socket', null));
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
    expect(connections).toBe(0);
  });

  it('6: no Unix socket appears in /tmp (the server modules are refused; /tmp is private anyway)', async () => {
    const r = await evaluate(route('unix-socket', 'node:_http_server'));
    expect(r.valid).toBe(false);
    expect(r.artifacts.transpile).toMatch(/'node:_http_server' is not available to candidates/);
    expect(existsSync(MARK)).toBe(false);
  });

  it('7: nothing reaches the harness channel (no fs; no stream class on process.stdout); the harness carries on', async () => {
    const withFs = await evaluate(route('channel-garbage', 'node:fs'));
    expect(withFs.valid).toBe(false);
    expect(withFs.artifacts.transpile).toMatch(
      /^balancer\.ts:7:\d+: 'node:fs' is not available to candidates/,
    );
    const r = await evaluate(route('channel-garbage', null));
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('8: process.nextTick is locked and carries nothing of the channel; no code can be forged in', async () => {
    const r = await evaluate(route('forge-load', null));
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });

  it('9: no file system for candidates (fs writes to any descriptor), at transpile time', async () => {
    const r = await evaluate(route('fd-write', 'node:fs'));
    expect(r.valid).toBe(false);
    expect(r.artifacts.transpile).toMatch(/^balancer\.ts:7:\d+: 'node:fs' is not available to candidates/);
  });

  it('built-ins are an allow-list: pure computation passes (node:util, node:zlib)', async () => {
    const source = route('stdout-socket', 'node:util').replace(
      "import * as mod from 'node:util';",
      "import * as mod from 'node:util';\nimport 'node:zlib';",
    );
    const r = await evaluate(source);
    expect(r.artifacts).toEqual({});
    expect(r.valid).toBe(true);
  });
});

describe('esbuild on hostile input (issue 8, mechanism 10)', () => {
  const bomb = (expression: string): string => bombSource.replace('0; /* BOMB */', `${expression};`);

  it('a 900 KB nesting bomb costs only its own candidate; the next ones in the pool are fine', async () => {
    const depth = 450_000;
    const [nested, after1, after2] = await Promise.all([
      evaluate(bomb(`${'['.repeat(depth)}${']'.repeat(depth)}`)),
      pool.evaluate(join(FIXTURES, 'valid-naive'), opts),
      evaluate(bombSource),
    ]);
    expect(nested.valid).toBe(false);
    // esbuild's parser dies of its stack limit, or the process is stopped at the candidate's memory
    // cap or time limit first (whichever comes first on a loaded machine).
    expect(nested.artifacts.transpile ?? nested.artifacts.resource ?? nested.artifacts.timeout).toMatch(
      /esbuild stopped on this candidate|over the candidate's cap|exceeded the candidate's \d+ s limit/,
    );
    expect(after1.artifacts).toEqual({});
    expect(after2.artifacts).toEqual({});
    expect(after1.valid && after2.valid).toBe(true);
    const later = await pool.evaluate(join(FIXTURES, 'valid-naive'), opts);
    expect(later.valid).toBe(true);
  });

  it('quadratic constant folding is stopped at the candidate’s time or memory bound; the next candidate is fine', async () => {
    const pieces = Array.from({ length: 40_000 }, () => '"abcdefgh"').join('+');
    const folded = await evaluate(bomb(pieces));
    expect(folded.valid).toBe(false);
    // Whichever of the candidate's bounds it reaches first: its time limit or its memory cap.
    expect(folded.artifacts.timeout ?? folded.artifacts.resource).toMatch(
      new RegExp(
        `^(timeout: transpiling balancer\\.ts exceeded the candidate's ${TIMEOUT_S} s limit|transpiling balancer\\.ts used \\d+ MiB, over the candidate's cap of 1024 MiB)`,
      ),
    );
    const next = await pool.evaluate(join(FIXTURES, 'valid-naive'), opts);
    expect(next.valid).toBe(true);
  });
});
