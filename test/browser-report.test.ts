import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBenchReport } from '../src/benchmark/bench-read.js';
import { buildRunReport } from '../src/evolve/report.js';
import { readRunFiles } from '../src/evolve/report-read.js';
import { benchHtml } from '../src/report/bench-html.js';
import { runHtml } from '../src/report/run-html.js';
import { buildRunPageData } from '../src/report/run-page-data.js';
import { serveRun } from '../src/report/serve.js';
import { makeReportRun, type ReportRun } from './helpers/report-run.js';

/**
 * The report pages in a real browser: Debian's chromium, driven headless by playwright-core.
 * CI installs chromium (.ci/run), so there a missing browser fails; elsewhere the file is skipped
 * with the reason. ADRS_SCREENSHOT_DIR=bench/results keeps a screenshot of each page.
 */
const CHROMIUM = process.env.ADRS_CHROMIUM ?? '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present && process.env.CI === 'true')
  throw new Error(
    `${CHROMIUM} is missing: CI must install Debian's chromium (.ci/run) to run the browser tests`,
  );
const shots = process.env.ADRS_SCREENSHOT_DIR;

let browser: BrowserContext;
let run: ReportRun;
let work: string;

beforeAll(async () => {
  if (!present) return;
  run = await makeReportRun();
  work = join(run.base, 'browser');
  mkdirSync(work);
  // A fresh profile folder per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 1000 },
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (run) rmSync(run.base, { recursive: true, force: true });
});

/** A promise with its resolve outside, for page events. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A page whose console errors, page errors and failed requests are collected, with the page's hook events as deferreds. */
async function openPage(url: string) {
  const page = await browser.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => requests.push(r.url()));
  const waiting: { event: string; until: (detail: number) => boolean; done: (d: number) => void }[] = [];
  await page.exposeFunction('__adrsHook', (event: string, detail: number) => {
    for (const w of [...waiting])
      if (w.event === event && w.until(detail)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.done(detail);
      }
  });
  /** Resolves when the page reports `event` with a detail that satisfies `until`. */
  const when = (event: string, until: (detail: number) => boolean = () => true) => {
    const d = deferred<number>();
    waiting.push({ event, until, done: d.resolve });
    return d.promise;
  };
  const rendered = when('render');
  // Registered before the page loads: a live page may connect before the test looks.
  const connected = when('connected');
  await page.goto(url);
  await rendered;
  return { page, errors, requests, when, connected };
}

/** Every chart the page registered drew something: points counted by the page, pixels checked in its canvases. */
async function expectChartsDrawn(page: Page, expected: string[]) {
  const charts = await page.evaluate(
    () => (globalThis as never as { __adrs: { charts: { id: string; points: number }[] } }).__adrs.charts,
  );
  expect(charts.map((c) => c.id).sort()).toEqual([...expected].sort());
  for (const c of charts) expect(c.points, c.id).toBeGreaterThan(0);
  // uPlot draws on canvas: each chart's canvas must hold pixels of its series' colours.
  const inked = (await page.evaluate(`[...document.querySelectorAll('.chart')].map((holder) => {
    const canvas = holder.querySelector('canvas');
    if (!canvas) {
      // An SVG chart (grouped bars): its bars with a height.
      const drawn = [...holder.querySelectorAll('svg rect')].filter((r) => Number(r.getAttribute('height')) > 0);
      return { id: holder.id, inked: drawn.length > 0 ? 1000 : 0 };
    }
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    // Series colours are saturated; axes, grid and text are grey: count only coloured, opaque pixels.
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], g = data[i + 1], b = data[i + 2], a = data[i + 3];
      if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
    }
    return { id: holder.id, inked: n };
  })`)) as { id: string; inked: number }[];
  for (const c of inked) expect(c.inked, c.id).toBeGreaterThan(20);
}

