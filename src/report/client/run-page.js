// The evolution run page: curve, evaluations, MAP-Elites grids, lineage tree with diffs, best vs
// seed, held-out comparison, accounting, placement loads. Data: RunPageData (src/report/run-page-data.ts).

const { PALETTE, el, svg, fmt, section, note, table, register, plot, bars, diffView, startPage } =
  window.adrsUi;

/** The lineage step whose diff is open (kept across live redraws). */
let shownStep = null;

function renderRun(app, d, mode) {
  app.append(
    el(
      'header',
      {},
      mode.live ? el('span', { class: 'live', id: 'live', text: 'live' }) : null,
      el('h1', { text: d.title }),
      el('div', { class: 'status', id: 'status', text: d.status }),
      el('div', { class: 'status', text: d.summary.join(' · ') }),
    ),
  );
  const main = el('main');
  app.append(main);

  // ---------------------------------------------------------------- best score over iterations
  const curve = section('Best score over iterations', false);
  main.append(curve);
  const hasHeld = d.curve.heldout.some((v) => v !== null);
  plot(curve, 'chart-curve', {
    xLabel: 'iteration',
    xInt: true,
    yLabel: 'score',
    data: [d.curve.iteration, d.curve.best, ...(hasHeld ? [d.curve.heldout, d.curve.heldoutSeed] : [])],
    series: [
      { label: 'best (training)', spanGaps: true },
      ...(hasHeld
        ? [
            { label: 'best, held-out', points: true, size: 10, color: '#d84315' },
            { label: 'seed, held-out', points: true, size: 10, color: '#7b8494' },
          ]
        : []),
    ],
  });
  curve.append(
    note(
      hasHeld
        ? 'Held-out scores are taken when a session stops, so they appear as points at that iteration.'
        : 'No held-out scores recorded yet (taken when a session stops with a held-out trace).',
    ),
  );

  // ---------------------------------------------------------------- every evaluation
  const evs = section('Every evaluation', false);
  main.append(evs);
  const xs = [...new Set(d.evaluations.map((p) => p.iteration))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const valid = d.evaluations.filter((p) => p.valid && p.score !== null);
  const lo = valid.length ? Math.min(...valid.map((p) => p.score)) : 0;
  const hi = valid.length ? Math.max(...valid.map((p) => p.score)) : 1;
  const floor = lo - Math.max(0.05 * (hi - lo), 0.5);
  const groups = new Map();
  for (const p of d.evaluations) {
    const key = p.valid ? `${p.mutation} · ${p.model}` : 'invalid';
    if (!groups.has(key)) groups.set(key, new Array(xs.length).fill(null));
    groups.get(key)[at.get(p.iteration)] = p.valid ? p.score : floor;
  }
  const keys = [...groups.keys()].sort((a, b) => (a === 'invalid') - (b === 'invalid') || a.localeCompare(b));
  plot(evs, 'chart-evaluations', {
    xLabel: 'iteration',
    xInt: true,
    yLabel: 'score',
    data: [xs, ...keys.map((k) => groups.get(k))],
    series: keys.map((k, i) =>
      k === 'invalid'
        ? { label: 'invalid (drawn below the lowest score)', points: true, color: '#b71c1c', fill: '#fff' }
        : { label: k, points: true, color: PALETTE[i % PALETTE.length] },
    ),
  });
  const failures = {};
  for (const p of d.evaluations)
    if (!p.valid) failures[p.failure || 'unknown'] = (failures[p.failure || 'unknown'] || 0) + 1;
  evs.append(
    note(
      `${d.evaluations.length} programs evaluated; colour: mutation · model.` +
        (Object.keys(failures).length
          ? ` Invalid by class: ${Object.entries(failures)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}.`
          : ''),
    ),
  );

  // ---------------------------------------------------------------- MAP-Elites grids
  const grids = section('MAP-Elites grid of each island', true);
  main.append(grids);
  if (!d.islands.length) grids.append(note('No checkpoint yet: the grids appear after the first commit.'));
  const box = el('div', { class: 'grids' });
  grids.append(box);
  const scores = d.islands.flatMap((g) => g.cells.map((c) => c.score)).filter((s) => s !== null);
  const smin = scores.length ? Math.min(...scores) : 0;
  const smax = scores.length ? Math.max(...scores) : 1;
  for (const g of d.islands) box.append(heatmap(g, smin, smax));
  if (d.islands.length)
    grids.append(
      note(
        `Each cell holds its best program; colour from ${fmt(smin)} (light) to ${fmt(smax)} (dark). Hover a cell for its program.`,
      ),
    );

  // ---------------------------------------------------------------- lineage
  const lin = section(
    `Lineage of the best program (${d.lineage.length ? d.lineage[d.lineage.length - 1].id : '—'})`,
    true,
  );
  main.append(lin);
  const diffBox = el('div', { id: 'diff' }, note('Click a program to see its change from its parent.'));
  lin.append(lineageTree(d.lineage, diffBox), diffBox);

  // ---------------------------------------------------------------- best vs seed
  const bvs = section('Best vs seed, per metric', false);
  main.append(bvs);
  bvs.append(
    table(
      ['metric', 'seed', 'best', 'best − seed'],
      d.bestVsSeed.map((m) => [
        m.metric,
        fmt(m.seed),
        fmt(m.best),
        m.seed === null || m.best === null ? '—' : fmt(m.best - m.seed),
      ]),
    ),
  );
  const verdicts = (c, label) => {
    const row = (x, digits, unit) => [
      x.metric,
      fmt(x.seed, digits),
      fmt(x.best, digits),
      x.delta === null ? '—' : `${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(digits)}${unit}`,
      c.same_program
        ? 'same program: noise'
        : x.verdict === 'noise'
          ? `within noise (±${fmt(x.noise, digits)}${unit})`
          : x.verdict === 'unknown'
            ? 'noise not measured'
            : `${x.verdict} (noise ±${fmt(x.noise, digits)}${unit})`,
    ];
    bvs.append(el('h2', { text: `${label}: quality and time, separately` }));
    bvs.append(
      table(
        [label, 'seed', 'best', 'best − seed', 'verdict'],
        [row(c.quality, 4, ''), row(c.time, 3, ' ms')],
      ),
    );
  };
  if (d.trainComparison && !d.trainComparison.same_program) verdicts(d.trainComparison, 'Training');
  if (d.trainComparison?.same_program) bvs.append(note('The best is the seed: no gain.'));
  if (d.heldout) {
    verdicts(d.heldout.comparison, 'Held-out');
    if (d.heldout.stale)
      bvs.append(note(`These held-out scores are of ${d.heldout.for_best}, the best when they were taken.`));
  }
  bvs.append(
    note(
      'Noise: quality, how far a program’s balancedness moves under relabelling; time, the spread (p95 − median) of its calls.',
    ),
  );

  // ---------------------------------------------------------------- accounting
  const acc = section('Accounting', false);
  main.append(acc);
  const a = d.accounting;
  const money = (m, name) => [
    name,
    m.calls,
    m.prompt_tokens,
    m.completion_tokens,
    `$${m.cost_usd.toFixed(4)}`,
    m.http_retries,
    m.failed_calls,
    m.mean_latency_ms === null ? '—' : m.mean_latency_ms.toFixed(0),
    m.mean_queued_ms === null ? '—' : m.mean_queued_ms.toFixed(0),
  ];
  acc.append(
    table(
      [
        'model',
        'calls',
        'tokens in',
        'tokens out',
        'cost',
        'retries',
        'failed',
        'model ms/call',
        'queued ms/call',
      ],
      [...a.models.map((m) => money(m, m.model)), money(a.total, 'total')],
    ),
  );
  acc.append(
    note(
      'model ms/call: from the request to the answer, retries included; queued: waiting for a free llm.concurrency slot before it.',
    ),
  );
  const refusals = Object.entries(d.refusalsByClass);
  acc.append(
    table(
      ['edits', 'count'],
      [
        ['answers', a.patches.answers],
        ['applied', a.patches.applied],
        ...refusals.map(([k, v]) => [`refused: ${k}`, v]),
        ['duplicates skipped', a.duplicates],
        ['evaluator errors retried', a.evaluator_errors.retried],
      ],
    ),
  );

  // ---------------------------------------------------------------- placement
  const pl = section('GPU loads of the best placement vs the seed', true);
  main.append(pl);
  if (!d.placement) {
    pl.append(note(d.placementNote));
    register('chart-placement', 'none', 0);
  } else {
    pl.append(note(d.placementNote));
    const layers = d.placement.layers;
    const select = el(
      'select',
      { id: 'layer' },
      ...layers.map((l) => el('option', { value: String(l.layer), text: `layer ${l.layer}` })),
    );
    const holder = el('div');
    const draw = () => {
      holder.replaceChildren();
      window.__adrs.charts = window.__adrs.charts.filter((c) => c.id !== 'chart-placement');
      const l = layers[Number(select.value)];
      const gpus = l.best.map((_, g) => g);
      bars(holder, 'chart-placement', {
        xLabel: 'GPU',
        yLabel: `load on layer ${l.layer}`,
        categories: gpus,
        series: [
          { label: `seed (balancedness ${fmt(l.seedBalancedness)})`, color: '#9aa3b2', values: l.seed },
          { label: `best (balancedness ${fmt(l.bestBalancedness)})`, color: '#1565c0', values: l.best },
        ],
      });
    };
    select.addEventListener('change', draw);
    pl.append(select, holder);
    draw();
    plot(pl, 'chart-placement-layers', {
      xLabel: 'layer',
      xInt: true,
      yLabel: 'GPU balancedness',
      data: [
        layers.map((l) => l.layer),
        layers.map((l) => l.seedBalancedness),
        layers.map((l) => l.bestBalancedness),
      ],
      series: [
        { label: 'seed', color: '#7b8494', marks: true },
        { label: 'best', color: '#1565c0', marks: true },
      ],
    });
  }

  // ---------------------------------------------------------------- consistency
  const con = section('Files', true);
  main.append(con);
  if (!d.disagreements.length) con.append(note('The run folder’s files agree with events.jsonl.'));
  for (const x of d.disagreements) con.append(el('p', { class: 'bad', text: x }));
  for (const x of d.notes) con.append(note(x));
}

/** One island's grid as SVG: a cell per bin pair, coloured by its elite's score. */
function heatmap(g, smin, smax) {
  const nx = g.x.bins;
  const ny = g.y ? g.y.bins : 1;
  const size = Math.max(14, Math.min(34, Math.floor(300 / Math.max(nx, ny))));
  const W = nx * size + 50;
  const H = ny * size + 46;
  const root = svg('svg', { width: W, height: H, class: 'heatmap', 'data-island': g.island });
  root.append(
    svg(
      'text',
      { x: 4, y: 12, 'font-size': 12 },
      `island ${g.island} · ${g.cells.length} of ${nx * ny} cells`,
    ),
  );
  for (let x = 0; x < nx; x++)
    for (let y = 0; y < ny; y++)
      root.append(
        svg('rect', {
          x: 40 + x * size,
          y: 18 + (ny - 1 - y) * size,
          width: size - 1,
          height: size - 1,
          fill: '#eef0f3',
        }),
      );
  for (const c of g.cells) {
    const t = c.score === null || smax === smin ? 1 : (c.score - smin) / (smax - smin);
    const light = Math.round(88 - 58 * t);
    const r = svg('rect', {
      x: 40 + c.x * size,
      y: 18 + (ny - 1 - c.y) * size,
      width: size - 1,
      height: size - 1,
      fill: `hsl(212, 70%, ${light}%)`,
      class: 'cell',
    });
    r.append(svg('title', {}, `${c.id}: score ${fmt(c.score)} (bin ${c.x}${g.y ? `, ${c.y}` : ''})`));
    root.append(r);
  }
  root.append(svg('text', { x: 40, y: H - 14, 'font-size': 11 }, `→ ${g.x.metric}`));
  if (g.y) root.append(svg('text', { x: 2, y: 30, 'font-size': 11 }, `↑ ${g.y.metric}`));
  register(`heatmap-${g.island}`, 'svg', g.cells.length);
  return root;
}

/** The best program's ancestry as a tree: the main line left to right, crossover mates below it. */
function lineageTree(steps, diffBox) {
  const w = 118;
  const h = 44;
  const mates = steps.filter((s) => s.mate);
  const W = Math.max(1, steps.length) * w + 20;
  const H = mates.length ? 2 * h + 60 : h + 30;
  const root = svg('svg', { width: W, height: H });
  const holder = el('div', { class: 'tree', id: 'lineage' }, root);
  let selected = null;
  const show = (s, g) => {
    if (selected) selected.classList.remove('selected');
    selected = g;
    g.classList.add('selected');
    diffBox.replaceChildren(
      el('h2', {
        text: `${s.id} (iteration ${s.iteration}, ${s.mutation}${s.model ? `, ${s.model}` : ''}): score ${fmt(s.score)}${s.delta !== null ? ` (${s.delta >= 0 ? '+' : ''}${s.delta.toFixed(4)} over ${s.parent})` : ''}`,
      }),
      s.parent === null
        ? note('The seed: the program evolution started from.')
        : s.diff === null
          ? note('The program files of this step are missing from programs/.')
          : s.diff === ''
            ? note('No textual change from the parent.')
            : diffView(s.diff),
    );
    diffBox.setAttribute('data-shown', s.id);
    shownStep = s.id;
  };
  steps.forEach((s, i) => {
    const x = 10 + i * w;
    if (i > 0)
      root.append(
        svg('line', {
          x1: x - w + 100,
          y1: 10 + h / 2,
          x2: x,
          y2: 10 + h / 2,
          stroke: '#90a4ae',
          'stroke-width': 2,
        }),
      );
    const g = svg('g', { class: 'node', 'data-id': s.id, transform: `translate(${x},10)` });
    g.append(
      svg('rect', {
        width: 100,
        height: h,
        rx: 6,
        fill: s.delta !== null && s.delta > 0 ? '#e3f2fd' : '#f5f5f5',
        stroke: '#1565c0',
      }),
      svg('text', { x: 8, y: 17 }, `${s.id} · ${s.mutation}`),
      svg(
        'text',
        { x: 8, y: 34 },
        `${fmt(s.score, 2)}${s.delta !== null ? ` (${s.delta >= 0 ? '+' : ''}${s.delta.toFixed(2)})` : ''}`,
      ),
    );
    g.addEventListener('click', () => show(s, g));
    // The live page redraws on every update: keep the step the reader opened.
    if (s.id === shownStep) show(s, g);
    root.append(g);
    if (s.mate) {
      root.append(
        svg('line', {
          x1: x + 50,
          y1: 10 + h,
          x2: x + 50,
          y2: 40 + h,
          stroke: '#90a4ae',
          'stroke-dasharray': '4 3',
        }),
      );
      const m = svg('g', { transform: `translate(${x},${40 + h})` });
      m.append(
        svg('rect', { width: 100, height: 28, rx: 6, fill: '#fff', stroke: '#90a4ae' }),
        svg('text', { x: 8, y: 18 }, `mate ${s.mate}`),
      );
      root.append(m);
    }
  });
  register('lineage', 'svg', steps.length);
  return holder;
}

startPage(renderRun);
