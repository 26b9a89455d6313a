// Cluster section of the status page (docs/cluster.md): which node answered, the mutation log's
// leader and servers with their lag, and each shard replica with its applied sequence, lag and
// whether it serves searches. Shown only when GET /v1/cluster answers; a single node answers 404
// not_clustered, and the section stays hidden (and is not asked again until the page reloads).
import { h, fmtNumber } from './dom.js';
import { request, plainError } from './api.js';

let section = null;
let body = null;
let single = false; // the server said not_clustered: a node does not join a cluster while running

export function mount() {
  if (!document.querySelector('link[href="css/cluster.css"]')) {
    document.head.append(h('link', { rel: 'stylesheet', href: 'css/cluster.css' }));
  }
  body = h('div', { class: 'cluster-body' });
  section = h('section', { class: 'panel cluster', id: 'status-cluster', hidden: true, 'aria-labelledby': 'cluster-h' },
    h('h2', { id: 'cluster-h', text: 'Cluster' }), body);
  return section;
}

// refresh never throws but for an abort: the page's own error box speaks for the server.
export async function refresh(signal) {
  if (single) return;
  let st;
  try {
    st = await request('GET', '/v1/cluster', { signal });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    if (err && err.code === 'not_clustered') {
      single = true;
      section.hidden = true;
      return;
    }
    if (!section.hidden) body.replaceChildren(h('p', { class: 'error-text', text: `Cluster status is unavailable. ${plainError(err)}` }));
    return;
  }
  render(st || {});
  section.hidden = false;
}

const num = (v) => (Number.isFinite(v) ? fmtNumber(v, 0) : '—');

function badge(text, kind) {
  return h('span', { class: `cluster-badge ${kind}`, text });
}

// nodes lists the log's servers: the leader first, then its followers as the leader reports them.
function nodes(log) {
  const out = [];
  if (log.leader) out.push({ name: log.leader, role: 'leader', current: true, offline: false, lag: 0 });
  for (const p of Array.isArray(log.peers) ? log.peers : []) {
    if (p && p.name && p.name !== log.leader) out.push({ ...p, role: 'follower' });
  }
  return out.sort((a, b) => (a.role === b.role ? String(a.name).localeCompare(String(b.name)) : a.role === 'leader' ? -1 : 1));
}

function render(st) {
  const log = st.log || {};
  const reps = (Array.isArray(st.replicas) ? st.replicas : []).slice()
    .sort((a, b) => String(a.collection).localeCompare(String(b.collection)) || (a.shard - b.shard) || String(a.node).localeCompare(String(b.node)));
  const serving = reps.filter((r) => r.serving).length;
  const summary = h('p', { class: 'cluster-summary', id: 'cluster-summary' },
    'Answered by ', h('strong', { text: st.node || '—' }),
    ' · log leader ', log.leader ? h('strong', { id: 'cluster-leader', text: log.leader }) : badge('no leader: writes wait', 'bad'),
    ` · last sequence ${num(log.last_seq)} · ${num(log.messages)} messages · ${num(st.shards)} shards · ${serving} of ${reps.length} replicas serving`);
  const ns = nodes(log);
  const nodeTable = h('table', { class: 'table', id: 'cluster-nodes' },
    h('caption', { text: 'Log servers' }),
    h('thead', null, h('tr', null, ['Node', 'Role', 'State', 'Behind (messages)'].map((t, i) => h('th', { scope: 'col', class: i === 3 ? 'num' : '', text: t })))),
    h('tbody', null, ns.map((n) => h('tr', { 'data-node': n.name },
      h('td', { text: n.name }),
      h('td', { text: n.role }),
      h('td', null, n.offline ? badge('offline', 'bad') : n.current ? badge('current', 'ok') : badge('catching up', 'warn')),
      h('td', { class: 'num', text: num(n.lag) })))));
  const repTable = h('table', { class: 'table', id: 'cluster-replicas' },
    h('caption', { text: `Shard replicas on ${st.node || 'this node'}` }),
    h('thead', null, h('tr', null, ['Collection', 'Shard', 'Node', 'Applied sequence', 'Lag (at most)', 'Serving'].map((t, i) =>
      h('th', { scope: 'col', class: i === 1 || i === 3 || i === 4 ? 'num' : '', text: t })))),
    h('tbody', null, reps.map((r) => h('tr', { 'data-shard': String(r.shard) },
      h('td', { text: r.collection || '—' }),
      h('td', { class: 'num', text: num(r.shard) }),
      h('td', { text: r.node || st.node || '—' }),
      h('td', { class: 'num', text: num(r.applied_seq) }),
      h('td', { class: 'num', text: num(r.lag) }),
      h('td', { title: r.error || '' }, r.error ? badge(`stopped: ${r.error}`, 'bad') : r.serving ? badge('serving', 'ok') : badge('catching up', 'warn'))))));
  body.replaceChildren(summary,
    ...(st.error ? [h('p', { class: 'error-text', text: `This node reports: ${st.error}` })] : []),
    h('div', { class: 'cluster-tables' }, ns.length ? nodeTable : h('p', { class: 'muted', text: 'No log servers known (no leader).' }), repTable));
}
