import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allBlocks, type CandidateFiles, sortedPaths } from './candidate.js';
import type { EvolveConfig } from './config.js';
import type { Mutation, ProgramRecord } from './database.js';
import { type EvaluatorInfo, PLACEMENT_ARTIFACT } from './evaluator.js';
import type { ChatMessage } from './llm/types.js';
import { selectionRule } from './selection.js';

/** One earlier iteration as the model sees it: what was tried and what came of it. */
export interface Attempt {
  iteration: number;
  parent: string;
  mutation: Mutation;
  outcome: string;
  score: number | null;
  delta: number | null;
  reason?: string;
  /** The evaluation's metrics (valid or not), so the model sees every recent attempt, not only the top list. */
  metrics?: Record<string, number>;
  /** The first line of its first artifact (compile error, validation failure, timings). */
  artifact?: string;
  /** What the noise-aware selection decided, when it re-measured this program against the best. */
  selection?: string;
}

export interface PromptProgram {
  record: ProgramRecord;
  files: CandidateFiles;
  artifacts: Record<string, string>;
}

export interface PromptInput {
  mutation: Exclude<Mutation, 'seed'>;
  parent: PromptProgram;
  mate: PromptProgram | null;
  top: PromptProgram[];
  diverse: PromptProgram[];
  attempts: Attempt[];
  /** The evaluator's problem and device (absent: a custom problem on an unknown device). */
  info?: EvaluatorInfo;
  /** σ of one measurement from the run's comparisons so far (null before the first). */
  runNoise?: number | null;
}

const SYSTEM = `You improve a program by editing only the regions between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END markers (in TypeScript and WGSL files). Lines outside those regions are fixed: an edit that touches them is refused. Keep the program valid: it is compiled, run on a tiny case, then scored on a full trace. Reply with a short rationale followed by the edit in exactly the format requested.`;

const DIFF_FORMAT = `Reply with one or more SEARCH/REPLACE blocks. Name the file after SEARCH; copy the SEARCH lines exactly from the current file (enough of them to match exactly one place, all inside an EVOLVE-BLOCK):
<<<<<<< SEARCH balancer.ts
exact lines from the current file
=======
replacement lines
>>>>>>> REPLACE`;

const REWRITE_FORMAT = `Rewrite one or more EVOLVE-BLOCKs completely. For each, send its new content (the lines between the markers, without the markers), labelled as in the listing:
<<<<<<< BLOCK balancer.ts#1
the complete new content of that block
>>>>>>> END`;

export function buildPrompt(config: EvolveConfig, input: PromptInput): ChatMessage[] {
  const parts: string[] = [];
  parts.push(`# Problem\n${config.problem.trim() || 'Improve the score of the program below.'}`);
  const noise = input.runNoise ?? null;
  parts.push(scoringSection(config, input.info));
  if (input.info?.problem === 'eplb') parts.push(apiSection());
  const hints = deviceHints(input.info, input.parent.record);
  if (hints) parts.push(hints);
  parts.push(glossary(input));
  parts.push(
    `# Current program (${input.parent.record.id})\n${metricsLine(input.parent.record, noise)}${splitLine(input.parent.record.metrics)}`,
  );
  parts.push(listing(input.parent.files));
  const art = artifacts(input.parent.artifacts, config.prompt.artifact_chars);
  if (art) parts.push(`## Its evaluation artifacts\n${art}`);
  if (input.mate) {
    parts.push(
      `# Second parent for crossover (${input.mate.record.id})\n${metricsLine(input.mate.record, noise)}`,
    );
    parts.push(listing(input.mate.files));
  }
  if (input.top.length > 0) {
    parts.push('# Best programs so far (their EVOLVE-BLOCKs)');
    for (const p of input.top)
      parts.push(`## ${p.record.id}: ${metricsLine(p.record, noise)}\n${blocksOnly(p.files)}`);
  }
  if (input.diverse.length > 0) {
    parts.push('# Different approaches from other niches (their EVOLVE-BLOCKs)');
    for (const p of input.diverse)
      parts.push(`## ${p.record.id}: ${metricsLine(p.record, noise)}\n${blocksOnly(p.files)}`);
  }
  if (input.attempts.length > 0) {
    parts.push('# Last attempts and their outcome (every one, with its metrics)');
    parts.push(input.attempts.map(attemptLine).join('\n'));
  }
  parts.push(`# Task\n${task(input)}`);
  return [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: parts.join('\n\n') },
  ];
}

