import { balanceMetrics, gpuLoads } from '../eplb/metrics.js';
import type { Placement } from '../eplb/placement.js';
import { cellKey } from '../evolve/database.js';
import { PLACEMENT_ARTIFACT } from '../evolve/evaluator-types.js';
import { type PlacementArtifact, readPlacementArtifact } from '../evolve/placement-artifact.js';
import type { LineageStep, RunReport } from '../evolve/report.js';
import { failureClass } from '../evolve/report-classify.js';
import { stopText } from '../evolve/report-format.js';
import type { RunFiles } from '../evolve/report-read.js';
import { fixed, NO_VALUE } from '../util/table.js';
import { candidateDiff } from './line-diff.js';

/** One evaluated program as a point of the evaluations chart. */
export interface EvaluationPoint {
  iteration: number;
  id: string | null;
  t_s: number;
  valid: boolean;
  score: number | null;
  mutation: string;
  model: string;
  /** Invalid: the failure class (compile, wgsl, timeout, validation, …). */
  failure: string | null;
}

export interface IslandGrid {
  island: number;
  /** Feature dimensions: the first is the x axis, the second (if any) the y axis; more are folded into them. */
  x: { metric: string; bins: number };
  y: { metric: string; bins: number } | null;
  cells: { x: number; y: number; id: string; score: number | null }[];
}

/** A step of `adrs report`'s lineage, with its unified diff from the parent (the seed: empty; null when a program file is missing). */
export type LineageNode = LineageStep & { diff: string | null };

export interface PlacementView {
  shape: { layers: number; experts: number; replicas: number; gpus: number };
  window: number | null;
  layers: {
    layer: number;
    seed: number[];
    best: number[];
    seedBalancedness: number;
    bestBalancedness: number;
  }[];
}

export interface RunPageData {
  kind: 'run';
  title: string;
  dir: string;
  status: string;
  state: RunReport['status']['state'];
  summary: string[];
  /** Best training score after every commit, and the held-out scores where recorded. */
  curve: {
    iteration: number[];
    best: (number | null)[];
    heldout: (number | null)[];
    heldoutSeed: (number | null)[];
  };
  evaluations: EvaluationPoint[];
  islands: IslandGrid[];
  lineage: LineageNode[];
  bestVsSeed: { metric: string; seed: number | null; best: number | null }[];
  heldout: RunReport['heldout'];
  /** Training quality and time of best vs seed, against their measured noise. */
  trainComparison: RunReport['gain']['train_comparison'];
  accounting: RunReport['accounting'];
  refusalsByClass: Record<string, number>;
  placement: PlacementView | null;
  /** Why the placement chart is empty, when it is. */
  placementNote: string;
  disagreements: string[];
  notes: string[];
}

/**
 * What the HTML report and the live dashboard show, computed from the run folder's files only
 * (the same reading as `adrs report`, plus the programs' code for the lineage diffs).
 */
