// The loss curve as a hand-written SVG: loss against step, axes with their ranges, one polyline
// per run (several runs share the axes, for experiments side by side later).

const W = 640, H = 360, L = 60, R = 20, T = 20, B = 40;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3))));

export interface Curve {
  readonly label: string;
  readonly points: readonly { readonly step: number; readonly loss: number }[];
}

export function lossCurveSvg(curves: readonly Curve[], title = 'training loss'): string {
  const pts = curves.flatMap((c) => c.points).filter((p) => Number.isFinite(p.loss));
  const x0 = Math.min(0, ...pts.map((p) => p.step)), x1 = Math.max(1, ...pts.map((p) => p.step));
  let y0 = Math.min(...pts.map((p) => p.loss)), y1 = Math.max(...pts.map((p) => p.loss));
  if (!pts.length) y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
  const sx = (x: number) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y: number) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="14" text-anchor="middle">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const xv = x0 + (x1 - x0) * k / 4, yv = y0 + (y1 - y0) * k / 4;
    out.push(`<text x="${sx(xv).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${fmt(xv)}</text>`);
    out.push(`<text x="${L - 6}" y="${(sy(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>`);
  }
  out.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle">step</text>`);
  out.push(`<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">loss (nats/token)</text>`);
  curves.forEach((c, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const line = c.points.filter((p) => Number.isFinite(p.loss)).map((p) => `${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${line}"/>`);
    out.push(`<text x="${W - R - 4}" y="${T + 14 + 14 * i}" text-anchor="end" fill="${colour}">${esc(c.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
