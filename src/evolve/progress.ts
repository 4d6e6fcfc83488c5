import type { Progress } from './controller.js';
import type { SessionResult } from './session.js';

const f4 = (x: number | null | undefined): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(4);

/** The live line: iteration, best score and its key metrics, evaluations per minute, tokens and cost. */
export function progressLine(p: Progress): string {
  const m = p.best.metrics;
  const keys = ['balancedness_next', 'median_ms'].filter((k) => k in m);
  const shown = (keys.length ? keys : Object.keys(m).slice(0, 2)).map((k) => `${k} ${f4(m[k])}`).join(', ');
  return (
    `iter ${p.iteration} | best ${f4(p.best.score)} (${p.best.id}${shown ? `; ${shown}` : ''}) vs seed ${f4(p.seed.score)} | ` +
    `${p.evalsPerMin.toFixed(1)} evals/min | ${p.tokens} tok, $${p.costUsd.toFixed(4)} | last: ${p.lastOutcome}`
  );
}

/** The closing summary: best against seed on the training trace and, re-scored, on the held-out trace. */
export function summaryText(r: SessionResult): string {
  const s = r.stats;
  const lines = [
    `stopped: ${s.stopReason}${s.stopDetail ? ` (${s.stopDetail})` : ''} after ${s.committed} iterations, ${s.elapsedS.toFixed(1)} s`,
    `              score      ${metricHeads(r)}`,
    `train  seed  ${f4(r.seed.score).padStart(9)}  ${metricCells(r.seed.metrics, r)}`,
    `train  best  ${f4(r.best.score).padStart(9)}  ${metricCells(r.best.metrics, r)}   (${r.best.id})`,
  ];
  if (r.heldout) {
    lines.push(
      `heldout seed  ${f4(r.heldout.seed.score).padStart(9)}  ${metricCells(r.heldout.seed.metrics, r)}`,
    );
    lines.push(
      `heldout best  ${f4(r.heldout.best.score).padStart(9)}  ${metricCells(r.heldout.best.metrics, r)}`,
    );
  }
  const c = s.counters;
  lines.push(
    `${c.llm_calls} model calls, ${c.prompt_tokens + c.completion_tokens} tokens, $${c.cost_usd.toFixed(4)}; ` +
      `${c.evaluations} programs evaluated, ${c.duplicates} duplicates skipped, ${c.refused} edits refused`,
  );
  lines.push(
    `${s.iterationsPerMinute.toFixed(1)} iterations/min, evaluator utilisation ${(100 * s.evaluatorUtilisation).toFixed(0)}%, ` +
      `controller overhead ${s.overheadMsPerIteration.toFixed(1)} ms/iteration (model latency ${s.meanModelLatencyMs.toFixed(0)} ms/call)`,
  );
  if (s.replayMismatches) {
    lines.push(
      s.replayMismatches.length === 0
        ? `replay: every program identical to the recording (${s.replayPlanDivergences} parent choices differed under re-measured scores; the recording was followed)`
        : `replay: ${s.replayMismatches.length} programs differ from the recording (first at iteration ${s.replayMismatches[0]!.iteration})`,
    );
  }
  lines.push(`run folder: ${r.dir} (best program in ${r.dir}/best/candidate)`);
  return lines.join('\n');
}

const SHOWN = ['balancedness_next', 'balancedness_same', 'median_ms', 'p95_ms'];
const shownMetrics = (r: SessionResult): string[] => SHOWN.filter((k) => k in r.best.metrics);
const metricHeads = (r: SessionResult): string =>
  shownMetrics(r)
    .map((k) => k.padStart(18))
    .join(' ');
const metricCells = (m: Record<string, number>, r: SessionResult): string =>
  shownMetrics(r)
    .map((k) => f4(m[k]).padStart(18))
    .join(' ');
