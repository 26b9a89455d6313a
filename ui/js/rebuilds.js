// Rebuilds section of the status page (docs/lifecycle.md): each collection's shadow rebuild with
// its progress, rate and ETA, the comparison report on demand (it embeds queries and probes, so it
// is not refreshed with the page), and the switch and rollback buttons. Job cards are kept by
// collection and updated in place, so a refresh keeps a shown report and the keyboard focus.
import { h, fmtNumber, fmtMs, fmtDuration, toast, errorBox } from './dom.js';
import { request, paths, plainError } from './api.js';

const rebuildApi = {
  list: (signal) => request('GET', '/v1/rebuilds', { signal }),
  report: (c) => request('GET', `${paths.collection(c)}/rebuild/report`),
  switchTo: (c) => request('POST', `${paths.collection(c)}/switch`),
  rollback: (c) => request('POST', `${paths.collection(c)}/rollback`),
};

let section = null;
let list = null;
const cards = new Map(); // collection → { el, job, parts }
let onChange = () => {};

// mount returns the section (hidden until a rebuild exists); changed is called after a switch or
// rollback so the page can refresh at once.
export function mount(changed) {
  onChange = changed || onChange;
  // Its own stylesheet, linked from here: the section stays one file pair, apart from app.css.
  if (!document.querySelector('link[href="css/rebuilds.css"]')) {
    document.head.append(h('link', { rel: 'stylesheet', href: 'css/rebuilds.css' }));
  }
  list = h('div', { class: 'rebuild-list' });
  section = h('section', { class: 'panel rebuilds', id: 'status-rebuilds', hidden: true, 'aria-labelledby': 'rebuilds-h' },
    h('h2', { id: 'rebuilds-h', text: 'Rebuilds' }), list);
  return section;
}

export async function refresh(signal) {
  let data;
  try {
    data = await rebuildApi.list(signal);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    return; // the page's own error box speaks for an unreachable server
  }
  const jobs = Array.isArray(data.rebuilds) ? data.rebuilds.slice() : [];
  jobs.sort((a, b) => String(a.collection).localeCompare(String(b.collection)));
  section.hidden = jobs.length === 0;
  const seen = new Set();
  for (const job of jobs) {
    seen.add(job.collection);
    let card = cards.get(job.collection);
    if (!card) {
      card = makeCard(job.collection);
      cards.set(job.collection, card);
      list.append(card.el);
    }
    update(card, job);
  }
  for (const [name, card] of cards) {
    if (!seen.has(name)) {
      card.el.remove();
      cards.delete(name);
    }
  }
}

function makeCard(collection) {
  const p = {
    title: h('h3', { class: 'rebuild-title' }),
    meta: h('p', { class: 'muted rebuild-meta' }),
    bar: h('progress', { class: 'rebuild-bar', max: 1, value: 0 }),
    progress: h('p', { class: 'rebuild-progress', 'aria-live': 'polite' }),
    error: h('div', { class: 'rebuild-error' }),
    report: h('div', { class: 'rebuild-report' }),
    compare: h('button', { type: 'button', class: 'button rebuild-compare', text: 'Compare' }),
    switchBtn: h('button', { type: 'button', class: 'button primary rebuild-switch' }),
    rollbackBtn: h('button', { type: 'button', class: 'button rebuild-rollback' }),
  };
  const el = h('article', { class: 'rebuild', dataset: { collection } },
    p.title, p.meta, p.bar, p.progress, p.error,
    h('div', { class: 'actions' }, p.compare, p.switchBtn, p.rollbackBtn), p.report);
  const card = { el, job: null, parts: p };
  p.compare.addEventListener('click', () => compare(card));
  p.switchBtn.addEventListener('click', () => act(card, rebuildApi.switchTo, (j) => `${j.collection} now answers from ${j.live}.`));
  p.rollbackBtn.addEventListener('click', () => act(card, rebuildApi.rollback, (j) => `${j.collection} answers from ${j.live} again.`));
  return card;
}

function update(card, job) {
  const p = card.parts;
  card.job = job;
  card.el.dataset.state = job.state;
  p.title.textContent = `${job.collection}: ${job.from} → ${job.to}`;
  p.meta.textContent = `model ${job.model}${job.profile ? `, profile ${job.profile}` : ''} · answering from ${job.live}`;
  const total = Math.max(Number(job.total) || 0, Number(job.copied) || 0, 1);
  p.bar.max = total;
  p.bar.value = Number(job.copied) || 0;
  p.bar.setAttribute('aria-label', `Rebuild of ${job.collection}: ${job.copied} of ${total} items copied`);
  p.progress.textContent = progressText(job);
  p.error.replaceChildren(job.state === 'failed' ? errorBox('The rebuild failed.', job.error) : '');
  const ready = job.state === 'ready', switched = job.state === 'switched';
  p.compare.hidden = !(ready || switched);
  p.switchBtn.hidden = !ready;
  p.switchBtn.textContent = `Switch to ${job.to}`;
  p.rollbackBtn.hidden = !switched;
  p.rollbackBtn.textContent = `Roll back to ${job.from}`;
}

