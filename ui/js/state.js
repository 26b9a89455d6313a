// Shared app state: the selected collection (remembered across visits) and the collection list.
import { api } from './api.js';

const KEY = 'lookalike.collection';
const listeners = new Set();

function stored() {
  try { return localStorage.getItem(KEY) || 'default'; } catch { return 'default'; }
}

export const state = {
  collection: stored(),
  collections: [],
};

export function onCollectionChange(fn) {
  listeners.add(fn);
}

export function setCollection(name) {
  if (!name || name === state.collection) return;
  state.collection = name;
  try { localStorage.setItem(KEY, name); } catch { /* private mode: keep it for this tab */ }
  syncPicker();
  for (const fn of listeners) fn(name);
}

// refreshCollections reloads the list for the header picker; it keeps the current choice even
// when that collection has no items yet (uploading to it creates it).
export async function refreshCollections() {
  try {
    const res = await api.collections();
    state.collections = Array.isArray(res.collections) ? res.collections : [];
  } catch {
    state.collections = state.collections || [];
    syncPicker();
    return state.collections;
  }
  // A remembered collection that is gone (deleted, or another server) falls back to the default.
  const names = state.collections.map((c) => c.name);
  if (names.length && !names.includes(state.collection)) {
    setCollection(names.includes('default') ? 'default' : names[0]);
  }
  syncPicker();
  return state.collections;
}

function syncPicker() {
  const sel = document.getElementById('collection');
  if (!sel) return;
  const names = state.collections.map((c) => c.name);
  if (!names.includes(state.collection)) names.unshift(state.collection);
  sel.replaceChildren(...names.map((n) => {
    const o = document.createElement('option');
    o.value = n;
    o.textContent = n;
    return o;
  }));
  sel.value = state.collection;
}

export function initPicker() {
  const sel = document.getElementById('collection');
  syncPicker();
  sel.addEventListener('change', () => setCollection(sel.value));
}
