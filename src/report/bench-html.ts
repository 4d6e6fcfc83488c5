import type { BenchReport } from '../benchmark/bench-types.js';
import { renderPage } from './html-shell.js';

/**
 * The self-contained HTML page of `adrs bench --html`: per trace, time against next-window
 * balancedness (log time axis); per balancer, its balancedness window by window on every trace;
 * and the table. The data is the bench report itself (the same object as --json).
 */
export function benchHtml(report: BenchReport): string {
  return renderPage({
    title: `adrs bench on ${report.device}`,
    page: 'bench-page',
    data: { kind: 'bench', ...report },
  });
}