function task(input: PromptInput): string {
  switch (input.mutation) {
    case 'diff':
      return `Propose one focused improvement to ${input.parent.record.id}.\n${DIFF_FORMAT}`;
    case 'rewrite':
      return `Rewrite the EVOLVE-BLOCK(s) of ${input.parent.record.id} with a better approach.\n${REWRITE_FORMAT}`;
    case 'crossover':
      return `Combine the strengths of ${input.parent.record.id} and ${input.mate?.record.id ?? 'the best programs'} into ${input.parent.record.id}: edit ${input.parent.record.id} (the current program).\n${DIFF_FORMAT}\nor, for larger changes:\n${REWRITE_FORMAT}`;
  }
}

/** The follow-up sent once when a patch could not be applied. */
export function retryMessage(reason: string, mutation: Exclude<Mutation, 'seed'>): string {
  return `Your edit could not be applied: ${reason}\nSend a corrected edit against the same current program, in the same format${mutation === 'rewrite' ? ' (BLOCK … END)' : ' (SEARCH/REPLACE)'}.`;
}

/** `score=83.44 ±0.52; balancedness_next=…`: the score with the σ of one measurement, where known. */
function metricsLine(p: ProgramRecord, runNoise: number | null = null): string {
  if (!p.valid)
    return `invalid (failed evaluation)${p.metrics && Object.keys(p.metrics).length ? `; ${metricList(p.metrics)}` : ''}`;
  const m = metricList(p.metrics);
  return `score=${fmt(p.score ?? Number.NaN)}${noiseText(p, runNoise)}${m ? `; ${m}` : ''}`;
}

function noiseText(p: ProgramRecord, runNoise: number | null): string {
  const own = p.noise ?? p.metrics.score_noise;
  if (own !== undefined && Number.isFinite(own)) return ` ±${fmt(own)}`;
  return runNoise !== null ? ` ±${fmt(runNoise)} (run's noise estimate)` : '';
}

const metricList = (m: Record<string, number>): string =>
  Object.entries(m)
    .filter(([, v]) => Number.isFinite(v))
    .map(([k, v]) => `${k}=${fmt(v)}`)
    .join(', ');

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toPrecision(5));

/** Every file with line numbers and the EVOLVE-BLOCK labels the rewrite format refers to. */
function listing(files: CandidateFiles): string {
  const blocks = allBlocks(files);
  return sortedPaths(files)
    .map((path) => {
      const labels = blocks
        .filter((b) => b.file === path)
        .map((b) => `${path}#${b.index} = lines ${b.startLine + 2}-${b.endLine}`)
        .join('; ');
      return `## ${path}${labels ? ` (EVOLVE-BLOCKs: ${labels})` : ' (fixed: no EVOLVE-BLOCK)'}\n\`\`\`${lang(path)}\n${files[path]!.replace(/\n$/, '')}\n\`\`\``;
    })
    .join('\n\n');
}

function blocksOnly(files: CandidateFiles): string {
  return allBlocks(files)
    .map((b) => {
      const body = files[b.file]!.split('\n')
        .slice(b.startLine + 1, b.endLine)
        .join('\n');
      return `${b.file}#${b.index}:\n\`\`\`${lang(b.file)}\n${body}\n\`\`\``;
    })
    .join('\n');
}

const lang = (path: string): string => (path.endsWith('.wgsl') ? 'wgsl' : path.endsWith('.ts') ? 'ts' : '');

function artifacts(a: Record<string, string>, limit: number): string {
  let out = '';
  for (const [k, v] of Object.entries(a)) {
    if (!v || k === PLACEMENT_ARTIFACT) continue;
    const text = v.length > limit ? `${v.slice(0, limit)}\n… (${v.length - limit} more characters)` : v;
    out += `### ${k}\n${text}\n`;
    if (out.length > limit * 2) break;
  }
  return out.trim();
}

