// Search page: pick, drop, paste or capture a photo, optionally draw a region, filter, and page
// through the results. A search by a catalog item ("Search with this photo") uses the item's stored
// vector, like its "Similar items". The URL (#/search?c=…&item=…) names the search, so it can be
// reloaded and shared.
import { h, clear, fmtMs, errorBox } from './dom.js';
import { api, plainError, paths } from './api.js';
import { state, setCollection } from './state.js';
import { card, skeletonCards } from './cards.js';
import { createCropper } from './cropper.js';
import { createFilters } from './filters.js';
import { openCamera, cameraAvailable } from './camera.js';
import { tracker } from './feedback.js';
import { whyButton } from './explain.js';
import { shrinkPhoto } from './shrink.js';

const PAGE = 24;

let els = null;
let cropper = null;
let filters = null;
let query = null; // {kind: 'photo'|'item', collection, file, url, crop, id (item mode)}
let results = [];
let nextCursor = '';
let controller = null;
let visible = false;
let feedback = null;
let pending = null; // a query photo handed over before the page was mounted
let filtersReady = Promise.resolve(); // settles when the filter controls show a URL's filter
let photoSeq = 0; // the latest photo being prepared (setQueryFile)

export function mount() {
  const fileInput = h('input', { type: 'file', accept: 'image/*', id: 'search-file', class: 'visually-hidden' });
  const pick = h('label', { for: 'search-file', class: 'button primary', text: 'Choose a photo' });
  const camera = h('button', { type: 'button', class: 'button', id: 'search-camera', text: 'Use camera', hidden: !cameraAvailable() });
  const drop = h('div', { class: 'dropzone', id: 'search-drop' },
    h('div', { class: 'drop-icon', 'aria-hidden': 'true' }),
    h('p', { class: 'drop-title', text: 'Drop a photo here' }),
    h('p', { class: 'drop-hint', text: 'or paste one (Ctrl+V / ⌘V), or' }),
    h('div', { class: 'drop-actions' }, fileInput, pick, camera));

  cropper = createCropper({ onChange: (px) => cropChanged(px) });
  filters = createFilters({ onChange: () => { if (query) run(false); } });

  const cropInfo = h('p', { class: 'crop-info', id: 'crop-info' });
  const clearCrop = h('button', { type: 'button', class: 'link-button', id: 'crop-clear', text: 'Use whole photo', hidden: true });
  const replace = h('label', { for: 'search-file', class: 'link-button', text: 'Change photo' });
  const preview = h('div', { class: 'preview', hidden: true },
    cropper.el,
    h('div', { class: 'preview-bar' }, cropInfo, cropper.modeButton, clearCrop, replace));

  const timing = h('p', { class: 'timing', id: 'timing', 'aria-live': 'polite' });
  const summary = h('p', { class: 'results-summary', id: 'results-summary' });
  const grid = h('ol', { class: 'grid', id: 'results', 'aria-label': 'Search results' });
  // Results below the server's match threshold (weak): the nearest items, not matches.
  const weakHead = h('h2', { class: 'weak-head', id: 'weak-h' });
  const weakGrid = h('ol', { class: 'grid', id: 'weak-results', 'aria-labelledby': 'weak-h' });
  const weak = h('section', { class: 'weak-section', id: 'weak-section', hidden: true, 'aria-labelledby': 'weak-h' },
    weakHead, h('p', { class: 'muted weak-note', text: 'These items look less alike than a close match usually does.' }), weakGrid);
  const more = h('button', { type: 'button', class: 'button', id: 'load-more', text: 'Load more', hidden: true });
  const error = h('div', { id: 'search-error' });
  const empty = h('div', { class: 'empty-state', id: 'search-empty' },
    h('h2', { text: 'Find lookalikes by photo' }),
    h('p', { text: 'Add a photo of a product. Lookalike shows the items in the catalog that look most like it, best match first. Draw a box on the photo to search by one part of it.' }));

  els = { fileInput, drop, preview, cropInfo, clearCrop, timing, summary, grid, weak, weakHead, weakGrid, more, error, empty };
  feedback = tracker(grid, weakGrid);

  fileInput.addEventListener('change', () => {
    const f = fileInput.files && fileInput.files[0];
    if (f) setQueryFile(f);
    fileInput.value = '';
  });
  camera.addEventListener('click', async () => {
    const f = await openCamera();
    if (f) setQueryFile(f);
  });
  for (const target of [drop, preview]) {
    target.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); preview.classList.add('over'); });
    target.addEventListener('dragleave', () => { drop.classList.remove('over'); preview.classList.remove('over'); });
    target.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      preview.classList.remove('over');
      const f = [...(e.dataTransfer?.files || [])][0];
      if (f) setQueryFile(f);
    });
  }
  document.addEventListener('paste', (e) => {
    if (!visible) return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    const f = item && item.getAsFile();
    if (!f) return;
    e.preventDefault();
    setQueryFile(new File([f], f.name && f.name !== 'image.png' ? f.name : `pasted.${(f.type.split('/')[1] || 'png')}`, { type: f.type }));
  });
  clearCrop.addEventListener('click', () => { cropper.clear(); cropChanged(null); });
  more.addEventListener('click', () => run(true));

  return h('section', { id: 'page-search', 'aria-labelledby': 'search-h' },
    h('h1', { id: 'search-h', class: 'visually-hidden', tabindex: '-1', text: 'Search by photo' }),
    h('div', { class: 'search-layout' },
      h('aside', { class: 'query-panel', 'aria-label': 'Query' }, drop, preview, filters.el),
      h('section', { class: 'results-panel', 'aria-label': 'Results' }, error, empty, summary, timing, grid, weak, h('div', { class: 'more-row' }, more))));
}

