import { check } from '../util/errors.js';

/**
 * The deployment an EPLB placement is computed for. R physical slots over P GPUs in N nodes:
 * GPU g owns slots g·R/P … (g+1)·R/P−1 and P/N consecutive GPUs form a node. E logical experts form
 * G groups of E/G consecutive experts (the unit DeepSeek's hierarchical policy packs onto nodes).
 */
export interface Shape {
  layers: number;
  experts: number;
  replicas: number;
  groups: number;
  nodes: number;
  gpus: number;
}

/** What each deployment number of a Shape is, in words (the --help of every command's deployment flags). */
export const SHAPE_TEXT = {
  replicas: 'physical expert slots R',
  gpus: 'GPUs P',
  nodes: 'nodes N',
  groups: 'expert groups G',
} as const;

/** The deployment of the public ADRS leaderboard (DeepSeek-V3/R1: 58 MoE layers × 256 experts). */
export const DEEPSEEK_V3_SHAPE: Shape = {
  layers: 58,
  experts: 256,
  replicas: 288,
  groups: 8,
  nodes: 4,
  gpus: 32,
};

/** Checks every constraint between the shape's numbers; throws a UserError naming the first broken one. */
export function validateShape(s: Shape): void {
  for (const key of ['layers', 'experts', 'replicas', 'groups', 'nodes', 'gpus'] as const) {
    check(Number.isInteger(s[key]) && s[key] >= 1, `${key} must be a positive integer, got ${s[key]}`);
  }
  check(
    s.replicas >= s.experts,
    `replicas (${s.replicas}) must be at least the number of experts (${s.experts}): every expert needs a slot`,
  );
  check(s.replicas % s.gpus === 0, `replicas (${s.replicas}) must be divisible by gpus (${s.gpus})`);
  check(s.gpus % s.nodes === 0, `gpus (${s.gpus}) must be divisible by nodes (${s.nodes})`);
  check(s.experts % s.groups === 0, `groups (${s.groups}) must divide the number of experts (${s.experts})`);
}

export const slotsPerGpu = (s: Shape): number => s.replicas / s.gpus;
export const gpusPerNode = (s: Shape): number => s.gpus / s.nodes;

/** A short human label such as "58×256 → 288 slots on 32 GPUs / 4 nodes". */
export function describeShape(s: Shape): string {
  return `${s.layers}×${s.experts} → ${s.replicas} slots on ${s.gpus} GPUs / ${s.nodes} nodes, ${s.groups} groups`;
}