function attemptLine(a: Attempt): string {
  const delta = a.delta === null ? '' : ` (${a.delta >= 0 ? '+' : ''}${fmt(a.delta)} vs parent)`;
  const score = a.score === null ? '' : `, score ${fmt(a.score)}${delta}`;
  const lines = [
    `- iteration ${a.iteration}: ${a.mutation} of ${a.parent} → ${a.outcome}${score}${a.reason ? `: ${a.reason}` : ''}`,
  ];
  if (a.metrics && Object.keys(a.metrics).length > 0) lines.push(`  metrics: ${metricList(a.metrics)}`);
  if (a.artifact && !a.reason?.includes(a.artifact)) lines.push(`  first artifact line: ${a.artifact}`);
  if (a.selection) lines.push(`  selection: ${a.selection}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- what the model needs to know

const OBJECTIVES: Record<string, string> = {
  'moe-time':
    "moe-time: score = 100 · moe_time_none_ms / moe_time_ms · (1 + t / 10 ms)^−0.1, moe_time_ms being the modelled MoE layer time (token-level routing simulation, H100 cost model) of placement(k) on window k+1's tokens and moe_time_none_ms that of the load-unaware placement on the same windows: the real objective behind balancedness.",
  adrs: 'adrs (the ADRS leaderboard objective): score = 90·b + 5·min(2 ms / t, 2) − (t > 10 ms ? min(0.02·t[ms], 20) : 0). Below 1 ms the speed term is capped at 10; past 10 ms a penalty starts.',
  default:
    'default: score = 100 · b · (1 + t / 10 ms)^−0.1. One point of balancedness is worth 1 % of the score; halving t at most ≈ 7 %.',
};

/** The exact scoring rule and the selection rule. */
function scoringSection(config: EvolveConfig, info: EvaluatorInfo | undefined): string {
  const sel = config.selection ?? { rounds: 0, z: 2 };
  const lines = ['# How programs are scored'];
  if (info?.problem === 'eplb') {
    lines.push(
      "Each evaluation runs several passes over a series of load windows. Each pass is a fresh worker process; within a pass calls come in time order (window k's call only after window k−1's), so module state kept between calls lives for one pass. A call gets `input.loads` = window k (and `input.history` = the windows up to k, oldest first, the latest equal to `input.loads`, where the API has it) and its placement is scored on window k+1, which it has not seen: forecasting the next window is part of the job.",
      "- Quality b (balancedness_next) = mean over the scored windows k (and the passes) of the GPU balancedness of placement(k) on window k+1: Σ_layers mean_gpu(load) / Σ_layers max_gpu(load), where a GPU's load is the sum over its slots of (expert load / that expert's replica count).",
      '- Time t = the MEAN over all timed calls of every pass, outliers included (median_ms and p95_ms are shown beside it; they are not charged). Each call is timed from the call until its promise resolves and all GPU work it submitted has finished. One slow call (first-call compilation, allocations, a GC pause) raises t for the whole evaluation.',
      `- Objective in use: ${OBJECTIVES[info.objective] ?? `${info.objective} (the evaluator's objective; score is its value, higher is better)`}`,
      "- What relabelling preserves: within a pass one relabelling applies to every call — experts permuted within their groups (an expert stays in its group of E/G consecutive ids) and one layer order — so expert e of layer l is the same expert in every call of the pass, and state kept between calls (a running forecast per expert) stays meaningful. Between passes ids and layer order change. Each call's loads may be rescaled by its own factor: compare shares (e.g. load / layer total), not raw loads across windows. Every answer is validated and mapped back before scoring; a remembered answer scores badly.",
    );
  } else {
    lines.push(`score is the evaluator's objective (${info?.objective ?? 'its own'}); higher is better.`);
  }
  lines.push(`- Selection: ${selectionRule(sel.rounds, sel.z)}`);
  lines.push(
    "- Scores are shown as score ±σ, σ being the noise of one measurement (the evaluator's score_noise, a comparison's spread, or the run's estimate): a difference smaller than about 2σ is not a gain.",
  );
  return lines.join('\n');
}

