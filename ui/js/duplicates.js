// Duplicates page: review clusters of duplicate photos (exact copies, near-duplicates or other
// photos of the same product) one page of the catalog at a time. Resolving a cluster is explicit
// and undoable: pick the item to keep, tick the items to delete (pre-ticked only for exact and
// near copies, never for the similar tier), confirm a list of the exact ids, and the server moves
// them to the trash, from where "Undo" restores them. Clusters are disjoint (the server puts an
// item in one cluster at most), so keeping an item in one cluster never deletes it from another.
import { h, clear, errorBox, toast } from './dom.js';
import { api, plainError } from './api.js';
import { state } from './state.js';
import { thumb, scoreBar, itemHref } from './cards.js';

const SCAN = 200; // items scanned per request: the server's work per page is bounded by it

let els = null;
let cursor = '';
let loaded = false;
let seq = 0; // the latest run: answers to older ones are dropped
let clusterSeq = 0; // names the radio group of each cluster

export function mount() {
  const tier = h('select', { id: 'dup-tier', 'aria-label': 'Duplicate tier' },
    h('option', { value: 'exact', text: 'Exact copies' }),
    h('option', { value: 'near', text: 'Near-duplicates (edited copies)', selected: true }),
    h('option', { value: 'similar', text: 'Same product, other photo' }));
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
    h('p', {
      class: 'hint',
      text: 'Groups of photos that look like copies of each other (edited copies: re-encoded, resized, cropped or watermarked). '
        + 'Choose the one to keep, tick the ones to delete, and confirm: deleted items go to the trash and can be restored with Undo.',
    }),
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
  const tier = els.tier.value;
  clear(els.error);
  if (!append) {
    cursor = '';
    els.list.replaceChildren();
  }
  els.summary.textContent = 'Looking for duplicates…';
  els.more.hidden = true;
  try {
    const page = await api.duplicates(collection, { tier, limit: SCAN, cursor: append ? cursor : '' });
    if (mine !== seq) return;
    cursor = page.next_cursor || '';
    els.list.append(...(page.clusters || []).map((c) => cluster(collection, tier, page.one_click !== false, c)));
    const n = els.list.querySelectorAll('.dup-cluster').length;
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

// cluster renders one group: a "Keep" radio and a "Delete" checkbox per item, and the review
// button. preTick: whether choosing the item to keep ticks the others (exact and near copies only).
function cluster(collection, tier, preTick, c) {
  const items = c.items || [];
  const group = `dup-keep-${++clusterSeq}`;
  const row = h('ul', { class: 'grid dup-items' });
  const review = h('button', { type: 'button', class: 'button dup-review', text: 'Delete selected…', disabled: true });
  const panel = h('div', { class: 'dup-panel', 'aria-live': 'polite' });
  const li = h('li', { class: 'dup-cluster', dataset: { seed: items.length ? items[0].id : '' } }, row,
    h('div', { class: 'dup-actions' }, review), panel);
  const boxes = new Map(); // id → delete checkbox
  const selected = () => [...boxes].filter(([, b]) => b.checked && !b.disabled).map(([id]) => id);
  const keepId = () => (li.querySelector(`input[name="${group}"]:checked`) || {}).value || '';
  const update = () => { review.disabled = !keepId() || selected().length === 0; };
  const choose = (id) => {
    for (const [other, b] of boxes) {
      b.disabled = other === id;
      b.checked = other !== id && (preTick || b.checked);
    }
    update();
  };
  for (const [i, it] of items.entries()) {
    const keep = h('input', { type: 'radio', name: group, value: it.id, class: 'keep-choice', 'aria-label': `Keep ${it.id}` });
    const del = h('input', { type: 'checkbox', class: 'delete-choice', dataset: { id: it.id }, 'aria-label': `Delete ${it.id}` });
    keep.addEventListener('change', () => choose(it.id));
    del.addEventListener('change', update);
    boxes.set(it.id, del);
    row.append(h('li', { class: 'card', dataset: { id: it.id } },
      h('a', { class: 'card-link', href: itemHref(collection, it.id) },
        thumb(it.thumbnail_url, ''),
        h('div', { class: 'card-body' },
          i === 0 ? h('div', { class: 'dup-tier', text: 'first of the group' }) : h('div', { class: `dup-tier tier-${it.tier}`, text: `${it.tier} duplicate` }),
          i === 0 ? null : scoreBar(it.score),
          h('div', { class: 'card-id', text: it.id }))),
      h('div', { class: 'card-actions dup-choices' },
        h('label', {}, keep, ' Keep'), h('label', {}, del, ' Delete'))));
  }
  review.addEventListener('click', () => confirmStep(collection, tier, li, panel, keepId(), selected()));
  return li;
}

// confirmStep lists exactly what will be deleted and asks before anything is sent.
function confirmStep(collection, tier, li, panel, keep, ids) {
  const inputs = li.querySelectorAll('input, .dup-review');
  for (const el of inputs) el.disabled = true;
  const yes = h('button', { type: 'button', class: 'button danger dup-confirm-yes', text: `Move ${ids.length} to the trash` });
  const no = h('button', { type: 'button', class: 'button dup-confirm-no', text: 'Cancel' });
  panel.replaceChildren(h('div', { class: 'dup-confirm', role: 'group', 'aria-label': 'Confirm deletion' },
    h('p', { text: `Keep ${keep} and move ${ids.length} ${ids.length === 1 ? 'item' : 'items'} to the trash:` }),
    h('ul', { class: 'dup-confirm-ids' }, ids.map((id) => h('li', { text: id }))),
    h('div', { class: 'dup-actions' }, yes, no)));
  no.addEventListener('click', () => {
    panel.replaceChildren();
    for (const el of inputs) el.disabled = false;
    for (const b of li.querySelectorAll('.delete-choice')) b.disabled = b.dataset.id === keep;
  });
  yes.addEventListener('click', async () => {
    yes.disabled = no.disabled = true;
    try {
      const res = await api.resolveDuplicates(collection, { keep, tier, ids });
      resolved(collection, li, panel, keep, res);
    } catch (err) {
      toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
      yes.disabled = no.disabled = false;
    }
  });
}

// resolved says what happened and offers Undo while the trash keeps the items.
function resolved(collection, li, panel, keep, res) {
  const trashed = res.trashed || [];
  const until = res.restorable_until ? new Date(res.restorable_until).toLocaleDateString() : '';
  const undo = h('button', { type: 'button', class: 'button dup-undo', text: 'Undo' });
  li.classList.add('resolved');
  li.querySelector('.dup-items').replaceChildren();
  panel.replaceChildren(h('p', {
    class: 'dup-done',
    text: `Kept ${keep}; moved ${trashed.length} ${trashed.length === 1 ? 'item' : 'items'} to the trash (${trashed.join(', ')}).`
      + (until ? ` Undo is possible until ${until}.` : ''),
  }), trashed.length ? undo : null);
  window.dispatchEvent(new CustomEvent('lookalike:catalogchanged'));
  undo.addEventListener('click', async () => {
    undo.disabled = true;
    try {
      const out = await api.restore(collection, trashed);
      panel.replaceChildren(h('p', { class: 'dup-undone', text: `Restored ${out.restored} of ${trashed.length}. Find duplicates again to review the group.` }));
      window.dispatchEvent(new CustomEvent('lookalike:catalogchanged'));
    } catch (err) {
      toast(`${plainError(err)} ${err.message || ''}`.trim(), 'error');
      undo.disabled = false;
    }
  });
}