// show runs the search the URL names (#/search?c=…&item=… or ?c=…&photo=…&crop=…), unless it is
// the one on screen; a bare #/search keeps the current search and puts its URL back.
export function show(params = {}) {
  visible = true;
  const p = params.query || new URLSearchParams();
  const c = p.get('c');
  if (c && (p.get('item') || p.get('photo'))) {
    if (!sameSearch(p)) {
      query = null; // the collection switch below must not re-run the old search
      if (c !== state.collection) setCollection(c);
      const f = parseFilter(p.get('f'));
      // The search waits for the filter controls, so that it runs with the URL's filter.
      filtersReady = filters.load(state.collection).then(() => filters.set(f));
      if (p.get('item')) setQueryItem(c, p.get('item'));
      else restorePhoto(c, p.get('photo'), parseCrop(p.get('crop')));
    }
    return;
  }
  filters.load(state.collection);
  if (pending) {
    const f = pending;
    pending = null;
    setQueryFile(f);
    return;
  }
  syncHash();
}

function parseFilter(v) {
  try {
    const f = JSON.parse(v || '{}');
    return f && typeof f === 'object' && !Array.isArray(f) ? f : {};
  } catch {
    return {};
  }
}

function parseCrop(v) {
  const n = String(v || '').split(',').map(Number);
  if (n.length !== 4 || !n.every((x) => Number.isInteger(x) && x >= 0) || !n[2] || !n[3]) return null;
  return { x: n[0], y: n[1], w: n[2], h: n[3] };
}

const cropText = (c) => (c ? `${c.x},${c.y},${c.w},${c.h}` : '');

// searchHash is the URL of a search: by item, or by a photo the server keeps (photo_id). A photo
// search whose photo the server did not keep has none, and stays #/search.
export function searchHash({ collection, item, photo, crop, filter }) {
  let q;
  if (item) q = new URLSearchParams({ c: collection, item });
  else if (photo) q = new URLSearchParams({ c: collection, photo });
  else return '#/search';
  if (photo && crop) q.set('crop', cropText(crop));
  if (filter && Object.keys(filter).length) q.set('f', JSON.stringify(filter));
  return `#/search?${q}`;
}

function currentHash() {
  if (!query) return '#/search';
  const filter = filters.value();
  if (query.kind === 'item' && !query.crop) return searchHash({ collection: query.collection, item: query.id, filter });
  return searchHash({ collection: query.collection, photo: query.photoId, crop: query.crop, filter });
}

function sameSearch(p) {
  return !!query && `#/search?${p}` === currentHash();
}

function syncHash() {
  if (!visible) return;
  const want = currentHash();
  // replaceState: the page already shows this search, so no hashchange (and no second search).
  if (location.hash !== want) history.replaceState(null, '', want);
}

// restorePhoto shows a search by a photo the server kept, from a reloaded or shared URL.
async function restorePhoto(collection, photoId, crop) {
  if (query && query.url && query.kind === 'photo' && query.file) URL.revokeObjectURL(query.url);
  const q = { kind: 'photo', collection, file: null, photoId, url: `/v1/photos/${encodeURIComponent(photoId)}`, crop: null };
  query = q;
  els.empty.hidden = true;
  els.preview.hidden = false;
  els.drop.hidden = true;
  cropper.el.classList.remove('no-preview');
  cropper.setSource(q.url);
  if (crop) {
    try { await cropper.img.decode(); } catch { /* gone: the search below says so */ }
    if (query !== q) return;
    cropper.set(crop);
    q.crop = cropper.pixels() && crop;
  }
  showCrop();
  run(false);
}