const API_PATHS = ['../../src/eval/candidate-api.ts', '../eval/candidate-api.d.ts'];
let apiText: string | null | undefined;

/**
 * src/eval/candidate-api.ts as the evaluator defines it, read when the first prompt is built (from
 * the source tree, or the built declarations), so the prompt never drifts from the real API.
 */
function candidateApiSource(): string | null {
  if (apiText !== undefined) return apiText;
  apiText = null;
  for (const rel of API_PATHS) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) {
      apiText = readFileSync(path, 'utf8').trim();
      break;
    }
  }
  return apiText;
}

function apiSection(): string {
  const api = candidateApiSource();
  if (!api)
    return '# The candidate API\n(src/eval/candidate-api.ts could not be read; see the imports of balancer.ts)';
  return `# The candidate API (src/eval/candidate-api.ts, imported by balancer.ts as types only)\n\`\`\`ts\n${api}\n\`\`\``;
}

/** One line per metric, for every metric the prompt shows. */
export const METRIC_MEANINGS: Record<string, string> = {
  balancedness_next:
    'quality scored (b): GPU balancedness of placement(k) on the unseen window k+1, mean over windows (and passes; 1 = perfect)',
  balancedness_same:
    'the same placements scored on the window they were computed from; balancedness_same − balancedness_next is the forecast error',
  balancedness_next_varied:
    'balancedness_next over the passes after the first (freshly relabelled); equals it for a balancer that computes from its input',
  slot_balancedness_next: 'the same ratio over physical slots instead of GPUs, on window k+1',
  inter_node_share_next:
    "share of window k+1's load whose tokens cross nodes (expert not replicated on the token's node, tokens spread evenly over nodes)",
  median_ms: 'median call time, ms; shown, not charged',
  p95_ms: '95th percentile of all call times, ms; shows outliers',
  mean_ms: 'mean call time over all timed calls, ms: the time t the objective charges',
  adrs_score: 'the adrs objective on these measurements',
  default_score: 'the default objective on these measurements',
  windows: 'scored windows per pass',
  calls: 'calls made (all timed)',
  ipc_ms:
    "IPC round trip of a call's payload between harness and worker, measured before your code loads; subtracted from the harness's clock, not charged to you",
  setup_ms:
    "the harness's preparation before your code was sent (worker start, IPC calibration); not charged",
  clock_gap_ms:
    "median gap between the harness's clock (round trip minus ipc_ms) and the worker's clock of a call: ≈0 unless time escaped the worker's clock (then the larger is charged)",
  eval_ms: 'wall time of the whole evaluation (all passes, compile, scoring)',
  candidate_ms: 'time spent inside your calls, summed over every call of the evaluation',
  overhead_ms: "eval_ms − candidate_ms: the harness's own time (processes, IPC, scoring); not charged",
  peak_rss_mb: "the worker process's peak resident memory, MiB",
  host_ms: 'mean per call: time on the host (JavaScript) in your call, not waiting for the GPU',
  gpu_wait_ms:
    'mean per call: time your call waited for the GPU (submit to done: mapAsync, onSubmittedWorkDone)',
  gpu_ms: 'mean per call: GPU execution time of your dispatches (timestamp queries; absent without them)',
  score_noise:
    "the evaluator's estimate of the noise of score (standard error over its passes): σ of one measurement",
  adrs_score_noise: 'the same noise estimate for adrs_score',
  default_score_noise: 'the same noise estimate for default_score',
  moe_score_noise: 'the same noise estimate for moe_score',
  mean_ms_noise: 'standard error of mean_ms (spread of the call times / √calls)',
  moe_score: 'the moe-time objective on these measurements',
  moe_time_ms:
    "modelled MoE layer time (all layers, H100 cost model) of window k+1's tokens routed through placement(k), ms",
  moe_time_none_ms: 'the same for the load-unaware placement (the reference of moe_score), ms',
  moe_tokens: 'tokens per layer routed for moe_time_ms',
  moe_windows: 'windows sampled for moe_time_ms',
  passes: 'timed passes (each a fresh worker process)',
  history: 'windows of history per call (at most)',
  stage: '1 = compiled and ran a tiny case, 2 = scored on the full trace',
};

