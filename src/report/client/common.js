// Shared browser helpers of the report pages (plain JS, inlined into each page; uPlot is global).
// Every chart registers itself in window.__adrs.charts with how many points it drew, so a test
// (and a reader of the console) can tell an empty chart from a drawn one.
(() => {
  window.__adrs = { renders: 0, charts: [], errors: [] };

  const PALETTE = [
    '#1565c0',
    '#d84315',
    '#2e7d32',
    '#6a1b9a',
    '#ef6c00',
    '#00838f',
    '#ad1457',
    '#4e342e',
    '#546e7a',
  ];
  const SVGNS = 'http://www.w3.org/2000/svg';

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function fmt(x, digits = 4) {
    return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
  }

  function section(title, wide, ...children) {
    return el('section', { class: wide ? 'wide' : null }, el('h2', { text: title }), ...children);
  }

  function note(text) {
    return el('p', { class: 'note', text });
  }

  function table(head, rows) {
    return el(
      'table',
      { class: 'data' },
      el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', { text: String(c) }))))),
    );
  }

  function register(id, kind, points) {
    window.__adrs.charts.push({ id, kind, points });
  }

  function chartWidth(container) {
    // The content box: the grid tracks exist from the start, so this is the final width.
    const style = getComputedStyle(container);
    const inner = container.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return Math.max(300, Math.min(1400, (inner || 560) - 2));
  }

  /**
   * A uPlot chart in `container`: data is uPlot's aligned form [xs, ys1, ys2, …]; series styles
   * by name; `points` marks a series as a scatter (no line). Null values are gaps.
   */
  function plot(container, id, o) {
    const holder = el('div', { class: 'chart', id });
    container.append(holder);
    const series = [{ label: o.xLabel }];
    o.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: color,
        width: s.points ? 0 : 2,
        paths: s.points ? () => null : s.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
        fill: s.bars ? `${color}99` : undefined,
        spanGaps: s.spanGaps === true,
        points: s.points
          ? { show: true, size: s.size || 7, fill: s.fill || color, stroke: color }
          : { show: !!s.marks },
      });
    });
    const drawn = o.data
      .slice(1)
      .reduce((n, ys) => n + ys.filter((v) => v !== null && v !== undefined).length, 0);
    const opts = {
      width: chartWidth(container),
      height: o.height || 260,
      scales: {
        x: o.xLog ? { time: false, distr: 3 } : { time: false, ...(o.xRange ? { range: o.xRange } : {}) },
        y: o.yRange ? { range: o.yRange } : {},
      },
      // Integer axes (iterations, windows, layers) get integer ticks only.
      axes: [
        o.xInt
          ? { label: o.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] }
          : { label: o.xLabel },
        { label: o.yLabel, size: 60 },
      ],
      series,
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
    };
    const chart = new uPlot(opts, o.data, holder);
    register(id, 'uplot', drawn);
    return chart;
  }

  /**
   * Grouped bars as SVG (uPlot's bars overlap when series share an x): one group per category,
   * one bar per series, a value axis from 0.
   */
  function bars(container, id, o) {
    const width = chartWidth(container);
    const height = o.height || 240;
    const left = 56;
    const bottom = 34;
    const top = 10;
    const n = o.categories.length;
    const k = o.series.length;
    const max = Math.max(1e-12, ...o.series.flatMap((s) => s.values));
    const plotW = width - left - 10;
    const plotH = height - top - bottom;
    const group = plotW / Math.max(1, n);
    const bar = Math.max(1, (group * 0.8) / k);
    const root = svg('svg', { width, height, class: 'bars' });
    for (let t = 0; t <= 4; t++) {
      const v = (max * t) / 4;
      const y = top + plotH - (plotH * t) / 4;
      root.append(svg('line', { x1: left, x2: width - 10, y1: y, y2: y, stroke: '#e3e6ea' }));
      root.append(svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end' }, v.toPrecision(3)));
    }
    let drawn = 0;
    o.series.forEach((s, j) => {
      s.values.forEach((v, i) => {
        const h = (plotH * v) / max;
        const r = svg('rect', {
          x: left + i * group + group * 0.1 + j * bar,
          y: top + plotH - h,
          width: Math.max(1, bar - 1),
          height: Math.max(0, h),
          fill: s.color,
        });
        r.append(svg('title', {}, `${s.label}, ${o.xLabel} ${o.categories[i]}: ${fmt(v, 3)}`));
        root.append(r);
        if (v > 0) drawn++;
      });
    });
    const every = Math.max(1, Math.ceil(n / 32));
    o.categories.forEach((c, i) => {
      if (i % every === 0)
        root.append(
          svg(
            'text',
            { x: left + (i + 0.5) * group, y: height - bottom + 14, 'text-anchor': 'middle' },
            String(c),
          ),
        );
    });
    root.append(svg('text', { x: left + plotW / 2, y: height - 4, 'text-anchor': 'middle' }, o.xLabel));
    root.append(
      svg(
        'text',
        {
          x: 12,
          y: top + plotH / 2,
          transform: `rotate(-90 12 ${top + plotH / 2})`,
          'text-anchor': 'middle',
        },
        o.yLabel,
      ),
    );
    const legend = el(
      'div',
      { class: 'note' },
      ...o.series.map((s) =>
        el('span', { style: `color:${s.color};margin-right:14px`, text: `■ ${s.label}` }),
      ),
    );
    const holder = el('div', { class: 'chart', id }, root, legend);
    container.append(holder);
    register(id, 'svg', drawn);
  }

  /** A unified diff with added, removed and hunk lines coloured. */
  function diffView(text) {
    const pre = el('pre', { class: 'diff' });
    for (const line of text.split('\n')) {
      const cls = line.startsWith('@@')
        ? 'hunk'
        : line.startsWith('+') && !line.startsWith('+++')
          ? 'add'
          : line.startsWith('-') && !line.startsWith('---')
            ? 'del'
            : null;
      // One block per line (every diff line starts with a marker, so none is empty).
      pre.append(el('span', { class: cls ?? 'ctx', text: line }));
    }
    return pre;
  }

  /** Tells a test driving the page (playwright's exposeFunction) what happened; nothing otherwise. */
  function hook(event, detail) {
    if (typeof window.__adrsHook === 'function') window.__adrsHook(event, detail);
  }

  /** The page's data: inline in the file; the live dashboard also streams fresh data over /events. */
  function startPage(render) {
    const data = JSON.parse(document.getElementById('data').textContent);
    const mode = JSON.parse(document.getElementById('mode').textContent);
    const draw = (d) => {
      window.__adrs.charts = [];
      const app = document.getElementById('app');
      app.replaceChildren();
      render(app, d, mode);
      window.__adrs.renders++;
      hook('render', window.__adrs.renders);
    };
    draw(data);
    if (mode.live && typeof EventSource === 'function') {
      const source = new EventSource('events');
      source.addEventListener('data', (e) => draw(JSON.parse(e.data)));
      source.addEventListener('open', () => {
        window.__adrs.connected = true;
        hook('connected', 1);
      });
    }
  }

  // The page scripts take these from here (each page is a separate inline script).
  window.adrsUi = { PALETTE, el, svg, fmt, section, note, table, register, plot, bars, diffView, startPage };
})();
