// Client for the /v1 REST API. Every failure becomes an ApiError carrying the server's
// {"error":{"code","message","details"}} body; plainError turns it into words for people.

export class ApiError extends Error {
  constructor(status, code, message, details, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
    this.details = details || {};
    this.retryAfter = retryAfter || '';
  }
}

const enc = encodeURIComponent;

// The server's rule for collection names (index.NameRule), checked here before asking it.
export const COLLECTION_NAME = /^[a-z0-9_-]{1,64}$/;
export const COLLECTION_NAME_RULE = 'Use 1 to 64 lowercase letters (a–z), digits, dashes (-) or underscores (_).';

function parseError(status, text, retryAfter) {
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON: use the text */ }
  const e = (body && body.error) || {};
  const fallback = (text || '').replace(/<[^>]*>/g, ' ').trim().slice(0, 200);
  return new ApiError(status, e.code, e.message || fallback, e.details, retryAfter);
}

// request is the one fetch of the API (exported for page sections that own their routes).
export async function request(method, path, { body, signal, json } = {}) {
  let res;
  const headers = { Accept: 'application/json' };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  try {
    res = await fetch(path, { method, body, signal, headers });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  const text = await res.text();
  if (!res.ok) throw parseError(res.status, text, res.headers.get('Retry-After'));
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server sent a response that is not JSON.');
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// segment makes one URL path segment of a collection name or item id: percent-encoded (so /, ?, #
// and % stay inside it), and never a dot segment, which a browser would resolve away whatever its
// encoding ("/items/.." and "/items/%2E%2E" both mean the collection itself).
export function segment(s) {
  const v = String(s ?? '');
  if (v === '' || v === '.' || v === '..') {
    throw new ApiError(0, 'invalid_id', `"${v}" cannot be used in a URL path.`);
  }
  return enc(v);
}

// paths builds every API URL that names a collection or an item; no other module assembles one.
export const paths = {
  collection: (c) => `/v1/collections/${segment(c)}`,
  item: (c, id) => `/v1/collections/${segment(c)}/items/${segment(id)}`,
};

const col = paths.collection;

export const api = {
  collections: (signal) => request('GET', '/v1/collections', { signal }),
  createCollection: (name) => request('POST', '/v1/collections', { json: { name } }),
  fields: (c, signal) => request('GET', `${col(c)}/fields`, { signal }),
  items: (c, { cursor, limit } = {}, signal) =>
    request('GET', `${col(c)}/items${query({ cursor, limit })}`, { signal }),
  item: (c, id, signal) => request('GET', paths.item(c, id), { signal }),
  deleteItem: (c, id) => request('DELETE', paths.item(c, id)),
  similar: (c, id, { k, filter, cursor } = {}, signal) =>
    request('GET', `${paths.item(c, id)}/similar${query({ k, filter, cursor })}`, { signal }),
  stats: (signal) => request('GET', '/v1/stats', { signal }),
  duplicates: (c, { tier, cursor, limit } = {}, signal) =>
    request('GET', `${col(c)}/duplicates${query({ tier, cursor, limit })}`, { signal }),
  // resolveDuplicates keeps one item and moves the listed ones to the trash (undoable).
  resolveDuplicates: (c, { keep, tier, ids }) =>
    request('POST', `${col(c)}/duplicates:resolve`, { json: { keep, tier, delete: ids } }),
  restore: (c, ids) => request('POST', `${col(c)}/trash:restore`, { json: { ids } }),

  // search posts the query photo, or names the photo the server kept (photoId); "load more" calls
  // it again with the same form plus cursor.
  search(c, { file, photoId, k, filter, crop, cursor }, signal) {
    const form = new FormData();
    if (photoId) form.append('photo_id', photoId);
    else form.append('image', file, file.name || 'query.jpg');
    if (k) form.append('k', String(k));
    if (filter && Object.keys(filter).length) form.append('filter', JSON.stringify(filter));
    if (crop) form.append('crop', `${crop.x},${crop.y},${crop.w},${crop.h}`);
    if (cursor) form.append('cursor', cursor);
    return request('POST', `${col(c)}/search`, { body: form, signal });
  },

  // upload uses XMLHttpRequest because fetch reports no upload progress.
  upload(c, file, { id, metadata, onProgress } = {}) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append('image', file, file.name || 'photo.jpg');
      if (id) form.append('id', id);
      if (metadata && Object.keys(metadata).length) form.append('metadata', JSON.stringify(metadata));
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${col(c)}/items`);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', (e) => {
        if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener('load', () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try { resolve(JSON.parse(xhr.responseText)); } catch { resolve({}); }
        } else {
          reject(parseError(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
        }
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'The server could not be reached.')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.')));
      xhr.send(form);
    });
  },
};

function limitText(details) {
  const max = details && (details.max_bytes || details.limit_bytes || details.max);
  if (typeof max === 'number' && max > 0) {
    return max >= 1048576 ? ` (the limit is ${(max / 1048576).toFixed(0)} MB)` : ` (the limit is ${Math.round(max / 1024)} KB)`;
  }
  const px = details && (details.max_pixels || details.max_side);
  if (typeof px === 'number' && px > 0) return ` (the limit is ${px.toLocaleString('en-US')} pixels)`;
  return '';
}

// plainError says what went wrong in words a shopper or catalog editor understands. The server's
// own message is kept separately (err.message) for a smaller detail line.
export function plainError(err) {
  if (!(err instanceof ApiError)) return 'Something went wrong in the page. Please reload and try again.';
  const code = err.code.toLowerCase();
  const has = (...words) => words.some((w) => code.includes(w));
  if (has('not_an_image', 'decode', 'bad_image', 'invalid_image')) {
    return 'This file is not an image Lookalike can read. Try a JPEG, PNG or WebP photo.';
  }
  if (has('corrupt')) return 'This image is damaged or incomplete. Try another copy of the photo.';
  if (has('empty_image')) return 'This file is empty.';
  if (has('photo_not_found')) return 'The photo of this search is no longer kept on the server (it keeps them for a day). Choose the photo again to search.';
  if (has('bad_crop')) return 'The selected region is not inside the photo. Draw the box again.';
  if (has('invalid_filter')) return 'One of the filters is not valid. Clear the filters and try again.';
  if (has('csrf')) return 'The server refused a change that did not seem to come from this page. Reload the page and try again.';
  if (err.status === 401 || err.status === 403) return 'This server needs an API key, which this page cannot send.';
  if (err.status === 413 || has('too_large', 'too_big')) {
    return `This image is too large${limitText(err.details)}. Try a smaller photo.`;
  }
  if (err.status === 415 || has('media_type', 'unsupported')) {
    return 'This file type is not supported. Upload a JPEG, PNG or WebP photo.';
  }
  if (err.status === 429 || has('busy', 'overload', 'rate')) {
    const wait = Number(err.retryAfter);
    return `The server is busy right now. Please try again${wait > 0 ? ` in ${wait} s` : ' in a moment'}.`;
  }
  if (has('shutting_down')) return 'The server is restarting. Please try again in a moment.';
  if (err.status === 504 || has('timeout')) return 'The server took too long to answer. Please try again.';
  if (has('read_only', 'storage')) return 'The catalog cannot be changed right now: its storage is not writable.';
  if (err.status === 503) return 'The server is not ready yet (it may still be loading). Please try again shortly.';
  if (err.status === 404) return has('collection') ? 'This collection does not exist yet.' : 'Not found: it may have been deleted.';
  if (has('already_exists')) return 'That name is already taken.';
  if (has('invalid_name')) return `That name cannot be used. ${COLLECTION_NAME_RULE}`;
  if (has('fingerprint_mismatch')) return 'This collection was built with a different model than the server runs, so it cannot be searched or extended.';
  if (err.status === 409) return 'This conflicts with what is already stored.';
  if (err.code === 'network') return 'The server could not be reached. Check that Lookalike is running.';
  if (err.status === 400) return 'The request was not accepted.';
  return `Something went wrong on the server (HTTP ${err.status}).`;
}