function glossary(input: PromptInput): string {
  const seen = new Set<string>();
  const programs = [input.parent, ...(input.mate ? [input.mate] : []), ...input.top, ...input.diverse];
  for (const p of programs) for (const k of Object.keys(p.record.metrics)) seen.add(k);
  for (const a of input.attempts) for (const k of Object.keys(a.metrics ?? {})) seen.add(k);
  const lines = [...seen]
    .sort()
    .map((k) => `- ${k}: ${METRIC_MEANINGS[k] ?? 'reported by the evaluator (no description)'}`);
  return `# What each metric means\n${lines.length ? lines.join('\n') : '(no metrics yet)'}`;
}

/** The measured time split of a program (contract 3), when the evaluator reports it. */
function splitLine(m: Record<string, number>): string {
  if (m.host_ms === undefined && m.gpu_wait_ms === undefined) return '';
  const parts = [
    m.host_ms !== undefined ? `host ${fmt(m.host_ms)} ms` : null,
    m.gpu_wait_ms !== undefined ? `waiting for the GPU ${fmt(m.gpu_wait_ms)} ms` : null,
    m.gpu_ms !== undefined ? `of which GPU execution ${fmt(m.gpu_ms)} ms` : null,
  ].filter(Boolean);
  return `\nTime per call: ${parts.join(', ')}${m.mean_ms !== undefined ? ` (mean call ${fmt(m.mean_ms)} ms)` : ''}.`;
}

/**
 * Hints that match the evaluator's device and the parent's measured split: on a CPU rasteriser
 * (lavapipe) a WGSL kernel runs on the same cores as the host code, so moving work to WGSL does
 * not pay; on a hardware GPU wide per-layer work may, if it saves more than a round trip.
 */
function deviceHints(info: EvaluatorInfo | undefined, parent: ProgramRecord): string | null {
  const a = info?.adapter;
  const m = parent.metrics;
  const lines: string[] = [];
  if (a) {
    lines.push(
      a.software
        ? `The evaluator's GPU adapter is ${a.name}, a software rasteriser: "GPU" kernels run on the same CPU cores as the host code, plus dispatch and readback costs. Moving work into WGSL does not pay here; make the host code faster (fewer allocations and passes, typed arrays reused between calls), and use fewer GPU round trips (each submit + readback is a wait).`
        : `The evaluator's GPU adapter is ${a.name}, a hardware GPU: wide, data-parallel work (one workgroup per layer, many experts per workgroup) can pay in WGSL when it replaces host loops, but each submit + readback costs a round trip, so batch the work into few dispatches and read back once.`,
    );
  }
  const host = m.host_ms;
  const wait = m.gpu_wait_ms;
  if (host !== undefined && wait !== undefined && host + wait > 0) {
    const share = wait / (host + wait);
    lines.push(
      share > 0.5
        ? `The current program spends ${Math.round(share * 100)} % of its call time waiting for the GPU${m.gpu_ms !== undefined ? ` (GPU execution ${fmt(m.gpu_ms)} ms of ${fmt(wait)} ms waited)` : ''}: fewer submits/readbacks${a?.software ? ', or less work in the kernels,' : ''} would cut t most.`
        : `The current program spends ${Math.round((1 - share) * 100)} % of its call time on the host: host code is where t can shrink.`,
    );
  }
  if (m.p95_ms !== undefined && m.median_ms !== undefined && m.p95_ms > 2 * m.median_ms)
    lines.push(
      `Its p95 (${fmt(m.p95_ms)} ms) is over twice its median (${fmt(m.median_ms)} ms): outliers raise the charged mean; avoid per-call allocation and first-call work that could be done once per shape.`,
    );
  return lines.length ? `# The evaluator's device and where the time goes\n${lines.join('\n')}` : null;
}
