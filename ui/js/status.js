// Status page: index size, model, traffic and latency over the server's stats window, rejected
// inputs, retrieval-quality figures when the server reports them, and the cluster's nodes and
// replicas when the server runs in a cluster. Refreshes while visible.
import { h, clear, fmtNumber, fmtMs, fmtDuration, errorBox } from './dom.js';
import { api, plainError } from './api.js';
import { lineChart, barChart } from './charts.js';
import * as rebuilds from './rebuilds.js';
import * as cluster from './cluster.js';

const REFRESH_MS = 5000;

let els = null;
let timer = 0;
let controller = null;

export function mount() {
  const tiles = h('div', { class: 'tiles', id: 'status-tiles' });
  const charts = h('div', { class: 'charts', id: 'status-charts' });
  const reasons = h('div', { class: 'panel', id: 'status-reasons' });
  const quality = h('section', { class: 'panel quality', id: 'status-quality', hidden: true, 'aria-labelledby': 'quality-h' });
  const collections = h('div', { class: 'panel', id: 'status-collections' });
  const updated = h('p', { class: 'muted updated', id: 'status-updated', 'aria-live': 'off' });
  const error = h('div', { id: 'status-error' });
  els = { tiles, charts, reasons, quality, collections, updated, error };
  return h('section', { id: 'page-status', 'aria-labelledby': 'status-h' },
    h('div', { class: 'page-head' }, h('h1', { id: 'status-h', tabindex: '-1', text: 'Status' }), updated),
    error, cluster.mount(), tiles, charts,
    h('div', { class: 'status-lower' }, collections, reasons),
    quality,
    rebuilds.mount(() => refresh()));
}

export function show() {
  refresh();
}

export function hide() {
  clearTimeout(timer);
  timer = 0;
  if (controller) controller.abort();
}

async function refresh() {
  clearTimeout(timer);
  if (controller) controller.abort();
  controller = new AbortController();
  // The cluster section fetches on its own: in cluster mode /v1/stats may not answer.
  const clusterDone = cluster.refresh(controller.signal).catch(() => {});
  try {
    const st = await api.stats(controller.signal);
    clear(els.error);
    render(st);
    await rebuilds.refresh(controller.signal);
    els.updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    if (err && err.code === 'not_in_cluster_mode') {
      els.error.replaceChildren(h('p', { class: 'muted', text: 'Index size, traffic and quality figures are not served in cluster mode yet; the cluster section shows the nodes and replicas.' }));
    } else {
      els.error.replaceChildren(errorBox(`Status is unavailable. ${plainError(err)}`, err.message));
    }
  }
  await clusterDone;
  if (!document.getElementById('page-status').hidden) timer = setTimeout(refresh, REFRESH_MS);
}

function tile(label, value, sub, id) {
  return h('div', { class: 'tile', id },
    h('span', { class: 'tile-label', text: label }),
    h('span', { class: 'tile-value', text: value }),
    sub ? h('span', { class: 'tile-sub', text: sub }) : null);
}

// last returns the newest value of key, skipping latency figures of intervals without traffic.
function last(arr, key) {
  for (let i = arr.length - 1; i >= 0; i--) {
    const v = arr[i][key];
    if (Number.isFinite(v) && (key === 'qps' || arr[i].qps > 0 || v > 0)) return v;
  }
  return undefined;
}

