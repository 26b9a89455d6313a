// Click feedback for the server's quality monitor (POST /v1/collections/{c}/feedback): each result
// list shown is an impression with a query id, and opening a result reports a click on it. The
// query id repeats, so the server updates one event instead of counting twice. Best effort: a
// failure never reaches the user.
import { paths } from './api.js';

const MAX_RESULTS = 100;

function newQueryId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b); // unlike randomUUID, also available on plain-http origins
  return `ui-${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

function send(s) {
  const body = {
    query_id: s.id,
    k: s.k,
    results: s.results.slice(0, MAX_RESULTS).map((id) => ({ id })),
  };
  if (s.clicked.size) body.clicked = [...s.clicked];
  let url;
  try { url = `${paths.collection(s.collection)}/feedback`; } catch { return; }
  fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    keepalive: true, // the click usually navigates away from the list
  }).catch(() => {});
}

// track follows one result list. shown() reports the ids on screen (again after "Load more");
// clicks on result links inside the grids (one list may be shown in several) are reported as they
// happen.
export function tracker(...grids) {
  let session = null;
  const onClick = (e) => {
    const li = e.target.closest('.card');
    if (!session || !li || !e.target.closest('a') || !li.dataset.id) return;
    if (session.clicked.has(li.dataset.id)) return;
    session.clicked.add(li.dataset.id);
    send(session);
  };
  for (const g of grids) g.addEventListener('click', onClick);
  return {
    start(collection, k) {
      session = { id: newQueryId(), collection, k, results: [], clicked: new Set() };
    },
    shown(ids) {
      if (!session || !ids.length) return;
      session.results = session.results.concat(ids);
      send(session);
    },
  };
}
