// Catalog page: the collections with their sizes, a paginated grid of items, bulk upload of photos
// and folders with per-file progress, and deletion.
import { h, clear, errorBox, fmtBytes, fmtNumber, toast } from './dom.js';
import { api, plainError, ApiError, COLLECTION_NAME, COLLECTION_NAME_RULE } from './api.js';
import { state, setCollection, refreshCollections } from './state.js';
import { card, itemHref } from './cards.js';

const PAGE = 30;
const CONCURRENCY = 2;
const RETRIES = 3;
const IMAGE_EXT = /\.(jpe?g|png|webp|gif|bmp|tiff?|avif|heic)$/i;

let els = null;
let cursor = '';
let shown = 0;
let controller = null;
let queue = [];
let active = 0;
let batch = { done: 0, failed: 0 };

export function mount() {
  const collections = h('ul', { class: 'collections', id: 'collections', 'aria-label': 'Collections' });
  const newName = h('input', {
    type: 'text', id: 'new-collection', placeholder: 'new-collection', pattern: '[a-z0-9_\\-]{1,64}', maxlength: 64,
    'aria-label': 'New collection name', 'aria-describedby': 'new-collection-rule', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
  });
  // novalidate: the page states the rule in its own words instead of the browser's "match the format".
  const newForm = h('form', { class: 'new-collection', novalidate: true }, newName, h('button', { type: 'submit', class: 'button', text: 'New collection' }),
    h('p', { class: 'field-hint', id: 'new-collection-rule', text: COLLECTION_NAME_RULE }));
  newForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = newName.value.trim();
    if (!COLLECTION_NAME.test(name)) {
      newName.setAttribute('aria-invalid', 'true');
      toast(`“${name}” cannot be a collection name. ${COLLECTION_NAME_RULE}`, 'error');
      return;
    }
    newName.removeAttribute('aria-invalid');
    const button = newForm.querySelector('button');
    button.disabled = true;
    try {
      await api.createCollection(name);
      toast(`Collection “${name}” created.`, 'ok');
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'already_exists')) {
        toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
        return;
      }
    } finally {
      button.disabled = false;
    }
    newName.value = '';
    await refreshCollections();
    setCollection(name);
    renderCollections();
  });

  const files = h('input', { type: 'file', id: 'upload-files', accept: 'image/*', multiple: true, class: 'visually-hidden' });
  const folder = h('input', { type: 'file', id: 'upload-folder', multiple: true, webkitdirectory: true, class: 'visually-hidden' });
  const meta = h('textarea', { id: 'upload-meta', rows: '2', spellcheck: 'false', placeholder: '{"category": "shoes", "brand": "acme"}' });
  const metaError = h('p', { class: 'field-error', id: 'upload-meta-error', hidden: true });
  const drop = h('div', { class: 'dropzone compact', id: 'upload-drop' },
    h('div', { class: 'drop-icon', 'aria-hidden': 'true' }),
    h('p', { class: 'drop-title', text: 'Drop photos or folders here' }),
    h('div', { class: 'drop-actions' },
      files, h('label', { for: 'upload-files', class: 'button primary', text: 'Choose photos' }),
      folder, h('label', { for: 'upload-folder', class: 'button', text: 'Choose a folder' })));
  const list = h('ul', { class: 'upload-list', id: 'upload-list', 'aria-label': 'Uploads' });
  const uploadSummary = h('p', { class: 'upload-summary', id: 'upload-summary', 'aria-live': 'polite' });
  const clearDone = h('button', { type: 'button', class: 'link-button', text: 'Clear finished', hidden: true });
  clearDone.addEventListener('click', () => {
    for (const li of [...list.children]) if (li.dataset.state === 'done' || li.dataset.state === 'error' || li.dataset.state === 'skipped') li.remove();
    clearDone.hidden = true;
    uploadSummary.textContent = '';
  });

  const grid = h('ol', { class: 'grid catalog-grid', id: 'catalog-items', 'aria-label': 'Items' });
  const count = h('p', { class: 'results-summary', id: 'catalog-count' });
  const more = h('button', { type: 'button', class: 'button', id: 'catalog-more', text: 'Load more', hidden: true });
  const error = h('div', { id: 'catalog-error' });
  more.addEventListener('click', () => loadItems(true));

  els = { collections, files, folder, meta, metaError, drop, list, uploadSummary, clearDone, grid, count, more, error };

  files.addEventListener('change', () => { enqueue([...files.files].map((f) => ({ file: f, path: f.name }))); files.value = ''; });
  folder.addEventListener('change', () => {
    enqueue([...folder.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name, fromFolder: true })));
    folder.value = '';
  });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    enqueue(await droppedFiles(e.dataTransfer));
  });

  return h('section', { id: 'page-catalog', 'aria-labelledby': 'catalog-h' },
    h('div', { class: 'page-head' },
      h('h1', { id: 'catalog-h', tabindex: '-1', text: 'Catalog' }),
      newForm),
    collections,
    h('div', { class: 'catalog-layout' },
      h('section', { class: 'panel upload-panel', 'aria-labelledby': 'upload-h' },
        h('h2', { id: 'upload-h', text: 'Add photos' }),
        drop,
        h('label', { for: 'upload-meta', class: 'small-label', text: 'Metadata for these photos (JSON, optional)' }),
        meta, metaError,
        h('p', { class: 'hint', text: 'Each photo is named by its content, so uploading the same photo again updates it instead of adding a copy. Its file name is kept as file_name.' }),
        h('div', { class: 'upload-head' }, uploadSummary, clearDone),
        list),
      h('section', { class: 'items-panel', 'aria-labelledby': 'items-h' },
        h('div', { class: 'section-head' }, h('h2', { id: 'items-h', text: 'Items' }), count),
        error, grid, h('div', { class: 'more-row' }, more))));
}

