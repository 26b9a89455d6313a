// Cropper shows the query photo and lets the user draw a region to search by, with a pointer
// (mouse, pen, touch) or the keyboard. The region is kept in fractions of the displayed image and
// reported in pixels of the image as decoded by the browser, which applies EXIF orientation the
// same way the server does.
//
// On a touch screen a swipe over the photo scrolls the page: a finger draws a region only in the
// crop mode that modeButton turns on (for one region at a time). Mouse and pen draw directly.
import { h } from './dom.js';

const MIN_FRACTION = 0.03; // smaller drags count as a click and clear the region
const STEP = 0.02;

export function createCropper({ onChange }) {
  const img = h('img', { class: 'stage-img', alt: 'Query photo', draggable: 'false' });
  const box = h('div', { class: 'cropbox', hidden: true, 'aria-hidden': 'true' },
    h('span', { class: 'handle nw' }), h('span', { class: 'handle se' }));
  const shade = h('div', { class: 'crop-shade', hidden: true, 'aria-hidden': 'true' });
  const el = h('div', {
    class: 'stage', tabindex: '0', role: 'group',
    'aria-label': 'Query photo. Drag on it to search a region. Keyboard: Enter starts a region, arrow keys move it, Shift+arrow keys resize it, Escape clears it.',
  }, img, shade, box);

  let crop = null; // {x, y, w, h} as fractions of the image, or null for the whole image
  let drag = null;
  let cropMode = false; // touch: a finger draws only in crop mode

  const modeButton = h('button', {
    type: 'button', class: 'button small crop-mode', id: 'crop-mode', 'aria-pressed': 'false',
    text: 'Select a region', title: 'Then drag on the photo to search one part of it',
  });
  function setMode(on) {
    cropMode = on;
    el.classList.toggle('cropping', on);
    modeButton.setAttribute('aria-pressed', String(on));
    modeButton.textContent = on ? 'Drag on the photo…' : 'Select a region';
  }
  modeButton.addEventListener('click', () => setMode(!cropMode));

  function layout() {
    box.hidden = shade.hidden = !crop;
    if (!crop) return;
    // CSSOM writes: allowed under style-src 'self', unlike style attributes in markup.
    box.style.left = `${crop.x * 100}%`;
    box.style.top = `${crop.y * 100}%`;
    box.style.width = `${crop.w * 100}%`;
    box.style.height = `${crop.h * 100}%`;
  }

  function point(e) {
    const r = img.getBoundingClientRect();
    return {
      x: Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)),
      y: Math.max(0, Math.min(1, (e.clientY - r.top) / r.height)),
    };
  }

  function fromCorners(a, b) {
    return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) };
  }

  function inside(p) {
    return crop && p.x >= crop.x && p.x <= crop.x + crop.w && p.y >= crop.y && p.y <= crop.y + crop.h;
  }

  el.addEventListener('pointerdown', (e) => {
    if (!img.naturalWidth || e.button !== 0) return;
    // A finger outside crop mode scrolls (touch-action lets the browser pan): no region.
    if (e.pointerType === 'touch' && !cropMode) return;
    e.preventDefault();
    el.focus({ preventScroll: true });
    el.setPointerCapture(e.pointerId);
    const p = point(e);
    drag = inside(p) ? { mode: 'move', start: p, orig: { ...crop } } : { mode: 'draw', start: p };
    el.classList.add('dragging');
  });
  el.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const p = point(e);
    if (drag.mode === 'draw') {
      crop = fromCorners(drag.start, p);
    } else {
      const o = drag.orig;
      crop = {
        ...o,
        x: Math.max(0, Math.min(1 - o.w, o.x + p.x - drag.start.x)),
        y: Math.max(0, Math.min(1 - o.h, o.y + p.y - drag.start.y)),
      };
    }
    layout();
  });
  const end = (e) => {
    if (!drag) return;
    const wasMove = drag.mode === 'move';
    drag = null;
    el.classList.remove('dragging');
    if (el.hasPointerCapture(e.pointerId)) el.releasePointerCapture(e.pointerId);
    if (crop && (crop.w < MIN_FRACTION || crop.h < MIN_FRACTION)) crop = wasMove ? crop : null;
    if (e.pointerType === 'touch' && crop) setMode(false); // one region per press of the button
    layout();
    report();
  };
  // report tells the page about a new region; a click that changes nothing runs no search.
  let reported = 'null';
  const report = () => {
    const px = api.pixels();
    const key = JSON.stringify(px);
    if (key === reported) return;
    reported = key;
    onChange(px);
  };
  el.addEventListener('pointerup', end);
  el.addEventListener('pointercancel', end);

  let keyTimer = 0;
  el.addEventListener('keydown', (e) => {
    if (!img.naturalWidth) return;
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (e.key === 'Escape' || e.key === 'Delete' || e.key === 'Backspace') {
      if (!crop) return;
      crop = null;
    } else if (e.key === 'Enter' || e.key === ' ') {
      if (crop) return;
      crop = { x: 0.25, y: 0.25, w: 0.5, h: 0.5 };
    } else if (arrows[e.key]) {
      const [dx, dy] = arrows[e.key];
      if (!crop) crop = { x: 0.25, y: 0.25, w: 0.5, h: 0.5 };
      if (e.shiftKey) {
        crop.w = Math.max(0.05, Math.min(1 - crop.x, crop.w + dx * STEP));
        crop.h = Math.max(0.05, Math.min(1 - crop.y, crop.h + dy * STEP));
      } else {
        crop.x = Math.max(0, Math.min(1 - crop.w, crop.x + dx * STEP));
        crop.y = Math.max(0, Math.min(1 - crop.h, crop.y + dy * STEP));
      }
    } else {
      return;
    }
    e.preventDefault();
    layout();
    // Debounce so holding an arrow key runs one search when the key is released.
    clearTimeout(keyTimer);
    keyTimer = setTimeout(report, 450);
  });

  const api = {
    el,
    img,
    modeButton,
    setSource(url) {
      setMode(false);
      crop = null;
      reported = 'null';
      layout();
      img.src = url;
    },
    clear() {
      crop = null;
      reported = 'null';
      layout();
    },
    // set takes a region in image pixels (used by tests and by restoring state).
    set(px) {
      if (!img.naturalWidth) return;
      const W = img.naturalWidth, H = img.naturalHeight;
      crop = { x: px.x / W, y: px.y / H, w: px.w / W, h: px.h / H };
      layout();
    },
    // pixels returns the region in pixels of the oriented image, or null for the whole image.
    pixels() {
      if (!crop || !img.naturalWidth) return null;
      const W = img.naturalWidth, H = img.naturalHeight;
      const x = Math.round(crop.x * W), y = Math.round(crop.y * H);
      return { x, y, w: Math.max(1, Math.min(W - x, Math.round(crop.w * W))), h: Math.max(1, Math.min(H - y, Math.round(crop.h * H))) };
    },
  };
  return api;
}
