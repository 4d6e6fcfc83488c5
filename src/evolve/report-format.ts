import { fixed, formatTable, NO_VALUE } from '../util/table.js';
import type { ReportProgram, RunReport } from './report.js';
import { comparisonText } from './report-noise.js';
import type { RefusalClass } from './run-log/events.js';

/** "reason (detail)", without repeating the reason when the detail already says it (older runs logged "interrupted (Ctrl-C)"). */
export function stopText(reason: string | null, detail: string | null): string {
  const d = (detail ?? '').trim();
  if (!d || d === reason) return reason ?? '';
  if (reason && d.startsWith(reason)) {
    const rest = d
      .slice(reason.length)
      .trim()
      .replace(/^\((.*)\)$/, '$1');
    return rest ? `${reason} (${rest})` : reason;
  }
  return `${reason} (${d})`;
}

const f4 = (x: number | null | undefined): string => fixed(x, 4);
const signed = (x: number | null): string => (x === null ? NO_VALUE : `${x >= 0 ? '+' : ''}${x.toFixed(4)}`);
const usd = (x: number): string => `$${x.toFixed(4)}`;
const int = (x: number): string => x.toLocaleString('en-US');

/** Columns padded to their widest cell; a column of numbers is right-aligned, header included. */
const table = (rows: string[][], indent = '  '): string[] => formatTable(rows, { indent, align: ['auto'] });

const SPARK = '▁▂▃▄▅▆▇█';

/** One block per value between the lowest and highest (all the lowest block when flat). */
export function sparkline(values: (number | null)[]): string {
  const xs = values.filter((v): v is number => v !== null);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return values
    .map((v) =>
      v === null ? ' ' : SPARK[hi > lo ? Math.round(((v - lo) / (hi - lo)) * (SPARK.length - 1)) : 0],
    )
    .join('');
}

const REFUSALS: [RefusalClass, string][] = [
  ['no-match', 'no match'],
  ['ambiguous', 'ambiguous'],
  ['outside-block', 'outside EVOLVE-BLOCK'],
  ['malformed', 'malformed'],
  ['unchanged', 'no change'],
  ['other', 'other'],
];

