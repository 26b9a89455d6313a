// Duplicates page: review clusters of duplicate photos (exact copies, near-duplicates or other
// photos of the same product) one page of the catalog at a time, and keep one item of a cluster,
// deleting the others.
import { h, clear, errorBox, toast } from './dom.js';
import { api, ApiError, plainError, paths } from './api.js';
import { state } from './state.js';
import { thumb, scoreBar, itemHref } from './cards.js';

const SCAN = 200; // items scanned per request: the server's work per page is bounded by it

let els = null;
let cursor = '';
let loaded = false;
let seq = 0; // the latest run: answers to older ones are dropped

async function fetchPage(collection, tier, cur) {
  const q = new URLSearchParams({ tier, limit: String(SCAN) });
  if (cur) q.set('cursor', cur);
  let res;
  try {
    res = await fetch(`${paths.collection(collection)}/duplicates?${q}`, { headers: { Accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = body.error || {};
    throw new ApiError(res.status, e.code, e.message, e.details, res.headers.get('Retry-After'));
  }
  return body;
}

export function mount() {
  const tier = h('select', { id: 'dup-tier', 'aria-label': 'Duplicate tier' },
    h('option', { value: 'exact', text: 'Exact copies' }),
    h('option', { value: 'near', text: 'Near-duplicates (re-encoded, resized, cropped, watermarked)', selected: true }),
    h('option', { value: 'similar', text: 'Similar (probably the same product)' }));
  const find = h('button', { type: 'button', class: 'button primary', id: 'dup-find', text: 'Find duplicates' });
  const summary = h('p', { class: 'results-summary', id: 'dup-summary', 'aria-live': 'polite' });
  const list = h('ol', { class: 'dup-clusters', id: 'dup-clusters', 'aria-label': 'Duplicate clusters' });
  const more = h('button', { type: 'button', class: 'button', id: 'dup-more', text: 'Scan more', hidden: true });
  const error = h('div', { id: 'dup-error' });
  els = { tier, find, summary, list, more, error };
  find.addEventListener('click', () => run(false));
  tier.addEventListener('change', () => run(false));
  more.addEventListener('click', () => run(true));
  return h('section', { id: 'page-duplicates', 'aria-labelledby': 'dup-h' },
    h('h1', { id: 'dup-h', tabindex: '-1', text: 'Duplicates' }),
    h('p', { class: 'hint', text: 'Groups of photos that look like copies of each other. Keep one item of a group to delete the others.' }),
    h('div', { class: 'dup-controls' }, h('label', {}, h('span', { class: 'label-text', text: 'Show ' }), tier), find),
    error, summary, list, h('div', { class: 'more-row' }, more));
}

export function show() {
  if (!loaded) run(false);
}

export function collectionChanged() {
  loaded = false;
  if (els) run(false);
}

async function run(append) {
  const mine = ++seq;
  loaded = true;
  const collection = state.collection;
  clear(els.error);
  if (!append) {
    cursor = '';
    els.list.replaceChildren();
  }
  els.summary.textContent = 'Looking for duplicates…';
  els.more.hidden = true;
  try {
    const page = await fetchPage(collection, els.tier.value, append ? cursor : '');
    if (mine !== seq) return;
    cursor = page.next_cursor || '';
    els.list.append(...(page.clusters || []).map((c) => cluster(collection, c)));
    const n = els.list.children.length;
    els.summary.textContent = n === 0
      ? (cursor ? 'No duplicates in the part of the catalog scanned so far.' : 'No duplicates found.')
      : `${n} ${n === 1 ? 'group' : 'groups'} of duplicates${cursor ? ' so far' : ''}.`;
    els.more.hidden = !cursor;
  } catch (err) {
    if (mine !== seq) return;
    els.summary.textContent = '';
    els.error.replaceChildren(errorBox(plainError(err), err.message));
  }
}

function cluster(collection, c) {
  const items = c.items || [];
  const row = h('ul', { class: 'grid dup-items' });
  const li = h('li', { class: 'dup-cluster', dataset: { seed: items.length ? items[0].id : '' } }, row);
  for (const [i, it] of items.entries()) {
    const keep = h('button', { type: 'button', class: 'button keep', text: 'Keep this one', dataset: { keep: it.id } });
    keep.addEventListener('click', () => keepOne(collection, li, it.id, items.map((x) => x.id)));
    row.append(h('li', { class: 'card', dataset: { id: it.id } },
      h('a', { class: 'card-link', href: itemHref(collection, it.id) },
        thumb(it.thumbnail_url, ''),
        h('div', { class: 'card-body' },
          i === 0 ? h('div', { class: 'dup-tier', text: 'first of the group' }) : h('div', { class: `dup-tier tier-${it.tier}`, text: `${it.tier} duplicate` }),
          i === 0 ? null : scoreBar(it.score),
          h('div', { class: 'card-id', text: it.id }))),
      h('div', { class: 'card-actions' }, keep)));
  }
  return li;
}

async function keepOne(collection, li, keepId, ids) {
  const others = ids.filter((id) => id !== keepId);
  for (const b of li.querySelectorAll('button')) b.disabled = true;
  let deleted = 0;
  try {
    for (const id of others) {
      try {
        await api.deleteItem(collection, id);
        deleted++;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
    }
    li.replaceChildren(h('p', { class: 'dup-done', text: `Kept ${keepId}; deleted ${deleted} ${deleted === 1 ? 'duplicate' : 'duplicates'}.` }));
    li.classList.add('resolved');
    window.dispatchEvent(new CustomEvent('lookalike:catalogchanged'));
  } catch (err) {
    toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
    for (const b of li.querySelectorAll('button')) b.disabled = false;
  }
}
