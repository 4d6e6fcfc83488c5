import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceMetrics } from '../src/eplb/metrics.js';
import { deriveLog2phy } from '../src/eplb/placement.js';
import { buildRunReport } from '../src/evolve/report.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { scriptJson } from '../src/report/html-shell.js';
import { unifiedDiff } from '../src/report/line-diff.js';
import { runHtml } from '../src/report/run-html.js';
import { buildRunPageData } from '../src/report/run-page-data.js';
import { type Dashboard, serveRun } from '../src/report/serve.js';
import { climbingModel, makeToyProject } from './helpers/evolve-toy.js';
import { FakeOpenAiServer } from './helpers/fake-openai-server.js';
import { makeReportRun, type ReportRun } from './helpers/report-run.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'adrs.js');

let run: ReportRun;
beforeAll(async () => {
  run = await makeReportRun();
});
afterAll(() => rmSync(run.base, { recursive: true, force: true }));

const pageData = () => {
  const files = readRunFiles(run.dir);
  return buildRunPageData(files, buildRunReport(files));
};

describe('the HTML report of a run', () => {
  it('holds every chart’s data, taken from the run’s own events', () => {
    const d = pageData();
    const events = readFileSync(join(run.dir, 'events.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const commits = events.filter((e) => e.type === 'commit');
    expect(d.curve.iteration).toEqual(commits.map((e) => e.iteration));
    // The curve never falls and ends at the best score.
    const best = d.curve.best.filter((x): x is number => x !== null);
    expect(best).toEqual([...best].sort((a, b) => a - b));
    expect(best.at(-1)).toBe(Math.max(...commits.filter((e) => e.score !== null).map((e) => e.score)));
    // Held-out: recorded once, at the last iteration.
    const held = events.find((e) => e.type === 'heldout');
    expect(d.curve.heldout.at(-1)).toBe(held.best.score);
    // One point per evaluated program, the broken one among them as invalid (compile).
    const evaluated = commits.filter((e) => ['seed', 'valid', 'invalid'].includes(e.outcome));
    expect(d.evaluations).toHaveLength(evaluated.length);
    expect(d.evaluations.filter((p) => !p.valid).map((p) => p.failure)).toEqual(['compile']);
    // Islands: each grid cell is a program of checkpoint.json.
    const cp = JSON.parse(readFileSync(join(run.dir, 'checkpoint.json'), 'utf8'));
    expect(d.islands).toHaveLength(2);
    for (const g of d.islands)
      expect(g.cells.map((c) => c.id).sort()).toEqual(
        Object.values(cp.database.islands[g.island].grid).sort(),
      );
    // Lineage: ends at the best, each step's diff changes SPREAD or WIDTH.
    expect(d.lineage.at(-1)!.id).toBe(cp.database.best);
    expect(d.lineage[0]!.diff).toBe('');
    for (const s of d.lineage.slice(1)) expect(s.diff).toMatch(/^[-+](export const SPREAD|const WIDTH)/m);
    // Refusals by class: the malformed answer and the two edits outside the EVOLVE-BLOCK.
    expect(d.refusalsByClass).toEqual({ malformed: 1, 'outside-block': 2 });
  });

  it('computes the GPU loads of the recorded placements with the metrics module', () => {
    const d = pageData();
    expect(d.placement).not.toBeNull();
    const files = readRunFiles(run.dir);
    const report = buildRunReport(files);
    const rec = JSON.parse(files.program(report.best!.hash)!.result.artifacts.placement!);
    const p = deriveLog2phy(rec.shape, Int32Array.from(rec.phy2log), Int32Array.from(rec.logcnt));
    const m = balanceMetrics(p, Float32Array.from(rec.loads));
    for (const l of d.placement!.layers) {
      expect(l.best.reduce((a, b) => a + b, 0)).toBeCloseTo(
        rec.loads.slice(l.layer * 4, l.layer * 4 + 4).reduce((a: number, b: number) => a + b, 0),
        4,
      );
      // mean/max of the per-GPU loads is the metrics module's per-layer balancedness.
      const mean = l.best.reduce((a, b) => a + b, 0) / l.best.length;
      expect(mean / Math.max(...l.best)).toBeCloseTo(m.perLayerGpuBalancedness[l.layer]!, 6);
      expect(l.bestBalancedness).toBe(m.perLayerGpuBalancedness[l.layer]);
    }
    // The best spreads the hot expert over more GPUs than the seed (SPREAD 1).
    expect(d.placement!.layers[0]!.bestBalancedness).toBeGreaterThan(
      d.placement!.layers[0]!.seedBalancedness,
    );
  });

  it('is one self-contained file: no external script, style, image or font', () => {
    const html = runHtml(pageData());
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).not.toMatch(/url\(\s*['"]?https?:/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).toContain("default-src 'none'");
    expect(html).toContain('uPlot');
  });

  it('embeds data that cannot close its script element', () => {
    const json = scriptJson({ s: '</script><script>alert(1)</script><!--' });
    expect(json).not.toMatch(/<\/script|<!--/i);
    expect(JSON.parse(json)).toEqual({ s: '</script><script>alert(1)</script><!--' });
  });

  it('adrs report --html writes the page and prints the text report', () => {
    const out = join(run.base, 'report.html');
    const r = spawnSync(process.execPath, [BIN, 'report', run.dir, '--html', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('best vs seed');
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('"kind":"run"');
    expect(html).toContain(run.dir.replace(/\\/g, '\\\\'));
  });
});

describe('unifiedDiff', () => {
  it('shows changed lines with context and correct hunk ranges', () => {
    const a = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].join('\n');
    const b = ['a', 'b', 'c', 'D', 'e', 'f', 'g', 'h', 'i', 'j'].join('\n');
    expect(unifiedDiff(a, b, 1)).toBe(
      ['@@ -3,3 +3,3 @@', ' c', '-d', '+D', ' e', '@@ -9,1 +9,2 @@', ' i', '+j'].join('\n'),
    );
    expect(unifiedDiff(a, a)).toBe('');
  });
});

/** A raw request (no URL normalisation by a client library): method, path, Host header. */
function raw(url: string, path: string, o: { method?: string; host?: string } = {}) {
  const u = new URL(url);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: o.method ?? 'GET',
        headers: { host: o.host ?? u.host },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the live dashboard server', () => {
  let dash: Dashboard;
  beforeAll(async () => {
    dash = await serveRun(run.dir, { pollMs: 60_000 });
  });
  afterAll(() => dash.close());

  it('listens on loopback and serves the page and its data', async () => {
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await raw(dash.url, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('"live":true');
    const data = await raw(dash.url, '/data.json');
    expect(JSON.parse(data.body).kind).toBe('run');
  });

  it('serves nothing else: no file of the run folder, by any path', async () => {
    for (const path of [
      '/config.json',
      '/events.jsonl',
      '/../config.json',
      '/..%2fconfig.json',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/programs/',
      '//etc/passwd',
    ]) {
      const r = await raw(dash.url, path);
      expect(r.status, path).toBe(404);
      expect(r.body).not.toContain('llm');
    }
  });

  it('is read-only and refuses foreign Host headers (DNS rebinding)', async () => {
    expect((await raw(dash.url, '/', { method: 'POST' })).status).toBe(405);
    expect((await raw(dash.url, '/', { method: 'DELETE' })).status).toBe(405);
    expect((await raw(dash.url, '/data.json', { host: 'evil.example:80' })).status).toBe(403);
  });
});

/** Runs the CLI until `ready` matches its stderr, then SIGTERMs it; resolves with the match and the exit. */
function cliUntil(args: string[], ready: RegExp) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const matched = new Promise<RegExpExecArray>((resolve, reject) => {
    child.stderr.on('data', (c) => {
      err += c;
      const m = ready.exec(err);
      if (m) resolve(m);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code} before ${ready}: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, matched, exited, stderr: () => err };
}

describe('the dashboard from the CLI', () => {
  it('adrs report DIR --serve serves the run on loopback until SIGTERM', async () => {
    const cli = cliUntil(['report', run.dir, '--serve'], /at (http:\/\/127\.0\.0\.1:\d+\/)/);
    const [, url] = await cli.matched;
    const page = await raw(url!, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('"live":true');
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  });

  it('a bad --serve port is one line', () => {
    const r = spawnSync(process.execPath, [BIN, 'report', run.dir, '--serve', '70000'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('adrs: --serve takes a port between 0 and 65535, got 70000');
  });

  it('adrs evolve --serve starts the dashboard beside the run', async () => {
    // The model answers only once the test has read the dashboard, so the run is still going then.
    let release!: () => void;
    const looked = new Promise<void>((r) => {
      release = r;
    });
    const server = await FakeOpenAiServer.start(async (q) => {
      await looked;
      return climbingModel(q);
    });
    const p = makeToyProject(server.baseUrl, { search: { islands: 1, parallel: 1 } });
    const out = join(p.dir, 'run');
    try {
      const cli = cliUntil(
        ['evolve', '--config', p.configPath, '--out', out, '--iterations', '2', '--serve'],
        /dashboard of (.+) at (http:\/\/127\.0\.0\.1:\d+\/)/,
      );
      const [, dir, url] = await cli.matched;
      expect(dir).toBe(out);
      const data = await raw(url!, '/data.json');
      expect(JSON.parse(data.body).dir).toBe(out);
      release();
      expect(await cli.exited).toBe(0);
    } finally {
      release();
      await server.close();
      rmSync(p.dir, { recursive: true, force: true });
    }
  });
});
