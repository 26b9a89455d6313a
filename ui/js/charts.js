// Hand-drawn SVG charts for the status page: a line chart with several series and a bar chart.
// Sizes are in viewBox units; CSS scales the SVG to its container.
import { s } from './dom.js';

const W = 320, H = 120, PAD = { l: 34, r: 8, t: 8, b: 18 };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function tickLabel(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1);
}

function timeLabel(t) {
  const d = new Date(t * 1000);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function frame(title, ts, max) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  svg.append(s('title', { text: title }));
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.t + ih * (1 - f);
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid-line' }));
    svg.append(s('text', { x: PAD.l - 4, y: y + 3, class: 'axis', 'text-anchor': 'end', text: tickLabel(max * f) }));
  }
  if (ts.length > 1) {
    svg.append(s('text', { x: PAD.l, y: H - 4, class: 'axis', text: timeLabel(ts[0]) }));
    svg.append(s('text', { x: W - PAD.r, y: H - 4, class: 'axis', 'text-anchor': 'end', text: timeLabel(ts[ts.length - 1]) }));
  }
  return { svg, iw, ih };
}

// lineChart draws series [{name, cls, values}] over the timestamps ts (unix seconds).
export function lineChart(title, ts, series, { area = false } = {}) {
  const all = series.flatMap((x) => x.values).filter((v) => Number.isFinite(v));
  const max = niceMax(Math.max(0, ...all));
  const { svg, iw, ih } = frame(title, ts, max);
  const t0 = ts[0], t1 = ts[ts.length - 1];
  const x = (i) => PAD.l + (ts.length > 1 ? ((ts[i] - t0) / Math.max(1, t1 - t0)) * iw : iw / 2);
  const y = (v) => PAD.t + ih * (1 - v / max);
  for (const ser of series) {
    // A missing value (no traffic in that interval) breaks the line instead of drawing a zero.
    const runs = [];
    let run = [];
    ser.values.forEach((v, i) => {
      if (Number.isFinite(v)) run.push([x(i), y(v)]);
      else if (run.length) { runs.push(run); run = []; }
    });
    if (run.length) runs.push(run);
    let d = '';
    for (const pts of runs) {
      const seg = pts.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('');
      d += seg;
      if (area && pts.length > 1) {
        svg.append(s('path', { d: `${seg}L${pts[pts.length - 1][0].toFixed(1)},${PAD.t + ih}L${pts[0][0].toFixed(1)},${PAD.t + ih}Z`, class: `area ${ser.cls}` }));
      }
      if (pts.length === 1) svg.append(s('circle', { cx: pts[0][0], cy: pts[0][1], r: 2.5, class: `dot ${ser.cls}` }));
    }
    if (d) svg.append(s('path', { d, class: `line ${ser.cls}`, 'vector-effect': 'non-scaling-stroke' }));
  }
  return svg;
}

export function barChart(title, ts, values, cls) {
  const max = niceMax(Math.max(1, ...values.filter((v) => Number.isFinite(v))));
  const { svg, iw, ih } = frame(title, ts, max);
  const n = Math.max(1, values.length);
  const bw = iw / n;
  values.forEach((v, i) => {
    if (!(v > 0)) return;
    const bh = (v / max) * ih;
    svg.append(s('rect', { x: (PAD.l + i * bw + bw * 0.15).toFixed(1), y: (PAD.t + ih - bh).toFixed(1), width: Math.max(1, bw * 0.7).toFixed(1), height: bh.toFixed(1), class: `bar-rect ${cls}` }));
  });
  return svg;
}
