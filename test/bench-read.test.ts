import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBenchReport } from '../src/benchmark/bench-read.js';
import type { BenchReport } from '../src/benchmark/bench-types.js';
import { benchHtml } from '../src/report/bench-html.js';
import { UserError } from '../src/util/errors.js';

const root = join(import.meta.dirname, '..');
const read = (path: string): unknown => JSON.parse(readFileSync(join(root, path), 'utf8'));

/** The JSON embedded in a page of renderPage. */
const pageData = (html: string): Record<string, unknown> =>
  JSON.parse(/<script id="data" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]!);

describe('bench reports on disk', () => {
  it('reads a committed report from before snake_case (camelCase keys), converted', () => {
    const old = read('bench/results/lavapipe-bench.json') as Record<string, unknown> & {
      rows: Record<string, unknown>[];
      config: Record<string, unknown>;
    };
    expect(old.rows[0]).toHaveProperty('balancednessSame');
    const r = readBenchReport(old);
    expect(r.rows).toHaveLength(old.rows.length);
    expect(r.device_software).toBe(old.deviceSoftware);
    expect(r.config.rebalance_interval).toBe(old.config.rebalanceInterval);
    r.rows.forEach((row, i) => {
      const o = old.rows[i]!;
      expect(row).toMatchObject({
        trace: o.trace,
        balancer: o.balancer,
        runs_on: o.runsOn,
        balancedness_same: o.balancednessSame,
        balancedness_next: o.balancednessNext,
        adrs_score: o.adrsScore,
        moe_vs_none: o.moeVsNone,
        time: o.time,
      });
    });
  });

  it('takes a report in the new keys as it is, and the page shows both the same way', () => {
    const old = read('test/fixtures/bench-report.json');
    const converted: BenchReport = readBenchReport(old);
    expect(readBenchReport(structuredClone(converted))).toEqual(converted);
    const page = pageData(benchHtml(old));
    expect(page).toEqual(pageData(benchHtml(converted)));
    expect(page).toMatchObject({ kind: 'bench', device: converted.device });
    expect((page.rows as Record<string, unknown>[])[0]).toHaveProperty('balancedness_same');
  });

  it('refuses what is not a bench report in one line', () => {
    expect(() => readBenchReport({ rows: 3 }, 'x.json')).toThrow(
      new UserError('x.json is not an adrs bench report (no device, config or rows)'),
    );
    expect(() => benchHtml([])).toThrow(UserError);
  });
});
