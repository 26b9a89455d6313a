// Entry point: hash router over four pages. Pages are mounted once and kept, so returning to
// #/search from an item page shows the same query and results.
import { initPicker, refreshCollections, onCollectionChange, state } from './state.js';
import * as search from './search.js';
import * as item from './item.js';
import * as catalog from './catalog.js';
import * as status from './status.js';
import * as duplicates from './duplicates.js';

const pages = { search, item, catalog, status, duplicates };
const mounted = new Map();
const scrollMemory = new Map();
const titles = { search: 'Search by photo', catalog: 'Catalog', status: 'Status', item: 'Item', duplicates: 'Duplicates' };
let current = null;

function parseHash() {
  const whole = location.hash.replace(/^#\/?/, '');
  // #/search?c=…&item=… names a search; ids inside the path are percent-encoded, so "?" is ours.
  const qi = whole.indexOf('?');
  const raw = qi >= 0 ? whole.slice(0, qi) : whole;
  const query = new URLSearchParams(qi >= 0 ? whole.slice(qi + 1) : '');
  const parts = raw.split('/').map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const name = parts[0] || 'search';
  if (name === 'item' && parts.length >= 3) {
    return { name, params: { collection: parts[1], id: parts.slice(2).join('/') } };
  }
  return { name: pages[name] && name !== 'item' ? name : 'search', params: { query } };
}

function route() {
  const { name, params } = parseHash();
  const main = document.getElementById('main');
  if (current && current.name !== name) {
    scrollMemory.set(current.name, window.scrollY);
    const prev = mounted.get(current.name);
    prev.el.hidden = true;
    if (prev.page.hide) prev.page.hide();
  }
  let entry = mounted.get(name);
  if (!entry) {
    const el = pages[name].mount();
    el.classList.add('page');
    main.append(el);
    entry = { page: pages[name], el };
    mounted.set(name, entry);
  }
  entry.el.hidden = false;
  const changed = !current || current.name !== name;
  state.previousRoute = current ? current.name : '';
  current = { name, params };
  entry.page.show(params);
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (changed) {
    // The search page keeps its results, so it also gets its scroll position back.
    window.scrollTo(0, name === 'search' ? scrollMemory.get(name) || 0 : 0);
    if (titles[name]) document.title = `${titles[name]} — Lookalike`;
    // Move focus for screen-reader and keyboard users, without scrolling the page.
    const heading = entry.el.querySelector('h1');
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  }
}

function start() {
  // The skip link must not change the hash: that is the router's.
  document.querySelector('.skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    document.getElementById('main').focus();
  });
  initPicker();
  refreshCollections();
  onCollectionChange(() => {
    const entry = current && mounted.get(current.name);
    if (entry && entry.page.collectionChanged) entry.page.collectionChanged();
  });
  window.addEventListener('hashchange', route);
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
