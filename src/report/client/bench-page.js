// The benchmark page: time vs next-window balancedness per trace, per-window balancedness per
// balancer, and the table. Data: the BenchReport of `adrs bench` (src/benchmark/bench-types.ts), in
// snake_case (bench-html.ts converts a file from before that convention).

const { PALETTE, el, fmt, section, note, table, plot, startPage } = window.adrsUi;

function renderBench(app, d) {
  const c = d.config;
  app.append(
    el(
      'header',
      {},
      el('h1', { text: `adrs bench on ${d.device}` }),
      el('div', {
        class: 'status',
        text: `${d.date} · ${c.replicas} slots on ${c.gpus} GPUs / ${c.nodes} nodes · timing over ${c.repeat} calls · ${d.command}`,
      }),
    ),
  );
  const main = el('main');
  app.append(main);
  const traces = [...new Set(d.rows.map((r) => r.trace))];
  const balancers = [...new Set(d.rows.map((r) => r.balancer))];
  const colour = new Map(balancers.map((b, i) => [b, PALETTE[i % PALETTE.length]]));

  // ---------------------------------------------------------------- time vs balancedness, per trace
  traces.forEach((trace, t) => {
    const rows = d.rows.filter(
      (r) => r.trace === trace && Number.isFinite(r.time.median_ms) && r.time.median_ms > 0,
    );
    const s = section(`${trace}: time against balancedness`, false);
    main.append(s);
    const xs = [...new Set(rows.map((r) => r.time.median_ms))].sort((a, b) => a - b);
    const names = [...new Set(rows.map((r) => r.balancer))];
    const ys = names.map((b) => {
      const col = new Array(xs.length).fill(null);
      for (const r of rows.filter((x) => x.balancer === b))
        col[xs.indexOf(r.time.median_ms)] = r.balancedness_next ?? r.balancedness_same;
      return col;
    });
    plot(s, `chart-scatter-${t}`, {
      xLabel: 'median time per call, ms (log)',
      yLabel: 'GPU balancedness',
      xLog: true,
      data: [xs, ...ys],
      series: names.map((b) => ({ label: b, points: true, size: 11, color: colour.get(b) })),
    });
    const single = rows.some((r) => r.balancedness_next === null);
    s.append(
      note(
        single
          ? 'Single-snapshot trace: balancedness on the same window (there is no next window).'
          : 'Balancedness of the placement from window k on window k+1, over every k (up and left is better).',
      ),
    );
  });

  // ---------------------------------------------------------------- per-window lines, per balancer
  const row = section(
    'Balancedness window by window, per balancer (placed on window k, scored on k+1)',
    true,
  );
  main.append(row);
  const strip = el('div', { class: 'grids' });
  row.append(strip);
  let drawn = 0;
  for (const b of balancers) {
    const rows = d.rows.filter(
      (r) => r.balancer === b && Array.isArray(r.per_window_next) && r.per_window_next.length > 1,
    );
    if (!rows.length) continue;
    const n = Math.max(...rows.map((r) => r.per_window_next.length));
    const cell = el('div', { style: 'width: 380px' }, el('h2', { text: b }));
    strip.append(cell);
    plot(cell, `chart-windows-${drawn++}`, {
      xLabel: 'window k',
      xInt: true,
      yLabel: 'balancedness',
      height: 200,
      data: [
        Array.from({ length: n }, (_, k) => k),
        ...rows.map((r) => Array.from({ length: n }, (_, k) => r.per_window_next[k] ?? null)),
      ],
      series: rows.map((r, i) => ({ label: r.trace, color: PALETTE[(i + 3) % PALETTE.length] })),
    });
  }
  if (!drawn)
    row.append(
      note(
        'No per-window values in this report (single-snapshot traces only, or a report from before they were recorded).',
      ),
    );

  // ---------------------------------------------------------------- the table
  const tab = section('The table', true);
  main.append(tab);
  const ms = (v) =>
    !Number.isFinite(v) ? '—' : v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
  tab.append(
    table(
      [
        'trace',
        'balancer',
        'median ms',
        'p95 ms',
        'GPU ms',
        'bal. same',
        'bal. next',
        'ADRS score',
        'MoE time vs none',
        'rebalance share',
      ],
      d.rows.map((r) => [
        r.trace,
        r.balancer + (r.runs_on === 'gpu' ? ' (gpu)' : ''),
        ms(r.time.median_ms),
        ms(r.time.p95_ms),
        r.gpu_time ? ms(r.gpu_time.median_ms) : '—',
        fmt(r.balancedness_same),
        fmt(r.balancedness_next),
        fmt(r.adrs_score, 2),
        Number.isFinite(r.moe_vs_none) ? `${(100 * r.moe_vs_none).toFixed(1)} %` : '—',
        Number.isFinite(r.rebalance_share) ? `${(100 * r.rebalance_share).toPrecision(2)} %` : '—',
      ]),
    ),
  );
}

startPage(renderBench);