export function show() {
  renderCollections();
  refreshCollections().then(renderCollections);
  loadItems(false);
}

export function hide() {
  if (controller) controller.abort();
}

export function collectionChanged() {
  renderCollections();
  loadItems(false);
}

function renderCollections() {
  const list = state.collections.slice();
  els.collections.replaceChildren(...list.map((c) => {
    const b = h('button', { type: 'button', class: 'collection-card', 'aria-pressed': String(c.name === state.collection), dataset: { name: c.name } },
      h('span', { class: 'collection-name', text: c.name }),
      h('span', { class: 'collection-count', text: `${fmtNumber(c.count || 0)} ${c.count === 1 ? 'item' : 'items'}` }),
      c.model ? h('span', { class: 'collection-model', text: `${c.model}${c.dims ? ` · ${c.dims}d` : ''}` }) : null);
    b.addEventListener('click', () => setCollection(c.name));
    return h('li', null, b);
  }));
}

async function loadItems(append) {
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const collection = state.collection;
  clear(els.error);
  if (!append) {
    cursor = '';
    shown = 0;
    els.grid.replaceChildren();
    els.count.textContent = 'Loading…';
  }
  els.more.disabled = true;
  els.grid.setAttribute('aria-busy', 'true');
  try {
    const res = await api.items(collection, { cursor: append ? cursor : '', limit: PAGE }, signal);
    const items = Array.isArray(res.items) ? res.items : [];
    els.grid.append(...items.map((it) => itemCard(collection, it)));
    shown += items.length;
    cursor = res.next_cursor || '';
    els.more.hidden = !cursor;
    renderCount();
    if (!append && items.length === 0) {
      els.grid.replaceChildren(h('li', { class: 'empty-note', text: 'No items yet. Add photos to start this collection.' }));
    }
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    els.count.textContent = '';
    if (err instanceof ApiError && err.status === 404) {
      els.grid.replaceChildren(h('li', { class: 'empty-note', text: 'No items yet. Add photos to start this collection.' }));
    } else {
      els.error.replaceChildren(errorBox(plainError(err), err.message));
    }
  } finally {
    if (!signal.aborted) {
      els.more.disabled = false;
      els.grid.removeAttribute('aria-busy');
    }
  }
}

