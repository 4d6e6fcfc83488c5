import type { EvalOutcome } from './evaluator.js';
import type { RunFiles } from './report-read.js';
import { holdsProgram } from './run-folder.js';
import type { RecordedReply } from './run-log/events.js';
import type { RunProgram } from './run-log/fold.js';
import { walkLineage } from './run-log/lineage.js';

/**
 * The run folder's other files against its events, for the report: checkpoint.json, the stored
 * programs and blobs, best/ and summary.json must each follow from events.jsonl; where one does
 * not, the report says so (`disagree`) rather than trust either side.
 */
export interface EventIndex {
  commits: { iteration: number; outcome: string; index: number; id: string | null }[];
  programs: Map<string, RunProgram>;
  bestAfter: Map<number, string | null>;
  responses: { reply: RecordedReply; index: number }[];
  committed: number;
}

/** checkpoint.json holds the database and counters as of its `committed` iteration: both must follow from the events. */
export function checkCheckpoint(
  files: RunFiles,
  ev: EventIndex,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const cp = files.checkpoint;
  if (!cp) {
    if (ev.commits.length > 0) disagree('checkpoint.json is missing although iterations were committed');
    return;
  }
  const k = cp.committed;
  if (k > ev.committed) {
    disagree(`checkpoint.json is at iteration ${k} but events.jsonl commits only up to ${ev.committed}`);
    return;
  }
  if (k < ev.committed - 1) {
    disagree(
      `checkpoint.json is at iteration ${k}, ${ev.committed - k} behind events.jsonl (${ev.committed})`,
    );
  } else if (k === ev.committed - 1) {
    notes.push(
      `checkpoint.json is one iteration behind events.jsonl (killed between logging iteration ${ev.committed} and checkpointing it; --resume commits it again from the recorded events)`,
    );
  }
  const bestThen = ev.bestAfter.get(k) ?? null;
  if ((cp.database?.best ?? null) !== bestThen) {
    disagree(
      `checkpoint.json names ${cp.database?.best} the best program at iteration ${k}; events.jsonl says ${bestThen}`,
    );
  }
  const wrong: string[] = [];
  for (const [id, p] of Object.entries(cp.database?.programs ?? {})) {
    const e = ev.programs.get(id);
    if (!e || e.hash !== p.hash || e.score !== p.score) wrong.push(id);
  }
  if (wrong.length > 0) {
    disagree(
      `checkpoint.json: ${wrong.length} program(s) differ from their commit in events.jsonl (${wrong.slice(0, 5).join(', ')})`,
    );
  }
  const upTo = ev.commits.filter((c) => c.iteration <= k);
  const count = (outcomes: string[]) => upTo.filter((c) => outcomes.includes(c.outcome)).length;
  const c = cp.counters;
  if (c) {
    const exact: [string, number, number][] = [
      ['evaluations', c.evaluations, count(['seed', 'valid', 'invalid'])],
      ['duplicates', c.duplicates, count(['duplicate'])],
      ['refused', c.refused, count(['refused', 'unchanged'])],
      ['best_iteration', c.best_iteration, bestThen ? (ev.programs.get(bestThen)?.iteration ?? -1) : 0],
    ];
    for (const [name, recorded, computed] of exact) {
      if (recorded !== computed)
        disagree(`checkpoint.json counters.${name} = ${recorded}; events.jsonl gives ${computed}`);
    }
    // The checkpoint's spending is that of every answer logged by its commit; later answers (of
    // iterations still in flight) may be in it too, but nothing beyond the whole file.
    const commitIndex = upTo.at(-1)?.index ?? -1;
    const spent = (before: number) => {
      const r = ev.responses.filter((x) => x.index < before).map((x) => x.reply);
      return {
        llm_calls: r.length,
        prompt_tokens: r.reduce((a, x) => a + x.usage.prompt_tokens, 0),
        completion_tokens: r.reduce((a, x) => a + x.usage.completion_tokens, 0),
        cost_usd: r.reduce((a, x) => a + x.cost_usd, 0),
      };
    };
    const lo = spent(commitIndex);
    const hi = spent(Number.POSITIVE_INFINITY);
    for (const key of ['llm_calls', 'prompt_tokens', 'completion_tokens', 'cost_usd'] as const) {
      const v = c[key];
      if (!(v >= lo[key] - 1e-9 && v <= hi[key] + 1e-9)) {
        const n = (x: number) => Number(x.toPrecision(8));
        disagree(
          `checkpoint.json counters.${key} = ${n(v)}; the answers in events.jsonl give ${lo[key] === hi[key] ? n(lo[key]) : `${n(lo[key])}–${n(hi[key])}`}`,
        );
      }
    }
  }
}

/** Every evaluation event has its program stored, under its own hash, with the same verdict. */
export function checkPrograms(
  files: RunFiles,
  evaluations: Map<string, { result: EvalOutcome }>,
  disagree: (s: string) => void,
): void {
  const missing: string[] = [];
  const changed: string[] = [];
  const differ: string[] = [];
  for (const [hash, { result }] of evaluations) {
    const stored = files.program(hash);
    if (!stored) missing.push(hash);
    else if (!holdsProgram(stored, hash)) changed.push(hash);
    else if (stored.result?.score !== result.score || stored.result?.valid !== result.valid)
      differ.push(hash);
  }
  if (changed.length)
    disagree(
      `programs/: ${changed.length} stored program(s) whose code does not match their hash (${changed.slice(0, 3).join(', ')})`,
    );
  if (missing.length)
    disagree(
      `programs/: ${missing.length} evaluated program(s) not stored (${missing.slice(0, 3).join(', ')})`,
    );
  if (differ.length) {
    disagree(
      `programs/: ${differ.length} stored result(s) differ from their evaluation event (${differ.slice(0, 3).join(', ')})`,
    );
  }
}

