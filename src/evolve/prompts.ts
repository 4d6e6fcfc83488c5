import { allBlocks, type CandidateFiles, sortedPaths } from './candidate.js';
import type { EvolveConfig } from './config.js';
import type { Mutation, ProgramRecord } from './database.js';
import type { ChatMessage } from './llm/types.js';

/** One earlier iteration as the model sees it: what was tried and what came of it. */
export interface Attempt {
  iteration: number;
  parent: string;
  mutation: Mutation;
  outcome: string;
  score: number | null;
  delta: number | null;
  reason?: string;
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
  parts.push(`# Current program (${input.parent.record.id})\n${metricsLine(input.parent.record)}`);
  parts.push(listing(input.parent.files));
  const art = artifacts(input.parent.artifacts, config.prompt.artifact_chars);
  if (art) parts.push(`## Its evaluation artifacts\n${art}`);
  if (input.mate) {
    parts.push(`# Second parent for crossover (${input.mate.record.id})\n${metricsLine(input.mate.record)}`);
    parts.push(listing(input.mate.files));
  }
  if (input.top.length > 0) {
    parts.push('# Best programs so far (their EVOLVE-BLOCKs)');
    for (const p of input.top)
      parts.push(`## ${p.record.id}: ${metricsLine(p.record)}\n${blocksOnly(p.files)}`);
  }
  if (input.diverse.length > 0) {
    parts.push('# Different approaches from other niches (their EVOLVE-BLOCKs)');
    for (const p of input.diverse)
      parts.push(`## ${p.record.id}: ${metricsLine(p.record)}\n${blocksOnly(p.files)}`);
  }
  if (input.attempts.length > 0) {
    parts.push('# Last attempts and their outcome');
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

export function metricsLine(p: ProgramRecord): string {
  if (!p.valid) return 'invalid (failed evaluation)';
  const m = Object.entries(p.metrics)
    .filter(([, v]) => Number.isFinite(v))
    .map(([k, v]) => `${k}=${fmt(v)}`)
    .join(', ');
  return `score=${fmt(p.score ?? Number.NaN)}${m ? `; ${m}` : ''}`;
}

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
    if (!v) continue;
    const text = v.length > limit ? `${v.slice(0, limit)}\n… (${v.length - limit} more characters)` : v;
    out += `### ${k}\n${text}\n`;
    if (out.length > limit * 2) break;
  }
  return out.trim();
}

function attemptLine(a: Attempt): string {
  const delta = a.delta === null ? '' : ` (${a.delta >= 0 ? '+' : ''}${fmt(a.delta)} vs parent)`;
  const score = a.score === null ? '' : `, score ${fmt(a.score)}${delta}`;
  return `- iteration ${a.iteration}: ${a.mutation} of ${a.parent} → ${a.outcome}${score}${a.reason ? `: ${a.reason}` : ''}`;
}
