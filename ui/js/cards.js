// Result and item cards shared by the search, item and catalog pages.
import { h, metaText, fmtNumber } from './dom.js';

const enc = encodeURIComponent;

export function itemHref(collection, id) {
  return `#/item/${enc(collection)}/${enc(id)}`;
}

// keyMeta picks the few metadata fields worth a card: a title, then category, brand and price.
export function keyMeta(meta) {
  const m = meta && typeof meta === 'object' ? meta : {};
  const title = ['name', 'title', 'label'].map((k) => m[k]).find((v) => typeof v === 'string' && v);
  const facts = [];
  for (const k of ['category', 'brand', 'price', 'color', 'colour']) {
    const v = m[k];
    if (v === undefined || v === null || v === '') continue;
    facts.push({ key: k, text: k === 'price' && typeof v === 'number' ? fmtPrice(v, m.currency) : metaText(v) });
  }
  return { title, facts: facts.slice(0, 3) };
}

export function fmtPrice(v, currency) {
  if (typeof currency === 'string' && /^[A-Z]{3}$/.test(currency)) {
    try { return v.toLocaleString('en-US', { style: 'currency', currency }); } catch { /* unknown code */ }
  }
  return `${fmtNumber(v)}`;
}

// scorePercent maps a similarity score to 0–100. Scores are cosine similarities; negative
// ones are shown as 0 %.
export function scorePercent(score) {
  if (typeof score !== 'number' || !Number.isFinite(score)) return 0;
  return Math.max(0, Math.min(100, score * 100));
}

// scoreBar draws the score; a weak result (below the server's match threshold) is never green.
export function scoreBar(score, weak = false) {
  const pct = scorePercent(score);
  const fill = h('span', { class: 'bar-fill' });
  // CSSOM writes are allowed by the CSP (style attributes in markup are not).
  fill.style.width = `${pct.toFixed(1)}%`;
  const tone = pct >= 80 && !weak ? 'high' : pct >= 60 ? 'mid' : 'low';
  return h('div', { class: `score ${tone}` },
    h('span', { class: 'score-pct', text: `${pct.toFixed(1)}%` }),
    h('span', {
      class: 'bar', role: 'meter', 'aria-label': 'Similarity',
      'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct.toFixed(1),
    }, fill));
}

export function thumb(url, alt = '') {
  const box = h('div', { class: 'thumb' });
  if (url) {
    const img = h('img', { src: url, alt, loading: 'lazy', decoding: 'async' });
    img.addEventListener('error', () => box.classList.add('broken'), { once: true });
    box.append(img);
  } else {
    box.classList.add('broken');
  }
  return box;
}

// card renders one result or catalog item as a link to its item page. `extra` is appended to the
// card body (e.g. a delete button, kept outside the link so it stays a separate control).
export function card(collection, it, { showScore = true, extra = null, rank = 0 } = {}) {
  const { title, facts } = keyMeta(it.metadata);
  const link = h('a', { class: 'card-link', href: itemHref(collection, it.id), 'aria-label': `${title || it.id}${showScore && typeof it.score === 'number' ? `, ${scorePercent(it.score).toFixed(0)}% similar` : ''}` },
    thumb(it.thumbnail_url, ''),
    h('div', { class: 'card-body' },
      showScore ? scoreBar(it.score, it.weak === true) : null,
      title ? h('div', { class: 'card-title', text: title }) : null,
      h('div', { class: 'card-id', text: it.id }),
      facts.length ? h('ul', { class: 'facts' },
        facts.map((f) => h('li', { class: `fact fact-${f.key}`, title: f.key, text: f.text }))) : null));
  return h('li', { class: 'card', dataset: { id: it.id, rank: String(rank) } }, link, extra);
}

export function skeletonCards(n) {
  return Array.from({ length: n }, () => h('li', { class: 'card skeleton', 'aria-hidden': 'true' },
    h('div', { class: 'thumb' }), h('div', { class: 'card-body' }, h('div', { class: 'line' }), h('div', { class: 'line short' }))));
}
