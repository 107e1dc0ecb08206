// The training engine's matrix products in f32: the forward Y = X·Wᵀ and the backward's dX = dY·W
// and dW = dYᵀ·X, each one call of the wasm micro-kernels with its operands read through strides
// (nothing transposed), and attention's and the SSD's small products (`mm`). Where the row kernels
// carry the product kernels (./rows.ts: every product on their memory, the large ones split over
// their threads) they run all of them; else the WasmKernels products (runtime/wasm/kernels.ts
// product, shared: W packed into panels per call, the panels split over its threads). A `Gemm`
// without kernels runs the same sums in JS (the fallback where no wasm module is at hand; tests
// compare the two).

import type { WasmKernels } from '../../wasm/kernels.ts';
import { f32 } from './pool.ts';
import { type RowKernels, rowKernels } from './rows.ts';

export type F32 = Float32Array;

export interface Gemm {
  /** Y [T, N] = X [T, K] · Wᵀ, W [N, K] (or [K, N] when `wT`); written into `into` where given. */
  xwT(x: F32, T: number, K: number, w: F32, N: number, wT: boolean, into?: F32): F32;
  /** dX [T, K] = dY [T, N] · W, W [N, K] (or [K, N] when `wT`); written into `into` where given. */
  dyW(dy: F32, T: number, N: number, w: F32, K: number, wT: boolean, into?: F32): F32;
  /** dW [N, K] (or [K, N] when `wT`) = dYᵀ · X over the T rows; written into `into` where given. */
  dyTx(dy: F32, T: number, N: number, x: F32, K: number, wT: boolean, into?: F32): F32;
  /** A small product on the calling thread, its operands read through strides (WasmKernels.product):
   *  Y [T, N] = X·Wᵀ, X[t, k] = x[xo + t·xt + k·xk], W[n, k] = w[wo + n·wn + k·wk]; a view of Y, rows
   *  `ld` apart, valid until the next product. */
  mm(x: F32, xo: number, xt: number, xk: number, T: number, K: number, w: F32, wo: number, wn: number, wk: number, N: number): { y: F32; ld: number };
  /** Which engine runs the products ('wasm' or 'js'). */
  readonly kind: 'wasm' | 'js';
  /** The row-wise records' kernels in WebAssembly SIMD (./rows.ts), beside the wasm products; absent:
   *  the records' JS loops. */
  readonly rows?: RowKernels | null;
}

/** rows rows of n floats from src (offset so, rows sld apart) into dst (offset dO, rows dld apart):
 *  long rows by block copies, short ones element by element (a subarray per row costs more than
 *  the copy of a short row; 1024 rows of 512: 0.3 ms by blocks, 1.1 ms by elements). Returns dst. */
export function copyRows(src: F32, so: number, sld: number, dst: F32, dO: number, dld: number, rows: number, n: number): F32 {
  if (n >= 64) {
    for (let r = 0; r < rows; r++) dst.set(src.subarray(so + r * sld, so + r * sld + n), dO + r * dld);
    return dst;
  }
  for (let r = 0; r < rows; r++) {
    for (let i = 0, s = so + r * sld, o = dO + r * dld; i < n; i++) dst[o + i] = src[s + i]!;
  }
  return dst;
}

/** The product Y [T, N] = A·Bᵀ with A [T, K] rows contiguous and B given as [N, K] (bT false) or
 *  [K, N] (bT true), copied out of the kernels' scratch into a fresh array. */
function wasmProduct(k: WasmKernels, a: F32, T: number, K: number, b: F32, N: number, bT: boolean, into?: F32): F32 {
  const { y, ld } = k.product(a, 0, K, 1, T, K, b, 0, bT ? 1 : K, bT ? N : 1, N, true);
  const out = into ?? f32(T * N, false);
  if (ld === N) out.set(y.subarray(0, T * N));
  else for (let t = 0; t < T; t++) out.set(y.subarray(t * ld, t * ld + N), t * N);
  return out;
}

/** Y [M, N] = Aᵀ·B over the rows of A [R, M] and B [R, N] (dW = dYᵀ·X): A read by columns, B as
 *  the panels of a [K', N'] = [R, N] weight, so neither is transposed in JS. */
function wasmProductT(k: WasmKernels, a: F32, M: number, R: number, b: F32, N: number, into?: F32): F32 {
  const { y, ld } = k.product(a, 0, 1, M, M, R, b, 0, 1, N, N, true);
  const out = into ?? f32(M * N, false);
  for (let t = 0; t < M; t++) out.set(y.subarray(t * ld, t * ld + N), t * N);
  return out;
}

