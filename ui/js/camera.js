// Camera capture with getUserMedia, where the browser allows it (a secure context and a camera).
import { h, toast } from './dom.js';

export function cameraAvailable() {
  return !!(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

// openCamera shows a live preview in a modal dialog and resolves to a JPEG File, or null when the
// user cancels or the camera cannot be used.
export async function openCamera() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (err) {
    const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
    toast(denied ? 'Camera access was not allowed.' : 'No camera could be opened on this device.', 'error');
    return null;
  }
  const video = h('video', { autoplay: true, playsinline: true, muted: true, class: 'camera-video' });
  video.srcObject = stream;
  const take = h('button', { type: 'button', class: 'button primary', text: 'Take photo' });
  const cancel = h('button', { type: 'button', class: 'button', text: 'Cancel' });
  const dialog = h('dialog', { class: 'camera-dialog', 'aria-label': 'Camera' },
    video, h('div', { class: 'dialog-actions' }, cancel, take));
  document.body.append(dialog);
  dialog.showModal();
  const stop = () => { for (const t of stream.getTracks()) t.stop(); dialog.close(); dialog.remove(); };
  return new Promise((resolve) => {
    cancel.addEventListener('click', () => { stop(); resolve(null); });
    dialog.addEventListener('cancel', () => { stop(); resolve(null); });
    take.addEventListener('click', () => {
      const c = document.createElement('canvas');
      c.width = video.videoWidth;
      c.height = video.videoHeight;
      c.getContext('2d').drawImage(video, 0, 0);
      c.toBlob((blob) => {
        stop();
        resolve(blob ? new File([blob], `camera-${Date.now()}.jpg`, { type: 'image/jpeg' }) : null);
      }, 'image/jpeg', 0.92);
    });
  });
}
