import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * One self-contained HTML page: uPlot (the charting library, MIT, ~50 kB minified) and its CSS,
 * our page script and the data, all inline, so the file opens anywhere without a network. uPlot
 * is read from node_modules at run time, not copied into the repository.
 */
const require = createRequire(import.meta.url);
const uplotDir = dirname(require.resolve('uplot'));

/** The browser scripts live beside the sources as plain JS (src/report/client), read at run time. */
const clientDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'report', 'client');

const cache = new Map<string, string>();
function asset(path: string): string {
  let text = cache.get(path);
  if (text === undefined) {
    text = readFileSync(path, 'utf8');
    cache.set(path, text);
  }
  return text;
}

/** JSON safe inside <script>: no "</script>" or "<!--" can end the element early. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page: `page` names the client script (run-page or bench-page); `live` makes it follow
 * the server's /events stream (the dashboard) instead of showing the inline data only.
 */
export function renderPage(options: {
  title: string;
  page: 'run-page' | 'bench-page';
  data: unknown;
  live?: boolean;
}): string {
  const css = asset(join(uplotDir, 'uPlot.min.css'));
  const uplot = asset(join(uplotDir, 'uPlot.iife.min.js'));
  const common = asset(join(clientDir, 'common.js'));
  const script = asset(join(clientDir, `${options.page}.js`));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'">
<title>${escapeHtml(options.title)}</title>
<style>${css}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<div id="app"></div>
<script id="data" type="application/json">${scriptJson(options.data)}</script>
<script id="mode" type="application/json">${scriptJson({ live: options.live === true })}</script>
<script>${uplot}</script>
<script>${common}</script>
<script>${script}</script>
</body>
</html>
`;
}

const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 12px 20px; }
header h1 { font-size: 18px; margin: 0 0 4px; }
header .status { opacity: .85; }
header .live { float: right; font-size: 12px; padding: 2px 8px; border-radius: 8px; background: #2e7d32; }
main { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; padding: 16px 20px; }
@media (max-width: 1100px) { main { grid-template-columns: minmax(0, 1fr); } }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 12px 14px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
section h2 { font-size: 15px; margin: 0 0 8px; }
.note { color: #5b6475; font-size: 12px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 8px; border-bottom: 1px solid #eceff3; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.tree svg text { font-size: 12px; cursor: pointer; }
.tree .node { cursor: pointer; }
.tree .node.selected rect { stroke: #d84315; stroke-width: 2.5; }
pre.diff { background: #fafbfc; border: 1px solid #e3e6ea; padding: 8px; overflow: auto; max-height: 420px; font-size: 12px; }
pre.diff span { display: block; white-space: pre; }
pre.diff .add { color: #1b5e20; background: #e8f5e9; display: block; }
pre.diff .del { color: #b71c1c; background: #ffebee; display: block; }
pre.diff .hunk { color: #6a1b9a; display: block; }
.grids { display: flex; flex-wrap: wrap; gap: 12px; }
.bad { color: #b71c1c; }
.good { color: #1b5e20; }
.muted { color: #7b8494; }
.chart { min-height: 40px; }
svg.bars text { font-size: 11px; fill: #3c4555; }
`;