function render(st) {
  const cols = Array.isArray(st.collections) ? st.collections : [];
  const size = cols.reduce((n, c) => n + (Number(c.count) || 0), 0);
  const model = st.model || {};
  const series = (Array.isArray(st.series) ? st.series : []).filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t);
  const totals = st.totals || {};
  const byReason = totals.rejected_by_reason && typeof totals.rejected_by_reason === 'object' ? totals.rejected_by_reason : {};
  const rejected = Object.values(byReason).reduce((n, v) => n + (Number(v) || 0), 0);
  const windowMin = Math.round((st.window_s || 600) / 60);

  els.tiles.replaceChildren(
    tile('Index size', fmtNumber(size), `${cols.length} ${cols.length === 1 ? 'collection' : 'collections'}`, 'tile-size'),
    tile('Model', model.id || '—', [model.device, model.dims ? `${model.dims} dims` : ''].filter(Boolean).join(' · '), 'tile-model'),
    tile('Queries/s', fmtNumber(last(series, 'qps') ?? 0, 2), `now; last ${windowMin} min`, 'tile-qps'),
    tile('p95 latency', fmtMs(last(series, 'p95_ms') ?? totals.p95_ms),
      `p50 ${fmtMs(last(series, 'p50_ms') ?? totals.p50_ms)} · p99 ${fmtMs(last(series, 'p99_ms') ?? totals.p99_ms)}`, 'tile-latency'),
    tile('Searches', fmtNumber(totals.searches ?? 0), `${fmtNumber(totals.requests ?? 0)} requests`, 'tile-searches'),
    tile('Rejected inputs', fmtNumber(rejected), 'bad photos and requests since start', 'tile-rejected'),
    tile('Uptime', fmtDuration(st.uptime_s), model.fingerprint ? `model ${String(model.fingerprint).slice(0, 12)}` : '', 'tile-uptime'));

  const ts = series.map((p) => p.t);
  const pick = (k) => series.map((p) => (Number.isFinite(p[k]) ? p[k] : NaN));
  // Latency of an interval without requests is unknown, not zero.
  const latency = (k) => series.map((p) => (Number.isFinite(p[k]) && (p.qps > 0 || p[k] > 0) ? p[k] : NaN));
  const chartBox = (title, svg, legend) => h('figure', { class: 'chart-box' },
    h('figcaption', { text: title }), svg,
    legend ? h('ul', { class: 'legend' }, legend.map(([cls, name]) => h('li', { class: cls, text: name }))) : null);
  if (series.length) {
    els.charts.replaceChildren(
      chartBox(`Queries per second, last ${windowMin} min`, lineChart('Queries per second', ts, [{ cls: 's1', values: pick('qps') }], { area: true })),
      // p95 is drawn last and thickest: percentiles are histogram bins, so with little traffic p95
      // often equals p99 and would hide under it.
      chartBox('Latency (ms)', lineChart('Latency percentiles in milliseconds', ts, [
        { cls: 's3 p99', values: latency('p99_ms') }, { cls: 's1 p50', values: latency('p50_ms') }, { cls: 's2 p95', values: latency('p95_ms') },
      ]), [['s1', 'p50 (median)'], ['s2', 'p95'], ['s3', 'p99 (dashed)']]),
      chartBox('Rejected inputs', barChart('Rejected inputs per interval', ts, pick('rejected'), 's4')));
  } else {
    els.charts.replaceChildren(h('p', { class: 'muted', text: 'No traffic recorded yet. Charts appear after the first requests.' }));
  }

  els.collections.replaceChildren(h('h2', { text: 'Collections' }), cols.length
    ? h('table', { class: 'table' },
      h('thead', null, h('tr', null, h('th', { scope: 'col', text: 'Name' }), h('th', { scope: 'col', class: 'num', text: 'Items' }), h('th', { scope: 'col', class: 'num', text: 'Levels' }))),
      h('tbody', null, cols.map((c) => h('tr', null,
        h('td', { text: c.name }), h('td', { class: 'num', text: fmtNumber(c.count ?? 0) }), h('td', { class: 'num', text: c.levels ?? '—' })))))
    : h('p', { class: 'muted', text: 'No collections yet.' }));

  const reasons = Object.entries(byReason).sort((a, b) => b[1] - a[1]);
  els.reasons.replaceChildren(h('h2', { text: 'Rejected inputs by reason' }), reasons.length
    ? h('table', { class: 'table' },
      h('tbody', null, reasons.map(([k, v]) => h('tr', null, h('td', { text: reasonText(k) }), h('td', { class: 'num', text: fmtNumber(v) })))))
    : h('p', { class: 'muted', text: 'None so far.' }));

  renderQuality(st.quality);
}

const REASONS = {
  not_an_image: 'Not an image', unsupported_image: 'Unsupported image format', corrupt_image: 'Damaged image',
  image_too_large: 'Image too large', too_large: 'Request too large', payload_too_large: 'Request too large',
  invalid_query: 'Parameter out of range', invalid_filter: 'Invalid filter', unknown_field: 'Filter on an unknown field',
  bad_request: 'Malformed request', bad_crop: 'Region outside the photo', overloaded: 'Busy: asked to retry',
  unsupported_content_type: 'Wrong content type', unauthorized: 'Missing API key', forbidden: 'API key not allowed',
};

function sentence(k) {
  const t = k.replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}