export function collectionChanged() {
  filters.invalidate();
  filters.load(state.collection);
  // An item belongs to its collection: searching "like it" elsewhere means nothing.
  if (query && query.kind === 'item') {
    resetQuery();
    return;
  }
  if (query) {
    query.collection = state.collection;
    run(false);
  }
}

function resetQuery() {
  if (controller) controller.abort();
  if (query && query.url && query.kind === 'photo' && query.file) URL.revokeObjectURL(query.url);
  query = null;
  results = [];
  els.preview.hidden = true;
  els.drop.hidden = false;
  els.empty.hidden = false;
  els.grid.replaceChildren();
  els.weakGrid.replaceChildren();
  els.weak.hidden = true;
  els.summary.textContent = '';
  els.timing.textContent = '';
  els.more.hidden = true;
  clear(els.error);
  syncHash();
}

// setQueryItem searches with a catalog item's stored vector; the preview shows its largest photo.
export function setQueryItem(collection, id) {
  let url;
  try {
    url = `${paths.item(collection, id)}/source`;
  } catch (err) {
    // An id no URL can name ("." or ".."), e.g. from a hand-edited link.
    resetQuery();
    els.error.replaceChildren(errorBox(plainError(err), err.message));
    return;
  }
  if (query && query.url && query.kind === 'photo' && query.file) URL.revokeObjectURL(query.url);
  query = { kind: 'item', collection, id, file: null, url, crop: null };
  els.empty.hidden = true;
  els.preview.hidden = false;
  els.drop.hidden = true;
  cropper.el.classList.remove('no-preview');
  cropper.setSource(query.url);
  showCrop();
  run(false);
}

// cropChanged searches a region. A region of an item's photo is a photo search: its stored photo
// is fetched once and sent like an upload.
async function cropChanged(px) {
  if (!query) return;
  if (query.kind === 'item' && px && !query.file) {
    try {
      const res = await fetch(query.url);
      if (!res.ok) throw new Error(String(res.status));
      const blob = await res.blob();
      query.file = new File([blob], `${query.id}.jpg`, { type: blob.type || 'image/jpeg' });
    } catch {
      els.error.replaceChildren(errorBox('The photo of this item could not be loaded.'));
      return;
    }
  }
  query.crop = px;
  showCrop();
  run(false);
}

// setQueryFile makes `file` the query photo (shrunk in the browser first) and runs the search.
export async function setQueryFile(original) {
  if (!els) {
    // Called from another page before this one was ever shown: run it when it mounts.
    pending = original;
    return;
  }
  // The old results go at once: shrinking a large photo takes a moment.
  const mine = ++photoSeq;
  if (controller) controller.abort();
  controller = null;
  els.grid.replaceChildren(...skeletonCards(8));
  els.weakGrid.replaceChildren();
  els.weak.hidden = true;
  els.more.hidden = true;
  els.summary.textContent = 'Preparing the photo…';
  els.timing.textContent = '';
  clear(els.error);
  const file = await shrinkPhoto(original);
  if (mine !== photoSeq) return; // another photo came meanwhile
  if (query && query.url && query.kind === 'photo' && query.file) URL.revokeObjectURL(query.url);
  query = { kind: 'photo', collection: state.collection, file, photoId: '', url: '', crop: null };
  els.empty.hidden = true;
  els.preview.hidden = false;
  els.drop.hidden = true;
  if (file.type && file.type.startsWith('image/')) {
    query.url = URL.createObjectURL(file);
    cropper.el.classList.remove('no-preview');
    cropper.setSource(query.url);
  } else {
    // Not an image by its type: let the server decide, and show no broken preview.
    cropper.el.classList.add('no-preview');
    cropper.img.removeAttribute('src');
    cropper.clear();
  }
  showCrop();
  run(false);
}

function showCrop() {
  const c = query && query.crop;
  const how = window.matchMedia('(pointer: coarse)').matches
    ? 'Tap “Select a region”, then drag on the photo to search one part of it.'
    : 'Drag on the photo to search one region.';
  const hint = query && query.kind === 'item' ? `Items that look like ${query.id}. ${how}` : how;
  els.cropInfo.textContent = c
    ? `Searching a region: ${c.w} × ${c.h} px at (${c.x}, ${c.y})`
    : (query && query.url ? hint : `${query ? query.file.name : ''}`);
  els.clearCrop.hidden = !c;
}

