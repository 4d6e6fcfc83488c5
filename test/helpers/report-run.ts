import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSession } from '../../src/evolve/session.js';
import { climbingModel, currentValues, makeToyProject } from './evolve-toy.js';
import { FakeOpenAiServer, type FakeReply, type FakeRequest } from './fake-openai-server.js';

/**
 * The toy evaluator of evolve-toy.ts, plus a recorded placement per valid program (artifact
 * `placement`: 2 layers × 4 experts on 8 slots of 4 GPUs, loads skewed toward expert 0), so the
 * report's GPU-load chart has something real to compute: SPREAD decides how many replicas the hot
 * expert gets, so better programs really balance better.
 */
const EVALUATOR_WITH_PLACEMENT = `
export function score(files) {
  const ts = files['balancer.ts'] ?? '';
  const wgsl = files['kernels/toy.wgsl'] ?? '';
  if (ts.includes('BROKEN')) {
    return { valid: false, stage: 1, score: null, metrics: {}, artifacts: { compile: 'balancer.ts:4:1 error: BROKEN is not defined' } };
  }
  const spread = Number(/SPREAD = (-?\\d+)/.exec(ts)?.[1] ?? NaN);
  const width = Number(/WIDTH: u32 = (\\d+)u/.exec(wgsl)?.[1] ?? NaN);
  if (!Number.isFinite(spread) || !Number.isFinite(width)) {
    return { valid: false, stage: 1, score: null, metrics: {}, artifacts: { validation: 'SPREAD or WIDTH missing' } };
  }
  const s = 100 - (spread - 5) ** 2 - (width - 3) ** 2;
  // Expert 0 gets 1 + min(4, |spread|) replicas; the others share the rest.
  const hot = 1 + Math.min(4, Math.abs(spread));
  const layer = [];
  for (let k = 0; k < hot; k++) layer.push(0);
  for (let e = 1; layer.length < 8; e = (e % 3) + 1) layer.push(e);
  const phy2log = [...layer, ...layer];
  const logcnt = [];
  for (let l = 0; l < 2; l++) for (let e = 0; e < 4; e++) logcnt.push(layer.filter((x) => x === e).length);
  const placement = {
    shape: { layers: 2, experts: 4, replicas: 8, groups: 1, nodes: 1, gpus: 4 },
    window: 3,
    loads: [40, 10, 10, 10, 30, 12, 9, 9],
    phy2log,
    logcnt,
  };
  return {
    valid: true, stage: 2, score: s,
    metrics: {
      balancedness_next: s / 100, balancedness_next_varied: s / 100 - 0.0004, balancedness_same: s / 100,
      median_ms: 0.1 * (1 + Math.abs(spread)), p95_ms: 0.12 * (1 + Math.abs(spread)) + 0.05, adrs_score: s,
    },
    artifacts: { timings: 'median 0.1 ms', placement: JSON.stringify(placement) },
  };
}
export async function createEvaluator(options) {
  return {
    workers: options.evaluator.workers,
    async evaluate(files, split) {
      const r = score(files);
      if (split === 'heldout' && r.valid) { r.score -= 1; r.metrics.adrs_score = r.score; r.metrics.median_ms += 0.01; }
      return r;
    },
    hasHeldOut: () => true,
    traces: () => ({ train: { name: 'toy-train', sha256: '0'.repeat(64) }, heldout: { name: 'toy-heldout', sha256: '1'.repeat(64) } }),
    async close() {},
  };
}
`;

/** Scripted answers by arrival order: a 429, a malformed answer, a refused edit, a broken program, then climbing. */
function scripted(q: FakeRequest): FakeReply {
  switch (q.index) {
    case 0:
      return { status: 429, headers: { 'retry-after': '0' } };
    case 2:
      return { text: 'Looks fine as it is.' };
    case 4:
    case 5:
      return {
        text: "<<<<<<< SEARCH balancer.ts\nexport const NAME = 'toy';\n=======\nexport const NAME = 'hacked';\n>>>>>>> REPLACE",
      };
    case 6: {
      const { spread } = currentValues(q);
      return {
        text: `<<<<<<< SEARCH balancer.ts\nexport const SPREAD = ${spread};\n=======\nexport const SPREAD = BROKEN;\n>>>>>>> REPLACE`,
      };
    }
    default:
      return climbingModel(q);
  }
}

export interface ReportRun {
  /** The temp folder holding the project (remove it when done). */
  base: string;
  /** The run folder. */
  dir: string;
}

/** A finished toy run (12 iterations, 2 islands, held-out scores, recorded placements) in a temp folder. */
export async function makeReportRun(iterations = 12): Promise<ReportRun> {
  const server = await FakeOpenAiServer.start(scripted);
  const p = makeToyProject(server.baseUrl, {
    search: {
      islands: 2,
      parallel: 1,
      migration_interval: 4,
      mutations: { diff: 0.7, rewrite: 0.3, crossover: 0 },
    },
  });
  writeFileSync(p.evaluatorModule, EVALUATOR_WITH_PLACEMENT);
  const dir = join(p.dir, 'run');
  try {
    await runSession({ configPath: p.configPath, out: dir, overrides: { iterations } });
  } finally {
    await server.close();
  }
  return { base: p.dir, dir };
}
