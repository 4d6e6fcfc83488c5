import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawSeries } from '../src/eval/series.js';
import { buildRunReport } from '../src/evolve/report.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { runSession } from '../src/evolve/session.js';
import { traceChecksum } from '../src/evolve/trace-checksum.js';
import { buildRunPageData } from '../src/report/run-page-data.js';
import { loadTrace } from '../src/trace/load.js';
import { FakeOpenAiServer, type FakeRequest } from './helpers/fake-openai-server.js';

/**
 * End to end through the real sandboxed GPU evaluator pool (lavapipe here): a seed whose packing
 * fills GPUs in order is improved by a scripted model that restores least-loaded packing; a WGSL
 * edit that does not compile comes back invalid with its file:line:col, and the model sees it; the
 * gain is confirmed by interleaved re-measurement before the improved program becomes the best.
 */
const LPT = '        if (gpuFill[g]! < S && (best < 0 || gpuLoad[g]! < gpuLoad[best]!)) best = g;';
const FILL_IN_ORDER = '        if (gpuFill[g]! < S && best < 0) best = g;';

let server: FakeOpenAiServer;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'adrs-evolve-gpu-'));
  cpSync('examples/eplb', join(dir, 'seed'), { recursive: true, filter: (src) => !src.endsWith('.yaml') });
  const ts = readFileSync(join(dir, 'seed', 'balancer.ts'), 'utf8');
  expect(ts).toContain(LPT);
  writeFileSync(join(dir, 'seed', 'balancer.ts'), ts.replace(LPT, FILL_IN_ORDER));
  server = await FakeOpenAiServer.start((q: FakeRequest) => {
    const user = q.messages[1]!.content;
    const current = user.slice(
      user.indexOf('# Current program'),
      user.indexOf('# Best programs') >>> 0 || undefined,
    );
    if (q.index === 0) {
      return {
        text: '<<<<<<< SEARCH kernels/replicate.wgsl\n  let l = wg.x;\n=======\n  let l = wg.x +;\n>>>>>>> REPLACE',
      };
    }
    if (current.includes(FILL_IN_ORDER.trim())) {
      return {
        text: `Pack onto the least-loaded GPU.\n<<<<<<< SEARCH balancer.ts\n${FILL_IN_ORDER}\n=======\n${LPT}\n>>>>>>> REPLACE`,
      };
    }
    return {
      text: `<<<<<<< SEARCH balancer.ts\n${LPT}\n=======\n${LPT}  \n// same code, new comment\n>>>>>>> REPLACE`,
    };
  });
});
afterAll(async () => {
  await server?.close();
});