function progressText(j) {
  const copied = `${fmtNumber(j.copied ?? 0)} of ${fmtNumber(j.total ?? 0)} items`;
  const extra = [];
  if (j.from_thumbnail) extra.push(`${fmtNumber(j.from_thumbnail)} from thumbnails`);
  if (j.skipped) extra.push(`${fmtNumber(j.skipped)} skipped`);
  if (j.mirrored) extra.push(`${fmtNumber(j.mirrored)} writes mirrored`);
  const tail = extra.length ? ` (${extra.join(', ')})` : '';
  switch (j.state) {
    case 'learning': return 'Learning the projection from the collection\'s own photos (a tune; the items are copied next)';
    case 'starting':
    case 'copying': {
      const rate = j.rate_per_s > 0 ? ` · ${fmtNumber(j.rate_per_s, 1)} items/s · about ${fmtDuration(j.eta_s)} left` : '';
      return `Copying: ${copied}${rate}${tail}`;
    }
    case 'ready': return `Ready to switch: ${copied}${tail}`;
    case 'switched': return `Switched; ${j.from} keeps receiving writes until ${new Date(j.grace_until).toLocaleString()}${tail}`;
    case 'done': return `Done: ${j.from} no longer receives writes and may be deleted${tail}`;
    default: return `${j.state}: ${copied}${tail}`;
  }
}

async function act(card, call, said) {
  const btns = [card.parts.switchBtn, card.parts.rollbackBtn];
  btns.forEach((b) => { b.disabled = true; });
  try {
    const j = await call(card.job.collection);
    update(card, j);
    toast(said(j), 'ok');
    onChange();
  } catch (err) {
    toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
  } finally {
    btns.forEach((b) => { b.disabled = false; });
  }
}

async function compare(card) {
  const p = card.parts;
  p.compare.disabled = true;
  p.report.replaceChildren(h('p', { class: 'muted', text: 'Comparing the generations…' }));
  try {
    p.report.replaceChildren(reportTable(await rebuildApi.report(card.job.collection)));
  } catch (err) {
    p.report.replaceChildren(errorBox(`The comparison is unavailable. ${plainError(err)}`, err.message));
  } finally {
    p.compare.disabled = false;
  }
}

// reportTable puts the two arms side by side: probe precision, score and latency medians, size.
function reportTable(rep) {
  const live = rep.live || {}, shadow = rep.shadow || {};
  const num = (v, d = 3) => (Number.isFinite(v) ? fmtNumber(v, d) : '—');
  // Scores and latencies exist only for arms that answered recent queries.
  const score = (a) => (a.queries > 0 && a.top_score ? num(a.top_score.p50) : '—');
  const latency = (a) => (a.queries > 0 && a.latency_ms ? fmtMs(a.latency_ms.p50) : '—');
  const rows = [
    ['Items', num(live.count), num(shadow.count)],
    ['Probe precision', num(live.probe_precision), num(shadow.probe_precision)],
    ['Top score (median)', score(live), score(shadow)],
    ['Latency (median)', latency(live), latency(shadow)],
  ];
  const overlap = rep.queries > 0
    ? `Top-10 overlap ${fmtNumber(100 * rep.overlap_at_10, 0)}% on ${fmtNumber(rep.queries)} recent queries.`
    : 'No recent query photos to compare yet: search by photo first.';
  return h('div', null,
    h('table', { class: 'table rebuild-report-table' },
      h('thead', null, h('tr', null, h('th', { scope: 'col', text: '' }),
        h('th', { scope: 'col', class: 'num', text: `Live (${live.collection || '—'})` }),
        h('th', { scope: 'col', class: 'num', text: `Other (${shadow.collection || '—'})` }))),
      h('tbody', null, rows.map(([k, a, b]) => h('tr', null,
        h('th', { scope: 'row', text: k }), h('td', { class: 'num', text: a }), h('td', { class: 'num', text: b }))))),
    h('p', { class: 'muted rebuild-overlap', text: overlap }));
}