/** The products on `k`, or all of them on the row kernels `rows` (./rows.ts) where those have the
 *  product kernels (then `k` runs none). */
export function wasmGemm(k: WasmKernels, rows = rowKernels()): Gemm {
  if (rows?.products) return rowsGemm(rows);
  return {
    kind: 'wasm',
    rows,
    mm: (...a) => k.product(...a),
    xwT: (x, T, K, w, N, wT, into) => wasmProduct(k, x, T, K, w, N, wT, into),
    // dY·W: W as the panels' [N', K'] = Wᵀ, i.e. W [N, K] read transposed
    dyW: (dy, T, N, w, K, wT, into) => wasmProduct(k, dy, T, N, w, K, !wT, into),
    // dW [N, K] = dYᵀ·X: rows of dYᵀ against X read transposed; [K, N] = Xᵀ·dY likewise
    dyTx: (dy, T, N, x, K, wT, into) => (wT ? wasmProductT(k, x, K, T, dy, N, into) : wasmProductT(k, dy, N, T, x, K, into)),
  };
}

/** Every product on the row kernels' memory, operands read through strides (no transposing copies),
 *  results copied into pool arrays. */
function rowsGemm(rows: RowKernels): Gemm {
  const out = (T: number, N: number, r: { y: F32; ld: number }, into?: F32) => {
    const y = into ?? f32(T * N, false);
    if (r.ld === N) y.set(r.y.subarray(0, T * N));
    else copyRows(r.y, 0, r.ld, y, 0, N, T, N);
    return y;
  };
  return {
    kind: 'wasm',
    rows,
    mm: (x, xo, xt, xk, T, K, w, wo, wn, wk, N) => rows.mm(x, xo, xt, xk, T, K, w, wo, wn, wk, N),
    xwT: (x, T, K, w, N, wT, into) => out(T, N, rows.mm(x, 0, K, 1, T, K, w, 0, wT ? 1 : K, wT ? N : 1, N, true), into),
    // dX [T, K] = dY·W: W'[k, n] = W[n, k]
    dyW: (dy, T, N, w, K, wT, into) => out(T, K, rows.mm(dy, 0, N, 1, T, N, w, 0, wT ? N : 1, wT ? 1 : K, K, true), into),
    // dW [N, K] = dYᵀ·X: dYᵀ's rows are dY's columns, X's columns W's rows; [K, N] = Xᵀ·dY likewise
    dyTx: (dy, T, N, x, K, wT, into) => (wT ? out(K, N, rows.mm(x, 0, 1, K, K, T, dy, 0, 1, N, N, true), into) : out(N, K, rows.mm(dy, 0, 1, N, N, T, x, 0, 1, K, K, true), into)),
  };
}

/** The same products in JS (double accumulation, rounded once to f32). */
export const jsGemm: Gemm = {
  kind: 'js',
  mm(x, xo, xt, xk, T, K, w, wo, wn, wk, N) {
    const y = new Float32Array(T * N);
    for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let kk = 0; kk < K; kk++) acc += x[xo + t * xt + kk * xk]! * w[wo + n * wn + kk * wk]!;
      y[t * N + n] = acc;
    }
    return { y, ld: N };
  },
  xwT(x, T, K, w, N, wT, into) {
    const y = into ?? new Float32Array(T * N), sn = wT ? 1 : K, sk = wT ? N : 1;
    for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let kk = 0; kk < K; kk++) acc += x[t * K + kk]! * w[n * sn + kk * sk]!;
      y[t * N + n] = acc;
    }
    return y;
  },
  dyW(dy, T, N, w, K, wT, into) {
    const dx = into ?? new Float32Array(T * K), sn = wT ? 1 : K, sk = wT ? N : 1;
    for (let t = 0; t < T; t++) for (let kk = 0; kk < K; kk++) {
      let acc = 0;
      for (let n = 0; n < N; n++) acc += dy[t * N + n]! * w[n * sn + kk * sk]!;
      dx[t * K + kk] = acc;
    }
    return dx;
  },
  dyTx(dy, T, N, x, K, wT, into) {
    const dw = into ?? new Float32Array(N * K), sn = wT ? 1 : K, sk = wT ? N : 1;
    for (let n = 0; n < N; n++) for (let kk = 0; kk < K; kk++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += dy[t * N + n]! * x[t * K + kk]!;
      dw[n * sn + kk * sk] = acc;
    }
    return dw;
  },
};
