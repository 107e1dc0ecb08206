// Reverse mode of the routing ops (records as in vjp.ts), in float64: softmax over the last dim,
// top-k (the values' cotangents go back to the chosen elements; indices have none), rows by index
// (gather's cotangent scattered back, scatter's gathered; an index outside the rows carries none),
// and the grouped experts (to x, the gates and both expert matrices; the indices have none).

import type { F64 } from '../runtime/cpu/backward.ts';
import type { BackwardCtx } from './kernel/train.ts';
import type { OpVjp, VjpCtx } from './vjp.ts';

const f = (c: VjpCtx, i: number) => c.ins[i] as F64;
/** The train entry's rows by index: `gather` or `scatter` of dy by the forward's indices into dx
 *  (each op's backward is the other), over `n` rows, k indices and rows of the dims after them. */
function byIndexKernel(c: BackwardCtx, family: 'gather' | 'scatter', n: number): void {
  const x = c.types[0]!, d = x.shape.slice(2).reduce<number>((a, b) => a * (b as number), 1);
  c.emit({ family, sizes: { N: n, K: c.types[1]!.shape[1] as number, D: d }, inputs: { x: c.dy(0), idx: c.in(1)! }, outputs: { y: c.dx(0) } });
}
const lastDim = (s: readonly number[]) => s[s.length - 1]!;

/** The k chosen of each row of x [rows, D], largest first, ties to the lower index. */
function chosen(x: F64, D: number, k: number): number[][] {
  const out: number[][] = [];
  for (let o = 0; o < x.length; o += D) out.push(Array.from({ length: D }, (_, i) => i).sort((a, b) => x[o + b]! - x[o + a]! || a - b).slice(0, k));
  return out;
}

/** Rows by index per token: x [T, n, D…], idx [T, k]; `from` rows of D per token in, `to` out. */
function byIndex(c: VjpCtx, src: F64, idx: ArrayLike<number>, from: number, to: number, gather: boolean): F64 {
  const k = c.shapes[1]![1]!, D = c.shapes[0]!.slice(2).reduce((a, b) => a * b, 1), T = idx.length / k;
  const out = new Float64Array(T * to * D), n = gather ? from : to;
  for (let q = 0; q < T * k; q++) {
    const e = Number(idx[q]), t = Math.floor(q / k);
    if (!(e >= 0 && e < n)) continue;
    const [i, o] = gather ? [(t * from + e) * D, q * D] : [q * D, (t * to + e) * D];
    for (let d = 0; d < D; d++) out[o + d] += src[i + d]!;
  }
  return out;
}

