// The f32 training engine's op records, keyed like compiler/vjp.ts' VJP (one per graph op): the
// forward in f32 saving what docs/TRAINING.md "What is saved" lists, the backward from the outputs'
// cotangents. Products run on the engine's Gemm (wasm); the hot row-wise ops (silu, same-shape
// mul/add, the norms) on its row kernels (./rows.ts, WebAssembly SIMD) where it has them, else and
// the rest here in typed-array JS (accumulating in double, stored in f32); the sequence ops in ./seq.ts.

import { POINTWISE, type Pointwise, scaleFactors } from '../../cpu/backward.ts';
import { copyRows } from './gemm.ts';
import { f32 } from './pool.ts';
import type { Ctx32, Op32 } from './graph.ts';
import { SEQ_OPS } from './seq.ts';

type F32 = Float32Array;
const f = (c: Ctx32, i: number) => c.ins[i] as F32;
const lastDim = (s: readonly number[]) => s[s.length - 1]!;
const num = (c: Ctx32, k: string) => c.attrs[k] as number;
const d0 = (d: readonly (F32 | null)[]) => d[0]!;

/** Ops of the float64 VJP table the f32 engine has no record for yet, and why (a model using one
 *  trains on the reference engine: F32Engine refuses it, naming these). */
export const NOT_YET32: Readonly<Record<string, string>> = {
  softmax: 'a mixture of experts\' router', topk: 'a mixture of experts\' router', experts: 'a mixture of experts',
  gather: 'rows by index', scatter: 'rows by index',
};

function pointwise(p: (c: Ctx32) => Pointwise): Op32 {
  return {
    forward(c) {
      const x = f(c, 0), y = f32(x.length), fn = p(c).f;
      for (let i = 0; i < x.length; i++) y[i] = fn(x[i]!);
      return { outs: [y] };
    },
    backward(c, _s, d) {
      const x = f(c, 0), g = d0(d), dx = f32(x.length), df = p(c).df;
      for (let i = 0; i < x.length; i++) dx[i] = g[i]! * df(x[i]!);
      return [dx];
    },
  };
}

/** a + b or a · b, b repeating over a's leading dims (rows of b.length); db sums over the repeats. */
function broadcasting(mul: boolean): Op32 {
  return {
    forward(c) {
      const a = f(c, 0), b = f(c, 1), R = c.gemm.rows;
      if (R && a.length === b.length) return { outs: [mul ? R.mulF(a, b) : R.addF(a, b)] };
      const y = f32(a.length), n = b.length;
      for (let o = 0; o < a.length; o += n) {
        if (mul) for (let i = 0; i < n; i++) y[o + i] = a[o + i]! * b[i]!;
        else for (let i = 0; i < n; i++) y[o + i] = a[o + i]! + b[i]!;
      }
      return { outs: [y] };
    },
    backward(c, _s, d) {
      const a = f(c, 0), b = f(c, 1), g = d0(d), n = b.length;
      if (!mul) return [g, n === g.length ? g.slice() : colSums(g, g.length / n, n)];
      if (c.gemm.rows && n === a.length) return c.gemm.rows.mulB(a, b, g);
      const da = f32(a.length), db = f32(n);
      if (n === a.length) for (let i = 0; i < n; i++) { da[i] = g[i]! * b[i]!; db[i] = g[i]! * a[i]!; }
      else {
        const acc = new Float64Array(n);
        for (let o = 0; o < a.length; o += n) for (let i = 0; i < n; i++) { da[o + i] = g[o + i]! * b[i]!; acc[i] += g[o + i]! * a[o + i]!; }
        db.set(acc);
      }
      return [da, db];
    },
  };
}

/** silu(x) = x·σ(x) and its derivative σ(x)·(1 + x·(1 − σ(x))), inline (the hot pointwise op). */
const SILU: Op32 = {
  forward(c) {
    const x = f(c, 0);
    if (c.gemm.rows) return { outs: [c.gemm.rows.siluF(x)] };
    const y = f32(x.length);
    for (let i = 0; i < x.length; i++) { const v = x[i]!; y[i] = v / (1 + Math.exp(-v)); }
    return { outs: [y] };
  },
  backward(c, _s, d) {
    const x = f(c, 0), g = d0(d);
    if (c.gemm.rows) return [c.gemm.rows.siluB(x, g)];
    const dx = f32(x.length);
    for (let i = 0; i < x.length; i++) { const v = x[i]!, s = 1 / (1 + Math.exp(-v)); dx[i] = g[i]! * s * (1 + v * (1 - s)); }
    return [dx];
  },
};

/** Σ over rows of dy [rows, N]. */
export function colSums(dy: F32, rows: number, N: number): F32 {
  const s = new Float64Array(N);
  for (let r = 0; r < rows; r++) for (let n = 0, o = r * N; n < N; n++) s[n] += dy[o + n]!;
  return Float32Array.from(s);
}

