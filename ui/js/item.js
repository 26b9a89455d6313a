// Item page: the item's largest stored photo, every metadata field and the items most similar to
// it, so a user can walk the catalog from item to item. The model's ImageNet labels mean nothing to
// a shopper ("toilet seat" for a cookie tin): they sit in a closed catalog-team section.
import { h, clear, metaText, errorBox, fmtMs } from './dom.js';
import { api, plainError, paths } from './api.js';
import { card, scoreBar, thumb, skeletonCards } from './cards.js';
import { setCollection, state } from './state.js';
import { searchHash } from './search.js';
import { tracker } from './feedback.js';

const PAGE = 12;

let els = null;
let current = null; // {collection, id}
let controller = null;
let similarCursor = '';
let similarCount = 0;
let feedback = null;
let itemMissing = false;

export function mount() {
  const back = h('a', { class: 'back-link', href: '#/search', text: '← Back' });
  back.addEventListener('click', (e) => {
    // Return to the previous page (e.g. the search results) when it was inside the app.
    if (state.previousRoute) { e.preventDefault(); history.back(); }
  });
  const title = h('h1', { class: 'item-title', id: 'item-title', tabindex: '-1' });
  const crumbs = h('p', { class: 'crumbs', id: 'item-crumbs' });
  const photo = h('div', { class: 'item-photo', id: 'item-photo' });
  const meta = h('dl', { class: 'meta-list', id: 'item-meta' });
  const labels = h('ul', { class: 'labels', id: 'item-labels' });
  const labelsBox = h('details', { class: 'labels-box catalog-view', id: 'item-labels-box', hidden: true },
    h('summary', { text: 'For the catalog team: model labels' }),
    h('p', { class: 'muted', text: 'What the model recognises in the photo (ImageNet classes), to help tagging. Shoppers do not see these.' }),
    labels);
  const actions = h('div', { class: 'item-actions' });
  const error = h('div', { id: 'item-error' });
  const grid = h('ol', { class: 'grid', id: 'similar', 'aria-label': 'Similar items' });
  const timing = h('p', { class: 'timing', id: 'similar-timing' });
  const more = h('button', { type: 'button', class: 'button', id: 'similar-more', text: 'Load more', hidden: true });
  const similarError = h('div', { id: 'similar-error' });
  more.addEventListener('click', () => loadSimilar(true));
  feedback = tracker(grid);
  els = { title, crumbs, photo, meta, labels, labelsBox, actions, error, grid, timing, more, similarError };

  return h('section', { id: 'page-item', 'aria-labelledby': 'item-title' },
    h('div', { class: 'item-head' }, back, crumbs),
    error,
    h('div', { class: 'item-layout' },
      photo,
      h('div', { class: 'item-info' }, title, meta, labelsBox, actions)),
    h('section', { class: 'similar', 'aria-labelledby': 'similar-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'similar-h', text: 'Similar items' }), timing),
      similarError, grid, h('div', { class: 'more-row' }, more)));
}

export function show({ collection, id }) {
  if (current && current.collection === collection && current.id === id) return;
  current = { collection, id };
  if (collection !== state.collection) setCollection(collection);
  load();
}

// collectionChanged leaves the item page when the user picks another collection in the header;
// opening an item of another collection selects that collection and stays.
export function collectionChanged() {
  if (current && state.collection !== current.collection) location.hash = '#/search';
}

export function hide() {
  if (controller) controller.abort();
  current = null;
}

async function load() {
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const { collection, id } = current;
  clear(els.error);
  clear(els.meta);
  clear(els.actions);
  els.labelsBox.hidden = true;
  els.title.textContent = id;
  els.crumbs.replaceChildren(h('span', { text: collection }), ' / ', h('span', { text: id }));
  els.photo.replaceChildren(h('div', { class: 'thumb big skeleton' }));
  similarCursor = '';
  similarCount = 0;
  itemMissing = false;
  els.grid.replaceChildren(...skeletonCards(6));
  els.timing.textContent = '';
  clear(els.similarError);
  loadSimilar(false);
  try {
    const it = await api.item(collection, id, signal);
    renderItem(collection, it);
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    els.photo.replaceChildren();
    els.error.replaceChildren(errorBox(plainError(err), err.message));
    // One message is enough: similar items of a missing item fail for the same reason.
    if (err.status === 404) {
      itemMissing = true;
      els.grid.replaceChildren();
      clear(els.similarError);
      els.more.hidden = true;
    }
  }
}

function renderItem(collection, it) {
  const m = it.metadata && typeof it.metadata === 'object' ? it.metadata : {};
  const name = ['name', 'title'].map((k) => m[k]).find((v) => typeof v === 'string' && v);
  els.title.textContent = name || it.id;
  document.title = `${name || it.id} — Lookalike`;
  // The source rendition when the item has one (the server falls back to the thumbnail itself);
  // the thumbnail when even that fails to load.
  const big = thumb(`${paths.item(collection, it.id)}/source`, `Photo of ${name || it.id}`);
  big.classList.add('big');
  const img = big.querySelector('img');
  if (img) {
    img.removeAttribute('loading');
    img.addEventListener('error', () => { big.classList.remove('broken'); img.src = it.thumbnail_url; }, { once: true });
  }
  els.photo.replaceChildren(big);

  const rows = [['id', it.id]];
  for (const [k, v] of Object.entries(m)) rows.push([k, metaText(v)]);
  if (it.updated_at) rows.push(['updated', new Date(it.updated_at).toLocaleString()]);
  els.meta.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));

  const labels = Array.isArray(it.labels) ? it.labels : [];
  els.labels.replaceChildren(...labels.slice(0, 5).map((l) =>
    h('li', { class: 'label-row' }, h('span', { class: 'label-name', text: l.name }), scoreBar(l.prob))));
  els.labelsBox.hidden = labels.length === 0;

  // The search uses the item's stored vector, so it ranks like "Similar items" below.
  const searchWith = h('a', { class: 'button', id: 'item-search', href: searchHash({ collection, item: it.id }), text: 'Search with this photo' });
  els.actions.replaceChildren(searchWith, h('a', { class: 'button', href: '#/catalog', text: 'Open catalog' }));
}

async function loadSimilar(append) {
  const { collection, id } = current || {};
  if (!collection) return;
  const signal = controller && controller.signal;
  els.more.disabled = true;
  try {
    const res = await api.similar(collection, id, { k: PAGE, cursor: append ? similarCursor : '' }, signal);
    if (!current || current.id !== id) return;
    const page = (Array.isArray(res.results) ? res.results : []).filter((r) => r.id !== id);
    const cards = page.map((r, i) => card(collection, r, { rank: similarCount + i + 1 }));
    similarCount += page.length;
    if (append) els.grid.append(...cards);
    else els.grid.replaceChildren(...cards);
    if (!append) feedback.start(collection, PAGE);
    feedback.shown(page.map((r) => r.id));
    if (!append && page.length === 0) els.grid.replaceChildren(h('li', { class: 'muted', text: 'No similar items yet.' }));
    similarCursor = res.next_cursor || '';
    els.more.hidden = !similarCursor;
    const t = res.timings_ms || {};
    els.timing.textContent = typeof t.total === 'number' ? `search ${fmtMs(t.search)} · total ${fmtMs(t.total)}` : '';
  } catch (err) {
    if ((err && err.name === 'AbortError') || itemMissing) return;
    if (!append) els.grid.replaceChildren();
    els.similarError.replaceChildren(errorBox(plainError(err), err.message));
  } finally {
    els.more.disabled = false;
  }
}