export function buildRunPageData(files: RunFiles, report: RunReport): RunPageData {
  const run = files.state;
  const curve: RunPageData['curve'] = { iteration: [], best: [], heldout: [], heldoutSeed: [] };
  const points: EvaluationPoint[] = [];
  // The best after every commit as the fold decides it (a noise-aware comparison's decision, as the
  // text report and best/ follow it, not the first measurement).
  for (const { event: e } of run.commitLog) {
    const it = e.iteration;
    const bestId = run.bestAfter.get(it) ?? null;
    curve.iteration.push(it);
    curve.best.push(bestId ? (run.programs.get(bestId)?.score ?? null) : null);
    curve.heldout.push(null);
    curve.heldoutSeed.push(null);
    // The program this commit added, as the fold built it (a duplicate adds none).
    const p = e.outcome !== 'duplicate' && e.id !== null ? run.programs.get(e.id) : undefined;
    if (p) {
      const ev = run.evaluations.get(p.hash);
      points.push({
        iteration: it,
        id: p.id,
        t_s: (ev?.t ?? e.t ?? 0) / 1000,
        valid: e.outcome !== 'invalid',
        score: p.score,
        mutation: p.mutation,
        model: p.model ?? 'seed',
        failure: e.outcome === 'invalid' && ev ? failureClass(ev.result) : null,
      });
    }
  }
  // Taken when a session stops: held-out scores belong to the last iteration committed before them.
  for (const h of run.heldouts) {
    const at = run.commitLog.filter((c) => c.index < h.index).length - 1;
    if (at >= 0) {
      curve.heldout[at] = h.best.score;
      curve.heldoutSeed[at] = h.seed.score;
    }
  }

  const refusals: Record<string, number> = {};
  for (const list of run.patches.values())
    for (const p of list) if (!p.ok) refusals[p.kind] = (refusals[p.kind] ?? 0) + 1;

  const lineage: LineageNode[] = report.lineage.map((s) => {
    const hashOf = (id: string | null): string | null =>
      id !== null ? (run.programs.get(id)?.hash ?? null) : null;
    const own = hashOf(s.id);
    const parent = hashOf(s.parent);
    let diff: string | null = '';
    if (s.parent) {
      const a = parent ? files.program(parent) : null;
      const b = own ? files.program(own) : null;
      diff = a && b ? candidateDiff(a.files, b.files) : null;
    }
    return { ...s, diff };
  });

  const keys = [...new Set([...report.metric_keys, ...Object.keys(report.best?.metrics ?? {})])];
  const bestVsSeed = keys.map((metric) => ({
    metric,
    seed: report.seed?.metrics[metric] ?? null,
    best: report.best?.metrics[metric] ?? null,
  }));

  const { placement, note } = placementView(files, report);
  const status = statusText(report);
  const ev = report.accounting.evaluations;
  return {
    kind: 'run',
    title: `adrs evolve run ${report.dir}`,
    dir: report.dir,
    status,
    state: report.status.state,
    summary: [
      `${report.iterations.committed} of ${report.iterations.limit} iterations, ${report.wall_time_s.toFixed(1)} s (run clock)`,
      `${ev.total} evaluations (${ev.valid} valid, ${ev.invalid} invalid)`,
      `best ${report.best ? `${report.best.id} ${fmt(report.best.score)}` : NO_VALUE} vs seed ${fmt(report.seed?.score ?? null)}`,
      `objective ${report.run.objective}; trace ${report.run.trace ?? NO_VALUE}; held-out ${report.run.heldout_trace ?? NO_VALUE}`,
    ],
    curve,
    evaluations: points,
    islands: islandGrids(files),
    lineage,
    bestVsSeed,
    heldout: report.heldout,
    trainComparison: report.gain.train_comparison,
    accounting: report.accounting,
    refusalsByClass: refusals,
    placement,
    placementNote: note,
    disagreements: report.disagreements,
    notes: report.notes,
  };
}

const fmt = (x: number | null): string => fixed(x, 4);

function statusText(r: RunReport): string {
  const s = r.status;
  switch (s.state) {
    case 'finished':
      return `finished: ${stopText(s.reason, s.detail)}`;
    case 'stopped':
      return `stopped: ${stopText(s.reason, s.detail)} (adrs evolve --resume continues it)`;
    case 'seed-failed':
      return 'failed: the seed candidate failed evaluation';
    case 'not-started':
      return 'not started';
    default:
      return `running, or killed (last event ${s.last_event_age_s.toFixed(0)} s ago)`;
  }
}

/** Each island's MAP-Elites grid from checkpoint.json, cells placed by the configured features. */
function islandGrids(files: RunFiles): IslandGrid[] {
  const cp = files.checkpoint;
  if (!cp?.database?.islands) return [];
  const features = files.config.search.features;
  const [fx, fy] = features;
  if (!fx) return [];
  return cp.database.islands.map((isl, island) => {
    const cells: IslandGrid['cells'] = [];
    for (const [key, id] of Object.entries(isl.grid ?? {})) {
      const p = cp.database.programs[id];
      // The key is recomputed from the metrics when they are there (the same cellKey the search uses).
      const bins = (p ? cellKey(features, p.metrics) : key).split(',').map(Number);
      cells.push({ x: bins[0] ?? 0, y: bins[1] ?? 0, id, score: p?.score ?? null });
    }
    return {
      island,
      x: { metric: fx.metric, bins: fx.bins },
      y: fy ? { metric: fy.metric, bins: fy.bins } : null,
      cells,
    };
  });
}

/**
 * The best's and the seed's GPU loads per layer on one scored window, from the `placement` artifact of
 * their evaluations: the EPLB evaluator records `{format: 'gpu-loads/1', window, layers, gpus, loads}`
 * (pass 1's placement for the last scored window, on the window it is scored on; every training
 * evaluation of a run scores the same series, so both are on the same loads); a plug-in evaluator may
 * record `{shape, window, loads, phy2log, logcnt}` instead (the seed's placement is then put on the
 * best's loads).
 */