function product(hasBias: boolean, transposed: (c: Ctx32) => boolean): Op32 {
  const dims = (c: Ctx32) => {
    const K = lastDim(c.shapes[0]!), N = lastDim(c.outShapes[0]!);
    return { K, N, rows: f(c, 0).length / K, t: transposed(c) };
  };
  return {
    forward(c) {
      const { K, N, rows, t } = dims(c), b = hasBias ? (c.ins[2] as F32 | null) : null;
      const y = c.gemm.xwT(f(c, 0), rows, K, f(c, 1), N, t);
      if (b) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n] += b[n]!;
      return { outs: [y] };
    },
    backward(c, _s, d) {
      const { K, N, rows, t } = dims(c), dy = d0(d);
      const dx = c.gemm.dyW(dy, rows, N, f(c, 1), K, t), dw = c.gemm.dyTx(dy, rows, N, f(c, 0), K, t);
      return hasBias ? [dx, dw, c.ins[2] ? colSums(dy, rows, N) : null] : [dx, dw];
    },
  };
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** RMSNorm over runs of gs features (D a multiple of gs): y = w · x · inv; returns y and inv per run. */
function rmsF(x: F32, D: number, gs: number, w: F32, eps: number): { y: F32; inv: F32 } {
  const y = f32(x.length), inv = f32(x.length / gs);
  for (let g0 = 0, run = 0; g0 < x.length; g0 += gs, run++) {
    let ss = 0;
    for (let i = g0; i < g0 + gs; i++) ss += x[i]! * x[i]!;
    const r = 1 / Math.sqrt(ss / gs + eps), w0 = g0 % D;
    inv[run] = r;
    for (let i = 0; i < gs; i++) y[g0 + i] = w[w0 + i]! * x[g0 + i]! * r;
  }
  return { y, inv };
}

/** dx = inv · (dy·w − x · inv² · mean(dy·w·x)) per run; dw = Σ dy · x · inv. */
function rmsB(dy: F32, x: F32, inv: F32, D: number, gs: number, w: F32): { dx: F32; dw: F32 } {
  const dx = f32(x.length), dw = new Float64Array(D);
  for (let g0 = 0, run = 0; g0 < x.length; g0 += gs, run++) {
    const r = inv[run]!, w0 = g0 % D;
    let gx = 0;
    for (let i = 0; i < gs; i++) gx += dy[g0 + i]! * w[w0 + i]! * x[g0 + i]!;
    const cc = (r * r * gx) / gs;
    for (let i = 0; i < gs; i++) {
      const j = g0 + i;
      dx[j] = r * (dy[j]! * w[w0 + i]! - x[j]! * cc);
      dw[w0 + i] += dy[j]! * x[j]! * r;
    }
  }
  return { dx, dw: Float32Array.from(dw) };
}

