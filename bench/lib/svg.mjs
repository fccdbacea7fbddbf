// Small SVG charts for docs/benchmarks.md. A bar chart: groups of bars (one per
// series), each with an optional min-max whisker, a y axis from zero, a
// legend, and an optional dashed reference line per group (the target); and
// a line chart of series over a numeric x axis, with vertical markers.
const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];

const r1 = (v) => Math.round(v * 10) / 10;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A "nice" axis maximum and tick step for values up to `max`. */
function axis(max) {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, ''));

/**
 * groups: [{ label, bars: [{ series, value, min?, max? }], reference?: { value, label } }]
 * series: names in legend order. Returns the SVG text.
 */
export function barChart({ title, unit, groups, series, width = 860, height = 360 }) {
  const left = 64;
  const right = 16;
  const top = 48;
  const bottom = 64;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = groups.flatMap((g) => [...g.bars.flatMap((b) => [b.value, b.max ?? b.value]), g.reference?.value ?? 0]).filter(Number.isFinite);
  const { top: ymax, step } = axis(Math.max(...values));
  const y = (v) => r1(top + plotH - (v / ymax) * plotH);
  const gw = plotW / groups.length;
  const bw = r1(Math.min(36, (gw * 0.8) / series.length));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(`<text transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}</text>`);
  groups.forEach((g, gi) => {
    const x0 = r1(left + gi * gw + (gw - bw * series.length) / 2);
    for (const b of g.bars) {
      const si = series.indexOf(b.series);
      if (si < 0 || !Number.isFinite(b.value)) continue;
      const x = r1(x0 + si * bw);
      out.push(`<rect x="${x + 1}" y="${y(b.value)}" width="${bw - 2}" height="${r1(Math.max(0, y(0) - y(b.value)))}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${g.label}, ${b.series}: ${fmt(b.value)} ${unit}`)}</title></rect>`);
      if (Number.isFinite(b.min) && Number.isFinite(b.max)) {
        const cx = r1(x + bw / 2);
        out.push(`<path d="M${cx} ${y(b.min)}V${y(b.max)}M${cx - 4} ${y(b.min)}H${cx + 4}M${cx - 4} ${y(b.max)}H${cx + 4}" stroke="#333" fill="none"/>`);
      }
    }
    if (g.reference && Number.isFinite(g.reference.value)) {
      const ry = y(g.reference.value);
      out.push(`<line x1="${left + gi * gw + 4}" x2="${left + (gi + 1) * gw - 4}" y1="${ry}" y2="${ry}" stroke="#c00" stroke-dasharray="5 3"><title>${esc(g.reference.label ?? '')}</title></line>`);
    }
    out.push(`<text x="${left + gi * gw + gw / 2}" y="${top + plotH + 18}" text-anchor="middle">${esc(g.label)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${width - right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  // legend, in one row under the groups' labels
  let lx = left;
  const ly = height - 18;
  series.forEach((s, si) => {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 16}" y="${ly}">${esc(s)}</text>`);
    lx += 28 + s.length * 7;
  });
  if (groups.some((g) => g.reference)) {
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="#c00" stroke-dasharray="5 3"/>`);
    out.push(`<text x="${lx + 22}" y="${ly}">target</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Axis bounds and tick step covering [min, max] (min may be negative). */
function span(min, max) {
  const { step } = axis(Math.max(Math.abs(min), Math.abs(max), max - min) || 1);
  return { lo: Math.floor(min / step) * step, hi: Math.ceil(max / step) * step, step };
}

/**
 * A line chart: series of [x, y] points drawn as lines, y from zero.
 * series: [{ name, points: [[x, y], ...] }]; markers: [{ x, label }] drawn as
 * vertical dashed lines; reference: { value, label } a horizontal dotted
 * line. Returns the SVG text.
 */
export function lineChart({ title, xUnit, unit, series, markers = [], reference, xMin, xMax, width = 430, height = 280 }) {
  const left = 56;
  const right = 12;
  const top = 40;
  // legend items (series, markers, reference), laid out in rows under the x axis
  const items = [
    ...series.map((s, si) => ({ label: s.name, stroke: COLORS[si % COLORS.length], dash: '', w: 2 })),
    ...(markers.length ? [{ label: markers.map((m) => m.label).join(', '), stroke: '#c00', dash: '5 3', w: 1 }] : []),
    ...(reference ? [{ label: reference.label ?? '', stroke: '#777', dash: '2 3', w: 1 }] : []),
  ];
  const rows = [[]];
  let used = 0;
  for (const it of items) {
    const w = 30 + it.label.length * 6;
    if (used > 0 && left + used + w > width - right) {
      rows.push([]);
      used = 0;
    }
    rows.at(-1).push({ ...it, dx: used });
    used += w;
  }
  const bottom = 44 + 14 * rows.length;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p[0])).filter(Number.isFinite);
  const ys = [...series.flatMap((s) => s.points.map((p) => p[1])), reference?.value ?? 0].filter(Number.isFinite);
  const xr = span(xMin ?? Math.min(...xs), xMax ?? Math.max(...xs));
  const { top: ymax, step: ystep } = axis(Math.max(...ys));
  const x = (v) => r1(left + ((v - xr.lo) / (xr.hi - xr.lo)) * plotW);
  const y = (v) => r1(top + plotH - (v / ymax) * plotH);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`);
  for (let v = 0; v <= ymax + 1e-9; v += ystep) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 5}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (let v = xr.lo; v <= xr.hi + 1e-9; v += xr.step) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(v)}" y="${top + plotH + 14}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<text transform="translate(13 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}</text>`);
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 30}" text-anchor="middle">${esc(xUnit)}</text>`);
  if (reference && Number.isFinite(reference.value)) {
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y(reference.value)}" y2="${y(reference.value)}" stroke="#777" stroke-dasharray="2 3"><title>${esc(reference.label ?? '')}</title></line>`);
  }
  for (const m of markers) {
    if (!Number.isFinite(m.x) || m.x < xr.lo || m.x > xr.hi) continue;
    out.push(`<line x1="${x(m.x)}" x2="${x(m.x)}" y1="${top}" y2="${top + plotH}" stroke="#c00" stroke-dasharray="5 3"><title>${esc(m.label ?? '')}</title></line>`);
  }
  series.forEach((s, si) => {
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && p[0] >= xr.lo && p[0] <= xr.hi);
    if (pts.length === 0) return;
    out.push(`<polyline fill="none" stroke="${COLORS[si % COLORS.length]}" stroke-width="1.5" points="${pts.map((p) => `${x(p[0])},${y(p[1])}`).join(' ')}"><title>${esc(s.name)}</title></polyline>`);
  });
  out.push(`<line x1="${left}" x2="${width - right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  rows.forEach((row, ri) => {
    const ly = height - bottom + 44 + 14 * ri + 4;
    for (const it of row) {
      const lx = left + it.dx;
      out.push(`<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${it.stroke}" stroke-width="${it.w}"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`);
      out.push(`<text x="${lx + 20}" y="${ly}">${esc(it.label)}</text>`);
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