describe('adrs evolve through the sandboxed GPU evaluator', () => {
  it('improves a weak seed, feeds compile errors back, and re-scores on the held-out trace', async () => {
    const config = {
      problem: 'Balance the experts.',
      candidate: 'seed',
      seed: 3,
      iterations: 3,
      llm: { base_url: server.baseUrl, models: ['scripted'], retry_base_s: 0.01 },
      search: {
        islands: 1,
        parallel: 1,
        mutations: { diff: 1, rewrite: 0, crossover: 0 },
        exploration: 0,
        exploitation: 1,
      },
      evaluator: {
        workers: 1,
        timeout_s: 60,
        objective: 'adrs',
        trace: 'synthetic-v4-windows',
        // Exercises the held-out path; a real config names another workload.
        heldout_trace: 'synthetic-v4-windows',
        windows: 2,
        repeats: 2,
      },
      selection: { rounds: 2, z: 2 },
    };
    writeFileSync(join(dir, 'evolve.json'), JSON.stringify(config));
    const r = await runSession({ configPath: join(dir, 'evolve.json'), out: join(dir, 'run') });
    const events = readFileSync(join(r.dir, 'events.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const commits = events.filter((e: { type: string }) => e.type === 'commit');
    expect(commits.map((e: { outcome: string }) => e.outcome)).toEqual([
      'seed',
      'invalid',
      'valid',
      'refused',
    ]);
    // A comment-only edit of the best program is the same program: refused without an evaluation.
    expect(commits[3].reason).toMatch(/unchanged \(same code after normalisation\)/);
    expect(events.filter((e: { type: string }) => e.type === 'evaluation')).toHaveLength(3);
    const invalid = events.find(
      (e: { type: string; iteration: number }) => e.type === 'evaluation' && e.iteration === 1,
    );
    expect(JSON.stringify(invalid.result.artifacts)).toMatch(/replicate\.wgsl:\d+:\d+/);
    // The next prompt reports the failed attempt with its reason.
    expect(server.requests[1]!.messages[1]!.content).toMatch(
      /iteration 1: diff of p0 → invalid.*replicate\.wgsl:\d+:\d+/,
    );
    expect(r.best.id).toBe('p2');
    // p2 beat the seed's score, so both were re-measured, interleaved, before p2 became the best.
    const comparison = events.find((e: { type: string }) => e.type === 'comparison');
    expect(comparison).toMatchObject({ iteration: 2, incumbent: { id: 'p0' }, decision: 'promote' });
    expect(comparison.challenger_scores).toHaveLength(2);
    expect(comparison.mean_challenger - comparison.mean_incumbent).toBeGreaterThan(
      2 * comparison.standard_error,
    );
    // Prompts carry the real candidate API, the scoring rule and hints for the evaluator's adapter.
    const prompt = server.requests[0]!.messages[1]!.content;
    expect(prompt).toContain(readFileSync('src/eval/candidate-api.ts', 'utf8').trim());
    expect(prompt).toContain('Time t = the MEAN over all timed calls');
    expect(prompt).toContain(`The evaluator's GPU adapter is `);
    expect(prompt).toMatch(/- candidate_ms: time spent inside your calls/);
    expect(r.best.metrics.balancedness_next!).toBeGreaterThan(r.seed.metrics.balancedness_next! + 0.01);
    expect(r.best.score!).toBeGreaterThan(r.seed.score!);
    expect(r.heldout!.best.valid).toBe(true);
    expect(readFileSync(join(r.dir, 'best', 'candidate', 'balancer.ts'), 'utf8')).toContain(LPT);
    // Training ran on a series drawn like the named one with a secret seed, kept in the run
    // folder's config.json (so resume and replay draw it again); held-out on the named trace.
    const recorded = JSON.parse(readFileSync(join(r.dir, 'config.json'), 'utf8'));
    expect(Number.isInteger(recorded.evaluator.series_seed)).toBe(true);
    // The reproducer pins the scored data: manifest and loads of each trace.
    const repro = JSON.parse(readFileSync(join(r.dir, 'best', 'reproducer.json'), 'utf8'));
    expect(repro.traces.train).toEqual({
      name: 'synthetic-v4-windows-secret',
      sha256: traceChecksum(drawSeries('synthetic-v4-windows', recorded.evaluator.series_seed, 3)),
    });
    expect(repro.traces.heldout.sha256).toBe(traceChecksum(loadTrace('synthetic-v4-windows')));
    // Every valid evaluation records one scored placement's GPU loads for the report (not for the
    // model: no prompt carries it), and the report draws the best's against the seed's.
    for (const req of server.requests)
      for (const m of req.messages) expect(m.content).not.toContain('gpu-loads/1');
    const files = readRunFiles(r.dir);
    const page = buildRunPageData(files, buildRunReport(files));
    expect(page.placement).not.toBeNull();
    expect(page.placement!.layers).toHaveLength(loadTrace('synthetic-v4-windows').manifest.layers);
    for (const row of page.placement!.layers) {
      expect(row.best).toHaveLength(32);
      expect(row.best.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(page.placement!.layers.map((l) => l.bestBalancedness))).toBeGreaterThan(
      mean(page.placement!.layers.map((l) => l.seedBalancedness)),
    );
  }, 240_000); // a whole evolution run on lavapipe (about 30 s on an idle 2-core machine; minutes when loaded)
});
