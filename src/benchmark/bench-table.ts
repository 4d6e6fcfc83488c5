import { formatTable, NO_VALUE } from '../util/table.js';
import type { BenchReport, BenchRow } from './bench-types.js';

const COLUMNS: Array<[header: string, cell: (r: BenchRow) => string]> = [
  ['trace', (r) => r.trace],
  ['balancer', (r) => r.balancer + (r.runs_on === 'gpu' ? ' (gpu)' : '')],
  ['median ms', (r) => ms(r.time.median_ms)],
  ['p95 ms', (r) => ms(r.time.p95_ms)],
  ['GPU ms', (r) => (r.gpu_time ? ms(r.gpu_time.median_ms) : NO_VALUE)],
  ['bal. same', (r) => r.balancedness_same.toFixed(4)],
  ['bal. next', (r) => (r.balancedness_next === null ? NO_VALUE : r.balancedness_next.toFixed(4))],
  [
    'next: median [q1–q3]',
    (r) => {
      const s = r.balancedness_next_spread;
      return s ? `${s.median.toFixed(4)} [${s.q1.toFixed(4)}–${s.q3.toFixed(4)}]` : NO_VALUE;
    },
  ],
  ['ADRS score', (r) => r.adrs_score.toFixed(2)],
  ['MoE time vs none', (r) => `${(100 * r.moe_vs_none).toFixed(1)} %`],
  ['rebalance share', (r) => percent(r.rebalance_share)],
];

/** The human table of `adrs bench`, device first; also valid Markdown (for bench/ results and the README). */
export function formatBenchTable(report: BenchReport): string {
  const c = report.config;
  const lines = [
    `device: ${report.device}`,
    `deployment: ${c.replicas} slots on ${c.gpus} GPUs / ${c.nodes} nodes; timing over ${c.repeat} calls; ` +
      `routing: ${c.tokens} tokens/step, ${c.policy}; rebalance every ${c.rebalance_interval} steps; ` +
      `history: up to ${c.history} windows per call${c.window_steps ? `; windows of ${c.window_steps} steps` : ''}`,
    '',
  ];
  const header = COLUMNS.map(([h]) => h);
  const body = report.rows.map((r) => COLUMNS.map(([, cell]) => cell(r)));
  lines.push(...formatTable([header, ...body], { align: ['left', 'left', 'right'], markdown: true }));
  lines.push(
    '',
    'bal. same: GPU balancedness placed and scored on the same window; bal. next: placed on window k (with the windows',
    'before it as history), scored on k+1, ratio of sums over all k; next: median [quartiles] of the per-window values;',
    'oracle: bldm-swap placed on the scored window itself (the ceiling); last-window: bldm-swap placed on window k alone;',
    'MoE time: modelled MoE forward time (token-level simulation) relative to the load-unaware `none` placement;',
    'rebalance share: median balancer time / time between two rebalances.',
  );
  return lines.join('\n');
}

function ms(v: number): string {
  if (!Number.isFinite(v)) return NO_VALUE;
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
}

function percent(v: number): string {
  if (!Number.isFinite(v)) return NO_VALUE;
  return v >= 0.001 ? `${(100 * v).toFixed(2)} %` : `${(100 * v).toExponential(1)} %`;
}