function placementView(
  files: RunFiles,
  report: RunReport,
): { placement: PlacementView | null; note: string } {
  const none = (note: string) => ({ placement: null, note });
  if (!report.best || !report.seed) return none('no best program yet');
  const read = (hash: string) => {
    const text = files.program(hash)?.result?.artifacts?.[PLACEMENT_ARTIFACT];
    return text ? readPlacementArtifact(text) : null;
  };
  const b = read(report.best.hash);
  const s = read(report.seed.hash);
  if (b === null || s === null)
    return none(
      'The evaluator recorded no placement for the best program or the seed, so there are no per-GPU loads to draw; the per-metric comparison above shows their balancedness.',
    );
  if (typeof b === 'string') return none(`The best program's placement is not drawn: ${b}.`);
  if (typeof s === 'string') return none(`The seed's placement is not drawn: ${s}.`);
  if (b.format === 'gpu-loads/1' && s.format === 'gpu-loads/1') return gpuLoadsView(b, s, none);
  if (b.format === 'placement' && s.format === 'placement') return placementsView(b, s, none);
  return none(
    'The best and the seed recorded different kinds of placement, so they are not drawn side by side.',
  );
}

type Artifact<F extends PlacementArtifact['format']> = Extract<PlacementArtifact, { format: F }>;
type NoView = (note: string) => { placement: null; note: string };

/** A plug-in evaluator's placements: both on the best's loads (the seed's placement is re-scored there). */
function placementsView(
  b: Artifact<'placement'>,
  s: Artifact<'placement'>,
  none: NoView,
): { placement: PlacementView | null; note: string } {
  const shape = b.placement.shape;
  const t = s.placement.shape;
  if (
    shape.layers !== t.layers ||
    shape.experts !== t.experts ||
    shape.replicas !== t.replicas ||
    shape.gpus !== t.gpus
  )
    return none(
      'The best and the seed recorded placements of different shapes, so they are not drawn side by side.',
    );
  const { layers: L, gpus: P } = shape;
  const perGpu = (placement: Placement) => {
    const all = gpuLoads(placement, b.loads);
    return {
      rows: Array.from({ length: L }, (_, l) => Array.from(all.subarray(l * P, (l + 1) * P))),
      balancedness: balanceMetrics(placement, b.loads).perLayerGpuBalancedness,
    };
  };
  const best = perGpu(b.placement);
  const seed = perGpu(s.placement);
  return {
    placement: {
      shape: { layers: L, experts: shape.experts, replicas: shape.replicas, gpus: P },
      window: b.window,
      layers: best.rows.map((row, l) => ({
        layer: l,
        best: row,
        seed: seed.rows[l]!,
        bestBalancedness: best.balancedness[l]!,
        seedBalancedness: seed.balancedness[l]!,
      })),
    },
    note: `GPU loads of each placement on scored window ${b.window ?? '?'} (the best's recorded window; the seed's placement is scored on the same loads)`,
  };
}

/** The view from two recorded `gpu-loads/1` artifacts (best and seed on the same window). */
function gpuLoadsView(
  rb: Artifact<'gpu-loads/1'>,
  rs: Artifact<'gpu-loads/1'>,
  none: NoView,
): { placement: PlacementView | null; note: string } {
  if (rb.layers !== rs.layers || rb.gpus !== rs.gpus || rb.window !== rs.window)
    return none(
      'The best and the seed recorded GPU loads of different shapes or windows, so they are not drawn side by side.',
    );
  const L = rb.layers;
  const P = rb.gpus;
  const row = (r: Artifact<'gpu-loads/1'>, l: number) => r.loads.slice(l * P, (l + 1) * P);
  const balancedness = (xs: number[]) => {
    const max = Math.max(...xs);
    return max > 0 ? xs.reduce((a, x) => a + x, 0) / xs.length / max : 1;
  };
  return {
    placement: {
      shape: { layers: L, experts: 0, replicas: 0, gpus: P },
      window: rb.window,
      layers: Array.from({ length: L }, (_, l) => ({
        layer: l,
        best: row(rb, l),
        seed: row(rs, l),
        bestBalancedness: balancedness(row(rb, l)),
        seedBalancedness: balancedness(row(rs, l)),
      })),
    },
    note: `GPU loads of each placement on scored window ${rb.window ?? '?'} of the training series (pass 1's placement from the window before it)`,
  };
}