export const ROUTE_VJP: Readonly<Record<string, OpVjp>> = {
  gather: {
    forward: (c) => ({ outs: [byIndex(c, f(c, 0), c.ins[1] as ArrayLike<number>, c.shapes[0]![1]!, c.shapes[1]![1]!, true)] }),
    backward: (c, _s, d) => [byIndex(c, d[0]!, c.ins[1] as ArrayLike<number>, c.shapes[1]![1]!, c.shapes[0]![1]!, false), null],
    lowerBackward: (c) => byIndexKernel(c, 'scatter', c.types[0]!.shape[1] as number),
  },
  scatter: {
    forward: (c) => ({ outs: [byIndex(c, f(c, 0), c.ins[1] as ArrayLike<number>, c.shapes[1]![1]!, c.attrs.rows as number, false)] }),
    backward: (c, _s, d) => [byIndex(c, d[0]!, c.ins[1] as ArrayLike<number>, c.attrs.rows as number, c.shapes[1]![1]!, true), null],
    lowerBackward: (c) => byIndexKernel(c, 'gather', c.attrs.rows as number),
  },
  softmax: {
    forward(c) {
      const x = f(c, 0), D = lastDim(c.shapes[0]!), y = new Float64Array(x.length);
      for (let o = 0; o < x.length; o += D) {
        let mx = -Infinity, s = 0;
        for (let i = 0; i < D; i++) mx = Math.max(mx, x[o + i]!);
        for (let i = 0; i < D; i++) s += (y[o + i] = Math.exp(x[o + i]! - mx));
        for (let i = 0; i < D; i++) y[o + i]! /= s;
      }
      return { outs: [y], saved: y };
    },
    // dx = y · (dy − Σ dy·y) per row
    backward(c, saved, d) {
      const y = saved as F64, dy = d[0]!, D = lastDim(c.shapes[0]!), dx = new Float64Array(y.length);
      for (let o = 0; o < y.length; o += D) {
        let s = 0;
        for (let i = 0; i < D; i++) s += dy[o + i]! * y[o + i]!;
        for (let i = 0; i < D; i++) dx[o + i] = y[o + i]! * (dy[o + i]! - s);
      }
      return [dx];
    },
    lowerBackward(c) {
      const y = c.out(0);
      c.emit({ family: 'softmax_backward', sizes: { W: y.width, D: c.types[0]!.shape.at(-1) as number }, inputs: { y, dy: c.dy(0) }, outputs: { dx: c.dx(0) } });
    },
  },
  topk: {
    forward(c) {
      const x = f(c, 0), D = lastDim(c.shapes[0]!), k = c.attrs.k as number, norm = c.attrs.normalize === true;
      const picks = chosen(x, D, k), values = new Float64Array(picks.length * k), indices = new Float64Array(picks.length * k);
      picks.forEach((p, r) => {
        const sum = p.reduce((a, i) => a + x[r * D + i]!, 0);
        p.forEach((i, j) => { values[r * k + j] = norm ? x[r * D + i]! / sum : x[r * D + i]!; indices[r * k + j] = i; });
      });
      return { outs: [values, indices], saved: picks };
    },
    // v_j = x_pj (/ S with S = Σ x_p): dx_pm = dv_m (/ S − Σ_j dv_j · x_pj / S²)
    backward(c, saved, d) {
      const x = f(c, 0), D = lastDim(c.shapes[0]!), k = c.attrs.k as number, norm = c.attrs.normalize === true;
      const dv = d[0], dx = new Float64Array(x.length);
      if (dv) {
        (saved as number[][]).forEach((p, r) => {
          const sum = p.reduce((a, i) => a + x[r * D + i]!, 0);
          const dot = p.reduce((a, i, j) => a + dv[r * k + j]! * x[r * D + i]!, 0);
          p.forEach((i, j) => { dx[r * D + i] += norm ? dv[r * k + j]! / sum - dot / (sum * sum) : dv[r * k + j]!; });
        });
      }
      return [dx];
    },
    lowerBackward(c) {
      const x = c.in(0)!;
      if (!('buf' in x)) return c.refuse('a topk of a weight');
      c.emit({ family: 'topk_backward', sizes: { D: x.width, K: c.attrs.k as number }, inputs: { x, indices: c.out(1), dy: c.dy(0) },
        attrs: { normalize: c.attrs.normalize === true }, outputs: { dx: c.dx(0) } });
    },
  },
  experts: {
    forward(c) {
      const s = sizes(c), { x, idx, gates, wIn, wOut } = operands(c), y = new Float64Array(s.T * s.H);
      const hid: F64[] = [], down: F64[] = [];
      for (let q = 0; q < s.T * s.K; q++) {
        const t = Math.floor(q / s.K), e = Number(idx[q]), h = new Float64Array(s.I), dn = new Float64Array(s.H);
        for (let i = 0; i < s.I; i++) {
          let a = 0, b = 0;
          for (let col = 0; col < s.H; col++) { a += x[t * s.H + col]! * wIn[(e * 2 * s.I + i) * s.H + col]!; b += x[t * s.H + col]! * wIn[(e * 2 * s.I + s.I + i) * s.H + col]!; }
          h[i] = (a / (1 + Math.exp(-a))) * b;
        }
        for (let col = 0; col < s.H; col++) {
          for (let i = 0; i < s.I; i++) dn[col] += h[i]! * wOut[(e * s.H + col) * s.I + i]!;
          y[t * s.H + col] += gates[q]! * dn[col]!;
        }
        hid.push(h);
        down.push(dn);
      }
      return { outs: [y], saved: { down } };
    },
    backward(c, saved, d) {
      const s = sizes(c), { x, idx, gates, wIn, wOut } = operands(c), dy = d[0]!, { down } = saved as { down: F64[] };
      const dx = new Float64Array(x.length), dg = new Float64Array(gates.length), dwIn = new Float64Array(wIn.length), dwOut = new Float64Array(wOut.length);
      for (let q = 0; q < s.T * s.K; q++) {
        const t = Math.floor(q / s.K), e = Number(idx[q]), g = gates[q]!;
        for (let col = 0; col < s.H; col++) dg[q] += dy[t * s.H + col]! * down[q]![col]!;
        for (let i = 0; i < s.I; i++) {
          let a = 0, b = 0, dh = 0;
          for (let col = 0; col < s.H; col++) { a += x[t * s.H + col]! * wIn[(e * 2 * s.I + i) * s.H + col]!; b += x[t * s.H + col]! * wIn[(e * 2 * s.I + s.I + i) * s.H + col]!; }
          const sg = 1 / (1 + Math.exp(-a)), h = a * sg * b;
          for (let col = 0; col < s.H; col++) { dh += g * dy[t * s.H + col]! * wOut[(e * s.H + col) * s.I + i]!; dwOut[(e * s.H + col) * s.I + i] += g * dy[t * s.H + col]! * h; }
          const da = dh * b * sg * (1 + a * (1 - sg)), db = dh * a * sg;
          for (let col = 0; col < s.H; col++) {
            dx[t * s.H + col] += da * wIn[(e * 2 * s.I + i) * s.H + col]! + db * wIn[(e * 2 * s.I + s.I + i) * s.H + col]!;
            dwIn[(e * 2 * s.I + i) * s.H + col] += da * x[t * s.H + col]!;
            dwIn[(e * 2 * s.I + s.I + i) * s.H + col] += db * x[t * s.H + col]!;
          }
        }
      }
      return [dx, null, dg, dwIn, dwOut];
    },
    // one experts_backward kernel: the hidden rows recomputed from x, per token over its chosen experts
    lowerBackward(c) {
      const [E, I2, H] = c.types[3]!.shape as number[];
      c.emit({ family: 'experts_backward', sizes: { E: E!, H: H!, I: I2! / 2, K: c.types[1]!.shape[1] as number },
        inputs: { x: c.in(0)!, idx: c.in(1)!, gates: c.in(2)!, w_in: c.in(3)!, w_out: c.in(4)!, dy: c.dy(0) },
        outputs: { dx: c.dx(0), dgates: c.dx(2), dw_in: c.dx(3), dw_out: c.dx(4) } });
    },
  },
};

function sizes(c: VjpCtx) {
  const [T, H] = c.shapes[0]! as [number, number];
  return { T, H, K: lastDim(c.shapes[1]!), I: c.shapes[3]![1]! / 2 };
}
const operands = (c: VjpCtx) => ({ x: f(c, 0), idx: c.ins[1] as ArrayLike<number>, gates: f(c, 2), wIn: f(c, 3), wOut: f(c, 4) });
