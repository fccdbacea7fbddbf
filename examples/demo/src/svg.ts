/**
 * A small SVG line chart: throughput over time for each scenario, one panel
 * each, with the reconfigurations marked where they happened.
 */

export interface Panel {
  readonly title: string;
  /** [seconds, Mbit/s] samples. */
  readonly series: readonly (readonly [number, number])[];
  readonly marks: readonly { readonly at: number; readonly label: string; readonly ok: boolean }[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
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
    const tMax = Math.max(1, ...p.series.map(([t]) => t), ...p.marks.map((m) => m.at));
    const yMax = niceMax(Math.max(...p.series.map(([, v]) => v), 0) * 1.1);
    const X = (t: number) => x0 + (t / tMax) * (x1 - x0);
    const Y = (v: number) => top + PH - (v / yMax) * PH;
    out.push(`<text x="${x0}" y="${top - 8}" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${PH}" fill="none" stroke="#999"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      out.push(`<line x1="${x0}" x2="${x1}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`, `<text x="${x0 - 6}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
    }
    const step = tMax > 20 ? 5 : tMax > 8 ? 2 : 1;
    for (let t = 0; t <= tMax; t += step) out.push(`<text x="${X(t)}" y="${top + PH + 16}" text-anchor="middle">${t}s</text>`);
    out.push(`<text x="18" y="${top + PH / 2}" transform="rotate(-90 18 ${top + PH / 2})" text-anchor="middle">Mbit/s</text>`);
    if (p.series.length > 1) out.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${p.series.map(([t, v]) => `${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}"/>`);
    p.marks.forEach((m, j) => {
      const x = X(m.at);
      const colour = m.ok ? '#2ca02c' : '#d62728';
      out.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + PH}" stroke="${colour}" stroke-dasharray="4 3"/>`);
      out.push(`<text x="${x + 4}" y="${top + 14 + 14 * (j % 3)}" fill="${colour}">${esc(m.label)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
