// "Why it matched": fetches the server's heatmap of a result (POST /search/explain with the query
// photo) and swaps it into the result card's thumbnail, the whole photo with a colour legend; a
// second click shows the photo again.
import { h } from './dom.js';
import { ApiError, plainError, paths } from './api.js';

// A search by a catalog item has no file: the item (query_id) is the query.
async function fetchExplain(collection, { file, photoId, crop, id, queryItem }) {
  const form = new FormData();
  if (queryItem) form.append('query_id', queryItem);
  else if (photoId) form.append('photo_id', photoId);
  else form.append('image', file, file.name || 'query.jpg');
  form.append('id', id);
  if (crop) form.append('crop', `${crop.x},${crop.y},${crop.w},${crop.h}`);
  let res;
  try {
    res = await fetch(`${paths.collection(collection)}/search/explain`, { method: 'POST', body: form });
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  if (!res.ok) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(res.status, e.code, e.message, e.details, res.headers.get('Retry-After'));
  }
  return URL.createObjectURL(await res.blob());
}

// legend explains the colours: red where this photo matches yours more than an average match does.
function legend() {
  return h('div', { class: 'heat-legend', role: 'note' },
    h('span', { class: 'heat-title', text: 'Matches your photo' }),
    h('span', { class: 'heat-row' },
      h('span', { class: 'heat-label', text: 'less' }),
      h('span', { class: 'heat-scale', 'aria-hidden': 'true' }),
      h('span', { class: 'heat-label', text: 'more' })),
    h('span', { class: 'heat-note', text: 'than an average match' }));
}

// whyButton returns the card control; query() gives the current {file, crop} or {kind: 'item', id}.
export function whyButton(collection, id, query) {
  let heatUrl = '';
  let photoUrl = '';
  const btn = h('button', {
    type: 'button', class: 'link-button why', text: 'Why it matched',
    'aria-pressed': 'false', title: 'Show which regions of this photo match your query', dataset: { explain: id },
  });
  btn.addEventListener('click', async () => {
    const card = btn.closest('.card');
    const img = card && card.querySelector('.thumb img');
    if (!img) return;
    if (btn.getAttribute('aria-pressed') === 'true') {
      img.src = photoUrl;
      btn.setAttribute('aria-pressed', 'false');
      btn.textContent = 'Why it matched';
      card.classList.remove('explained');
      card.querySelector('.heat-legend')?.remove();
      return;
    }
    btn.disabled = true;
    btn.textContent = 'Explaining…';
    try {
      const q = query();
      if (!heatUrl) heatUrl = await fetchExplain(collection, { file: q.file, photoId: q.photoId, crop: q.crop, id, queryItem: q.kind === 'item' && !q.crop ? q.id : '' });
      photoUrl = photoUrl || img.getAttribute('src');
      img.src = heatUrl;
      btn.setAttribute('aria-pressed', 'true');
      btn.textContent = 'Show photo';
      card.classList.add('explained');
      if (!card.querySelector('.heat-legend')) card.querySelector('.card-link').after(legend());
    } catch (err) {
      btn.textContent = 'Why it matched';
      btn.title = `${plainError(err)} ${err.message || ''}`.trim();
    } finally {
      btn.disabled = false;
    }
  });
  return h('div', { class: 'card-actions' }, btn);
}