function renderCount() {
  const total = (state.collections.find((c) => c.name === state.collection) || {}).count;
  els.count.textContent = typeof total === 'number' && total >= shown
    ? `Showing ${fmtNumber(shown)} of ${fmtNumber(total)}`
    : `Showing ${fmtNumber(shown)}`;
}

function itemCard(collection, it) {
  const del = h('button', { type: 'button', class: 'button danger small delete', text: 'Delete', 'aria-label': `Delete ${it.id}` });
  let armed = 0;
  del.addEventListener('click', async () => {
    if (!armed) {
      // Two-step delete instead of confirm(): no modal, works the same with the keyboard.
      del.textContent = 'Confirm delete';
      del.classList.add('armed');
      armed = setTimeout(() => { armed = 0; del.textContent = 'Delete'; del.classList.remove('armed'); }, 4000);
      return;
    }
    clearTimeout(armed);
    del.disabled = true;
    try {
      await api.deleteItem(collection, it.id);
      li.remove();
      shown = Math.max(0, shown - 1);
      toast(`Deleted ${it.id}.`, 'ok');
      await refreshCollections();
      renderCollections();
      renderCount();
      window.dispatchEvent(new CustomEvent('lookalike:catalogchanged'));
    } catch (err) {
      del.disabled = false;
      toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
    }
  });
  const li = card(collection, it, { showScore: false, extra: h('div', { class: 'card-actions' }, del) });
  return li;
}

// droppedFiles walks dropped folders with webkitGetAsEntry; plain files come as they are.
async function droppedFiles(dt) {
  const out = [];
  const items = [...(dt.items || [])];
  const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (entries.some((e) => e)) {
    for (const entry of entries) if (entry) await walk(entry, out, false);
    return out;
  }
  return [...(dt.files || [])].map((f) => ({ file: f, path: f.name }));
}

