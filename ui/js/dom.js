// Small DOM helpers. Everything that comes from the API goes in as text nodes or attributes:
// no innerHTML anywhere, so metadata such as "<script>" renders as the characters it is.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// h builds an HTML element: h('a', {href, class, text, onclick}, ...children).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  add(el, children);
  return el;
}

// s builds an SVG element, for the hand-drawn charts.
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  add(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

// fmtNumber prints integers plainly and other numbers with up to `digits` decimals.
export function fmtNumber(v, digits = 2) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return String(v ?? '—');
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function fmtMs(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  if (v > 0 && v < 0.1) return '<0.1 ms';
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fmtDuration(sec) {
  if (!Number.isFinite(sec)) return '—';
  const d = Math.floor(sec / 86400), hr = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60), s2 = Math.floor(sec % 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s2}s`;
  return `${s2}s`;
}

// metaText turns a metadata value into display text: strings as they are, the rest as JSON.
export function metaText(v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return fmtNumber(v);
  return JSON.stringify(v);
}

// toast shows a short message in the live region; kind is '', 'error' or 'ok'.
export function toast(message, kind = '') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast ${kind}`, text: message });
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// errorBox renders a plain-words error with the server's own message as a smaller detail line.
export function errorBox(plain, detail) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', { class: 'error-title', text: plain }),
    detail ? h('span', { class: 'error-detail', text: detail }) : null);
}
