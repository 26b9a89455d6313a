// Shrinks a query photo in the browser before upload: a 12 MP phone photo need not travel, the
// model sees a few hundred pixels. The bitmap is decoded with its EXIF orientation applied, so the
// smaller JPEG (which carries no EXIF) is upright, as the server would have turned the original.
const MAX_SIDE = 1600;
const QUALITY = 0.9;

export async function shrinkPhoto(file) {
  const type = file.type || '';
  if (!type.startsWith('image/') || type === 'image/gif' || type === 'image/svg+xml' || typeof createImageBitmap !== 'function') return file;
  let bmp;
  try {
    bmp = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return file; // not decodable here: the server says what is wrong with it
  }
  const scale = MAX_SIDE / Math.max(bmp.width, bmp.height);
  if (!(scale < 1)) {
    bmp.close();
    return file;
  }
  const w = Math.max(1, Math.round(bmp.width * scale));
  const hgt = Math.max(1, Math.round(bmp.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = hgt;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // JPEG has no alpha: transparent parts become white, not black
  ctx.fillRect(0, 0, w, hgt);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, 0, 0, w, hgt);
  bmp.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', QUALITY));
  if (!blob) return file;
  const base = (file.name || 'photo').replace(/\.[^.]*$/, '');
  return new File([blob], `${base}.jpg`, { type: 'image/jpeg', lastModified: file.lastModified });
}