const byClass = (counts: Record<RefusalClass, number>): string => {
  const parts = REFUSALS.filter(([k]) => counts[k] > 0).map(([k, label]) => `${label} ${counts[k]}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
};

function statusLine(r: RunReport): string {
  const s = r.status;
  const age = `last event ${s.last_event_age_s < 120 ? `${s.last_event_age_s.toFixed(0)} s` : `${(s.last_event_age_s / 60).toFixed(0)} min`} ago`;
  switch (s.state) {
    case 'finished':
      return `finished: ${stopText(s.reason, s.detail)}`;
    case 'stopped':
      return `stopped: ${stopText(s.reason, s.detail)}; continue with adrs evolve --resume ${r.dir}`;
    case 'seed-failed':
      return 'failed: the seed candidate failed evaluation, so no iteration ran';
    case 'not-started':
      return 'not started: events.jsonl is empty';
    default:
      return r.events.torn_final_line_bytes > 0
        ? `killed mid-write (torn final event), ${age}; continue with adrs evolve --resume ${r.dir}`
        : `in progress, or killed: no stop event after the last start; ${age}`;
  }
}

/** The human-readable report: the same content as the JSON object, section by section. */
export function reportText(r: RunReport): string {
  const out: string[] = [];
  const run = r.run;
  const keys = r.metric_keys;
  out.push(
    `run folder  ${r.dir}${run.mode ? ` (${run.mode}, ${run.sessions} session${run.sessions === 1 ? '' : 's'})` : ''}`,
  );
  if (run.problem) out.push(`problem     ${run.problem}`);
  out.push(`candidate   ${run.candidate}`);
  out.push(
    `models      ${run.models.map((m) => `${m.name} ×${m.weight} ($${m.price_input_per_mtok}/$${m.price_output_per_mtok} per Mtok in/out)`).join(', ') || '—'}`,
  );
  out.push(
    `config      seed ${run.seed} · objective ${run.objective} · trace ${run.trace ?? '—'} · held-out ${run.heldout_trace ?? '—'}` +
      (run.evaluator_module ? ` · evaluator ${run.evaluator_module}` : ''),
  );
  out.push(`status      ${statusLine(r)}`);
  const ev = r.accounting.evaluations;
  out.push(
    `progress    ${r.iterations.committed} of ${r.iterations.limit} iterations in ${r.wall_time_s.toFixed(1)} s (run clock); ` +
      `${ev.total} evaluations${ev.per_minute !== null ? `, ${ev.per_minute.toFixed(1)}/min` : ''}`,
  );
  const outcomes = Object.entries(r.iterations.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  if (outcomes) out.push(`outcomes    ${outcomes}`);

  out.push('', 'best vs seed');
  const row = (
    label: string,
    p: { score: number | null; metrics: Record<string, number> } | null,
    id = '',
  ) => [label, id, p ? f4(p.score) : '—', ...keys.map((k) => f4(p?.metrics[k]))];
  const rows = [['', '', 'score', ...keys]];
  rows.push(row('train    seed', r.seed, r.seed?.id));
  rows.push(row('train    best', r.best, r.best?.id));
  if (r.heldout) {
    rows.push(row('held-out seed', r.heldout.seed, r.seed?.id));
    rows.push(row('held-out best', r.heldout.best, r.heldout.for_best ?? ''));
  }
  out.push(...table(rows));
  const g = r.gain;
  const same = g.train_comparison?.same_program === true;
  const tc = g.train_comparison;
  const noiseOnly = tc !== null && tc.quality.verdict === 'noise' && tc.time.verdict === 'noise';
  let gain = same
    ? '  no gain: the best is the seed'
    : `  gain ${signed(g.train)} on the training trace${noiseOnly ? ' (within the measured noise of both quality and time: not a result)' : ''}`;
  if (r.heldout && !r.heldout.stale) {
    if (same)
      gain += `; its held-out score differs by ${signed(g.heldout)}, a re-measurement of one program (noise)`;
    else {
      gain += `, ${signed(g.heldout)} held-out`;
      if (g.heldout_retained !== null) gain += ` (${(100 * g.heldout_retained).toFixed(0)} % retained)`;
    }
  } else if (!r.heldout)
    gain += '; no held-out scores recorded (taken when a run stops with a held-out trace)';
  out.push(gain);
  // The score mixes quality and time: say which moved, and whether beyond the measured noise.
  if (g.train_comparison && !same)
    for (const line of comparisonText(g.train_comparison, 'training')) out.push(`  ${line}`);
  if (r.heldout && !r.heldout.stale)
    for (const line of comparisonText(r.heldout.comparison)) out.push(`  ${line}`);
  if (g.overfitting) out.push('  OVERFITTING: the training gain vanishes on the held-out trace');

  out.push('', `lineage of ${r.best?.id ?? '—'}`);
  if (r.lineage.length) {
    out.push(
      ...table([
        ['iter', 'id', 'parent', 'mutation', 'model', 'score', 'delta', 'answers'],
        ...r.lineage.map((s) => [
          String(s.iteration),
          s.id,
          s.parent ? `${s.parent}${s.mate ? `+${s.mate}` : ''}` : '—',
          s.mutation,
          s.model ?? '—',
          f4(s.score),
          signed(s.delta),
          s.answers === 2 ? '2 (sent back once)' : String(s.answers),
        ]),
      ]),
    );
  }

  out.push('', `top ${r.top.length} programs`);
  if (r.top.length) {
    out.push(
      ...table([
        ['#', 'id', 'score', ...keys, 'iter', 'island', 'mutation', 'model'],
        ...r.top.map((p: ReportProgram, i) => [
          String(i + 1),
          p.id,
          f4(p.score),
          ...keys.map((k) => f4(p.metrics[k])),
          String(p.iteration),
          String(p.island),
          p.mutation,
          p.model ?? '—',
        ]),
      ]),
    );
  }
  if (r.islands.length) {
    out.push(
      '',
      `islands (MAP-Elites cells of ${r.islands[0]!.cells_total} each${r.migrations !== null ? `; ${r.migrations} migrations` : ''})`,
    );
    out.push(
      ...table([
        ['island', 'members', 'cells', 'coverage', 'best'],
        ...r.islands.map((i) => [
          String(i.island),
          String(i.members),
          String(i.cells),
          `${((100 * i.cells) / i.cells_total).toFixed(1)}%`,
          i.best_id ?? '—',
        ]),
      ]),
    );
  }

  const a = r.accounting;
  out.push('', 'accounting');
  const money = (m: Omit<RunReport['accounting']['total'], never>, name: string) => [
    name,
    int(m.calls),
    int(m.prompt_tokens),
    int(m.completion_tokens),
    usd(m.cost_usd),
    String(m.http_retries),
    String(m.failed_calls),
    m.mean_latency_ms === null ? '—' : m.mean_latency_ms.toFixed(0),
    m.mean_queued_ms === null ? '—' : m.mean_queued_ms.toFixed(0),
  ];
  out.push(
    ...table([
      [
        'model',
        'calls',
        'tokens in',
        'tokens out',
        'cost',
        'retries',
        'failed',
        'model ms/call',
        'queued ms/call',
      ],
      ...a.models.map((m) => money(m, m.model)),
      money(a.total, 'total'),
    ]),
  );
  out.push(
    '  model ms/call: from the request to the answer (retries included); queued: waiting for a free slot of llm.concurrency first',
  );
  if (a.total.estimated_usage > 0)
    out.push(
      `  ${a.total.estimated_usage} call(s) without usage from the server: tokens estimated from the text`,
    );
  if (a.budget.usd !== null || a.budget.tokens !== null) {
    const parts = [];
    if (a.budget.usd !== null) parts.push(`${usd(a.total.cost_usd)} of $${a.budget.usd}`);
    if (a.budget.tokens !== null)
      parts.push(
        `${int(a.total.prompt_tokens + a.total.completion_tokens)} of ${int(a.budget.tokens)} tokens`,
      );
    out.push(`  budget: ${parts.join(', ')}`);
  }
  const p = a.patches;
  const refusedAnswers = p.answers - p.applied;
  out.push(
    `  edits: ${p.answers} answers, ${p.applied} applied, ${refusedAnswers} refused${byClass(p.refused_answers)}`,
  );
  out.push(
    `  by iteration: ${p.applied_first} applied at once, ${p.fixed_after_sendback} sent back once and fixed, ` +
      `${Object.values(p.refused).reduce((x, y) => x + y, 0)} refused${byClass(p.refused)}`,
  );
  out.push(`  duplicates skipped: ${a.duplicates}`);
  const classes = Object.entries(ev.invalid_by_class)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  out.push(
    `  evaluations: ${ev.total} (${ev.valid} valid, ${ev.invalid} invalid${classes ? `: ${classes}` : ''})` +
      (ev.mean_ms !== null ? `, mean ${ev.mean_ms.toFixed(1)} ms` : '') +
      `; evaluator errors: ${a.evaluator_errors.retried} retried, ${a.evaluator_errors.failed} stopped the run`,
  );

  if (r.progress.length) {
    out.push('', `best score over iterations  ${sparkline(r.progress.map((x) => x.best))}`);
    out.push(
      ...table([
        ['iteration', ...r.progress.map((x) => String(x.iteration))],
        ['best', ...r.progress.map((x) => f4(x.best))],
      ]),
    );
  }

  out.push('');
  if (r.disagreements.length === 0)
    out.push(
      r.checked.length
        ? `files agree: ${r.checked.join(', ')} match events.jsonl`
        : 'files agree: events.jsonl is the only record so far',
    );
  else {
    out.push(`THE FILES DISAGREE (${r.disagreements.length}):`);
    for (const d of r.disagreements) out.push(`  - ${d}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n');
}
