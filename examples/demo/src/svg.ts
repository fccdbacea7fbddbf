/**
 * A small SVG line chart: throughput over time for each scenario, one panel
 * each, with the reconfigurations marked where they happened.
 */

export interface Series {
  readonly label: string;
  /** [seconds, Mbit/s] samples. */
  readonly points: readonly (readonly [number, number])[];
}

export interface Mark {
  /** Seconds since the panel's time zero. */
  readonly at: number;
  readonly label: string;
  readonly ok: boolean;
}

export interface Panel {
  readonly title: string;
  readonly series: readonly Series[];
  readonly marks: readonly Mark[];
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#9467bd', '#8c564b'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round tops of the scale (times a power of ten), each with its number of grid intervals. */
const TICKS: readonly (readonly [number, number])[] = [[1, 4], [1.5, 3], [2, 4], [2.5, 5], [3, 3], [4, 4], [5, 5], [6, 3], [8, 4], [10, 5]];

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const [m] of TICKS) if (v <= m * p) return m * p;
  return 10 * p;
}

export function chart(panels: readonly Panel[], title: string): string {
  const W = 960;
  const PH = 240;
  const M = { l: 70, r: 30, t: 50, b: 40 };
  const H = M.t + panels.length * (PH + M.b + 30) + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  panels.forEach((p, i) => {
    const top = M.t + i * (PH + M.b + 30);
    const x0 = M.l;
    const x1 = W - M.r;
    const points = p.series.flatMap((s) => s.points);
    const tMax = Math.max(1, ...points.map(([t]) => t), ...p.marks.map((m) => m.at));
    const yMax = niceMax(Math.max(...points.map(([, v]) => v), 0) * 1.1);
    const X = (t: number) => x0 + (t / tMax) * (x1 - x0);
    const Y = (v: number) => top + PH - (v / yMax) * PH;
    out.push(`<text x="${x0}" y="${top - 8}" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${PH}" fill="none" stroke="#999"/>`);
    // grid lines on round values
    const lead = Number((yMax / 10 ** Math.floor(Math.log10(yMax))).toFixed(2));
    const ticks = TICKS.find(([m]) => m === lead)?.[1] ?? 4;
    for (let k = 0; k <= ticks; k++) {
      const v = (yMax * k) / ticks;
      out.push(`<line x1="${x0}" x2="${x1}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`, `<text x="${x0 - 6}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
    }
    const step = tMax > 20 ? 5 : tMax > 8 ? 2 : 1;
    for (let t = 0; t <= tMax; t += step) out.push(`<text x="${X(t)}" y="${top + PH + 16}" text-anchor="middle">${t}s</text>`);
    out.push(`<text x="18" y="${top + PH / 2}" transform="rotate(-90 18 ${top + PH / 2})" text-anchor="middle">Mbit/s</text>`);
    p.series.forEach((s, k) => {
      const colour = COLOURS[k % COLOURS.length]!;
      if (s.points.length > 1) out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${s.points.map(([t, v]) => `${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}"/>`);
      // the legend, at the panel's top right
      const ly = top - 8;
      const lx = x1 - 150 * (p.series.length - k);
      out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`, `<text x="${lx + 22}" y="${ly}">${esc(s.label)}</text>`);
    });
    const rows = Math.min(Math.max(p.marks.length, 1), 6);
    [...p.marks].sort((a, b) => a.at - b.at).forEach((m, j) => {
      const x = X(m.at);
      const colour = m.ok ? '#2ca02c' : '#d62728';
      // a label that would run past the plot's right edge is written leftwards from its line
      const right = x + 4 + m.label.length * 6.8 > x1;
      out.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + PH}" stroke="${colour}" stroke-dasharray="4 3"/>`);
      out.push(`<text x="${right ? x - 4 : x + 4}" y="${top + 14 + 14 * (j % rows)}" fill="${colour}" text-anchor="${right ? 'end' : 'start'}">${esc(m.label)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
