import { fixed } from '../util/table.js';
import type { Activity, Progress } from './controller.js';
import { stopText } from './report-format.js';
import { comparisonText, heldoutComparison } from './report-noise.js';
import type { RefusalClass } from './run-log/events.js';
import type { SessionResult } from './session.js';

/** "refused (no-match)", "model-failed (HTTP 503)", "invalid (compile: …)": the outcome and why, short. */
export function outcomeText(outcome: string, reason?: string, refusal?: RefusalClass): string {
  if (!reason) return outcome;
  if (outcome === 'refused' || outcome === 'unchanged') return `${outcome} (${refusal ?? 'other'})`;
  const short = reason.length > 60 ? `${reason.slice(0, 57)}...` : reason;
  return outcome === 'duplicate' ? outcome : `${outcome} (${short})`;
}

const STAGE: Record<Activity['stage'], string> = {
  model: 'model',
  'evaluation-queued': 'queued for evaluation',
  evaluation: 'evaluating',
};

/** What each in-flight iteration waits for and for how long: "#13 model toy-a 42s · #14 evaluating 3s". */
export function activityText(inflight: Activity[], now: number): string {
  return [...inflight]
    .sort((a, b) => a.iteration - b.iteration)
    .map((a) => {
      const what = a.stage === 'model' && a.model ? `model ${a.model}` : STAGE[a.stage];
      const label = a.iteration === 0 ? 'seed' : `#${a.iteration}`;
      return `${label} ${what} ${Math.max(0, (now - a.since) / 1000).toFixed(0)}s`;
    })
    .join(' · ');
}

const f4 = (x: number | null | undefined): string => fixed(x, 4);

/** The live line: iteration, best score and its key metrics, evaluations per minute, tokens and cost. */
export function progressLine(p: Progress): string {
  const m = p.best.metrics;
  const keys = ['balancedness_next', 'median_ms'].filter((k) => k in m);
  const shown = (keys.length ? keys : Object.keys(m).slice(0, 2)).map((k) => `${k} ${f4(m[k])}`).join(', ');
  return (
    `iter ${p.iteration} | best ${f4(p.best.score)} (${p.best.id}${shown ? `; ${shown}` : ''}) vs seed ${f4(p.seed.score)} | ` +
    `${p.evalsPerMin.toFixed(1)} evals/min | ${p.tokens} tok, $${p.costUsd.toFixed(4)} | last: ${outcomeText(p.lastOutcome, p.lastReason, p.lastRefusal)}`
  );
}

/** The short head of the terminal status line (the waits follow it, and the line must fit a terminal). */
export function statusHead(p: Progress | null): string {
  if (!p) return 'no iteration committed yet';
  return `iter ${p.iteration} · best ${f4(p.best.score)} (${p.best.id}) · last: ${outcomeText(p.lastOutcome, p.lastReason, p.lastRefusal)}`;
}

/** The closing summary: best against seed on the training trace and, re-scored, on the held-out trace. */
export function summaryText(r: SessionResult): string {
  const s = r.stats;
  const lines = [
    `stopped: ${stopText(s.stopReason, s.stopDetail)} after ${s.committed} iterations, ${s.elapsedS.toFixed(1)} s`,
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
    const c = heldoutComparison(
      r.heldout.seed.metrics ?? {},
      r.heldout.best.metrics ?? {},
      r.best.hash === r.seed.hash,
    );
    lines.push(...comparisonText(c));
  }
  const c = s.counters;
  lines.push(
    `${c.llm_calls} model calls, ${c.prompt_tokens + c.completion_tokens} tokens, $${c.cost_usd.toFixed(4)}; ` +
      `${c.evaluations} programs evaluated, ${c.duplicates} duplicates skipped, ${c.refused} edits refused`,
  );
  lines.push(
    `${s.iterationsPerMinute.toFixed(1)} iterations/min, evaluator utilisation ${(100 * s.evaluatorUtilisation).toFixed(0)}%, ` +
      `controller overhead ${s.overheadMsPerIteration.toFixed(1)} ms/iteration (model latency ${s.meanModelLatencyMs.toFixed(0)} ms/call, queueing excluded)`,
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