async function walk(entry, out, inFolder) {
  if (entry.isFile) {
    const file = await new Promise((res, rej) => entry.file(res, rej)).catch(() => null);
    if (file) out.push({ file, path: entry.fullPath.replace(/^\//, ''), fromFolder: inFolder });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  // readEntries returns at most ~100 entries per call; call until it returns none.
  for (;;) {
    const batchEntries = await new Promise((res, rej) => reader.readEntries(res, rej)).catch(() => []);
    if (!batchEntries.length) break;
    for (const e of batchEntries) await walk(e, out, true);
  }
}

function parseMeta() {
  const text = els.meta.value.trim();
  els.metaError.hidden = true;
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch { /* reported below */ }
  els.metaError.textContent = 'Metadata must be a JSON object, like {"category": "shoes"}.';
  els.metaError.hidden = false;
  els.meta.focus();
  return null;
}

function enqueue(entries) {
  if (!entries.length) return;
  const metadata = parseMeta();
  if (metadata === null) return;
  const collection = state.collection;
  if (active === 0 && queue.length === 0) batch = { done: 0, failed: 0 };
  for (const { file, path, fromFolder } of entries) {
    const name = path.split('/').pop();
    if (name.startsWith('.')) continue; // .DS_Store and friends from folders
    const row = uploadRow(path, file.size);
    els.list.append(row.li);
    if (fromFolder && !(file.type.startsWith('image/') || IMAGE_EXT.test(name))) {
      row.set('skipped', 'Skipped: not an image file');
      continue;
    }
    queue.push({ file, path, collection, metadata, row });
  }
  els.clearDone.hidden = false;
  pump();
}

function uploadRow(path, size) {
  const bar = h('span', { class: 'bar-fill' });
  const status = h('span', { class: 'upload-status', text: 'Waiting' });
  const li = h('li', { class: 'upload-row', dataset: { state: 'queued' } },
    h('span', { class: 'upload-name', title: path, text: path }),
    h('span', { class: 'upload-size', text: fmtBytes(size) }),
    h('span', { class: 'bar', 'aria-hidden': 'true' }, bar),
    status);
  return {
    li,
    progress(f) { bar.style.width = `${Math.round(f * 100)}%`; status.textContent = `Uploading ${Math.round(f * 100)}%`; },
    set(st, text, link) {
      li.dataset.state = st;
      if (st === 'done' || st === 'error') bar.style.width = '100%';
      status.replaceChildren(text);
      if (link) status.append(' ', link);
    },
  };
}

function pump() {
  while (active < CONCURRENCY && queue.length) {
    const job = queue.shift();
    active++;
    uploadOne(job).finally(() => {
      active--;
      if (queue.length) pump();
      else if (active === 0) finished();
    });
  }
  renderUploadSummary();
}

// What the server did with an upload (its outcome), as the row says it.
const OUTCOME = { created: 'Added as', replaced: 'Updated', unchanged: 'Already in the catalog as', merged: 'Merged into' };

async function uploadOne({ file, path, collection, metadata, row }) {
  // No id is sent: the server names the item by the photo's content. A file name would merge two
  // different photos (every phone's image.jpg, a/1.jpg and b/1.jpg) into one item.
  const meta = 'file_name' in metadata ? metadata : { ...metadata, file_name: path };
  for (let attempt = 0; ; attempt++) {
    row.set('uploading', 'Uploading…');
    try {
      const res = await api.upload(collection, file, { metadata: meta, onProgress: (f) => row.progress(f) });
      const it = res.item || {};
      const link = h('a', { class: 'item-link', href: itemHref(collection, it.id || ''), text: it.id || 'item' });
      row.set('done', OUTCOME[res.outcome] || 'Added as', link);
      row.li.dataset.outcome = res.outcome || '';
      const dup = res.near_duplicate_of;
      const dupId = dup && (typeof dup === 'string' ? dup : dup.id);
      if (dupId) {
        // Worth a look for a catalog editor: the same photo may now be in the catalog twice.
        const pct = typeof dup.score === 'number' ? ` (${(dup.score * 100).toFixed(0)}% alike)` : '';
        row.li.classList.add('duplicate');
        row.li.querySelector('.upload-status').append(h('span', { class: 'dup-note' },
          ' · near-duplicate of ', h('a', { href: itemHref(collection, dupId), text: dupId }), pct));
      }
      batch.done++;
      return;
    } catch (err) {
      const retryable = err instanceof ApiError && (err.status === 429 || err.status === 503 || err.status === 0);
      if (retryable && attempt < RETRIES) {
        const wait = Math.min(10, Number(err.retryAfter) || 2 ** attempt);
        row.set('queued', `Server busy, retrying in ${wait} s`);
        await new Promise((r) => setTimeout(r, wait * 1000));
        continue;
      }
      row.set('error', plainError(err));
      row.li.title = err.message || '';
      batch.failed++;
      return;
    } finally {
      renderUploadSummary();
    }
  }
}

function renderUploadSummary() {
  const waiting = queue.length + active;
  const parts = [];
  if (batch.done) parts.push(`${batch.done} added`);
  if (batch.failed) parts.push(`${batch.failed} failed`);
  if (waiting) parts.push(`${waiting} in progress`);
  els.uploadSummary.textContent = parts.join(' · ');
}

async function finished() {
  renderUploadSummary();
  // The grid reloads to show the new photos; mark it busy now, not only once the reload starts.
  els.grid.setAttribute('aria-busy', 'true');
  if (batch.done) {
    toast(`${batch.done} ${batch.done === 1 ? 'photo' : 'photos'} added${batch.failed ? `, ${batch.failed} failed` : ''}.`, batch.failed ? 'error' : 'ok');
    window.dispatchEvent(new CustomEvent('lookalike:catalogchanged'));
  }
  await refreshCollections();
  renderCollections();
  loadItems(false);
}