async function run(append) {
  await filtersReady;
  if (!query) return;
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const collection = query.collection;
  const filter = filters.value();
  syncHash();
  clear(els.error);
  els.more.hidden = true;
  if (!append) {
    results = [];
    nextCursor = '';
    els.grid.replaceChildren(...skeletonCards(8));
    els.weakGrid.replaceChildren();
    els.weak.hidden = true;
    els.summary.textContent = 'Searching…';
    els.timing.textContent = '';
  } else {
    els.more.disabled = true;
  }
  els.grid.setAttribute('aria-busy', 'true');
  try {
    const cursor = append ? nextCursor : '';
    const byItem = query.kind === 'item' && !query.crop;
    // By item: the similar endpoint, so the order is the item page's "Similar items".
    const res = byItem
      ? await api.similar(collection, query.id, { k: PAGE, filter: Object.keys(filter).length ? filter : undefined, cursor }, signal)
      : await api.search(collection, { file: query.file, photoId: query.photoId, k: PAGE, filter, crop: query.crop, cursor }, signal);
    const page = (Array.isArray(res.results) ? res.results : []).filter((r) => !byItem || r.id !== query.id);
    if (res.photo_id && !byItem) {
      // The server keeps the photo: the search now has a URL, and the next requests name the photo
      // instead of sending it again.
      query.photoId = res.photo_id;
      syncHash();
    }
    const start = results.length;
    results = results.concat(page);
    nextCursor = res.next_cursor || '';
    const cards = page.map((r, i) => card(collection, r, { rank: start + i + 1, extra: whyButton(collection, r.id, () => query) }));
    const strong = cards.filter((_, i) => !page[i].weak);
    const weak = cards.filter((_, i) => page[i].weak);
    if (append) els.grid.append(...strong);
    else els.grid.replaceChildren(...strong);
    els.weakGrid.append(...weak);
    if (!append) feedback.start(collection, PAGE);
    feedback.shown(page.map((r) => r.id));
    renderSummary(collection, filter);
    renderTiming(res);
    els.more.hidden = !nextCursor;
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    if (err && err.code === 'photo_not_found') {
      if (query.file) {
        // Forgotten since (a restart, or a day unused): send the photo itself again.
        query.photoId = '';
        controller = null;
        run(append);
        return;
      }
      // A reloaded or shared URL whose photo is gone: say so, and offer to choose one.
      els.preview.hidden = true;
      els.drop.hidden = false;
    }
    if (!append) {
      els.grid.replaceChildren();
      els.summary.textContent = '';
    }
    els.error.replaceChildren(errorBox(plainError(err), err.message));
    els.more.hidden = !nextCursor;
  } finally {
    if (!signal.aborted) {
      els.grid.removeAttribute('aria-busy');
      els.more.disabled = false;
      controller = null;
    }
  }
}

function renderSummary(collection, filter) {
  // Only results above the match threshold are matches; the rest are listed apart as the nearest.
  const n = results.filter((r) => !r.weak).length;
  const nWeak = results.length - n;
  els.weak.hidden = nWeak === 0;
  els.weakHead.textContent = n === 0 ? 'No close match — these are the nearest' : 'Not close matches — the nearest after those';
  const parts = [];
  parts.push(n === 0 ? (nWeak ? 'No close match' : 'No matches') : `${n} ${n === 1 ? 'match' : 'matches'}`);
  parts.push(`in “${collection}”`);
  if (query.crop) parts.push('for the selected region');
  else if (query.kind === 'item') parts.push(`like ${query.id}`);
  const nf = Object.keys(filter).length;
  if (nf) parts.push(`with ${nf} ${nf === 1 ? 'filter' : 'filters'}`);
  els.summary.textContent = parts.join(' ') + (n === 0 && nf ? '. Try removing a filter.' : '');
  const info = state.collections.find((c) => c.name === collection);
  if (results.length === 0 && !nf && (!info || !info.count)) {
    els.summary.textContent = `The collection “${collection}” has no photos yet. `;
    els.summary.append(h('a', { href: '#/catalog', text: 'Add photos in the catalog' }), '.');
  }
}

function renderTiming(res) {
  const t = res.timings_ms || {};
  const parts = [['decode', t.decode], ['inference', t.inference], ['search', t.search], ['total', t.total]]
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `${k} ${fmtMs(v)}`);
  els.timing.textContent = parts.join(' · ') + (res.model ? ` · model ${res.model}` : '');
}

// New items can bring new filter values.
window.addEventListener('lookalike:catalogchanged', () => { if (filters) filters.invalidate(); });