describe.skipIf(!present)(
  `report pages in chromium (${CHROMIUM}${present ? '' : ' missing: skipped outside CI'})`,
  () => {
    it('the run report: no console error, every chart drawn, a lineage click shows that step’s diff', async () => {
      const files = readRunFiles(run.dir);
      const data = buildRunPageData(files, buildRunReport(files));
      const file = join(work, 'run.html');
      writeFileSync(file, runHtml(data));
      const { page, errors, requests } = await openPage(pathToFileURL(file).href);
      expect(errors).toEqual([]);
      // Self-contained: the only request is the file itself.
      expect(requests).toEqual([pathToFileURL(file).href]);
      await expectChartsDrawn(page, [
        'chart-curve',
        'chart-evaluations',
        'heatmap-0',
        'heatmap-1',
        'lineage',
        'chart-placement',
        'chart-placement-layers',
      ]);
      // The heatmaps hold one SVG cell per elite.
      for (const g of data.islands)
        expect(await page.locator(`svg[data-island="${g.island}"] rect.cell`).count()).toBe(g.cells.length);
      // Click the last lineage step: its own diff appears.
      const step = data.lineage.at(-1)!;
      await page.click(`.node[data-id="${step.id}"]`);
      expect(await page.getAttribute('#diff', 'data-shown')).toBe(step.id);
      const shown = await page.locator('#diff pre.diff').innerText();
      expect(shown.trim()).toBe(step.diff!.trim());
      expect(await page.locator('#diff pre.diff span.add').count()).toBeGreaterThan(0);
      // Another step: the view follows.
      const first = data.lineage[1]!;
      await page.click(`.node[data-id="${first.id}"]`);
      expect((await page.locator('#diff pre.diff').innerText()).trim()).toBe(first.diff!.trim());
      expect(errors).toEqual([]);
      if (shots) await page.screenshot({ path: join(shots, 'report-run.png'), fullPage: true });
      await page.close();
    }, 120_000);

    it('the live dashboard follows events.jsonl as it grows', async () => {
      // A copy of the run cut after its 6th commit, as if it were still running.
      const live = join(work, 'live');
      cpSync(run.dir, live, { recursive: true });
      const lines = readFileSync(join(run.dir, 'events.jsonl'), 'utf8').trim().split('\n');
      const commitAt = lines.flatMap((l, i) => (JSON.parse(l).type === 'commit' ? [i] : []));
      const cut = commitAt[6]! + 1;
      writeFileSync(join(live, 'events.jsonl'), `${lines.slice(0, cut).join('\n')}\n`);
      rmSync(join(live, 'summary.json'));
      // A long poll interval: the test pushes with refresh(), so nothing depends on timing.
      const dash = await serveRun(live, { pollMs: 3_600_000 });
      try {
        const { page, errors, when, connected } = await openPage(dash.url);
        await connected;
        const points = async () =>
          page.evaluate(
            () =>
              (
                globalThis as never as { __adrs: { charts: { id: string; points: number }[] } }
              ).__adrs.charts.find((c) => c.id === 'chart-curve')!.points,
          );
        expect(await points()).toBe(7);
        // Open a lineage step (the seed: in every lineage): the redraws below keep it open.
        const opened = 'p0';
        await page.click('.node[data-id="p0"]');
        expect(await page.getAttribute('#diff', 'data-shown')).toBe(opened);
        expect(await page.innerText('#status')).toMatch(/running, or killed/);
        // Append the events up to the next commit: the page redraws with one more iteration.
        const next = commitAt[7]! + 1;
        const redrawn = when('render', (n) => n >= 2);
        appendFileSync(join(live, 'events.jsonl'), `${lines.slice(cut, next).join('\n')}\n`);
        dash.refresh();
        await redrawn;
        expect(await points()).toBe(8);
        // And the rest, with the stop event: the status says finished.
        const finished = when('render', (n) => n >= 3);
        appendFileSync(join(live, 'events.jsonl'), `${lines.slice(next).join('\n')}\n`);
        dash.refresh();
        await finished;
        expect(await page.innerText('#status')).toMatch(/^finished: iterations/);
        expect(await page.getAttribute('#diff', 'data-shown')).toBe(opened);
        expect(errors).toEqual([]);
        if (shots) await page.screenshot({ path: join(shots, 'report-live.png'), fullPage: true });
        await page.close();
      } finally {
        await dash.close();
      }
    }, 120_000);

    it('the bench page: no console error, a scatter per trace, per-window lines per balancer, the table', async () => {
      // A report written before bench's keys became snake_case: the page reads it converted.
      const report = readBenchReport(
        JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'bench-report.json'), 'utf8')),
      );
      const file = join(work, 'bench.html');
      writeFileSync(file, benchHtml(report));
      const { page, errors, requests } = await openPage(pathToFileURL(file).href);
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(file).href]);
      const traces = [...new Set(report.rows.map((r) => r.trace))];
      const withWindows = [
        ...new Set(report.rows.filter((r) => (r.per_window_next?.length ?? 0) > 1).map((r) => r.balancer)),
      ];
      expect(withWindows.length).toBeGreaterThan(0);
      await expectChartsDrawn(page, [
        ...traces.map((_, t) => `chart-scatter-${t}`),
        ...withWindows.map((_, i) => `chart-windows-${i}`),
      ]);
      expect(await page.locator('table.data tbody tr').count()).toBe(report.rows.length);
      if (shots) await page.screenshot({ path: join(shots, 'report-bench.png'), fullPage: true });
      await page.close();
    }, 120_000);
  },
);
