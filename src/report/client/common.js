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
      {},
      el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', { text: String(c) }))))),
    );
  }

  function register(id, kind, points) {
    window.__adrs.charts.push({ id, kind, points });
  }

  function chartWidth(container) {
    return Math.max(320, Math.min(1200, (container.clientWidth || 560) - 4));
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
      axes: [{ label: o.xLabel }, { label: o.yLabel, size: 60 }],
      series,
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
    };
    const chart = new uPlot(opts, o.data, holder);
    register(id, 'uplot', drawn);
    return chart;
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
      pre.append(cls ? el('span', { class: cls, text: line }) : `${line}\n`);
    }
    return pre;
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
    };
    draw(data);
    if (mode.live && typeof EventSource === 'function') {
      const source = new EventSource('events');
      source.addEventListener('data', (e) => draw(JSON.parse(e.data)));
      source.addEventListener('open', () => {
        window.__adrs.connected = true;
      });
    }
  }

  // The page scripts take these from here (each page is a separate inline script).
  window.adrsUi = { PALETTE, el, svg, fmt, section, note, table, register, plot, diffView, startPage };
})();