/**
 * Every prompt and answer the events name is in prompts/ or responses/. Only presence: the hash is
 * checked where a text is used (--resume, --replay), so a report of a large live run stays cheap.
 */
export function checkBlobs(files: RunFiles, disagree: (s: string) => void): void {
  const run = files.state;
  const missing = (kind: 'prompts' | 'responses', hashes: Iterable<string>): void => {
    const gone = [...new Set(hashes)].filter((h) => !files.blobs.has(kind, h));
    if (gone.length)
      disagree(
        `${kind}/: ${gone.length} file(s) named in events.jsonl are missing (${gone
          .slice(0, 3)
          .map((h) => h.slice(0, 16))
          .join(', ')})`,
      );
  };
  missing(
    'prompts',
    [...run.prompts.values()].map((p) => p.messages_sha256),
  );
  missing(
    'responses',
    [...run.responses.values()].map((r) => r.text_sha256),
  );
}

/** best/ is written when a session ends: it must hold the best program as of that session's stop. */
export function checkBestFolder(
  files: RunFiles,
  exported: { bestId: string | null } | null,
  programs: Map<string, RunProgram>,
  /** The run's best as the events decide it (comparisons included), not merely the highest score. */
  current: RunProgram | null,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const m = files.bestMetrics;
  if (!m) {
    if (exported)
      notes.push('best/metrics.json is missing although a session ended (killed while exporting?)');
    return;
  }
  const expected = exported?.bestId ? programs.get(exported.bestId) : undefined;
  if (!expected) {
    disagree(`best/metrics.json names ${String(m.id)}, but no session of this run ended with a best program`);
    return;
  }
  if (m.id !== expected.id || m.score !== expected.score) {
    disagree(
      `best/metrics.json says the best is ${String(m.id)} (score ${String(m.score)}); events.jsonl says ${expected.id} (score ${expected.score})`,
    );
  } else if (current && current.id !== expected.id) {
    notes.push(
      `best/ holds ${expected.id}, the best when the last session ended; the run has since found ${current.id} (best/ is rewritten when the run stops)`,
    );
  }
  const metrics = (m.metrics ?? {}) as Record<string, number>;
  const differ = Object.keys(expected.metrics).filter((k) => metrics[k] !== expected.metrics[k]);
  if (m.id === expected.id && differ.length > 0)
    disagree(
      `best/metrics.json: ${differ.join(', ')} differ from ${expected.id}'s evaluation in events.jsonl`,
    );
  if (files.bestCandidateHash && files.bestCandidateHash !== expected.hash) {
    disagree(
      `best/candidate holds program ${files.bestCandidateHash}, not ${expected.id}'s code (${expected.hash})`,
    );
  }
  if (files.bestLineage) {
    const ids = files.bestLineage.map((s) => (s as { id?: unknown }).id);
    const chain = walkLineage(expected, (id) => programs.get(id)).chain.map((p) => p.id);
    if (JSON.stringify(ids) !== JSON.stringify(chain))
      disagree(
        `best/lineage.json (${ids.join(' ← ')}) differs from the events' lineage (${chain.join(' ← ')})`,
      );
  }
}

export function checkSummary(
  files: RunFiles,
  exported: { reason: string; bestId: string | null; committed: number } | null,
  programs: Map<string, RunProgram>,
  seed: RunProgram | null,
  disagree: (s: string) => void,
  notes: string[],
): void {
  const s = files.summary as {
    stop?: { reason?: string };
    iterations?: number;
    best?: { id?: string; score?: number | null };
    seed?: { score?: number | null };
  } | null;
  if (!s) return;
  if (!exported) {
    disagree('summary.json exists, but no session of this run ended');
    return;
  }
  const expected = exported.bestId ? programs.get(exported.bestId) : undefined;
  const problems: string[] = [];
  if (s.stop?.reason !== exported.reason) problems.push(`stop ${s.stop?.reason} vs ${exported.reason}`);
  if (s.iterations !== exported.committed)
    problems.push(`iterations ${s.iterations} vs ${exported.committed}`);
  if (s.best?.id !== expected?.id || s.best?.score !== expected?.score)
    problems.push(`best ${s.best?.id} (${s.best?.score}) vs ${expected?.id} (${expected?.score})`);
  if (seed && s.seed?.score !== seed.score) problems.push(`seed score ${s.seed?.score} vs ${seed.score}`);
  if (problems.length) disagree(`summary.json disagrees with events.jsonl: ${problems.join('; ')}`);
  const last = files.state.commitLog.at(-1)?.index ?? -1;
  const stopsAfter = files.state.stops.at(-1)?.index ?? -1;
  if (last > stopsAfter) notes.push('summary.json is from an earlier session; the run has gone on since');
}
