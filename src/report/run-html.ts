import { renderPage } from './html-shell.js';
import type { RunPageData } from './run-page-data.js';

/** The self-contained HTML report of a run (no network: library, script, styles and data inline). */
export function runHtml(data: RunPageData): string {
  return renderPage({ title: data.title, page: 'run-page', data });
}
