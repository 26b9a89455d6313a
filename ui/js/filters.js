// Filter controls built from GET /v1/collections/{c}/fields: a select for each keyword field with
// known values and a min/max pair for each number field. value() returns the API's filter object.
import { h, fmtNumber } from './dom.js';
import { api } from './api.js';

const MAX_KEYWORD_FIELDS = 6;
const MAX_VALUES = 40;
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

  function changed(delay) {
    const n = Object.keys(value()).length;
    reset.hidden = n === 0;
    summary.textContent = n ? `Filters (${n})` : 'Filters';
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
      value: () => (sel.value ? [f.name, sel.value] : null),
      reset: () => { sel.value = ''; },
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

  async function load(collection) {
    if (loadedFor === collection) return;
    loadedFor = collection;
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
      // A keyword with very many values (a name, a description) is not a useful filter.
      if (f.type === 'keyword' && Array.isArray(f.values) && f.values.length > 0 && f.values.length <= MAX_VALUES && keywords < MAX_KEYWORD_FIELDS) {
        keywords++;
        controls.push(keywordControl(f));
      } else if (f.type === 'number' && Number.isFinite(f.min) && Number.isFinite(f.max) && f.min < f.max) {
        controls.push(numberControl(f));
      }
    }
    body.replaceChildren(...controls.map((c) => c.el));
    el.hidden = controls.length === 0;
    reset.hidden = true;
  }

  return { el, value, load, invalidate: () => { loadedFor = null; } };
}