export const OPS32: Readonly<Record<string, Op32>> = {
  embedding: {
    forward(c) {
      const ids = c.ins[0] as Int32Array, table = f(c, 1), D = c.shapes[1]![1]!, y = f32(ids.length * D);
      ids.forEach((id, t) => y.set(table.subarray(id * D, (id + 1) * D), t * D));
      return { outs: [y] };
    },
    backward(c, _s, d) {
      const ids = c.ins[0] as Int32Array, [V, D] = c.shapes[1]! as [number, number], dy = d0(d), dw = new Float64Array(V * D);
      ids.forEach((id, t) => { for (let i = 0; i < D; i++) dw[id * D + i] += dy[t * D + i]!; });
      return [null, Float32Array.from(dw)];
    },
  },
  linear: product(true, (c) => c.attrs.transposed === true),
  head: product(false, () => false),
  add: broadcasting(false),
  mul: broadcasting(true),
  split: {
    forward(c) {
      const x = f(c, 0), W = lastDim(c.shapes[0]!), rows = x.length / W;
      let col = 0;
      const outs = (c.attrs.sizes as number[]).map((n) => {
        const y = f32(rows * n);
        copyRows(x, col, W, y, 0, n, rows, n);
        col += n;
        return y;
      });
      return { outs };
    },
    backward(c, _s, d) {
      const W = lastDim(c.shapes[0]!), dx = f32(f(c, 0).length), rows = dx.length / W;
      let col = 0;
      (c.attrs.sizes as number[]).forEach((n, i) => {
        const g = d[i];
        if (g) copyRows(g, 0, n, dx, col, W, rows, n);
        col += n;
      });
      return [dx];
    },
  },
  // a view: the same floats (neither side writes into an operand)
  reshape: { forward: (c) => ({ outs: [f(c, 0)] }), backward: (_c, _s, d) => [d0(d)] },
  silu: SILU,
  gelu: pointwise((c) => (c.attrs.tanh === true ? POINTWISE.gelu_tanh : POINTWISE.gelu)),
  sigmoid: pointwise(() => POINTWISE.sigmoid),
  relu2: pointwise(() => POINTWISE.relu2),
  // x · the factor of its column: by, times factors[i] over part i of sizes
  scale: {
    forward: (c) => { const m = scaleFactors(c.attrs); return { outs: [f(c, 0).map((v, i) => v * m[i % m.length]!)] }; },
    backward: (c, _s, d) => { const m = scaleFactors(c.attrs); return [d0(d).map((v, i) => v * m[i % m.length]!)]; },
  },
  softplus: pointwise(() => POINTWISE.softplus),
  exp: pointwise(() => POINTWISE.exp),
  neg: pointwise(() => POINTWISE.neg),
  clamp: pointwise((c) => {
    const lo = num(c, 'min'), hi = num(c, 'max');
    return { f: (v) => Math.min(Math.max(v, lo), hi), df: (v) => (v >= lo && v <= hi ? 1 : 0) };
  }),
  rmsnorm: {
    forward(c) {
      const D = lastDim(c.shapes[0]!), R = c.gemm.rows;
      const r = R ? R.rmsF(f(c, 0), null, f(c, 1), D, D, num(c, 'eps')) : rmsF(f(c, 0), D, D, f(c, 1), num(c, 'eps'));
      return { outs: [r.y], saved: r.inv };
    },
    backward(c, inv, d) {
      const D = lastDim(c.shapes[0]!), R = c.gemm.rows;
      const r = R ? R.rmsB(d0(d), f(c, 0), inv as F32, f(c, 1), D, D, null) : rmsB(d0(d), f(c, 0), inv as F32, D, D, f(c, 1));
      return [r.dx, r.dw];
    },
  },
  // BambaRMSNormGated: h = x · silu(z), then the norm over groups; h is saved
  rmsnorm_gated: {
    forward(c) {
      const x = f(c, 0), z = f(c, 1), D = lastDim(c.shapes[0]!), R = c.gemm.rows;
      if (R) {
        const r = R.rmsF(x, z, f(c, 2), D, D / num(c, 'groups'), num(c, 'eps'));
        return { outs: [r.y], saved: { h: r.h, inv: r.inv } };
      }
      const h = f32(x.length);
      for (let i = 0; i < h.length; i++) h[i] = x[i]! * z[i]! * sigmoid(z[i]!);
      const r = rmsF(h, D, D / num(c, 'groups'), f(c, 2), num(c, 'eps'));
      return { outs: [r.y], saved: { h, inv: r.inv } };
    },
    backward(c, saved, d) {
      const { h, inv } = saved as { h: F32; inv: F32 };
      const x = f(c, 0), z = f(c, 1), D = lastDim(c.shapes[0]!), R = c.gemm.rows;
      if (R) {
        const r = R.rmsB(d0(d), h, inv, f(c, 2), D, D / num(c, 'groups'), { x, z });
        return [r.dx, r.dz, r.dw];
      }
      const r = rmsB(d0(d), h, inv, D, D / num(c, 'groups'), f(c, 2));
      const dx = f32(x.length), dz = f32(x.length);
      for (let i = 0; i < x.length; i++) {
        const s = sigmoid(z[i]!), dh = r.dx[i]!;
        dx[i] = dh * z[i]! * s;
        dz[i] = dh * x[i]! * s * (1 + z[i]! * (1 - s));
      }
      return [dx, dz, r.dw];
    },
  },
  layernorm: {
    forward(c) {
      const x = f(c, 0), D = lastDim(c.shapes[0]!), w = f(c, 1), b = c.ins[2] as F32 | null, rows = x.length / D;
      const y = f32(x.length), xhat = f32(x.length), inv = f32(rows);
      for (let r = 0; r < rows; r++) {
        let sum = 0, ss = 0;
        for (let i = r * D; i < (r + 1) * D; i++) sum += x[i]!;
        const mean = sum / D;
        for (let i = r * D; i < (r + 1) * D; i++) ss += (x[i]! - mean) ** 2;
        const iv = 1 / Math.sqrt(ss / D + num(c, 'eps'));
        inv[r] = iv;
        for (let i = 0; i < D; i++) {
          const xh = (x[r * D + i]! - mean) * iv;
          xhat[r * D + i] = xh;
          y[r * D + i] = xh * w[i]! + (b ? b[i]! : 0);
        }
      }
      return { outs: [y], saved: { xhat, inv } };
    },
    backward(c, saved, d) {
      const { xhat, inv } = saved as { xhat: F32; inv: F32 };
      const D = lastDim(c.shapes[0]!), w = f(c, 1), dy = d0(d), rows = xhat.length / D;
      const dx = f32(xhat.length), dw = new Float64Array(D), db = new Float64Array(D);
      for (let r = 0; r < rows; r++) {
        let mg = 0, mgx = 0;
        for (let i = 0; i < D; i++) {
          const g = dy[r * D + i]! * w[i]!;
          mg += g / D;
          mgx += (g * xhat[r * D + i]!) / D;
        }
        for (let i = 0; i < D; i++) {
          const j = r * D + i;
          dx[j] = inv[r]! * (dy[j]! * w[i]! - mg - xhat[j]! * mgx);
          dw[i] += dy[j]! * xhat[j]!;
          db[i] += dy[j]!;
        }
      }
      return [dx, Float32Array.from(dw), c.ins[2] ? Float32Array.from(db) : null];
    },
  },
  ...SEQ_OPS,
};