function reasonText(code) {
  return REASONS[code] || sentence(code);
}

const pct = (v) => `${(v * 100).toFixed(1)} %`;
const count = (v) => fmtNumber(v);
const when = (v) => { const d = new Date(v); return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleString(); };

// QUALITY words each figure of /v1/stats "quality" by its group and name; group.* are defaults. A
// null label hides the figure (it is part of another one's label). Unknown figures keep their name.
const QUALITY = {
  'window_s': ['Measured over the last', (v) => fmtDuration(v)],
  'recall_sample_rate': ['Searches checked against exact search', pct],
  'ann_recall.mean': ['Index recall (true nearest items found)', pct],
  'ann_recall.samples': ['Checks since start', count],
  'ann_recall.window_samples': ['Checks in this window', count],
  'feedback.events': ['Result lists shown', count],
  'feedback.judged': ['Lists rated by people', count],
  'feedback.k': [null],
  'feedback.precision_at_k': ['Relevant in the top results (rated lists)', pct],
  'feedback.clicked': ['Lists with a click', count],
  'feedback.click_through_rate': ['Click-through rate', pct],
  'drift.queries': ['Searches', count],
  'drift.low_score_share': ['Searches without a close match', pct],
  'drift.min_score': ['Close-match threshold (score)', pct],
  'drift.top1_score_mean': ['Best score, average', pct],
  'drift.top1_score_p10': ['Best score, lowest 10 %', pct],
  'drift.top1_score_p50': ['Best score, median', pct],
  'drift.top1_score_p90': ['Best score, top 10 %', pct],
  'drift.centroid_distance': ['Shift of search photos from the catalog (cosine distance)', (v) => fmtNumber(v, 3)],
  'probe.collection': ['Collection', String],
  'probe.probes': ['Probe queries', count],
  'probe.failed': ['Failed probes', count],
  'probe.k': [null],
  'probe.runs': ['Runs', count],
  'probe.precision_at_k': ['Relevant in the top results', pct],
  'probe.hit_rate_at_k': ['Probes with a hit in the top results', pct],
  'probe.last_run': ['Last run', when],
  'probe.last_error': ['Last error', String],
};
const GROUPS = { ann_recall: 'index recall', feedback: 'shopper feedback', drift: 'search scores' };

// renderQuality words the figures the server reports (QUALITY); figures it does not know yet keep
// their names, so new metrics need no UI change. A precision over zero rated lists is "not yet".
function renderQuality(q) {
  if (!q || typeof q !== 'object' || !Object.keys(q).length) {
    els.quality.hidden = true;
    return;
  }
  const groups = new Map();
  const add = (title, kind, obj, ctx) => {
    for (const [k, v] of Object.entries(obj)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) continue;
      const [labelText, fmt] = QUALITY[kind ? `${kind}.${k}` : k] || [sentence(k), (x) => (typeof x === 'number' ? fmtNumber(x, 3) : String(x))];
      if (labelText === null) continue;
      let text = fmt(v);
      let name = labelText;
      if (/precision_at_k|hit_rate_at_k/.test(k) && ctx.k) name = `${labelText}: top ${ctx.k}`;
      if (kind === 'feedback' && k === 'precision_at_k' && !ctx.judged) text = 'not yet (no rated lists)';
      if (!groups.has(title)) groups.set(title, []);
      groups.get(title).push([name, text, typeof v === 'number' && !text.startsWith('not')]);
    }
  };
  add('Overall', '', q, {});
  for (const [name, col] of Object.entries(q.collections || {})) {
    for (const [kind, obj] of Object.entries(col || {})) {
      if (obj && typeof obj === 'object') add(`${name} · ${GROUPS[kind] || sentence(kind).toLowerCase()}`, kind, obj, obj);
    }
  }
  for (const [name, p] of Object.entries(q.probes || {})) {
    if (p && typeof p === 'object') add(`Probe set “${name}”`, 'probe', p, p);
  }
  els.quality.hidden = false;
  els.quality.replaceChildren(
    h('h2', { id: 'quality-h', text: 'Retrieval quality' }),
    ...[...groups].map(([title, rows]) => h('section', { class: 'quality-group' },
      h('h3', { text: title }),
      h('dl', { class: 'quality-list' }, rows.map(([k, v, num]) =>
        h('div', null, h('dt', { text: k }), h('dd', { class: num ? '' : 'text', text: v })))))));
}
