// Filter controls built from GET /v1/collections/{c}/fields: a select for a keyword field with a
// few values, a searchable multi-select (a filter box over checkboxes) for one with many, and a
// min/max pair for each number field. value() returns the API's filter object. When the server cut
// a field's values (truncated), the control says it lists only the most common ones.
import { h, fmtNumber } from './dom.js';
import { api } from './api.js';

const MAX_KEYWORD_FIELDS = 6;
const MAX_SELECT = 12; // more values than this get the searchable multi-select
const SKIP = new Set(['name', 'title', 'description', 'id', 'sku', 'url', 'label', 'currency', 'file_name']);
const FIRST = ['category', 'brand', 'price'];
const rank = (name) => (FIRST.includes(name) ? FIRST.indexOf(name) : FIRST.length);

function label(name) {
  return name.replace(/[_-]+/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
}

export function createFilters({ onChange }) {
  const body = h('div', { class: 'filter-fields' });
  const reset = h('button', { type: 'button', class: 'link-button', text: 'Clear filters', hidden: true });
  // A disclosure, closed by default on phone-sized screens so results come first.
  const summary = h('summary', { text: 'Filters' });
  const el = h('details', { class: 'filters', hidden: true, open: !window.matchMedia('(max-width: 600px)').matches },
    summary, body, reset);
  let controls = [];
  let timer = 0;
  let loadedFor = null;

  function relabel() {
    const n = Object.keys(value()).length;
    reset.hidden = n === 0;
    summary.textContent = n ? `Filters (${n})` : 'Filters';
  }

  function changed(delay) {
    relabel();
    clearTimeout(timer);
    timer = setTimeout(onChange, delay);
  }

  reset.addEventListener('click', () => {
    for (const c of controls) c.reset();
    changed(0);
  });

  function keywordControl(f) {
    const id = `filter-${f.name}`;
    const sel = h('select', { id, name: f.name },
      h('option', { value: '', text: `Any ${label(f.name).toLowerCase()}` }),
      f.values.map((v) => h('option', { value: String(v), text: String(v) })));
    sel.addEventListener('change', () => changed(0));
    return {
      el: h('div', { class: 'field' }, h('label', { for: id, text: label(f.name) }), sel),
      name: f.name,
      value: () => (sel.value ? [f.name, sel.value] : null),
      reset: () => { sel.value = ''; },
      set: (v) => { if (typeof v === 'string' && f.values.map(String).includes(v)) sel.value = v; },
    };
  }

  // multiControl: a filter box narrows a list of checkboxes; several values mean "any of them".
  function multiControl(f) {
    const id = `filter-${f.name}`;
    const noun = label(f.name).toLowerCase();
    const search = h('input', {
      type: 'search', id: `${id}-q`, class: 'multi-search', autocomplete: 'off',
      placeholder: `Search ${f.values.length}${f.truncated ? '+' : ''} values…`, 'aria-controls': `${id}-list`,
    });
    const boxes = f.values.map((v, i) => {
      const cb = h('input', { type: 'checkbox', id: `${id}-${i}`, value: String(v) });
      cb.addEventListener('change', () => { sync(); changed(0); });
      return { v: String(v), cb, row: h('li', { class: 'multi-option' }, cb, h('label', { for: cb.id, text: String(v) })) };
    });
    const list = h('ul', { class: 'multi-list', id: `${id}-list`, role: 'group', 'aria-label': `${label(f.name)} values` }, boxes.map((b) => b.row));
    const none = h('p', { class: 'muted multi-none', text: 'No value matches.', hidden: true });
    const picked = h('p', { class: 'multi-picked', id: `${id}-picked`, 'aria-live': 'polite' });
    const cut = f.truncated
      ? h('p', { class: 'muted multi-cut', id: `${id}-cut`, text: `Only the ${f.values.length} most common values are listed; the ${noun} field has more.` })
      : null;
    const chosen = () => boxes.filter((b) => b.cb.checked).map((b) => b.v);
    function sync() {
      const c = chosen();
      picked.textContent = c.length ? `Any of: ${c.join(', ')}` : '';
    }
    search.addEventListener('input', () => {
      const q = search.value.trim().toLowerCase();
      let shown = 0;
      for (const b of boxes) {
        b.row.hidden = !!q && !b.v.toLowerCase().includes(q);
        if (!b.row.hidden) shown++;
      }
      none.hidden = shown > 0;
    });
    return {
      el: h('div', { class: 'field multi', id }, h('label', { for: search.id, text: label(f.name) }), search, list, none, picked, cut),
      value: () => {
        const c = chosen();
        if (!c.length) return null;
        return [f.name, c.length === 1 ? c[0] : { in: c }];
      },
      reset: () => {
        for (const b of boxes) { b.cb.checked = false; b.row.hidden = false; }
        search.value = '';
        none.hidden = true;
        sync();
      },
      name: f.name,
      set: (v) => {
        const want = new Set((typeof v === 'string' ? [v] : (v && Array.isArray(v.in) ? v.in : [])).map(String));
        for (const b of boxes) b.cb.checked = want.has(b.v);
        sync();
      },
    };
  }

  function numberControl(f) {
    const mk = (which, ph) => {
      const input = h('input', {
        type: 'number', inputmode: 'decimal', step: 'any', id: `filter-${f.name}-${which}`,
        placeholder: ph === undefined ? which : fmtNumber(ph), 'aria-label': `${label(f.name)} ${which === 'gte' ? 'minimum' : 'maximum'}`,
      });
      input.addEventListener('input', () => changed(500));
      return input;
    };
    const lo = mk('gte', f.min), hi = mk('lte', f.max);
    return {
      el: h('div', { class: 'field range' },
        h('label', { for: lo.id, text: label(f.name) }),
        h('div', { class: 'range-inputs' }, lo, h('span', { class: 'range-sep', text: '–' }), hi)),
      value: () => {
        const r = {};
        if (lo.value !== '' && Number.isFinite(Number(lo.value))) r.gte = Number(lo.value);
        if (hi.value !== '' && Number.isFinite(Number(hi.value))) r.lte = Number(hi.value);
        return Object.keys(r).length ? [f.name, r] : null;
      },
      reset: () => { lo.value = ''; hi.value = ''; },
      name: f.name,
      set: (v) => {
        if (v && Number.isFinite(v.gte)) lo.value = String(v.gte);
        if (v && Number.isFinite(v.lte)) hi.value = String(v.lte);
      },
    };
  }

  function value() {
    const out = {};
    for (const c of controls) {
      const kv = c.value();
      if (kv) out[kv[0]] = kv[1];
    }
    return out;
  }

  // set shows a filter object (from a search's URL) in the controls; parts no control can show
  // (a value the field list does not hold) are left out. It runs no search.
  function set(filter) {
    for (const c of controls) {
      c.reset();
      if (filter && filter[c.name] !== undefined) c.set(filter[c.name]);
    }
    relabel();
  }

  // load builds the controls of a collection's fields; the promise settles when they are in place
  // (at once when they already are, or when a load for it is under way).
  let loading = Promise.resolve();
  function load(collection) {
    if (loadedFor === collection) return loading;
    loadedFor = collection;
    loading = build(collection);
    return loading;
  }

  async function build(collection) {
    let fields = [];
    try {
      const res = await api.fields(collection);
      fields = Array.isArray(res.fields) ? res.fields : [];
    } catch {
      fields = []; // filters are optional: search still works without them
    }
    if (loadedFor !== collection) return;
    controls = [];
    let keywords = 0;
    fields.sort((a, b) => rank(a.name) - rank(b.name));
    for (const f of fields) {
      if (SKIP.has(f.name.toLowerCase())) continue;
      const values = f.type === 'keyword' && Array.isArray(f.values) ? f.values : [];
      // A field whose every value is different (a name, a file name) is not a useful filter.
      const unique = !f.truncated && values.length > MAX_SELECT && values.length >= f.count;
      if (values.length > 0 && !unique && keywords < MAX_KEYWORD_FIELDS) {
        keywords++;
        controls.push(values.length > MAX_SELECT || f.truncated ? multiControl(f) : keywordControl(f));
      } else if (f.type === 'number' && Number.isFinite(f.min) && Number.isFinite(f.max) && f.min < f.max) {
        controls.push(numberControl(f));
      }
    }
    body.replaceChildren(...controls.map((c) => c.el));
    el.hidden = controls.length === 0;
    reset.hidden = true;
  }

  return { el, value, load, set, invalidate: () => { loadedFor = null; } };
}
