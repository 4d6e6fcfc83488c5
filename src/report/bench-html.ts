import { readBenchReport } from '../benchmark/bench-read.js';
import { renderPage } from './html-shell.js';

/**
 * The self-contained HTML page of `adrs bench --html`: per trace, time against next-window
 * balancedness (log time axis); per balancer, its balancedness window by window on every trace;
 * and the table. The data is the bench report itself (the same object as --json), from this
 * version or, converted to snake_case, from a file written before it.
 */
export function benchHtml(report: unknown): string {
  const r = readBenchReport(report);
  return renderPage({
    title: `adrs bench on ${r.device}`,
    page: 'bench-page',
    data: { kind: 'bench', ...r },
  });
}
